// One long-running helper process for a test (kubenode-testcluster, kube-controller-manager,
// Prometheus): started with its output in a log file, waited for until a readiness probe passes,
// stopped with SIGTERM. It never outlives the test process: the kernel signals it when its parent
// dies (setpriv --pdeathsig, util-linux, unless it asks for its own), and a process exit hook
// kills what a test forgot to stop.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tail } from './binaries.ts';

export interface DaemonSpec {
  /** What the errors call it. */
  name: string;
  bin: string;
  args: readonly string[];
  logFile: string;
  /** Resolves true once the process serves; polled every 100 ms, given the process's pid. */
  ready: (pid: number | undefined) => Promise<boolean>;
  readyTimeoutMs: number;
  /** It asks the kernel for its own signal when its parent dies (PR_SET_PDEATHSIG): no setpriv. */
  ownDeathSignal?: boolean;
  /** What a start error shows of the logs; default: the tail of logFile. */
  logTail?: () => Promise<string>;
}

export interface Ended {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** It outlived the SIGTERM timeout and was killed. */
  timedOut: boolean;
}

export interface Daemon {
  readonly pid: number | undefined;
  readonly logFile: string;
  /** SIGTERM, then SIGKILL after timeoutMs; resolves with how it ended. Safe to call twice. */
  stop(timeoutMs?: number): Promise<Ended>;
}

/** Thrown when the process exits before it is ready; `log` is the log's tail. */
export class DaemonStartError extends Error {
  readonly log: string;
  constructor(message: string, log: string) {
    super(`${message}:\n${log}`);
    this.log = log;
  }
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

let setprivWorks: boolean | undefined;
function deathSignalPrefix(): string[] {
  setprivWorks ??= spawnSync('setpriv', ['--pdeathsig', 'KILL', '--', 'true']).status === 0;
  return setprivWorks ? ['setpriv', '--pdeathsig', 'KILL', '--'] : [];
}

export async function startDaemon(spec: DaemonSpec): Promise<Daemon> {
  const [file, ...args] = [...(spec.ownDeathSignal === true ? [] : deathSignalPrefix()), spec.bin, ...spec.args] as [string, ...string[]];
  const log = openSync(spec.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(file, args, { stdio: ['ignore', log, log] });
  } finally {
    closeSync(log);
  }
  // A test that forgets stop() must not hang the runner; the exit hook cleans up.
  child.unref();
  live.add(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: null, signal: null }));
  });
  void exited.then(() => live.delete(child));
  let spawnError: Error | undefined;
  child.once('error', (err) => (spawnError = err));

  const daemon: Daemon = {
    logFile: spec.logFile,
    get pid() {
      return child.exitCode === null && child.signalCode === null ? child.pid : undefined;
    },
    async stop(timeoutMs = 30_000) {
      if (child.exitCode === null && child.signalCode === null) {
        child.ref();
        child.kill('SIGTERM');
      }
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
      const result = await Promise.race([exited, timedOut]);
      clearTimeout(timer);
      if (result !== 'timeout') return { ...result, timedOut: false };
      child.kill('SIGKILL');
      return { ...(await exited), timedOut: true };
    },
  };

  const logTail = spec.logTail ?? (async () => tail(await readFile(spec.logFile, 'utf8').catch(() => '')));
  const deadline = Date.now() + spec.readyTimeoutMs;
  for (;;) {
    if (await spec.ready(child.pid).catch(() => false)) return daemon;
    const done = await Promise.race([exited, sleep(100).then(() => undefined)]);
    if (done !== undefined) {
      const how = spawnError ? spawnError.message : done.signal ? `signal ${done.signal}` : `exit code ${done.code}`;
      throw new DaemonStartError(`${spec.name} exited before ready (${how}); ${spec.logFile}`, await logTail());
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await exited;
      throw new DaemonStartError(`${spec.name} not ready within ${spec.readyTimeoutMs}ms; ${spec.logFile}`, await logTail());
    }
  }
}

/**
 * A loopback port free at the time of asking. Another process can take it before the caller
 * binds it, so callers retry on "address already in use".
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
