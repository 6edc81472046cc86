import { Command } from 'commander';
import type { InstallerCliOptions } from '../installers/cli.ts';
import { addHostOptions } from './common.ts';

/** Options plan and apply share. */
export function addInstallerOptions(cmd: Command): Command {
  addHostOptions(cmd);
  return cmd
    .option('--manifests <dir>', 'directory of MachineComponent YAML files (default: installers.manifestDir in the config, a host path)')
    .option('--json', 'print JSON')
    .option('--retry-failed', 'act on a spec that failed and was rolled back')
    .option('--log-level <level>', 'log level for diagnostics on stderr', 'warn');
}

export function planCommand(exit: (code: number) => void): Command {
  const cmd = new Command('plan').description('show what apply would change on this node (read-only; nothing on a converged node)');
  addInstallerOptions(cmd);
  return cmd.action(async (options: InstallerCliOptions) => {
    const { runPlan } = await import('../installers/cli.ts');
    await runPlan(options, exit);
  });
}
