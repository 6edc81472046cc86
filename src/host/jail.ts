// `--root` as a jail for everything the agent changes: a host path is resolved one component at a
// time under the root, and a symlink whose target leads outside the root is refused instead of
// followed. Every write, rename, chmod, chown and delete in src/host goes through here, whatever the
// tree holds (a captured host's absolute `/bin -> /usr/bin`, or a link planted to reach the machine).
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, readlink, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { AgentError } from '../errors.ts';

/** A host path that cannot be used as asked: it leads outside the root. */
export class HostPathError extends AgentError {
  readonly hostPath: string;
  constructor(hostPath: string, message: string) {
    super('HOST', `${hostPath}: ${message}`);
    this.hostPath = hostPath;
  }
}

const MAX_LINKS = 40;

function errnoOf(err: unknown): string | undefined {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : undefined;
}

/**
 * The real path under `root` that `hostPath` names, with every symlink on the way resolved and
 * checked to stay inside the root (the last component too when followFinal, as open/chmod/utimes
 * would follow it; not for rename, unlink or lstat, which act on the link itself). Components that
 * do not exist yet are appended as they are. With root '/' nothing can lead outside: no lookups.
 */
export async function resolveInRoot(root: string, hostPath: string, options: { followFinal: boolean }): Promise<string> {
  if (!path.isAbsolute(hostPath)) throw new HostPathError(hostPath, 'host path must be absolute');
  if (root === '/') return path.normalize(hostPath);
  const todo = hostPath.split('/').filter((s) => s !== '' && s !== '.');
  const done: string[] = [];
  let links = 0;
  while (todo.length > 0) {
    const seg = todo.shift() as string;
    if (seg === '..') {
      // Only link targets can bring `..` here (hostPath is normalized by its callers' schemas, but not trusted).
      if (done.length === 0) throw new HostPathError(hostPath, `climbs above the root ${root}; refusing`);
      done.pop();
      continue;
    }
    const real = path.join(root, ...done, seg);
    if (todo.length === 0 && !options.followFinal) {
      done.push(seg);
      break;
    }
    let target: string | undefined;
    try {
      if ((await lstat(real)).isSymbolicLink()) target = await readlink(real);
    } catch (err) {
      const code = errnoOf(err);
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
      // Nothing further exists: the rest is created, not followed.
      done.push(seg, ...todo);
      break;
    }
    if (target === undefined) {
      done.push(seg);
      continue;
    }
    if (++links > MAX_LINKS) throw new HostPathError(hostPath, `more than ${MAX_LINKS} symlinks on the way; refusing`);
    const linkHostPath = `/${[...done, seg].join('/')}`;
    const outside = (): HostPathError =>
      new HostPathError(hostPath, `${linkHostPath} is a symlink to ${target}, which leads outside the root ${root}; refusing to write through it`);
    if (path.isAbsolute(target)) {
      const rel = path.relative(root, path.normalize(target));
      if (rel === '..' || rel.startsWith('../') || path.isAbsolute(rel)) throw outside();
      done.length = 0;
      todo.unshift(...rel.split('/').filter((s) => s !== ''));
    } else {
      const parts = target.split('/').filter((s) => s !== '' && s !== '.');
      // A relative target climbing past the root would land outside it.
      let depth = done.length;
      for (const p of parts) {
        depth += p === '..' ? -1 : 1;
        if (depth < 0) throw outside();
      }
      todo.unshift(...parts);
    }
  }
  return path.join(root, ...done);
}

/** Name of an atomic write's temp file: recognisable, so a start-up sweep can remove what a kill -9 left. */
export const tempName = (finalName: string): string => `.${finalName}.kubenode-${randomBytes(6).toString('hex')}`;
/** Matches tempName()'s names. */
export const TEMP_NAME = /^\..+\.kubenode-[0-9a-f]{12}$/;

export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export interface AtomicWriteOptions {
  mode: number;
  uid?: number;
  gid?: number;
}

/**
 * Writes a real (already resolved) path atomically: a temp file next to it, fsync, mode and owner
 * applied, rename over the target (a symlink there is replaced, never written through), fsync of
 * the directory. A crash leaves the old or the new file, never a mix, plus at most a temp file.
 */
export async function writeAtomicReal(file: string, data: string | Uint8Array, options: AtomicWriteOptions): Promise<void> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const tmp = path.join(dir, tempName(path.basename(file)));
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
  await renameIntoPlace(tmp, file);
}

/** Renames a finished temporary (a file, a link) over its real destination and syncs the directory; a failed rename removes the temporary. */
export async function renameIntoPlace(tmp: string, dest: string): Promise<void> {
  try {
    await rename(tmp, dest);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(path.dirname(dest));
}
