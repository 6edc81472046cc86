import { Type, type StaticDecode } from '@sinclair/typebox';
import type { DetectorResult } from '../types.ts';
import { Conditions, tripAfter, type ConditionSpec, type Finding } from './engine/conditions.ts';
import { Duration } from '../util/duration-schema.ts';
import type { DetectorDefinition } from './engine/types.ts';
import { ExecError, execFailure } from '../errors.ts';

// ---------------------------------------------------------------- parsers (pure)

export interface ChronyTracking {
  refId: string;
  refName: string;
  stratum: number;
  /** System time minus NTP time in seconds, as chronyd last measured it (sign per chronyc's CSV). */
  systemTimeOffset: number;
  lastOffset: number;
  rootDispersion: number;
  leapStatus: string;
}

/**
 * `chronyc -c tracking`: one CSV line — reference ID (hex), reference name/address, stratum,
 * reference time, system time offset, last offset, RMS offset, frequency, residual frequency,
 * skew, root delay, root dispersion, update interval, leap status (14 fields). Versions without
 * the name column give 13; the fields are read relative to the end so both work.
 */
export function parseChronyTracking(text: string): ChronyTracking | undefined {
  const line = text.split('\n').map((l) => l.trim()).find((l) => l.includes(','));
  if (line === undefined) return undefined;
  const f = line.split(',');
  if (f.length !== 13 && f.length !== 14) return undefined;
  const shift = f.length === 14 ? 1 : 0;
  const num = (i: number): number => Number(f[i + shift]);
  const parsed: ChronyTracking = {
    refId: f[0] as string,
    refName: shift === 1 ? (f[1] as string) : '',
    stratum: num(1),
    systemTimeOffset: num(3),
    lastOffset: num(4),
    rootDispersion: num(10),
    leapStatus: f[f.length - 1] as string,
  };
  if (![parsed.stratum, parsed.systemTimeOffset, parsed.lastOffset, parsed.rootDispersion].every(Number.isFinite)) return undefined;
  return parsed;
}

/** `timedatectl show`: key=value lines (systemd 239+). */
export function parseKeyValues(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  return out;
}

// ---------------------------------------------------------------- detector

const configSchema = Type.Object(
  {
    maxOffset: Duration({ description: 'ClockSkew when the system clock is further than this from NTP time (chrony only)', default: '500ms', min: '1ms', max: '1h' }),
    commandTimeout: Duration({ description: 'Deadline of one chronyc or timedatectl call', default: '3s', max: '1h' }),
    failuresToTrip: Type.Integer({ minimum: 1, default: 2, description: 'Consecutive bad probes before ClockSkew turns (the daemon; check takes one look)' }),
    successesToClear: Type.Integer({ minimum: 1, default: 1, description: 'Consecutive good probes before it clears' }),
  },
  { additionalProperties: false },
);

export type ClockConfig = StaticDecode<typeof configSchema>;

export const CLOCK_CONDITIONS: readonly ConditionSpec[] = [
  { type: 'ClockSkew', okReason: 'ClockSynchronized', okMessage: 'the system clock is synchronized' },
];

const oneLine = (text: string): string => text.replace(/\s+/g, ' ').trim().slice(0, 200);

type Verdict = { source: string; findings: Finding[]; note: string } | { source: string; unusable: string };

