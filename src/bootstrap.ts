// The composition root: every command builds its Host, configuration, node name and logger here,
// and hands each feature only the slice of configuration it needs.
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from './config/load.ts';
import type { AgentConfig } from './config/schema.ts';
import type { MonitorRef } from './detectors/engine/instances.ts';
import { UsageError } from './errors.ts';
import { createHost, type Host } from './host/host.ts';
import type { LogFormat, LogLevel } from './log-levels.ts';
import { createLogger, defaultLogFormat, type Logger } from './log.ts';

/** What selects the host and its configuration: the options every host-facing command shares. */
export interface HostOptions {
  root?: string;
  config?: string;
  'config.systemLogMonitor'?: string;
  'config.customPluginMonitor'?: string;
  /** Overrides nodeName in the configuration. */
  nodeName?: string;
}

/** The configuration as loaded: what a reload replaces as a whole. */
export interface Configuration {
  config: AgentConfig;
  configSource: string;
  /** Deprecated keys read as their replacements, in words; logged at every load. */
  warnings: string[];
  nodeName: string;
  monitors: { systemLog: MonitorRef[]; customPlugin: MonitorRef[] };
}

export interface Bootstrap extends Configuration {
  host: Host;
  log: Logger;
  /** Reads the configuration again (SIGHUP), from the same places; throws ConfigError and changes nothing. */
  reload(): Promise<Configuration>;
}

export interface LogOptions {
  /** From --log-level; absent, logLevel in the configuration (or `fallback`) applies. */
  level?: LogLevel;
  /** Commands other than run keep stdout for their output and log warnings only. */
  fallback?: LogLevel;
  format?: LogFormat;
  fd?: 1 | 2;
}

const splitList = (value: string | undefined): string[] =>
  (value ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');

export async function bootstrap(options: HostOptions, logging: LogOptions = {}): Promise<Bootstrap> {
  if (options.root !== undefined && options.root.trim() === '') throw new UsageError('--root needs a directory');
  const host = createHost(options.root === undefined ? {} : { root: options.root });
  const first = await configuration(host, options);
  const fd = logging.fd ?? 1;
  const log = createLogger(logging.level ?? logging.fallback ?? first.config.logLevel, fd, logging.format ?? defaultLogFormat(fd));
  const warn = (c: Configuration): Configuration => {
    for (const w of c.warnings) log.warn(w);
    return c;
  };
  return { host, log, ...warn(first), reload: async () => warn(await configuration(host, options)) };
}

async function configuration(host: Host, options: HostOptions): Promise<Configuration> {
  const { config, source, warnings } = await loadConfig(host, options.config);
  const flagged = options['config.systemLogMonitor'] !== undefined || options['config.customPluginMonitor'] !== undefined;
  // Files named on the command line, or in a --config file, are read where the operator is; files
  // named in the node's own /etc/kubenode/agent.yaml are host files, read under --root.
  const cliRef = (base: string) => (file: string): MonitorRef =>
    file.startsWith('builtin:') ? { file, from: 'local' } : { file: path.resolve(base, file), from: 'local' };
  const hostRef = (file: string): MonitorRef =>
    file.startsWith('builtin:') ? { file, from: 'local' } : { file: path.resolve('/etc/kubenode', file), from: 'host' };
  // As with NPD's flags: when either is given, the command line alone says which monitors run.
  const monitors = flagged
    ? {
        systemLog: splitList(options['config.systemLogMonitor']).map(cliRef(process.cwd())),
        customPlugin: splitList(options['config.customPluginMonitor']).map(cliRef(process.cwd())),
      }
    : options.config === undefined
      ? { systemLog: config.monitors.systemLog.map(hostRef), customPlugin: config.monitors.customPlugin.map(hostRef) }
      : {
          systemLog: config.monitors.systemLog.map(cliRef(path.dirname(path.resolve(options.config)))),
          customPlugin: config.monitors.customPlugin.map(cliRef(path.dirname(path.resolve(options.config)))),
        };
  return { config, configSource: source, warnings, nodeName: options.nodeName ?? (await nodeName(host, config)), monitors };
}

async function nodeName(host: Host, config: AgentConfig): Promise<string> {
  if (config.nodeName !== '') return config.nodeName;
  const fromProc = (await host.tryReadText('/proc/sys/kernel/hostname'))?.trim();
  if (fromProc !== undefined && fromProc !== '') return fromProc;
  return host.root === '/' ? os.hostname() : 'unknown';
}
