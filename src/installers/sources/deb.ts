import { makeDir } from '../../host/files.ts';
import { execRootAware, isSandbox } from '../../host/tools.ts';
import type { InstallContext } from '../types.ts';
import { packageSource } from './package.ts';

/** Version of an installed package from dpkg's status database (read directly: no process per check). */
export function dpkgInstalledVersion(statusText: string, pkg: string): string | undefined {
  for (const stanza of statusText.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const line of stanza.split('\n')) {
      const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(line);
      if (m !== null) fields.set((m[1] as string).toLowerCase(), m[2] as string);
    }
    if (fields.get('package') !== pkg) continue;
    if (fields.get('status') !== 'install ok installed') continue;
    return fields.get('version');
  }
  return undefined;
}

export async function debInstalled(ctx: InstallContext, pkg: string): Promise<string | undefined> {
  const text = (await ctx.host.tryReadText('/var/lib/dpkg/status')) ?? '';
  return dpkgInstalledVersion(text, pkg);
}

/** --root/--admindir/--log for a sandbox tree: dpkg's own database and log inside it. */
async function dpkgRootArgs(ctx: InstallContext): Promise<string[]> {
  if (!isSandbox(ctx.host)) return [];
  await makeDir(ctx.host, '/var/log');
  return [`--root=${ctx.host.root}`, `--admindir=${ctx.host.path('/var/lib/dpkg')}`, `--log=${ctx.host.path('/var/log/dpkg.log')}`];
}

/** dpkg -i of a verified .deb; downgrades are allowed (a rollback is one). */
export const deb = packageSource({
  source: 'deb',
  verb: 'dpkg -i',
  installedVersion: debInstalled,
  nameOf: (ctx, artifact) => execRootAware(ctx.host, ['dpkg-deb', '--field', ctx.host.path(artifact), 'Package'], { timeoutMs: ctx.config.commandTimeoutMs }),
  async install(ctx, artifact) {
    const argv = ['dpkg', ...(await dpkgRootArgs(ctx)), '--force-confdef', '--force-confold', '--force-downgrade', '-i', ctx.host.path(artifact)];
    return execRootAware(ctx.host, argv, { timeoutMs: ctx.config.commandTimeoutMs });
  },
  async remove(ctx, pkg) {
    return execRootAware(ctx.host, ['dpkg', ...(await dpkgRootArgs(ctx)), '--purge', pkg], { timeoutMs: ctx.config.commandTimeoutMs });
  },
});
