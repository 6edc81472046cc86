// File operations for remedies: in-place writes to kernel tunables and age-based cleanup,
// on host paths re-rooted under host.root.
import { lstat, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { isErrno, type Host } from './host.ts';
import { resolveInRoot } from './jail.ts';

/** A plain write (no temp file and rename): /proc and /sys files cannot be replaced, only written. */
export async function writeInPlace(host: Host, hostPath: string, data: string): Promise<void> {
  await writeFile(await resolveInRoot(host.root, hostPath, { followFinal: true }), data, { flag: 'w' });
}

export interface RemovedEntry {
  path: string;
  bytes: number;
}

/**
 * Removes regular files under a host directory last modified more than olderThanMs ago, walking
 * subdirectories but never following symlinks; the directory itself stays.
 */
export async function removeOlderThan(host: Host, dirHostPath: string, olderThanMs: number, nowMs: number, options: { dryRun?: boolean; limit?: number } = {}): Promise<RemovedEntry[]> {
  const removed: RemovedEntry[] = [];
  const limit = options.limit ?? 100_000;
  // The walk starts from the directory's real path under the root and never follows a link, so
  // every path it removes is inside the root.
  const top = path.posix.normalize(dirHostPath);
  const topReal = await resolveInRoot(host.root, top, { followFinal: true });
  const walk = async (hostDir: string, realDir: string): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(realDir);
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return;
      throw err;
    }
    for (const name of names) {
      if (removed.length >= limit) return;
      const child = path.posix.join(hostDir, name);
      const real = path.join(realDir, name);
      const st = await lstat(real).catch(() => undefined);
      if (st === undefined) continue;
      if (st.isDirectory()) await walk(child, real);
      else if (st.isFile() && nowMs - st.mtimeMs > olderThanMs) {
        if (options.dryRun !== true) await rm(real, { force: true });
        removed.push({ path: child, bytes: st.size });
      }
    }
  };
  await walk(top, topReal);
  return removed;
}
