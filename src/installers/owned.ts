// Version directories this agent created, per component, in the state dir. Only these are trusted
// as an installed version and only these are ever pruned or removed: an install.dir shared with
// other software (`/opt`) holds directories that merely look like versions.
import { OwnedPaths } from './state.ts';
import { readInstallerState } from './status.ts';
import type { InstallContext } from './types.ts';

export const ownedFile = (stateDir: string, component: string): string => `${stateDir}/installers/owned/${component}.json`;

export async function ownedPaths(ctx: InstallContext, component: string): Promise<string[]> {
  return (await load(ctx, component)).paths;
}

async function load(ctx: InstallContext, component: string): Promise<OwnedPaths> {
  const problems: string[] = [];
  const owned = await readInstallerState(ctx.host, ownedFile(ctx.config.stateDir, component), OwnedPaths, { problems });
  // A bad file trusts nothing: no directory is taken for installed or pruned, which is the safe side.
  for (const p of problems) ctx.log.error({ component, err: p }, 'Owned-paths file set aside; trusting no version directory');
  return owned ?? { version: 1, paths: [] };
}

async function save(ctx: InstallContext, component: string, paths: string[], created?: string[]): Promise<void> {
  const value: OwnedPaths = { version: 1, paths: [...new Set(paths)].sort(), ...(created === undefined ? {} : { created: [...new Set(created)].sort() }) };
  await ctx.host.writeFileAtomic(ownedFile(ctx.config.stateDir, component), `${JSON.stringify(value)}\n`, 0o600);
}

/** Files, links and unit files the agent created (they did not exist before it wrote them). */
export async function createdPaths(ctx: InstallContext, component: string): Promise<string[]> {
  return (await load(ctx, component)).created ?? [];
}

/** After a successful run: what it found absent and wrote is the agent's own. */
export async function noteCreated(ctx: InstallContext, component: string, hostPaths: readonly string[]): Promise<void> {
  const owned = await load(ctx, component);
  const created = [...new Set([...(owned.created ?? []), ...hostPaths])];
  if (created.length !== (owned.created ?? []).length) await save(ctx, component, owned.paths, created);
}

/** Recorded before the directory appears at its name (a crash in between leaves a record of nothing, which is harmless). */
export async function own(ctx: InstallContext, component: string, hostPath: string): Promise<void> {
  const owned = await load(ctx, component);
  if (!owned.paths.includes(hostPath)) await save(ctx, component, [...owned.paths, hostPath], owned.created);
}

/** Dropped after the directory has left its name. */
export async function disown(ctx: InstallContext, component: string, hostPath: string): Promise<void> {
  const owned = await load(ctx, component);
  if (owned.paths.includes(hostPath)) await save(ctx, component, owned.paths.filter((p) => p !== hostPath), owned.created);
}

export async function isOwned(ctx: InstallContext, component: string, hostPath: string): Promise<boolean> {
  return (await ownedPaths(ctx, component)).includes(hostPath);
}
