// The host paths a spec manages (files, links, the unit file, the install directory) are never
// reached through a symlink and never replace a symlinked directory: on a merged-/usr root `/bin`
// is a link to `usr/bin`, and a file, link or version written "at /bin" would replace the system's
// directory or land in another one under a second name (two names that no conflict check can see).
import path from 'node:path';
import { readLink, statPath, statTarget } from '../host/files.ts';
import type { Host } from '../host/host.ts';

/** Why a managed path cannot be used as it stands; undefined when it can. */
export async function unsafeManagedPath(host: Host, hostPath: string, what: string, final: 'replace' | 'dir'): Promise<string | undefined> {
  const ancestors: string[] = [];
  for (let dir = path.posix.dirname(hostPath); dir !== '/'; dir = path.posix.dirname(dir)) ancestors.unshift(dir);
  for (const dir of ancestors) {
    const info = await statPath(host, dir);
    if (info === undefined) return undefined;
    if (info.type === 'symlink') {
      return `${what} ${hostPath} goes through the symlink ${dir} -> ${(await readLink(host, dir)) ?? '?'}; refusing to write through it (use the real path)`;
    }
  }
  const info = await statPath(host, hostPath);
  if (info?.type !== 'symlink') return undefined;
  const target = (await readLink(host, hostPath)) ?? '?';
  if (final === 'dir') return `${what} ${hostPath} is a symlink to ${target}; refusing to write through it (use the real path)`;
  if ((await statTarget(host, hostPath))?.type === 'dir') return `${what} ${hostPath} is a symlink to the directory ${target}; refusing to replace it`;
  return undefined;
}
