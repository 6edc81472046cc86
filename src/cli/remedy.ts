import { Command } from 'commander';
import { actions } from '../remedies/actions/index.ts';
import { UsageError } from '../errors.ts';
import type { ManualOptions, ManualResult } from '../remedies/manual.ts';
import { addHostOptions, addLogOptions, logOptions, remedySlice, type LogFlags } from './common.ts';

interface RemedyCliOptions extends ManualOptions, LogFlags {}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** The actions, from the registry the engine runs: help cannot name one that does not exist. */
function actionHelp(): string {
  const list = Object.values(actions);
  const width = Math.max(...list.map((a) => a.name.length));
  return ['', 'Actions (disruptive ones ask the risk gate: local budget, RiskPolicy with --kubeconfig, webhook):', ...list.map((a) => `  ${a.name.padEnd(width)}  ${a.risk.padEnd(10)}  ${a.description}`)].join('\n');
}

/**
 * Prints a run by hand and returns its exit code: 0 done, rebooting, or a dry run the gate allows;
 * 1 denied, not needed or failed. A blocked plan is bad usage: its lines, then a UsageError (64).
 */
export function printManualResult(result: ManualResult, json: boolean, write: (text: string) => void): number {
  if (result.verdict === 'blocked') {
    write(`${result.lines.join('\n')}\nblocked  ${result.blocked ?? ''}\n`);
    throw new UsageError(`${result.action}: ${result.blocked ?? 'blocked'}`);
  }
  const code = result.verdict === 'done' || result.verdict === 'rebooting' || result.verdict === 'would-run' ? 0 : 1;
  write(json ? `${JSON.stringify({ ...result.report, exitCode: code }, null, 2)}\n` : `${result.lines.join('\n')}\n`);
  return code;
}

export function remedyCommand(exit: (code: number) => void, write: (text: string) => void = (text) => process.stdout.write(text)): Command {
  const cmd = new Command('remedy')
    .description('run one remedy action by hand, through the risk gate; --dry-run prints the whole decision path')
    .argument('<action>', Object.keys(actions).join(', '))
    .option('--dry-run', 'plan and ask every gate without taking a permit or acting')
    .option('--reason <text>', 'why, for the record and the webhook')
    .option('--param <key=value>', 'action parameter, repeatable (unit=, key=, effect=, value=, path=, olderThan=, timeout=)', collect)
    .option('--kubeconfig <file>', 'cluster access: RiskPolicy permits, RemedyOperation record, node actions')
    .option('--node-name <name>', 'the Node acted on (default: nodeName in the config, else the host name)')
    .option('--json', 'print JSON instead of text');
  addHostOptions(cmd);
  addLogOptions(cmd, 'diagnostics on stderr; default warn');
  cmd.addHelpText('after', () => `${actionHelp()}

Examples:
  kubenode-agent remedy restart-runtime --dry-run --reason 'containerd hung'
  kubenode-agent remedy clean-disk --param path=/var/tmp --param olderThan=72h
  kubenode-agent remedy drain --kubeconfig /etc/kubenode/kubeconfig --node-name node-1 --reason 'disk errors'`);
  return cmd.action(async (action: string, options: RemedyCliOptions) => {
    const [{ runManualRemedy }, { bootstrap }] = await Promise.all([import('../remedies/manual.ts'), import('../bootstrap.ts')]);
    const boot = await bootstrap(options, logOptions(options, 'warn', 2));
    exit(printManualResult(await runManualRemedy(action, options, remedySlice(boot)), options.json === true, write));
  });
}
