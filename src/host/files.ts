// File operations the installers need, on host paths re-rooted under host.root (never outside it).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, chown, copyFile, link, lstat, mkdir, open, readdir, readFile, readlink, realpath, rename, rm, stat, symlink, utimes } from 'node:fs/promises';
import path from 'node:path';
import { isErrno, type Host } from './host.ts';
import { fsyncDir, renameIntoPlace, resolveInRoot, TEMP_NAME, tempName, writeAtomicReal, type AtomicWriteOptions } from './jail.ts';

/** Where a change to a host path lands, checked against the root (src/host/jail.ts). */
export const writablePath = (host: Host, hostPath: string, followFinal: boolean): Promise<string> => resolveInRoot(host.root, hostPath, { followFinal });

export interface FileInfo {
  type: 'file' | 'dir' | 'symlink' | 'other';
  /** Permission bits (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeMs: number;
}

/** lstat of a host path; undefined when absent. */
export async function statPath(host: Host, hostPath: string): Promise<FileInfo | undefined> {
  try {
    const s = await lstat(host.path(hostPath));
    const type = s.isFile() ? 'file' : s.isDirectory() ? 'dir' : s.isSymbolicLink() ? 'symlink' : 'other';
    return { type, mode: s.mode & 0o7777, uid: s.uid, gid: s.gid, size: s.size, mtimeMs: s.mtimeMs };
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return undefined;
    throw err;
  }
}

/** stat of what a host path names, following symlinks (the way a write through it would go); undefined when absent or dangling. */
export async function statTarget(host: Host, hostPath: string): Promise<FileInfo | undefined> {
  try {
    const s = await stat(host.path(hostPath));
    const type = s.isFile() ? 'file' : s.isDirectory() ? 'dir' : 'other';
    return { type, mode: s.mode & 0o7777, uid: s.uid, gid: s.gid, size: s.size, mtimeMs: s.mtimeMs };
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR') || isErrno(err, 'ELOOP')) return undefined;
    throw err;
  }
}

export async function readBytes(host: Host, hostPath: string): Promise<Buffer | undefined> {
  try {
    return await readFile(host.path(hostPath));
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR') || isErrno(err, 'EISDIR')) return undefined;
    throw err;
  }
}

/** sha256 of a regular file's content (streamed); undefined when absent. */
export async function hashFile(host: Host, hostPath: string): Promise<string | undefined> {
  const file = host.path(hostPath);
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR') || isErrno(err, 'EISDIR')) return undefined;
    throw err;
  }
  return hash.digest('hex');
}

export async function readLink(host: Host, hostPath: string): Promise<string | undefined> {
  try {
    return await readlink(host.path(hostPath));
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'EINVAL') || isErrno(err, 'ENOTDIR')) return undefined;
    throw err;
  }
}

export async function makeDir(host: Host, hostPath: string, mode = 0o755): Promise<void> {
  await mkdir(await writablePath(host, hostPath, true), { recursive: true, mode });
}

export async function listDir(host: Host, hostPath: string): Promise<string[]> {
  try {
    return await readdir(host.path(hostPath));
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return [];
    throw err;
  }
}

/** rm -rf of a host path; the root itself is never removed. */
export async function removePath(host: Host, hostPath: string): Promise<void> {
  const target = await writablePath(host, hostPath, false);
  if (path.resolve(target) === path.resolve(host.root)) throw new Error(`refusing to remove the host root ${host.root}`);
  await rm(target, { recursive: true, force: true });
}

export async function renamePath(host: Host, from: string, to: string): Promise<void> {
  const dest = await writablePath(host, to, false);
  await rename(await writablePath(host, from, false), dest);
  await fsyncDir(path.dirname(dest));
}

export type WriteOptions = AtomicWriteOptions;

/**
 * Writes a file atomically: a temp file next to it, fsync, mode and owner applied, rename over
 * the target, fsync of the directory. A crash leaves either the old or the new file, never a mix.
 */
export async function writeFileAtomicOwned(host: Host, hostPath: string, data: string | Uint8Array, options: WriteOptions): Promise<void> {
  await writeAtomicReal(await writablePath(host, hostPath, false), data, options);
}

/** Applies mode and owner to an existing path without rewriting it. */
export async function setModeOwner(host: Host, hostPath: string, options: WriteOptions): Promise<void> {
  const file = await writablePath(host, hostPath, true);
  await chmod(file, options.mode);
  if (options.uid !== undefined || options.gid !== undefined) await chown(file, options.uid ?? -1, options.gid ?? -1);
}

/**
 * Points a symlink at `target` atomically: a new link beside it renamed over the old one, so a
 * reader sees the old or the new target, never no link. `target` is stored as given (relative
 * targets stay relative, so the link also resolves inside a sandbox root).
 */
export async function swapSymlink(host: Host, linkHostPath: string, target: string): Promise<void> {
  const link = await writablePath(host, linkHostPath, false);
  const dir = path.dirname(link);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const tmp = path.join(dir, tempName(path.basename(link)));
  await symlink(target, tmp);
  await renameIntoPlace(tmp, link);
}

/** Marks a path as used now (pruning keeps the most recently used versions). */
export async function touch(host: Host, hostPath: string): Promise<void> {
  const now = new Date();
  await utimes(await writablePath(host, hostPath, true), now, now);
}

/** Removes leftovers of interrupted atomic writes (`.NAME.kubenode-XXXX`) in a directory. */
export async function removeTempSiblings(host: Host, dirHostPath: string): Promise<string[]> {
  const removed: string[] = [];
  const names = await listDir(host, dirHostPath);
  if (!names.some((n) => TEMP_NAME.test(n))) return removed;
  const dir = await writablePath(host, dirHostPath, true);
  for (const name of names) {
    if (TEMP_NAME.test(name)) {
      await rm(path.join(dir, name), { recursive: true, force: true });
      removed.push(name);
    }
  }
  return removed;
}


/**
 * Keeps a file of this machine (the agent's own executable) at a host path, whole or not at all: a
 * hard link when both are on one filesystem (the inode survives a package replacing the original),
 * else a copy; either way made under a temp name, synced, and renamed into place. A link is
 * followed: what is kept is the file (…/1.0.0/kubenode-agent), not a link (/usr/bin/kubenode-agent)
 * whose target may change.
 */
export async function keepLocalFile(host: Host, localPath: string, hostPath: string, mode: number): Promise<void> {
  const source = await realpath(localPath);
  const dest = await writablePath(host, hostPath, false);
  await mkdir(path.dirname(dest), { recursive: true, mode: 0o700 });
  const tmp = path.join(path.dirname(dest), tempName(path.basename(dest)));
  try {
    try {
      await link(source, tmp);
    } catch (err) {
      if (!isErrno(err, 'EXDEV') && !isErrno(err, 'EPERM')) throw err;
      await copyFile(source, tmp);
      await chmod(tmp, mode);
      const fh = await open(tmp, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
    await rename(tmp, dest);
    await fsyncDir(path.dirname(dest));
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