export const clock: DetectorDefinition<typeof configSchema> = {
  description: 'Clock synchronization state and offset from chrony, else systemd-timedated',
  configSchema,
  defaults: { enabled: true, interval: '60s', timeout: '10s' },
  create(config, ctx) {
    const { host } = ctx;
    const tracker = new Conditions(CLOCK_CONDITIONS, ctx, { failuresToTrip: tripAfter(ctx.mode, config.failuresToTrip), successesToClear: config.successesToClear });
    const maxOffsetMs = config.maxOffset;
    const timeoutMs = config.commandTimeout;

    const fromChrony = async (signal: AbortSignal): Promise<Verdict | undefined> => {
      const run = await host.exec(['chronyc', '-c', 'tracking'], { timeoutMs, signal, cachedLookup: true });
      if (run.notFound) return undefined;
      if (run.timedOut) return { source: 'chronyc', unusable: new ExecError(run).message };
      const t = run.exitCode === 0 ? parseChronyTracking(run.stdout) : undefined;
      // chronyc without a running chronyd ("506 Cannot talk to daemon"): let timedatectl answer.
      if (t === undefined) return { source: 'chronyc', unusable: execFailure(run)?.message ?? `chronyc -c tracking printed no tracking data: ${oneLine(run.stdout)}` };
      const findings: Finding[] = [];
      if (t.leapStatus === 'Not synchronised' || t.refId === '00000000' || t.stratum === 0) {
        findings.push({ type: 'ClockSkew', reason: 'ClockNotSynchronized', message: `chrony is not synchronised to any source (leap status "${t.leapStatus}", stratum ${t.stratum})` });
      } else if (Math.abs(t.systemTimeOffset) * 1000 > maxOffsetMs) {
        findings.push({
          type: 'ClockSkew',
          reason: 'ClockOffsetTooLarge',
          message: `the system clock is ${(Math.abs(t.systemTimeOffset) * 1000).toFixed(1)}ms off NTP time (source ${t.refName || t.refId}, stratum ${t.stratum}); the limit is ${maxOffsetMs}ms`,
        });
      }
      return { source: 'chronyc', findings, note: `chrony: source ${t.refName || t.refId}, offset ${(t.systemTimeOffset * 1000).toFixed(3)}ms` };
    };

    const fromTimedatectl = async (signal: AbortSignal): Promise<Verdict | undefined> => {
      const run = await host.exec(['timedatectl', 'show'], { timeoutMs, signal, cachedLookup: true });
      if (run.notFound) return undefined;
      if (run.timedOut) return { source: 'timedatectl', unusable: new ExecError(run).message };
      const kv = parseKeyValues(run.stdout);
      const synced = kv.get('NTPSynchronized');
      // "System has not been booted with systemd", or a timedated without `show` (systemd < 239).
      if (run.exitCode !== 0 || synced === undefined) {
        return { source: 'timedatectl', unusable: execFailure(run)?.message ?? `timedatectl show printed no NTPSynchronized: ${oneLine(run.stdout)}` };
      }
      const findings: Finding[] = [];
      if (synced !== 'yes') {
        const service = kv.get('NTP') === 'yes' ? 'an NTP service is enabled but has not synchronized' : 'no NTP service is enabled (NTP=no)';
        findings.push({ type: 'ClockSkew', reason: 'ClockNotSynchronized', message: `the kernel reports the clock unsynchronized (timedatectl NTPSynchronized=${synced}); ${service}` });
      }
      return { source: 'timedatectl', findings, note: `timedatectl: NTPSynchronized=${synced}` };
    };

    return {
      async probe(signal): Promise<DetectorResult> {
        const tried: string[] = [];
        let verdict: Verdict | undefined;
        for (const source of [fromChrony, fromTimedatectl]) {
          const v = await source(signal);
          if (v === undefined) continue;
          if ('unusable' in v) {
            tried.push(v.unusable);
            continue;
          }
          verdict = v;
          break;
        }
        if (verdict === undefined || !('findings' in verdict)) {
          // The kernel's own adjtimex(2) state (STA_UNSYNC) has no file in /proc or /sys, and Node has no syscall for it.
          const why = tried.length > 0 ? tried.join('; ') : 'neither chronyc nor timedatectl is installed';
          const message = `cannot tell whether the clock is synchronized: ${why}; the kernel's adjtimex state is not readable without a syscall`;
          const { conditions, events } = tracker.update({ findings: [], unknown: new Map([['ClockSkew', message]]) });
          return { conditions, events, unknown: message };
        }
        ctx.log.debug({ source: verdict.source }, verdict.note);
        return tracker.update({ findings: verdict.findings });
      },
    };
  },
};
