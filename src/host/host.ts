import { constants as fsc } from 'node:fs';
import { access, mkdir, open, readdir, readFile, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import writeFileAtomic from 'write-file-atomic';
import { execFailure, type ExecOutcome } from '../errors.ts';
import { systemClock, type Clock } from './clock.ts';
import { runBounded } from './run-bounded.ts';

export interface ExecOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  input?: string;
  /** Host path to run in. */
  cwd?: string;
  maxOutputBytes?: number;
}

export interface ExecResult extends ExecOutcome {
  argv: string[];
  /** The signal that ended the command (ours at a timeout or abort, or anyone's); null when it exited. */
  signal: string | null;
  /** The command does not exist on this host (under the root, when one is set). */
  notFound: boolean;
}

/** Runs a command and throws its ExecError unless it exits 0. */
export async function execChecked(host: Host, argv: readonly string[], options: ExecOptions): Promise<ExecResult> {
  const result = await host.exec(argv, options);
  const failure = execFailure(result);
  if (failure !== undefined) throw failure;
  return result;
}

/** Reads what has been appended to a log since the last call: /dev/kmsg records or a file's new lines. */
export interface LogReader {
  read(): Promise<string>;
  close(): Promise<void>;
}

/**
 * The only door to the machine. Every host path is resolved under `root`, and
 * external tools are taken from the root's bin directories when a root is set,
 * so a captured host directory can be replayed with `--root`.
 */
export interface Host {
  readonly root: string;
  readonly clock: Clock;
  path(hostPath: string): string;
  readText(hostPath: string): Promise<string>;
  /** undefined when the file does not exist. */
  tryReadText(hostPath: string): Promise<string | undefined>;
  exists(hostPath: string): Promise<boolean>;
  readDir(hostPath: string): Promise<string[]>;
  resolveCommand(command: string): Promise<string | undefined>;
  exec(argv: readonly string[], options: ExecOptions): Promise<ExecResult>;
  openLog(hostPath: string, options: { fromStart: boolean }): Promise<LogReader>;
  /** Writes through a temp file, fsync and rename, creating parent directories. */
  writeFileAtomic(hostPath: string, data: string, mode?: number): Promise<void>;
}

const ROOT_BIN_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

export interface LocalHostOptions {
  root?: string;
  clock?: Clock;
  /** Directories searched for bare command names on the live host (default: $PATH, then the standard bin dirs). */
  searchPath?: string[];
}

export function createHost(options: LocalHostOptions = {}): Host {
  return new LocalHost(options);
}

class LocalHost implements Host {
  readonly root: string;
  readonly clock: Clock;
  readonly #searchPath: string[];

  constructor(options: LocalHostOptions) {
    this.root = path.resolve(options.root ?? '/');
    this.clock = options.clock ?? systemClock;
    this.#searchPath =
      this.root === '/'
        ? (options.searchPath ?? [...(process.env.PATH ?? '').split(':').filter((d) => d !== ''), ...ROOT_BIN_DIRS])
        : ROOT_BIN_DIRS;
  }

  path(hostPath: string): string {
    if (!path.isAbsolute(hostPath)) throw new Error(`host path must be absolute: ${hostPath}`);
    return this.root === '/' ? path.normalize(hostPath) : path.join(this.root, path.normalize(hostPath));
  }

  readText(hostPath: string): Promise<string> {
    return readFile(this.path(hostPath), 'utf8');
  }

  async tryReadText(hostPath: string): Promise<string | undefined> {
    try {
      return await this.readText(hostPath);
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return undefined;
      throw err;
    }
  }

  async exists(hostPath: string): Promise<boolean> {
    try {
      await access(this.path(hostPath));
      return true;
    } catch {
      return false;
    }
  }

  readDir(hostPath: string): Promise<string[]> {
    return readdir(this.path(hostPath));
  }

  async resolveCommand(command: string): Promise<string | undefined> {
    const candidates = command.includes('/')
      ? [this.path(path.resolve('/', command))]
      : this.#searchPath.map((dir) => (this.root === '/' ? path.join(dir, command) : this.path(path.join(dir, command))));
    for (const candidate of candidates) {
      try {
        await access(candidate, fsc.X_OK);
        if ((await stat(candidate)).isFile()) return candidate;
      } catch {
        // not here; keep looking
      }
    }
    return undefined;
  }

  async exec(argv: readonly string[], options: ExecOptions): Promise<ExecResult> {
    const started = performance.now();
    const [command, ...args] = argv;
    const base = { argv: [...argv], stdout: '', stderr: '', signal: null, timedOut: false, timeoutMs: options.timeoutMs };
    const file = command === undefined ? undefined : await this.resolveCommand(command);
    if (file === undefined) {
      return { ...base, exitCode: null, notFound: true, durationMs: performance.now() - started };
    }
    const outcome = await runBounded(file, args, {
      timeoutMs: options.timeoutMs,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      ...(options.input === undefined ? {} : { input: options.input }),
      ...(options.maxOutputBytes === undefined ? {} : { maxOutputBytes: options.maxOutputBytes }),
      ...(options.cwd === undefined ? {} : { cwd: this.path(options.cwd) }),
    });
    return { ...base, ...outcome, notFound: false, durationMs: performance.now() - started };
  }

  async writeFileAtomic(hostPath: string, data: string, mode = 0o644): Promise<void> {
    const file = this.path(hostPath);
    await mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
    await writeFileAtomic(file, data, { mode, fsync: true });
  }

  async openLog(hostPath: string, options: { fromStart: boolean }): Promise<LogReader> {
    const file = this.path(hostPath);
    const info = await stat(file);
    if (info.isCharacterDevice()) return openDeviceReader(file);
    return openFileReader(file, options.fromStart ? 0 : info.size);
  }
}

async function openDeviceReader(file: string): Promise<LogReader> {
  // /dev/kmsg hands out one record per read(2) and EAGAIN at the end when non-blocking.
  const handle = await open(file, fsc.O_RDONLY | fsc.O_NONBLOCK);
  const buffer = Buffer.alloc(16 * 1024);
  return {
    async read() {
      let text = '';
      for (;;) {
        try {
          const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
          if (bytesRead === 0) return text;
          text += buffer.toString('utf8', 0, bytesRead);
        } catch (err) {
          if (isErrno(err, 'EAGAIN')) return text;
          // EPIPE: records were overwritten before we read them; the next read continues after the gap.
          if (isErrno(err, 'EPIPE')) continue;
          throw err;
        }
      }
    },
    close: () => handle.close(),
  };
}

async function openFileReader(file: string, startOffset: number): Promise<LogReader> {
  let handle: FileHandle = await open(file, 'r');
  let inode = (await handle.stat()).ino;
  let offset = startOffset;
  const buffer = Buffer.alloc(256 * 1024);
  // A read can end inside a multi-byte character that a writer is still appending.
  const decoder = new StringDecoder('utf8');
  return {
    async read() {
      // Follow rotation: a new inode at the path, or a truncated file, restarts from the top.
      try {
        const current = await stat(file);
        if (current.ino !== inode) {
          await handle.close();
          handle = await open(file, 'r');
          inode = current.ino;
          offset = 0;
        } else if (current.size < offset) {
          offset = 0;
        }
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) throw err;
      }
      let text = '';
      for (;;) {
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
        if (bytesRead === 0) break;
        text += decoder.write(buffer.subarray(0, bytesRead));
        offset += bytesRead;
      }
      return text;
    },
    close: () => handle.close(),
  };
}

export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}
