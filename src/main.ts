import './cli/early-sighup.ts';
import { Command, CommanderError } from 'commander';
import { AgentError, errorMessage, type AgentErrorCode } from './errors.ts';
import { version } from './version.ts';

// Exit codes (README, "Exit codes"): 0 ok, 1 problem found or an operation failed, 2 unknown or
// changes pending, 64 bad usage or configuration (EX_USAGE), 69 a resource the command needs is
// unavailable (EX_UNAVAILABLE: the listen port is taken), 70 internal error (a bug), 74 the host
// refused a read or write (EX_IOERR: read-only state dir, full disk), 75 try again later.
const EXIT_FAILED = 1;
const EXIT_USAGE = 64;
const EXIT_UNAVAILABLE = 69;
const EXIT_INTERNAL = 70;
const EXIT_IOERR = 74;
const EXIT_TEMPFAIL = 75;

/** What each kind of error means to the caller; an error that is not an AgentError is a bug. */
const EXIT_BY_CODE: Record<AgentErrorCode, number> = {
  CONFIG: EXIT_USAGE,
  USAGE: EXIT_USAGE,
  // A --root tree that would have the agent write outside it (src/host/jail.ts).
  HOST: EXIT_USAGE,
  LISTEN: EXIT_UNAVAILABLE,
  EXEC: EXIT_FAILED,
  TIMEOUT: EXIT_FAILED,
  KUBE: EXIT_FAILED,
  DOWNLOAD: EXIT_FAILED,
  ARCHIVE: EXIT_FAILED,
  STEP: EXIT_FAILED,
  DETECTOR: EXIT_FAILED,
  INVALID: EXIT_USAGE,
  LOCK: EXIT_TEMPFAIL,
  INTERNAL: EXIT_INTERNAL,
  IO: EXIT_IOERR,
};

/** The host said no: no space, read-only, no permission, an I/O error. Not a bug: one line, EX_IOERR. */
const IO_ERRNOS = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EACCES', 'EPERM', 'EIO', 'EMFILE', 'ENFILE', 'ENOTDIR', 'EISDIR', 'ENOENT']);

function isErrno(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && typeof (err as NodeJS.ErrnoException).syscall === 'string';
}

function exitWith(code: number): never {
  process.exitCode = code;
  // stdout may be a pipe with data still queued; exit once it has drained.
  process.stdout.write('', () => process.exit(code));
  return undefined as never;
}

/**
 * Installed as the kubectl plugin `kubectl-kubenode` (a link to this binary), it answers as
 * `kubectl kubenode`. argv[0] is the resolved executable, so the name as invoked is in argv0.
 */
function programName(argv: readonly string[]): string {
  return [process.argv0, ...argv.slice(0, 2)].some((a) => /(^|[/\\])kubectl-kubenode(\.[a-z]+)?$/.test(a)) ? 'kubectl kubenode' : 'kubenode-agent';
}

/**
 * Each command's module, in the order help lists them. Only the module of the command being run is
 * loaded (and with it only what that command imports); help, completion and anything commander
 * must match against every name get them all.
 */
const COMMANDS: readonly { name: string; hidden?: boolean; load: (program: () => Command) => Promise<Command> }[] = [
  { name: 'check', load: async () => (await import('./cli/check.ts')).checkCommand(exitWith) },
  { name: 'run', load: async () => (await import('./cli/run.ts')).runCommand(exitWith) },
  { name: 'config', load: async () => (await import('./cli/config.ts')).configCommand() },
  { name: 'version', load: async () => (await import('./cli/version.ts')).versionCommand() },
  { name: 'plan', load: async () => (await import('./cli/plan.ts')).planCommand(exitWith) },
  { name: 'apply', load: async () => (await import('./cli/apply.ts')).applyCommand(exitWith) },
  { name: 'status', load: async () => (await import('./cli/status.ts')).statusCommand() },
  { name: 'remedy', load: async () => (await import('./cli/remedy.ts')).remedyCommand(exitWith) },
  { name: 'remedies', load: async () => (await import('./cli/remedies.ts')).remediesCommand() },
  { name: 'controller', load: async () => (await import('./cli/controller.ts')).controllerCommand(exitWith) },
  { name: 'rollout', load: async () => (await import('./cli/rollout.ts')).rolloutCommand(exitWith) },
  { name: 'release', load: async () => (await import('./cli/release.ts')).releaseCommand(exitWith) },
  { name: 'join', load: async () => (await import('./cli/join.ts')).joinCommand(exitWith) },
  { name: 'completion', load: async (program) => (await import('./cli/completion.ts')).completionCommand(program) },
  { name: 'self-upgrade', hidden: true, load: async () => (await import('./cli/self-upgrade.ts')).selfUpgradeCommand(exitWith) },
];

/** The commands to register for these arguments: the one named first, else (help, completion, a typo) all of them. */
async function commandsFor(args: readonly string[], program: () => Command): Promise<{ command: Command; hidden: boolean }[]> {
  const named = COMMANDS.find((c) => c.name === args[0] && c.name !== 'completion');
  return Promise.all((named === undefined ? COMMANDS : [named]).map(async ({ load, hidden }) => ({ command: await load(program), hidden: hidden === true })));
}

const oneLine = (text: string): string => text.replace(/\s*\n\s*/g, ' ').trim();

export async function main(argv: string[]): Promise<void> {
  const program = new Command(programName(argv))
    .description('Kubernetes node agent: desired-state installs, NPD-compatible detection, gated repair, triage')
    .version(version, '-V, --version', 'print the version number')
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(`kubenode-agent: ${oneLine(text.replace(/^error: /, ''))}\n`) })
    .showHelpAfterError(false);
  // Subcommands added with addCommand do not inherit these: every level exits through main, in one line.
  const override = (cmd: Command): void => {
    cmd.exitOverride().configureOutput({ outputError: (text, write) => write(`kubenode-agent: ${oneLine(text.replace(/^error: /, ''))}\n`) });
    cmd.commands.forEach(override);
  };
  try {
    for (const { command, hidden } of await commandsFor(argv.slice(2), () => program)) program.addCommand(command, { hidden });
    program.commands.forEach(override);
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      exitWith(err.exitCode === 0 ? 0 : EXIT_USAGE);
      return;
    }
    const code = err instanceof AgentError ? EXIT_BY_CODE[err.code] : undefined;
    if (code !== undefined && code !== EXIT_INTERNAL) {
      process.stderr.write(`kubenode-agent: ${oneLine((err as Error).message)}\n`);
      exitWith(code);
      return;
    }
    if (isErrno(err) && IO_ERRNOS.has(err.code as string)) {
      process.stderr.write(`kubenode-agent: ${oneLine(err.message)}\n`);
      exitWith(EXIT_IOERR);
      return;
    }
    process.stderr.write(`kubenode-agent: internal error: ${err instanceof Error ? (err.stack ?? err.message) : errorMessage(err)}\n`);
    exitWith(EXIT_INTERNAL);
  }
}

void main(process.argv);
