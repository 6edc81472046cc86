import { Command } from 'commander';
import type { HostOptions } from '../bootstrap.ts';
import { addHostOptions, addLogOptions, logOptions, type LogFlags } from './common.ts';

/**
 * Not for people: what the daemon starts in the transient unit kubenode-agent-self-upgrade.service
 * (systemd-run) to upgrade the agent itself outside its own cgroup. Hidden from help.
 */
export function selfUpgradeCommand(exit: (code: number) => void): Command {
  const cmd = new Command('self-upgrade')
    .description('(run by the agent in a transient systemd unit) finish the journaled upgrade of the agent itself: switch, wait for the new version to report healthy, or roll back')
    .requiredOption('--component <name>', 'the MachineComponent that is the agent itself')
    .option('--node-name <name>', 'the node this agent speaks for');
  addHostOptions(cmd);
  addLogOptions(cmd, 'default: logLevel in the config');
  return cmd.action(async (options: HostOptions & LogFlags & { component: string }) => {
    const [{ bootstrap }, { runSelfUpgrade }] = await Promise.all([import('../bootstrap.ts'), import('../installers/self-upgrade-watch.ts')]);
    const boot = await bootstrap(options, logOptions(options));
    const { outcome, finished } = await runSelfUpgrade(boot, options.component);
    if (outcome !== undefined) boot.log.info({ component: outcome.component, result: outcome.result, version: outcome.version, steps: outcome.stepsRun, err: outcome.error, finished }, 'Self-upgrade run ended');
    // 0 once the result is recorded, rolled back included: the unit's Restart=on-failure resumes anything else.
    exit(finished ? 0 : 1);
  });
}
