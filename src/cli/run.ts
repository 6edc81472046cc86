import { Command } from 'commander';
import type { DaemonOptions } from '../daemon.ts';
import { UsageError } from '../errors.ts';
import { addHostOptions } from './common.ts';

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];


export function runCommand(): Command {
  const cmd = new Command('run')
    .description('run the agent: detectors on their intervals, metrics and /healthz on --listen')
    .option('--listen <addr>', 'metrics and health address (default: listen in the config, 127.0.0.1:9746)')
    .option('--log-level <level>', 'trace, debug, info, warn or error (default: logLevel in the config)');
  addHostOptions(cmd);
  return cmd.action(async (options: DaemonOptions) => {
    const [{ Daemon }, { createLogger }] = await Promise.all([import('../daemon.ts'), import('../log.ts')]);
    if (options.logLevel !== undefined && !LOG_LEVELS.includes(options.logLevel)) {
      throw new UsageError(`--log-level: expected one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(options.logLevel)}`);
    }
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
