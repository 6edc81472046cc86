import { statfs } from 'node:fs/promises';
import type { Host } from './host.ts';

/** What statfs(2) says about one mounted filesystem, in blocks and inodes. */
export interface FsStats {
  /** Fundamental block size in bytes. */
  bsize: number;
  blocks: number;
  bfree: number;
  /** Blocks available to unprivileged users (bfree minus the reserved blocks). */
  bavail: number;
  files: number;
  ffree: number;
}

/**
 * A captured host cannot carry statfs results as files, so a replayed root may hold them in
 * this host file: a JSON object from mountpoint to FsStats, captured with `stat -f` on the
 * real machine. It is read only when a root other than / is set.
 */
export const STATFS_REPLAY_FILE = '/.kubenode-replay/statfs.json';

/**
 * statfs(2) of a mountpoint on the host. Under --root, a replay file (STATFS_REPLAY_FILE) answers
 * for the mountpoints it lists; any other mountpoint is looked up under the root itself.
 * undefined when the mountpoint is not there.
 */
export async function hostStatfs(host: Host, mountpoint: string): Promise<FsStats | undefined> {
  if (host.root !== '/') {
    const replay = await host.tryReadText(STATFS_REPLAY_FILE);
    if (replay !== undefined) {
      const table = JSON.parse(replay) as Record<string, FsStats>;
      const entry = table[mountpoint];
      if (entry !== undefined) return entry;
    }
  }
  try {
    const s = await statfs(host.path(mountpoint));
    return { bsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree };
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EACCES') return undefined;
    throw err;
  }
}
