// Tarball inspection and extraction into a host directory, refusing anything that could land
// outside it: absolute paths, `..`, links escaping the directory, device files and FIFOs.
import path from 'node:path';
import { list, extract, type ReadEntry } from 'tar';
import { AgentError } from '../errors.ts';
import type { Host } from './host.ts';

/** A tarball refused: hostile, unreadable or over a limit. */
export class ArchiveError extends AgentError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ARCHIVE', message, options);
  }
}

export interface ArchiveEntry {
  /** Path inside the destination after stripComponents. */
  path: string;
  type: string;
  size: number;
  linkpath?: string;
}

const ALLOWED = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link']);

function segments(p: string): string[] {
  return p.split('/').filter((s) => s !== '' && s !== '.');
}

/** Resolves a relative path inside a virtual root; undefined when it climbs out. */
function inside(base: string[], rel: string): string[] | undefined {
  const out = [...base];
  for (const seg of rel.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (out.length === 0) return undefined;
      out.pop();
    } else out.push(seg);
  }
  return out;
}

/** Checks one raw entry; returns it with the stripped path, or undefined when stripping drops it. */
export function checkEntry(raw: { path: string; type: string; size: number; linkpath?: string }, strip: number): ArchiveEntry | undefined {
  const name = raw.path;
  if (!ALLOWED.has(raw.type)) throw new ArchiveError(`${JSON.stringify(name)}: ${raw.type} entries are not allowed`);
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) throw new ArchiveError(`${JSON.stringify(name)}: absolute paths are not allowed`);
  if (name.includes('\0')) throw new ArchiveError(`${JSON.stringify(name)}: NUL in path`);
  const rawSegs = name.split('/').filter((s) => s !== '' && s !== '.');
  if (rawSegs.includes('..')) throw new ArchiveError(`${JSON.stringify(name)}: '..' in path is not allowed`);
  const segs = rawSegs.slice(strip);
  if (segs.length === 0) return undefined;
  const entry: ArchiveEntry = { path: segs.join('/'), type: raw.type, size: raw.size };
  if (raw.type === 'SymbolicLink') {
    const target = raw.linkpath ?? '';
    if (target === '' || target.startsWith('/')) throw new ArchiveError(`${JSON.stringify(name)}: symlink to ${JSON.stringify(target)} points outside the archive`);
    if (inside(segs.slice(0, -1), target) === undefined) throw new ArchiveError(`${JSON.stringify(name)}: symlink to ${JSON.stringify(target)} points outside the archive`);
    entry.linkpath = target;
  } else if (raw.type === 'Link') {
    const target = raw.linkpath ?? '';
    const targetSegs = segments(target);
    if (target.startsWith('/') || targetSegs.includes('..') || targetSegs.length <= strip) {
      throw new ArchiveError(`${JSON.stringify(name)}: hard link to ${JSON.stringify(target)} points outside the archive`);
    }
    entry.linkpath = targetSegs.slice(strip).join('/');
  }
  return entry;
}

/** Lists and checks every entry; throws ArchiveError on the first hostile one. */
export async function inspectTarball(host: Host, fileHostPath: string, options: { strip: number; maxUnpackedBytes: number }): Promise<ArchiveEntry[]> {
  const entries: ArchiveEntry[] = [];
  let total = 0;
  let failure: Error | undefined;
  await list({
    file: host.path(fileHostPath),
    strict: true,
    onReadEntry: (e: ReadEntry) => {
      if (failure !== undefined) return;
      try {
        const checked = checkEntry({ path: e.path, type: e.type, size: e.size ?? 0, ...(e.linkpath === undefined ? {} : { linkpath: e.linkpath }) }, options.strip);
        if (checked === undefined) return;
        total += checked.size;
        if (total > options.maxUnpackedBytes) throw new ArchiveError(`unpacks to more than ${options.maxUnpackedBytes} bytes`);
        entries.push(checked);
      } catch (err) {
        failure = err as Error;
      }
    },
  }).catch((err: unknown) => {
    failure ??= new ArchiveError(`not a readable tar archive: ${err instanceof Error ? err.message : String(err)}`);
  });
  if (failure !== undefined) throw failure instanceof ArchiveError ? failure : new ArchiveError(failure.message);
  // A path used both as a symlink and as a directory prefix of a later entry would write through the link.
  const links = new Set(entries.filter((e) => e.type === 'SymbolicLink').map((e) => e.path));
  for (const e of entries) {
    const segs = e.path.split('/');
    for (let i = 1; i < segs.length; i++) {
      const prefix = segs.slice(0, i).join('/');
      if (links.has(prefix)) throw new ArchiveError(`${JSON.stringify(e.path)}: written through the symlink ${JSON.stringify(prefix)}`);
    }
  }
  return entries;
}

/** Extracts a tarball already checked with inspectTarball into an (empty) host directory. */
export async function extractTarball(host: Host, fileHostPath: string, destHostPath: string, options: { strip: number }): Promise<void> {
  const cwd = host.path(destHostPath);
  let warning: string | undefined;
  await extract({
    file: host.path(fileHostPath),
    cwd,
    strip: options.strip,
    strict: true,
    preservePaths: false,
    preserveOwner: false,
    noMtime: false,
    unlink: true,
    onwarn: (code: string, message: string) => {
      warning ??= `${code}: ${message}`;
    },
    filter: (p: string, entry: unknown) => {
      const type = (entry as { type?: string }).type ?? 'File';
      return ALLOWED.has(type) && !path.isAbsolute(p);
    },
  });
  if (warning !== undefined) throw new ArchiveError(`extraction warning: ${warning}`);
}
