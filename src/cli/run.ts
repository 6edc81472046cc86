import { Command } from 'commander';
import type { DaemonOptions } from '../daemon.ts';
import { UsageError } from '../errors.ts';
import { takeEarlySighup } from './early-sighup.ts';
import { addHostOptions, addLogOptions, logOptions, type LogFlags } from './common.ts';

export function runCommand(exitWith: (code: number) => never): Command {
  const cmd = new Command('run')
    .description('run the agent: detectors on their intervals, metrics and /healthz on --listen')
    .option('--listen <addr>', 'metrics and health address (default: listen in the config, 127.0.0.1:9746)')
    .option('--kubeconfig <file>', 'report to the cluster (Node conditions, Events, Lease, Machine status) with this kubeconfig')
    .option('--in-cluster', "report to the cluster with the pod's service account")
    .option('--node-name <name>', 'the Node and Machine this agent speaks for (default: nodeName in the config, else the host name)');
  addHostOptions(cmd);
  addLogOptions(cmd, 'default: logLevel in the config');
  cmd.addHelpText(
    'after',
    `
Examples:
  kubenode-agent run                                   # /etc/kubenode/agent.yaml, standalone
  kubenode-agent run --kubeconfig /etc/kubenode/kubeconfig --node-name node-1
  kubenode-agent run --root /srv/captured-host --listen 127.0.0.1:0 --log-format text

Signals: SIGHUP reloads the configuration (at any moment, start-up included); SIGTERM stops.`,
  );
  return cmd.action(async (options: DaemonOptions & LogFlags) => {
    // Registered before anything is read: a reload asked for during start-up waits for it, and a
    // stop asked for then lets the start finish and then stops.
    let daemon: { requestReload(): Promise<boolean> } | undefined;
    let pendingReload = false;
    process.on('SIGHUP', () => {
      if (daemon === undefined) pendingReload = true;
      else void daemon.requestReload();
    });
    if (takeEarlySighup()) pendingReload = true;
    // The first signal stops; later ones find the stop under way. Listeners stay registered:
    // execa's child cleanup (signal-exit) re-raises a signal that no other listener holds, which
    // would kill the agent halfway through stopping.
    const stopAsked = Promise.withResolvers<string>();
    process.on('SIGTERM', () => stopAsked.resolve('SIGTERM'));
    process.on('SIGINT', () => stopAsked.resolve('SIGINT'));
    const logging = logOptions(options);
    if (options.kubeconfig !== undefined && options.inCluster === true) throw new UsageError('--kubeconfig and --in-cluster exclude each other');
    if (options.listen !== undefined) {
      const { listenProblem } = await import('../config/listen.ts');
      const problem = listenProblem(options.listen);
      if (problem !== undefined) throw new UsageError(`--listen: ${problem}`);
    }
    const [{ Daemon }, { bootstrap }] = await Promise.all([import('../daemon.ts'), import('../bootstrap.ts')]);
    const boot = await bootstrap(options, logging);
    const d = new Daemon(options, boot);
    await d.start();
    daemon = d;
    if (pendingReload) void d.requestReload();
    const signal = await stopAsked.promise;
    boot.log.info({ signal }, 'Stopping');
    await d.stop();
    // Exit here rather than when the event loop drains: Node closes its signal handles while it
    // tears down, and a repeated SIGTERM in that window killed a cleanly stopped agent (143).
    exitWith(0);
  });
}
