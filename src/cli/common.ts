// Kept free of heavy imports: every command loads this, `version` included. The work lives in setup.ts.
import type { Command } from 'commander';

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
