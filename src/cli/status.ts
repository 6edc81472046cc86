import { Command } from 'commander';
import { addHostOptions, type CommonOptions } from './common.ts';

export function statusCommand(): Command {
  const cmd = new Command('status').description('show the installed components as recorded in the state dir').option('--json', 'print JSON');
  addHostOptions(cmd);
  return cmd.action(async (options: CommonOptions & { json?: boolean }) => {
    const { runStatus } = await import('../installers/cli.ts');
    await runStatus(options);
  });
}
