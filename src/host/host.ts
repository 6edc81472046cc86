import { constants as fsc, readdirSync, readFileSync } from 'node:fs';
import { access, readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { execFailure, hostWriteError, type ExecOutcome } from '../errors.ts';
import { systemClock, type Clock } from './clock.ts';
import { resolveInRoot, writeAtomicReal } from './jail.ts';
import { runBounded, type BoundedOptions } from './run-bounded.ts';
import { openCommandLog, openDeviceLog, openFileLog, type CommandLog, type LogReader } from './log-follow.ts';

/** The process runner's limits and input (BoundedOptions), with the directory to run in a host path. */
export interface ExecOptions extends Omit<BoundedOptions, 'cwd'> {
  /** Host path to run in. */
  cwd?: string;
  /**
   * The command's path may come from a lookup up to LOOKUP_MEMO_MS old (a found one is checked to
   * be there still): for a detector's read-only probe, which would otherwise search every bin
   * directory for its tools each interval, and for an absent tool find it absent six times over.
   * A tool installed meanwhile is seen up to a minute late. Never for what acts on the host: a
   * tool an installer has just put in place must be found at once.
   */
  cachedLookup?: boolean;
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

export type { CommandLog, LogReader } from './log-follow.ts';

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
  /**
   * One of the kernel pseudo-files in PSEUDO_FILES, read synchronously on the calling thread;
   * undefined when it does not exist (or its process has exited). Throws for any other path.
   */
  readPseudoFile(hostPath: string): string | undefined;
  /** The process IDs under /proc, listed synchronously (PSEUDO_FILES says why that cannot block). */
  listProcessIds(): string[];
  /** The file a command name runs, undefined when the host has none; `cached` as ExecOptions.cachedLookup. */
  resolveCommand(command: string, options?: { cached?: boolean }): Promise<string | undefined>;
  exec(argv: readonly string[], options: ExecOptions): Promise<ExecResult>;
  /** Follows a log from its start, or from its end (`fromStart: false`, for a file; a device always replays its buffer). */
  openLog(hostPath: string, options: { fromStart: boolean }): Promise<LogReader>;
  /** Starts a long-running command (e.g. `journalctl -f`) and follows its stdout; undefined when the host lacks it. */
  followCommand(argv: readonly string[]): Promise<CommandLog | undefined>;
  /** Writes through a temp file, fsync and rename, creating parent directories; never through a symlink out of the root. */
  writeFileAtomic(hostPath: string, data: string, mode?: number): Promise<void>;
}

/**
 * The kernel pseudo-files read on the event loop's own thread (Host.readPseudoFile). A probe reads
 * them every interval, a few hundred /proc/PID/stat among them; through the threadpool each file
 * is four hand-offs to a pool thread and back (open, fstat, read, close), two wakeups each. Each
 * file here is generated from in-memory state under spinlocks, RCU or a mutex held only for a
 * computation (psi's avgs_lock), so reading it cannot wait on another task, whatever that task is
 * stuck in. Listing /proc walks the task list under RCU (Host.listProcessIds).
 *
 * Never add: /proc/PID/cmdline, environ, maps, smaps or mem (they take the target's mmap lock,
 * which a task stuck in D state can hold indefinitely: the reason `ps` hangs); /proc/mounts (the mount namespace's semaphore, held across a mount that
 * waits on a dead NFS server); sysfs device attributes (their show() may ask the hardware); any
 * file on a real filesystem. A synchronous read that hangs wedges the whole agent, on every node.
 */
const PSEUDO_FILES: readonly RegExp[] = [
  /^\/proc\/(?:meminfo|loadavg)$/,
  /^\/proc\/pressure\/(?:cpu|memory|io)$/,
  /^\/proc\/sys\/kernel\/(?:pid_max|threads-max)$/,
  /^\/proc\/sys\/fs\/file-nr$/,
  /^\/proc\/sys\/net\/netfilter\/nf_conntrack_(?:count|max)$/,
  /^\/proc\/\d+\/stat$/,
];

const ROOT_BIN_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** How long a cached command lookup (ExecOptions.cachedLookup) stands, on the host's clock. */
export const LOOKUP_MEMO_MS = 60_000;

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
  /** Lookups of the commands probes run (their names come from code and configuration: a bounded set). */
  readonly #lookups = new Map<string, { file: string | undefined; at: number }>();

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

  readPseudoFile(hostPath: string): string | undefined {
    if (!PSEUDO_FILES.some((re) => re.test(hostPath))) throw new Error(`${hostPath} is not a pseudo-file that can be read without blocking (host.ts PSEUDO_FILES)`);
    try {
      return readFileSync(this.path(hostPath), 'utf8');
    } catch (err) {
      // ESRCH: the process exited between listing /proc and reading its file.
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR') || isErrno(err, 'ESRCH')) return undefined;
      throw err;
    }
  }

  listProcessIds(): string[] {
    return readdirSync(this.path('/proc')).filter((name) => /^\d+$/.test(name));
  }

  async resolveCommand(command: string, options: { cached?: boolean } = {}): Promise<string | undefined> {
    const now = this.clock.now();
    const memo = this.#lookups.get(command);
    if (options.cached === true && memo !== undefined && now >= memo.at && now - memo.at < LOOKUP_MEMO_MS) {
      if (memo.file === undefined) return undefined;
      const info = await stat(memo.file).catch(() => undefined);
      if (info?.isFile() === true && (info.mode & 0o111) !== 0) return memo.file;
    }
    const file = await this.#search(command);
    // A fresh lookup renews a probe's memo too: what an installer has just found, a probe finds next.
    if (options.cached === true || memo !== undefined) this.#lookups.set(command, { file, at: now });
    return file;
  }

  async #search(command: string): Promise<string | undefined> {
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
    const file = command === undefined ? undefined : await this.resolveCommand(command, { cached: options.cachedLookup === true });
    if (file === undefined) {
      return { ...base, exitCode: null, notFound: true, durationMs: performance.now() - started };
    }
    const outcome = await runBounded(file, args, {
      timeoutMs: options.timeoutMs,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      ...(options.input === undefined ? {} : { input: options.input }),
      ...(options.maxOutputBytes === undefined ? {} : { maxOutputBytes: options.maxOutputBytes }),
      ...(options.overflow === undefined ? {} : { overflow: options.overflow }),
      ...(options.cwd === undefined ? {} : { cwd: this.path(options.cwd) }),
    });
    return { ...base, ...outcome, notFound: false, durationMs: performance.now() - started };
  }

  async writeFileAtomic(hostPath: string, data: string, mode = 0o644): Promise<void> {
    // Every write the agent makes names its file when the host refuses it (a full disk, a read-only mount).
    await writeAtomicReal(await resolveInRoot(this.root, hostPath, { followFinal: false }), data, { mode }).catch((err: unknown) => {
      throw hostWriteError(this.path(hostPath), err);
    });
  }

  async followCommand(argv: readonly string[]): Promise<CommandLog | undefined> {
    const [command, ...args] = argv;
    const file = command === undefined ? undefined : await this.resolveCommand(command);
    return file === undefined ? undefined : openCommandLog(file, args);
  }

  async openLog(hostPath: string, options: { fromStart: boolean }): Promise<LogReader> {
    const file = this.path(hostPath);
    const info = await stat(file);
    if (info.isCharacterDevice()) return openDeviceLog(file);
    return openFileLog(file, options.fromStart);
  }
}

export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}
