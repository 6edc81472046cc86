// Version directories this agent created, per component, in the state dir. Only these are trusted
// as an installed version and only these are ever pruned or removed: an install.dir shared with
// other software (`/opt`) holds directories that merely look like versions.
import { OwnedPaths } from './state.ts';
import { readInstallerState } from './status.ts';
import type { InstallContext } from './types.ts';

export const ownedFile = (stateDir: string, component: string): string => `${stateDir}/installers/owned/${component}.json`;

export async function ownedPaths(ctx: InstallContext, component: string): Promise<string[]> {
  const problems: string[] = [];
  const owned = await readInstallerState(ctx.host, ownedFile(ctx.config.stateDir, component), OwnedPaths, { problems });
  // A bad file trusts nothing: no directory is taken for installed or pruned, which is the safe side.
  for (const p of problems) ctx.log.error({ component, err: p }, 'Owned-paths file set aside; trusting no version directory');
  return owned?.paths ?? [];
}

async function save(ctx: InstallContext, component: string, paths: string[]): Promise<void> {
  const value: OwnedPaths = { version: 1, paths: [...new Set(paths)].sort() };
  await ctx.host.writeFileAtomic(ownedFile(ctx.config.stateDir, component), `${JSON.stringify(value)}\n`, 0o600);
}

/** Recorded before the directory appears at its name (a crash in between leaves a record of nothing, which is harmless). */
export async function own(ctx: InstallContext, component: string, hostPath: string): Promise<void> {
  const paths = await ownedPaths(ctx, component);
  if (!paths.includes(hostPath)) await save(ctx, component, [...paths, hostPath]);
}

/** Dropped after the directory has left its name. */
export async function disown(ctx: InstallContext, component: string, hostPath: string): Promise<void> {
  const paths = await ownedPaths(ctx, component);
  if (paths.includes(hostPath)) await save(ctx, component, paths.filter((p) => p !== hostPath));
}

export async function isOwned(ctx: InstallContext, component: string, hostPath: string): Promise<boolean> {
  return (await ownedPaths(ctx, component)).includes(hostPath);
}
