// File operations the installers need, on host paths re-rooted under host.root (never outside it).
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, chown, lstat, mkdir, open, readdir, readFile, readlink, rename, rm, symlink, utimes } from 'node:fs/promises';
import path from 'node:path';
import { isErrno, type Host } from './host.ts';

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
  await mkdir(host.path(hostPath), { recursive: true, mode });
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
  const target = host.path(hostPath);
  if (path.resolve(target) === path.resolve(host.root)) throw new Error(`refusing to remove the host root ${host.root}`);
  await rm(target, { recursive: true, force: true });
}

export async function renamePath(host: Host, from: string, to: string): Promise<void> {
  await rename(host.path(from), host.path(to));
  await fsyncDir(host.path(path.dirname(to)));
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export interface WriteOptions {
  mode: number;
  uid?: number;
  gid?: number;
}

/**
 * Writes a file atomically: a temp file next to it, fsync, mode and owner applied, rename over
 * the target, fsync of the directory. A crash leaves either the old or the new file, never a mix.
 */
export async function writeFileAtomicOwned(host: Host, hostPath: string, data: string | Uint8Array, options: WriteOptions): Promise<void> {
  const file = host.path(hostPath);
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const tmp = path.join(dir, `.${path.basename(file)}.kubenode-${randomBytes(6).toString('hex')}`);
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(data);
    await handle.chmod(options.mode);
    if (options.uid !== undefined || options.gid !== undefined) await handle.chown(options.uid ?? -1, options.gid ?? -1);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(dir);
}

/** Applies mode and owner to an existing path without rewriting it. */
export async function setModeOwner(host: Host, hostPath: string, options: WriteOptions): Promise<void> {
  const file = host.path(hostPath);
  await chmod(file, options.mode);
  if (options.uid !== undefined || options.gid !== undefined) await chown(file, options.uid ?? -1, options.gid ?? -1);
}

/**
 * Points a symlink at `target` atomically: a new link beside it renamed over the old one, so a
 * reader sees the old or the new target, never no link. `target` is stored as given (relative
 * targets stay relative, so the link also resolves inside a sandbox root).
 */
export async function swapSymlink(host: Host, linkHostPath: string, target: string): Promise<void> {
  const link = host.path(linkHostPath);
  const dir = path.dirname(link);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const tmp = path.join(dir, `.${path.basename(link)}.kubenode-${randomBytes(6).toString('hex')}`);
  await symlink(target, tmp);
  try {
    await rename(tmp, link);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(dir);
}

/** Marks a path as used now (pruning keeps the most recently used versions). */
export async function touch(host: Host, hostPath: string): Promise<void> {
  const now = new Date();
  await utimes(host.path(hostPath), now, now);
}

/** Removes leftovers of interrupted atomic writes (`.NAME.kubenode-XXXX`) in a directory. */
export async function removeTempSiblings(host: Host, dirHostPath: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await listDir(host, dirHostPath)) {
    if (/^\..+\.kubenode-[0-9a-f]{12}$/.test(name)) {
      await rm(path.join(host.path(dirHostPath), name), { recursive: true, force: true });
      removed.push(name);
    }
  }
  return removed;
}
