import { Command } from 'commander';
import type { DaemonOptions } from '../daemon.ts';
import { UsageError } from '../errors.ts';
import { addHostOptions } from './common.ts';

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];


export function runCommand(): Command {
  const cmd = new Command('run')
    .description('run the agent: detectors on their intervals, metrics and /healthz on --listen')
    .option('--listen <addr>', 'metrics and health address (default: listen in the config, 127.0.0.1:9746)')
    .option('--log-level <level>', 'trace, debug, info, warn or error (default: logLevel in the config)')
    .option('--kubeconfig <file>', 'report to the cluster (Node conditions, Events, Lease, Machine status) with this kubeconfig')
    .option('--in-cluster', "report to the cluster with the pod's service account")
    .option('--node-name <name>', 'the Node and Machine this agent speaks for (default: nodeName in the config, else the host name)');
  addHostOptions(cmd);
  return cmd.action(async (options: DaemonOptions) => {
    const [{ Daemon }, { createLogger }] = await Promise.all([import('../daemon.ts'), import('../log.ts')]);
    if (options.logLevel !== undefined && !LOG_LEVELS.includes(options.logLevel)) {
      throw new UsageError(`--log-level: expected one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(options.logLevel)}`);
    }
    if (options.kubeconfig !== undefined && options.inCluster === true) throw new UsageError('--kubeconfig and --in-cluster exclude each other');
    const log = createLogger((options.logLevel ?? 'info') as 'info');
    const daemon = new Daemon(options, log);
    await daemon.start();
    process.on('SIGHUP', () => {
      log.info({}, 'SIGHUP: reloading configuration');
      void daemon.reload();
    });
    const stop = (signal: string): void => {
      log.info({ signal }, 'Stopping');
      void daemon.stop();
    };
    // Listeners stay registered: execa's child cleanup (signal-exit) re-raises a signal that no
    // other listener holds, which would kill the agent halfway through stopping.
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}
