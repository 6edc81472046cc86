import { Command } from 'commander';
import type { InstallerCliOptions } from '../installers/cli.ts';
import { addInstallerOptions } from './plan.ts';

export function applyCommand(exit: (code: number) => void): Command {
  const cmd = new Command('apply').description('converge the node to the manifests: run only the steps whose check fails, verify, roll back on failure');
  addInstallerOptions(cmd);
  cmd.option('--kubeconfig <file>', "also ask the cluster's RiskPolicy objects before a disruptive restart, as the daemon does");
  return cmd.action(async (options: InstallerCliOptions) => {
    const { runApply } = await import('../installers/cli.ts');
    await runApply(options, exit);
  });
}
