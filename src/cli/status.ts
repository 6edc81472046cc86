import { Command } from 'commander';
import { addHostOptions, type CommonOptions } from './common.ts';

export function statusCommand(): Command {
  const cmd = new Command('status')
    .description('show the installed components as recorded in the state dir')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  kubenode-agent status\n  kubenode-agent status --json --root /srv/node-1');
  addHostOptions(cmd);
  return cmd.action(async (options: CommonOptions & { json?: boolean }) => {
    const [{ bootstrap }, { listStatuses }] = await Promise.all([import('../bootstrap.ts'), import('../installers/status.ts')]);
    const { host, config } = await bootstrap(options, { fallback: 'warn', fd: 2 });
    const all = await listStatuses(host, config.stateDir);
    if (options.json === true) {
      process.stdout.write(`${JSON.stringify({ components: all.map(({ component, status }) => ({ component, ...status })) }, null, 2)}\n`);
      return;
    }
    if (all.length === 0) {
      process.stdout.write(`No component status under ${host.path(`${config.stateDir}/installers/status`)}.\n`);
      return;
    }
    const rows = all.map(({ component, status }) => [
      component,
      status.phase,
      status.installedVersion ?? '-',
      status.updatedAt ?? '-',
      (status.lastError ?? status.conditions.find((c) => c.type === 'Ready')?.message ?? '').replace(/\s+/g, ' ').slice(0, 100),
    ]);
    const header = ['COMPONENT', 'PHASE', 'VERSION', 'UPDATED', 'MESSAGE'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
    const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] as number))).join('  ').trimEnd();
    process.stdout.write(`${[line(header), ...rows.map(line)].join('\n')}\n`);
  });
}
