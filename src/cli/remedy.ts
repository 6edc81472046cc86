import { Command } from 'commander';
import type { ManualOptions } from '../remedies/manual.ts';
import { addHostOptions } from './common.ts';

interface RemedyCliOptions extends ManualOptions {
  logLevel?: string;
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function remedyCommand(exit: (code: number) => void, write: (text: string) => void = (text) => process.stdout.write(text)): Command {
  const cmd = new Command('remedy')
    .description('run one remedy action by hand, through the risk gate; --dry-run prints the whole decision path')
    .argument('<action>', 'restart-unit, restart-runtime, restart-kubelet, clean-disk, drop-caches, cordon, taint, drain, uncordon, reboot')
    .option('--dry-run', 'plan and ask every gate without taking a permit or acting')
    .option('--reason <text>', 'why, for the record and the webhook')
    .option('--param <key=value>', 'action parameter, repeatable (unit=, key=, effect=, value=, path=, olderThan=, timeout=)', collect)
    .option('--kubeconfig <file>', 'cluster access: RiskPolicy permits, RemedyOperation record, node actions')
    .option('--node-name <name>', 'the Node acted on (default: nodeName in the config, else the host name)')
    .option('--json', 'print JSON instead of text')
    .option('--log-level <level>', 'log level for diagnostics on stderr', 'warn');
  addHostOptions(cmd);
  return cmd.action(async (action: string, options: RemedyCliOptions) => {
    const [{ runManualRemedy }, { createLogger }] = await Promise.all([import('../remedies/manual.ts'), import('../log.ts')]);
    const log = createLogger((options.logLevel ?? 'warn') as 'warn', 2);
    exit(await runManualRemedy(action, options, log, write));
  });
}
