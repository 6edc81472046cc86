// The one process runner: every command the agent starts goes through here (via Host.exec),
// so that none of them, nor anything they leave behind, can outlive its deadline.
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';

export interface BoundedOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  input?: string;
  /** Local path to run in. */
  cwd?: string;
  maxOutputBytes?: number;
  /**
   * Past maxOutputBytes: 'kill' the command (the default), or 'truncate': keep the first
   * maxOutputBytes of each stream, drain the rest unbuffered and let the command finish.
   */
  overflow?: 'kill' | 'truncate';
}

export interface BoundedOutcome {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

const DEFAULT_MAX_OUTPUT = 4 * 1024 * 1024;
/** Between SIGTERM to the process group at the deadline and SIGKILL. */
export const KILL_GRACE_MS = 2_000;
/**
 * After the command's own process is gone and its group killed, how long the output pipes may
 * stay open: only a process that left the group (setsid) can still hold them then.
 */
export const PIPE_DRAIN_MS = 200;

/** Every command's environment carries a token of its own; its descendants inherit it. */
export const EXEC_TAG = 'KUBENODE_AGENT_EXEC';

/**
 * SIGKILLs every process whose environment carries this run's tag: what daemonized out of the
 * process group (double fork, setsid). Only called when something outlived its command, since it
 * reads every process's environment.
 */
async function killTagged(tag: string): Promise<void> {
  const needle = Buffer.from(`${EXEC_TAG}=${tag}\0`);
  let pids: string[];
  try {
    pids = await readdir('/proc');
  } catch {
    return;
  }
  for (const pid of pids) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    try {
      if ((await readFile(`/proc/${pid}/environ`)).includes(needle)) process.kill(Number(pid), 'SIGKILL');
    } catch {
      // gone, or not ours to read
    }
  }
}

/** Keeps a stream's first `max` bytes and reads past the rest, so the writer never blocks. */
function keepHead(stream: NodeJS.ReadableStream | null, max: number): { text(): string } {
  const chunks: Buffer[] = [];
  let kept = 0;
  stream?.on('data', (chunk: Buffer) => {
    if (kept >= max) return;
    const part = chunk.subarray(0, max - kept);
    chunks.push(part);
    kept += part.length;
  });
  return { text: () => Buffer.concat(chunks).toString('utf8') };
}

/**
 * Runs `file` in a process group of its own (detached: setsid), capturing its output.
 * - At the deadline or on abort the whole group gets SIGTERM, then SIGKILL after KILL_GRACE_MS.
 * - When the command's process exits, whatever it left in its group is killed at once.
 * - Pipes still held open after that belong to a process that left the group (daemonized): it
 *   is found by the tag in its environment and killed, and the pipes are closed by us, so the
 *   call always settles and no descriptor stays behind.
 */
export async function runBounded(file: string, args: readonly string[], options: BoundedOptions): Promise<BoundedOutcome> {
  const tag = randomBytes(12).toString('hex');
  const maxOutputBytes = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT;
  const truncate = options.overflow === 'truncate';
  // Loaded on the first command: a daemon whose configuration runs none never parses it (about 13 ms of its start).
  const { execa } = await import('execa');
  const subprocess = execa(file, args, {
    reject: false,
    env: { [EXEC_TAG]: tag },
    detached: true,
    cleanup: true,
    stripFinalNewline: false,
    ...(truncate ? { buffer: false } : { maxBuffer: maxOutputBytes }),
    ...(options.input === undefined ? { stdin: 'ignore' as const } : { input: options.input }),
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  });
  const child = subprocess.nodeChildProcess;
  const stdoutHead = truncate ? keepHead(child.stdout, maxOutputBytes) : undefined;
  const stderrHead = truncate ? keepHead(child.stderr, maxOutputBytes) : undefined;
  const group = child.pid;
  const timers: NodeJS.Timeout[] = [];
  const after = (ms: number, fn: () => void): void => {
    timers.push(setTimeout(fn, ms));
  };
  const signalGroup = (signal: NodeJS.Signals): void => {
    if (group === undefined) return;
    try {
      process.kill(-group, signal);
    } catch {
      // the group is empty already
    }
  };
  let closing: Promise<void> | undefined;
  const closePipes = (): void => {
    closing ??= killTagged(tag).finally(() => {
      child.stdin?.destroy();
      child.stdout?.destroy();
      child.stderr?.destroy();
    });
  };
  let timedOut = false;
  let terminating = false;
  const terminate = (): void => {
    if (terminating) return;
    terminating = true;
    signalGroup('SIGTERM');
    after(KILL_GRACE_MS, () => {
      signalGroup('SIGKILL');
      closePipes();
    });
  };
  after(options.timeoutMs, () => {
    timedOut = true;
    terminate();
  });
  const onAbort = (): void => terminate();
  if (options.signal?.aborted === true) terminate();
  else options.signal?.addEventListener('abort', onAbort, { once: true });
  child.once('exit', () => {
    // The group's pid stays reserved while any member lives, so this cannot hit a stranger.
    signalGroup('SIGKILL');
    after(PIPE_DRAIN_MS, closePipes);
  });
  try {
    const result = await subprocess;
    // A command that had to be stopped may have left a daemon behind even with its pipes closed.
    await (closing ?? (terminating ? killTagged(tag) : undefined));
    return {
      exitCode: timedOut ? null : (result.exitCode ?? null),
      signal: result.signal ?? null,
      stdout: stdoutHead?.text() ?? String(result.stdout ?? ''),
      stderr: stderrHead?.text() ?? String(result.stderr ?? ''),
      timedOut,
    };
  } finally {
    for (const timer of timers) clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
  }
}
