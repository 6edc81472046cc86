import { Command, CommanderError } from 'commander';
import { applyCommand } from './cli/apply.ts';
import { checkCommand } from './cli/check.ts';
import { configCommand } from './cli/config.ts';
import { joinCommand } from './cli/join.ts';
import { controllerCommand } from './cli/controller.ts';
import { rolloutCommand } from './cli/rollout.ts';
import { planCommand } from './cli/plan.ts';
import { remedyCommand } from './cli/remedy.ts';
import { runCommand } from './cli/run.ts';
import { statusCommand } from './cli/status.ts';
import { versionCommand } from './cli/version.ts';
import { AgentError, errorMessage } from './errors.ts';
import { version } from './version.ts';

// Exit codes: 0 ok, 1 problem found, 2 unknown, 64 bad usage or configuration (EX_USAGE), 70 internal error.
const EXIT_USAGE = 64;
const EXIT_INTERNAL = 70;

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

export async function main(argv: string[]): Promise<void> {
  const program = new Command(programName(argv))
    .description('Kubernetes node agent: desired-state installs, NPD-compatible detection, gated repair, triage')
    .version(version, '-V, --version-flag', 'print the version number')
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(text) })
    .showHelpAfterError(false);
  program.addCommand(checkCommand(exitWith));
  program.addCommand(runCommand());
  program.addCommand(configCommand());
  program.addCommand(versionCommand());
  program.addCommand(planCommand(exitWith));
  program.addCommand(applyCommand(exitWith));
  program.addCommand(statusCommand());
  program.addCommand(remedyCommand(exitWith));
  program.addCommand(controllerCommand());
  program.addCommand(rolloutCommand(exitWith));
  program.addCommand(joinCommand(exitWith));
  for (const cmd of program.commands) cmd.exitOverride();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      exitWith(err.exitCode === 0 ? 0 : EXIT_USAGE);
      return;
    }
    // HOST: a --root tree that would have the agent write outside it (src/host/jail.ts).
    if (err instanceof AgentError && (err.code === 'CONFIG' || err.code === 'USAGE' || err.code === 'HOST')) {
      process.stderr.write(`kubenode-agent: ${err.message}\n`);
      exitWith(EXIT_USAGE);
      return;
    }
    process.stderr.write(`kubenode-agent: internal error: ${err instanceof Error ? (err.stack ?? err.message) : errorMessage(err)}\n`);
    exitWith(EXIT_INTERNAL);
  }
}

void main(process.argv);
