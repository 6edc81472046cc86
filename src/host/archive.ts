// Tarball inspection and extraction into a host directory, refusing anything that could land
// outside it: absolute paths, `..`, links escaping the directory, device files and FIFOs.
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { createGunzip } from 'node:zlib';
import type { Parser, ReadEntry } from 'tar';
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

export interface ArchiveLimits {
  /** Total of the entries' sizes, counted from their headers as they stream past. */
  maxUnpackedBytes: number;
  /** Entries of any type, counted as they stream past. */
  maxEntries: number;
}

/** Bytes of compressed input handed to the inflater at a time, and of output it hands on. */
const CHUNK = 64 * 1024;

async function isGzip(file: string): Promise<boolean> {
  const handle = await open(file, 'r');
  try {
    const magic = Buffer.alloc(2);
    const { bytesRead } = await handle.read(magic, 0, 2, 0);
    return bytesRead === 2 && magic[0] === 0x1f && magic[1] === 0x8b;
  } finally {
    await handle.close();
  }
}

/**
 * Streams a (gzip'd) tar file through `parser` with backpressure, in CHUNK-sized pieces: a gzip
 * bomb is inflated only as fast as its entries are consumed, never into memory at once (tar's
 * own file reader hands the inflater 16 MB of input in one write). `stop` ends the stream early.
 */
async function stream(file: string, parser: Parser, bind: (stop: (err: Error) => void) => void): Promise<void> {
  const gzip = await isGzip(file);
  const source = createReadStream(file, { highWaterMark: CHUNK });
  const gunzip = gzip ? createGunzip({ chunkSize: CHUNK }) : undefined;
  await new Promise<void>((resolve, reject) => {
    let settled = false;
    const stop = (err: Error): void => {
      if (settled) return;
      settled = true;
      source.unpipe();
      gunzip?.unpipe();
      source.destroy();
      gunzip?.destroy();
      reject(err);
    };
    bind(stop);
    source.on('error', (err) => stop(new ArchiveError(`cannot read the archive: ${err.message}`, { cause: err })));
    gunzip?.on('error', (err) => stop(new ArchiveError(`not a readable gzip stream: ${err.message}`, { cause: err })));
    parser.on('error', (err: Error) => stop(err instanceof ArchiveError ? err : new ArchiveError(`not a readable tar archive: ${err.message}`, { cause: err })));
    parser.on('end', () => {
      if (settled) return;
      settled = true;
      resolve();
    });
    (gunzip === undefined ? source : source.pipe(gunzip)).pipe(parser as unknown as NodeJS.WritableStream);
  });
}

/** Counts entries and their sizes as they stream past; throws ArchiveError at the first limit passed. */
function limiter(limits: ArchiveLimits): (size: number) => void {
  let entries = 0;
  let total = 0;
  return (size) => {
    entries += 1;
    total += size;
    if (entries > limits.maxEntries) throw new ArchiveError(`holds more than ${limits.maxEntries} entries (installers.maxArchiveEntries)`);
    if (total > limits.maxUnpackedBytes) throw new ArchiveError(`unpacks to more than ${limits.maxUnpackedBytes} bytes (installers.maxUnpackedBytes)`);
  };
}

/** Lists and checks every entry; throws ArchiveError on the first hostile one or the first limit passed. */
export async function inspectTarball(host: Host, fileHostPath: string, options: { strip: number } & ArchiveLimits): Promise<ArchiveEntry[]> {
  const entries: ArchiveEntry[] = [];
  const count = limiter(options);
  let stop: (err: Error) => void = () => undefined;
  // Loaded on the first archive: a daemon with no tarball to install never parses it (about 10 ms of its start).
  const { Parser } = await import('tar');
  const parser = new Parser({
    strict: true,
    onReadEntry: (e: ReadEntry) => {
      e.resume();
      try {
        count(e.size ?? 0);
        const checked = checkEntry({ path: e.path, type: e.type, size: e.size ?? 0, ...(e.linkpath === undefined ? {} : { linkpath: e.linkpath }) }, options.strip);
        if (checked !== undefined) entries.push(checked);
      } catch (err) {
        stop(err instanceof ArchiveError ? err : new ArchiveError(String(err)));
      }
    },
  });
  await stream(host.path(fileHostPath), parser, (s) => {
    stop = s;
  });
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

/** Extracts a tarball already checked with inspectTarball into an (empty) host directory, under the same limits. */
export async function extractTarball(host: Host, fileHostPath: string, destHostPath: string, options: { strip: number } & ArchiveLimits): Promise<void> {
  const count = limiter(options);
  let stop: (err: Error) => void = () => undefined;
  let warning: string | undefined;
  const { Unpack } = await import('tar');
  const unpack = new Unpack({
    cwd: host.path(destHostPath),
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
      const e = entry as { type?: string; size?: number };
      try {
        count(e.size ?? 0);
      } catch (err) {
        stop(err as Error);
        return false;
      }
      return ALLOWED.has(e.type ?? 'File') && !path.isAbsolute(p);
    },
  });
  await stream(host.path(fileHostPath), unpack, (s) => {
    stop = s;
  });
  if (warning !== undefined) throw new ArchiveError(`extraction warning: ${warning}`);
}
