// File operations for remedies: in-place writes to kernel tunables and age-based cleanup,
// on host paths re-rooted under host.root.
import { lstat, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { isErrno, type Host } from './host.ts';

/** A plain write (no temp file and rename): /proc and /sys files cannot be replaced, only written. */
export async function writeInPlace(host: Host, hostPath: string, data: string): Promise<void> {
  await writeFile(host.path(hostPath), data, { flag: 'w' });
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
  const walk = async (hostDir: string): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(host.path(hostDir));
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return;
      throw err;
    }
    for (const name of names) {
      if (removed.length >= limit) return;
      const child = path.posix.join(hostDir, name);
      const st = await lstat(host.path(child)).catch(() => undefined);
      if (st === undefined) continue;
      if (st.isDirectory()) await walk(child);
      else if (st.isFile() && nowMs - st.mtimeMs > olderThanMs) {
        if (options.dryRun !== true) await rm(host.path(child), { force: true });
        removed.push({ path: child, bytes: st.size });
      }
    }
  };
  await walk(path.posix.normalize(dirHostPath));
  return removed;
}
