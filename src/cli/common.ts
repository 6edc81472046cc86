import os from 'node:os';
import { type Command } from 'commander';
import { loadConfig } from '../config/load.ts';
import type { AgentConfig } from '../config/schema.ts';
import { UsageError } from '../errors.ts';
import { createHost, type Host } from '../host/host.ts';
import type { MonitorRef } from '../detectors/engine/instances.ts';
import path from 'node:path';

export interface CommonOptions {
  root?: string;
  config?: string;
  'config.systemLogMonitor'?: string;
  'config.customPluginMonitor'?: string;
}

/** Options every command that looks at the host shares. */
export function addHostOptions(cmd: Command): Command {
  return cmd
    .option('--root <dir>', 'read the host under DIR instead of / (replay a captured host)')
    .option('--config <file>', 'agent configuration (default: /etc/kubenode/agent.yaml under --root, else embedded defaults)')
    .option('--config.system-log-monitor <files>', 'NPD system-log-monitor files, comma separated (replaces the configured list)')
    .option('--config.custom-plugin-monitor <files>', 'NPD custom-plugin-monitor files, comma separated (replaces the configured list)');
}

export interface Setup {
  host: Host;
  config: AgentConfig;
  configSource: string;
  nodeName: string;
  monitors: { systemLog: MonitorRef[]; customPlugin: MonitorRef[] };
}

const splitList = (value: string | undefined): string[] =>
  (value ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');

export async function setup(options: CommonOptions): Promise<Setup> {
  if (options.root !== undefined && options.root.trim() === '') throw new UsageError('--root needs a directory');
  const host = createHost(options.root === undefined ? {} : { root: options.root });
  const { config, source } = await loadConfig(host, options.config);
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
  return { host, config, configSource: source, nodeName: await nodeName(host, config), monitors };
}

async function nodeName(host: Host, config: AgentConfig): Promise<string> {
  if (config.nodeName !== '') return config.nodeName;
  const fromProc = (await host.tryReadText('/proc/sys/kernel/hostname'))?.trim();
  if (fromProc !== undefined && fromProc !== '') return fromProc;
  return host.root === '/' ? os.hostname() : 'unknown';
}
