import { Command } from 'commander';
import type { CheckEntry } from '../detectors/engine/run.ts';
import { UsageError } from '../errors.ts';
import { addHostOptions, addLogOptions, logOptions, type CommonOptions, type LogFlags } from './common.ts';

export interface CheckReport {
  node: string;
  startedAt: string;
  results: {
    detector: string;
    status: CheckEntry['status'];
    conditions: { type: string; status: string; reason: string; message: string }[];
    events: { reason: string; message: string }[];
    durationMs: number;
    error?: string;
  }[];
}

/** 0 all ok, 1 any problem, 2 no problem but something unknown. */
export function checkExitCode(entries: readonly Pick<CheckEntry, 'status'>[]): 0 | 1 | 2 {
  if (entries.some((e) => e.status === 'problem')) return 1;
  if (entries.some((e) => e.status === 'unknown')) return 2;
  return 0;
}

export function toReport(node: string, startedAt: Date, entries: readonly CheckEntry[]): CheckReport {
  return {
    node,
    startedAt: startedAt.toISOString(),
    results: entries.map((e) => ({
      detector: e.detector,
      status: e.status,
      conditions: e.conditions.map(({ type, status, reason, message }) => ({ type, status, reason, message })),
      events: e.events.filter((ev) => ev.severity === 'warn').map(({ reason, message }) => ({ reason, message })),
      durationMs: e.durationMs,
      ...(e.error === undefined ? {} : { error: e.error }),
    })),
  };
}

const COLOURS = { ok: '\u001b[32m', problem: '\u001b[31m', unknown: '\u001b[33m' } as const;

function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

export function renderTable(report: CheckReport, colour: boolean): string {
  const rows = report.results.map((r) => {
    const cond = r.conditions.find((c) => c.status === 'True');
    const event = r.events[0];
    const reason = cond?.reason ?? event?.reason ?? (r.status === 'unknown' ? 'Unknown' : '');
    const message = cond?.message ?? event?.message ?? r.error ?? '';
    const extra = r.events.length > 1 ? ` (+${r.events.length - 1} more events)` : '';
    return [r.detector, r.status, reason, oneLine(message, 72) + extra, `${r.durationMs}ms`];
  });
  const header = ['DETECTOR', 'STATUS', 'REASON', 'MESSAGE', 'TOOK'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)));
  const line = (cells: string[], status?: keyof typeof COLOURS): string =>
    cells
      .map((cell, i) => {
        const padded = i === cells.length - 1 ? cell : cell.padEnd(widths[i] as number);
        return colour && i === 1 && status !== undefined ? `${COLOURS[status]}${padded}\u001b[0m` : padded;
      })
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map((row) => line(row, row[1] as keyof typeof COLOURS))].join('\n') + '\n';
}

interface CheckOptions extends CommonOptions, LogFlags {
  json?: boolean;
  only?: string;
  timeout?: string;
}

export function checkCommand(exit: (code: number) => void): Command {
  const cmd = new Command('check')
    .description('run every enabled detector once, read-only and bounded in time, and report')
    .option('--json', 'print JSON instead of a table')
    .option('--only <detectors>', 'comma-separated detector names to run')
    .option('--timeout <duration>', 'deadline for the whole check (default: check.timeout in the config, 30s)')
    .addHelpText(
      'after',
      `
Examples:
  kubenode-agent check                          # every enabled detector, a table
  kubenode-agent check --only kernel,storage --json
  kubenode-agent check --root /srv/captured-host --config.system-log-monitor builtin:kernel-monitor.json

Exit codes: 0 all ok, 1 a problem found, 2 something could not be told, 64 bad usage or configuration.`,
    );
  addHostOptions(cmd);
  addLogOptions(cmd, 'diagnostics on stderr; default warn');
  return cmd.action(async (options: CheckOptions) => {
    const startedAt = new Date();
    const [{ bootstrap }, { buildInstances }, { runOnce }, { decodeFlag }, { AgentConfig }] = await Promise.all([
      import('../bootstrap.ts'),
      import('../detectors/engine/instances.ts'),
      import('../detectors/engine/run.ts'),
      import('../config/decode.ts'),
      import('../config/schema.ts'),
    ]);
    const { host, config, nodeName, monitors, log } = await bootstrap(options, logOptions(options, 'warn', 2));
    const timeoutMs = options.timeout === undefined ? config.check.timeout : decodeFlag('--timeout', AgentConfig.properties.check.properties.timeout, options.timeout);
    let instances = await buildInstances(host, { detectors: config.detectors, monitors: config.monitors }, monitors);
    if (options.only !== undefined) {
      const wanted = options.only.split(',').map((s) => s.trim()).filter((s) => s !== '');
      const unknown = wanted.filter((w) => !instances.some((i) => i.name === w));
      if (unknown.length > 0) {
        throw new UsageError(`--only: no detector named ${unknown.join(', ')}; configured: ${instances.map((i) => i.name).join(', ')}`);
      }
      instances = instances.filter((i) => wanted.includes(i.name));
    }
    const entries = await runOnce(instances, {
      maxConcurrent: config.detection.maxConcurrent,
      deadline: host.clock.now() + timeoutMs,
      clock: host.clock,
      silenced: new Set(config.detection.silencedReasons),
      context: (instance) => ({ host, log: log.child({ detector: instance.name }), nodeName, mode: 'check', previous: [], silenced: new Set(config.detection.silencedReasons) }),
    });
    const report = toReport(nodeName, startedAt, entries);
    process.stdout.write(options.json === true ? `${JSON.stringify(report, null, 2)}\n` : renderTable(report, process.stdout.isTTY === true && process.env.NO_COLOR === undefined));
    exit(checkExitCode(entries));
  });
}
