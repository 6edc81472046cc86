// Kept free of heavy imports: every command loads this, `version` included. The work lives in
// src/bootstrap.ts.
import { Option, type Command } from 'commander';
import type { Bootstrap, HostOptions, LogOptions } from '../bootstrap.ts';
import type { InstallerSessionSetup } from '../installers/session.ts';
import type { ManualRemedySetup } from '../remedies/manual.ts';
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from '../log-levels.ts';

export type CommonOptions = HostOptions;

export interface LogFlags {
  logLevel?: LogLevel;
  logFormat?: LogFormat;
}

/** --log-level and --log-format; commander refuses any other value (a usage error, exit 64). */
export function addLogOptions(cmd: Command, levelDefault: string): Command {
  return cmd
    .addOption(new Option('--log-level <level>', `log level (${levelDefault})`).choices(LOG_LEVELS))
    .addOption(new Option('--log-format <format>', 'json lines, or text for people (default: text on a terminal, else json)').choices(LOG_FORMATS));
}

/** The logging a command asked for; `fallback` is its level when neither the flag nor the config says. */
export function logOptions(flags: LogFlags, fallback?: LogLevel, fd: 1 | 2 = 1): LogOptions {
  return {
    fd,
    ...(flags.logLevel === undefined ? {} : { level: flags.logLevel }),
    ...(fallback === undefined ? {} : { fallback }),
    ...(flags.logFormat === undefined ? {} : { format: flags.logFormat }),
  };
}

/** Options every command that looks at the host shares. */
export function addHostOptions(cmd: Command): Command {
  return cmd
    .option('--root <dir>', 'read the host under DIR instead of / (replay a captured host)')
    .option('--config <file>', 'agent configuration (default: /etc/kubenode/agent.yaml under --root, else embedded defaults)')
    .option('--config.system-log-monitor <files>', 'NPD system-log-monitor files, comma separated (replaces the configured list)')
    .option('--config.custom-plugin-monitor <files>', 'NPD custom-plugin-monitor files, comma separated (replaces the configured list)');
}

/** The slices `plan` and `apply` hand the installers: their section and the risk gate's. */
export function installerSlice(boot: Bootstrap): InstallerSessionSetup {
  return { host: boot.host, log: boot.log, nodeName: boot.nodeName, stateDir: boot.config.stateDir, installers: boot.config.installers, risk: boot.config.risk };
}

/** The slices `remedy` hands a remedy by hand: its section and the risk gate's. */
export function remedySlice(boot: Bootstrap): ManualRemedySetup {
  return { host: boot.host, log: boot.log, nodeName: boot.nodeName, stateDir: boot.config.stateDir, remedies: boot.config.remedies, risk: boot.config.risk };
}
