import { Type, type StaticDecode } from '@sinclair/typebox';
import type { DetectorResult } from '../types.ts';
import { Conditions, tripAfter, type ConditionSpec, type Finding } from './engine/conditions.ts';
import { Duration } from '../util/duration-schema.ts';
import { CountWindow } from './engine/window.ts';
import type { DetectorDefinition } from './engine/types.ts';
import { ExecError } from '../errors.ts';

// ---------------------------------------------------------------- parsers (pure)

export interface UnitRow {
  unit: string;
  load: string;
  active: string;
  sub: string;
  description: string;
}

/**
 * `systemctl list-units --failed --plain --no-legend --full`: UNIT LOAD ACTIVE SUB DESCRIPTION per
 * line. --plain drops the "●" bullet older versions print before failed units, but a bullet is
 * skipped if present anyway.
 */
export function parseListUnits(text: string): UnitRow[] {
  const rows: UnitRow[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/^\s*[\u25cf*]\s+/, '').trim();
    if (line === '') continue;
    const m = /^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (m === null) continue;
    rows.push({ unit: m[1] as string, load: m[2] as string, active: m[3] as string, sub: m[4] as string, description: m[5] as string });
  }
  return rows;
}

/** `systemctl show -p A,B unit`: key=value lines. */
export function parseShow(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out.set(line.slice(0, eq), line.slice(eq + 1).trim());
  }
  return out;
}

/** NPD's reasons for the runtime and kubelet units (systemd-monitor), a generic one for the rest. */
export function restartReason(unit: string): string {
  const name = unit.replace(/\.service$/, '');
  if (name === 'kubelet') return 'FrequentKubeletRestart';
  if (name === 'docker') return 'FrequentDockerRestart';
  if (name === 'containerd') return 'FrequentContainerdRestart';
  return 'FrequentUnitRestart';
}

// ---------------------------------------------------------------- detector

const configSchema = Type.Object(
  {
    failedUnits: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'Units whose failed state is a problem; empty means every failed unit' }),
    ignoreFailedUnits: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'Units whose failed state is never a problem' }),
    restartUnits: Type.Array(Type.String({ minLength: 1 }), {
      default: ['kubelet.service', 'containerd.service', 'docker.service', 'crio.service'],
      description: 'Units watched for restart loops (NRestarts rising); units not installed are skipped',
    }),
    restartCount: Type.Integer({ minimum: 1, default: 5, description: 'FrequentUnitRestart when a unit restarts this many times within restartWindow (NPD: 5 in 20m)' }),
    restartWindow: Duration({ description: 'Window for restartCount', default: '20m', max: '168h' }),
    commandTimeout: Duration({ description: 'Deadline of one systemctl call', default: '5s', max: '1h' }),
    failuresToTrip: Type.Integer({ minimum: 1, default: 2, description: 'Consecutive probes seeing a failed unit before SystemdUnitFailed turns (the daemon; check takes one look)' }),
    successesToClear: Type.Integer({ minimum: 1, default: 1, description: 'Consecutive good probes before a condition clears' }),
  },
  { additionalProperties: false },
);

export type SystemdConfig = StaticDecode<typeof configSchema>;

export const SYSTEMD_CONDITIONS: readonly ConditionSpec[] = [
  { type: 'SystemdUnitFailed', okReason: 'NoFailedUnits', okMessage: 'no watched systemd unit is failed' },
  { type: 'FrequentUnitRestart', okReason: 'NoFrequentUnitRestart', okMessage: 'no watched systemd unit is restarting in a loop' },
];

export const systemd: DetectorDefinition<typeof configSchema> = {
  description: 'Failed systemd units and restart loops (NRestarts rising)',
  configSchema,
  defaults: { enabled: true, interval: '60s', timeout: '20s' },
  create(config, ctx) {
    const { host } = ctx;
    const tracker = new Conditions(SYSTEMD_CONDITIONS, ctx, { failuresToTrip: tripAfter(ctx.mode, config.failuresToTrip), successesToClear: config.successesToClear });
    const timeoutMs = config.commandTimeout;
    const windowMs = config.restartWindow;
    const lastRestarts = new Map<string, number>();
    const windows = new Map<string, CountWindow>();
    const wanted = new Set(config.failedUnits);
    const ignored = new Set(config.ignoreFailedUnits);

    return {
      async probe(signal): Promise<DetectorResult> {
        const findings: Finding[] = [];
        const unknown = new Map<string, string>();
        const list = await host.exec(['systemctl', 'list-units', '--failed', '--plain', '--no-legend', '--no-pager', '--full'], { timeoutMs, signal, cachedLookup: true });
        if (list.notFound) {
          const message = 'systemctl is not installed: this host does not run systemd';
          unknown.set('SystemdUnitFailed', message);
          unknown.set('FrequentUnitRestart', message);
        } else if (list.timedOut || list.exitCode !== 0) {
          // "System has not been booted with systemd as init system (PID 1)", or a hung systemd.
          const message = new ExecError(list).message;
          unknown.set('SystemdUnitFailed', message);
          unknown.set('FrequentUnitRestart', message);
        } else {
          for (const row of parseListUnits(list.stdout)) {
            if (row.active !== 'failed' || ignored.has(row.unit) || (wanted.size > 0 && !wanted.has(row.unit))) continue;
            findings.push({ type: 'SystemdUnitFailed', reason: 'UnitFailed', key: row.unit, message: `${row.unit} is failed (${row.load}/${row.active}/${row.sub})${row.description === '' ? '' : `: ${row.description}`}` });
          }

          const now = host.clock.now();
          for (const unit of config.restartUnits) {
            const show = await host.exec(['systemctl', 'show', '-p', 'LoadState,NRestarts,ActiveState,SubState', '--no-pager', unit], { timeoutMs, signal, cachedLookup: true });
            if (show.exitCode !== 0) continue;
            const props = parseShow(show.stdout);
            // NRestarts exists since systemd 235; without it there is nothing to count.
            const restarts = Number(props.get('NRestarts'));
            const load = props.get('LoadState');
            if ((load !== undefined && load !== 'loaded') || props.get('NRestarts') === undefined || !Number.isFinite(restarts)) continue;
            const sub = props.get('SubState') ?? '';
            if (ctx.mode === 'check') {
              // One look: a unit waiting to be restarted again after many restarts is looping now.
              if (sub === 'auto-restart' && restarts >= config.restartCount) {
                findings.push({ type: 'FrequentUnitRestart', reason: restartReason(unit), key: unit, message: `${unit} has restarted ${restarts} times and is waiting to restart again (${props.get('ActiveState')}/${sub})` });
              }
              continue;
            }
            const previous = lastRestarts.get(unit);
            lastRestarts.set(unit, restarts);
            let window = windows.get(unit);
            if (window === undefined) windows.set(unit, (window = new CountWindow(windowMs)));
            // NRestarts counts since the unit was last started by hand or systemd reloaded; a drop resets it.
            if (previous !== undefined && restarts > previous) for (let i = previous; i < restarts; i++) window.add(now);
            const count = window.count(now);
            if (count >= config.restartCount) {
              findings.push({ type: 'FrequentUnitRestart', reason: restartReason(unit), key: unit, message: `${unit} restarted ${count} times within ${config.restartWindow} (NRestarts=${restarts}, ${props.get('ActiveState')}/${sub})` });
            }
          }
        }
        const { conditions, events } = tracker.update({ findings, unknown });
        const unknownText = [...new Set(unknown.values())].join('; ');
        return { conditions, events, ...(unknownText === '' ? {} : { unknown: unknownText }) };
      },
    };
  },
};
