import { Command } from 'commander';
import { commit, version } from '../version.ts';

export function versionInfo(): { version: string; commit: string; node: string; platform: string; arch: string } {
  return { version, commit, node: process.versions.node, platform: process.platform, arch: process.arch };
}

export function versionCommand(): Command {
  return new Command('version')
    .description('print the agent version')
    .option('--json', 'print JSON')
    .action((options: { json?: boolean }) => {
      const info = versionInfo();
      process.stdout.write(
        options.json === true
          ? `${JSON.stringify(info)}\n`
          : `kubenode-agent ${info.version} (commit ${info.commit}, node ${info.node}, ${info.platform}/${info.arch})\n`,
      );
    });
}
