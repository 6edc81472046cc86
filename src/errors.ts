import { constants } from 'node:os';
import { getSystemErrorMessage } from 'node:util';

/**
 * Every error the agent throws on purpose is an AgentError with one of these codes; src/main.ts maps
 * each to an exit code. INVALID: a value from configuration or a manifest that fails its own grammar
 * (a pattern, a cron spec, an action's params). LOCK: another process holds a lock we need. INTERNAL:
 * a bug in our own tables (a schema that cannot be expressed). IO: the host refused a write (full disk,
 * read-only file system).
 */
export type AgentErrorCode =
  | 'CONFIG' | 'USAGE' | 'EXEC' | 'TIMEOUT' | 'HOST' | 'DETECTOR' | 'KUBE' | 'ARCHIVE' | 'DOWNLOAD' | 'STEP' | 'LISTEN'
  | 'INVALID' | 'LOCK' | 'INTERNAL' | 'IO';

export class AgentError extends Error {
  readonly code: AgentErrorCode;
  constructor(code: AgentErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A configuration problem: names the file, the field path inside it and what was expected. */
export class ConfigError extends AgentError {
  readonly file: string;
  readonly field: string;
  constructor(file: string, field: string, message: string, options?: { cause?: unknown }) {
    super('CONFIG', `${file}: ${field === '' ? '' : `${field}: `}${message}`, options);
    this.file = file;
    this.field = field;
  }
}

export class UsageError extends AgentError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

/** What a finished command left: the fields an ExecError is built from (ExecResult satisfies it). */
export interface ExecOutcome {
  argv: readonly string[];
  /** null when the command was killed, timed out or never started. */
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  notFound: boolean;
  durationMs: number;
  timeoutMs: number;
}

const TAIL_CHARS = 400;

/** The end of a command's output on one line: the part that says why it failed. */
function tail(text: string): string {
  const line = text.trim().replace(/\s*\n\s*/g, ' | ');
  return line.length <= TAIL_CHARS ? line : `…${line.slice(-TAIL_CHARS)}`;
}

function shellWord(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : JSON.stringify(arg);
}

/**
 * A command that did not exit 0, in the shape of execa's errors. The message is
 * `<argv> exited 3: <stderr tail>` (or `timed out after Nms`, `was killed by SIGKILL`,
 * `not found`); stdout's tail stands in when the command wrote nothing to stderr.
 */
export class ExecError extends AgentError {
  readonly argv: readonly string[];
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stderrTail: string;
  readonly durationMs: number;
  readonly timedOut: boolean;
  readonly notFound: boolean;
  constructor(outcome: ExecOutcome, options?: { cause?: unknown }) {
    const command = outcome.argv.map(shellWord).join(' ');
    const stderrTail = tail(outcome.stderr);
    const said = stderrTail === '' ? tail(outcome.stdout) : stderrTail;
    const what = outcome.notFound
      ? `${outcome.argv[0] ?? '(empty command)'} not found`
      : outcome.timedOut
        ? `${command} timed out after ${outcome.timeoutMs}ms`
        : outcome.exitCode === null
          ? `${command} was killed by ${outcome.signal ?? 'a signal'}`
          : `${command} exited ${outcome.exitCode}`;
    super('EXEC', said === '' || outcome.notFound ? what : `${what}: ${said}`, options);
    this.argv = outcome.argv;
    this.exitCode = outcome.exitCode;
    this.signal = outcome.signal;
    this.stderrTail = stderrTail;
    this.durationMs = outcome.durationMs;
    this.timedOut = outcome.timedOut;
    this.notFound = outcome.notFound;
  }
}

/** The ExecError for a command that did not exit 0; undefined when it did. */
export function execFailure(outcome: ExecOutcome): ExecError | undefined {
  return outcome.exitCode === 0 && !outcome.timedOut && !outcome.notFound ? undefined : new ExecError(outcome);
}

export class TimeoutError extends AgentError {
  constructor(message: string) {
    super('TIMEOUT', message);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The host refused to write a file: one line naming the file and the system's reason. */
export class HostIoError extends AgentError {
  readonly file: string;
  readonly errno: string;
  constructor(file: string, errno: string, options?: { cause?: unknown }) {
    const number = (constants.errno as Record<string, number | undefined>)[errno];
    super('IO', `${file}: ${number === undefined ? errno : getSystemErrorMessage(-number)}`, options);
    this.file = file;
    this.errno = errno;
  }
}

/** A write's failure as the caller should see it: an errno error becomes a HostIoError naming the file. */
export function hostWriteError(file: string, err: unknown): unknown {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return err instanceof AgentError || typeof code !== 'string' || !/^E[A-Z]+$/.test(code) ? err : new HostIoError(file, code, { cause: err });
}
