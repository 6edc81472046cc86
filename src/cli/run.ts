import { Command } from 'commander';
import type { DaemonOptions } from '../daemon.ts';
import { addHostOptions } from './common.ts';

interface RunOptions extends DaemonOptions {
  logLevel?: string;
}

export function runCommand(): Command {
  const cmd = new Command('run')
    .description('run the agent: detectors on their intervals, metrics and /healthz on --listen')
    .option('--listen <addr>', 'metrics and health address (default: listen in the config, 127.0.0.1:9746)')
    .option('--log-level <level>', 'trace, debug, info, warn or error (default: logLevel in the config)');
  addHostOptions(cmd);
  return cmd.action(async (options: RunOptions) => {
    const [{ Daemon }, { createLogger }] = await Promise.all([import('../daemon.ts'), import('../log.ts')]);
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
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
