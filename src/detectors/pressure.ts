import { Type, type Static } from '@sinclair/typebox';
import type { DetectorResult } from '../types.ts';
import { Conditions, tripAfter, type ConditionSpec, type Finding } from './engine/conditions.ts';
import type { DetectorDefinition } from './engine/types.ts';
import { readProcesses } from './engine/procs.ts';

// ---------------------------------------------------------------- parsers (pure)

/** /proc/meminfo values in kB, by field name. */
export function parseMeminfo(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z0-9_()]+):\s+(\d+)/.exec(line);
    if (m !== null) out.set(m[1] as string, Number(m[2]));
  }
  return out;
}

export interface PsiLine {
  avg10: number;
  avg60: number;
  avg300: number;
  total: number;
}

/** /proc/pressure/{cpu,memory,io} (Documentation/accounting/psi.rst): a "some" line and, since 4.20 for memory/io and 5.13 for cpu, a "full" line. */
export function parsePsi(text: string): { some?: PsiLine; full?: PsiLine } {
  const out: { some?: PsiLine; full?: PsiLine } = {};
  for (const line of text.split('\n')) {
    const m = /^(some|full)\s+avg10=([\d.]+)\s+avg60=([\d.]+)\s+avg300=([\d.]+)\s+total=(\d+)/.exec(line.trim());
    if (m === null) continue;
    out[m[1] as 'some' | 'full'] = { avg10: Number(m[2]), avg60: Number(m[3]), avg300: Number(m[4]), total: Number(m[5]) };
  }
  return out;
}

/** /proc/loadavg: "0.20 0.18 0.12 1/80 11206" — the 4th field is runnable/total scheduling entities (threads). */
export function parseLoadavgTasks(text: string): { running: number; total: number } | undefined {
  const m = /^\S+\s+\S+\s+\S+\s+(\d+)\/(\d+)\s/.exec(text.trim() + ' ');
  return m === null ? undefined : { running: Number(m[1]), total: Number(m[2]) };
}

/** /proc/sys/fs/file-nr: allocated, allocated-but-unused (always 0 since 2.6), maximum. */
export function parseFileNr(text: string): { allocated: number; unused: number; max: number } | undefined {
  const f = text.trim().split(/\s+/).map(Number);
  if (f.length < 3 || f.some((n) => !Number.isFinite(n))) return undefined;
  return { allocated: f[0] as number, unused: f[1] as number, max: f[2] as number };
}

const parseIntText = (text: string | undefined): number | undefined => {
  if (text === undefined) return undefined;
  const n = Number(text.trim());
  return Number.isFinite(n) && text.trim() !== '' ? n : undefined;
};

// ---------------------------------------------------------------- detector

const Psi = (some: number, full: number, what: string) =>
  Type.Object(
    {
      someAvg60: Type.Number({ minimum: 0, maximum: 100, default: some, description: `${what}: "some" avg60 percent at or above which it is a problem (0 turns it off)` }),
      fullAvg60: Type.Number({ minimum: 0, maximum: 100, default: full, description: `${what}: "full" avg60 percent at or above which it is a problem (0 turns it off)` }),
    },
    { additionalProperties: false, default: {} },
  );

const configSchema = Type.Object(
  {
    memoryAvailablePercent: Type.Number({ minimum: 0, maximum: 100, default: 5, description: 'HighMemoryPressure when MemAvailable is below this share of MemTotal (0 turns it off)' }),
    psiMemory: Psi(40, 10, 'memory PSI'),
    // CPU "full" is undefined at the system level (always 0 since 5.13); "some" is high on any busy node, hence 90.
    psiCpu: Psi(90, 0, 'CPU PSI'),
    // I/O "some" is high whenever one task waits on a disk; "full" means nothing ran for want of I/O.
    psiIo: Psi(0, 30, 'I/O PSI'),
    pidsPercent: Type.Number({ minimum: 1, maximum: 100, default: 90, description: 'PIDExhaustion when the tasks in use reach this share of kernel.pid_max or kernel.threads-max' }),
    fileDescriptorsPercent: Type.Number({ minimum: 1, maximum: 100, default: 90, description: 'FileDescriptorExhaustion when allocated file handles reach this share of fs.file-max' }),
    conntrackPercent: Type.Number({ minimum: 1, maximum: 100, default: 90, description: 'ConntrackExhaustion when nf_conntrack_count reaches this share of nf_conntrack_max' }),
    zombieCount: Type.Integer({ minimum: 0, default: 500, description: 'ZombieProcesses when at least this many processes are zombies (0 turns the scan off)' }),
    failuresToTrip: Type.Integer({ minimum: 1, default: 3, description: 'Consecutive probes over a threshold before its condition turns (the daemon; check takes one look)' }),
    successesToClear: Type.Integer({ minimum: 1, default: 2, description: 'Consecutive probes under it before the condition clears' }),
  },
  { additionalProperties: false },
);

export type PressureConfig = Static<typeof configSchema>;

export const PRESSURE_CONDITIONS: readonly ConditionSpec[] = [
  // Not kubelet's MemoryPressure/PIDPressure: those are kubelet's to set from its eviction signals.
  { type: 'HighMemoryPressure', okReason: 'MemoryPressureNormal', okMessage: 'memory available and memory stall time are within limits' },
  { type: 'HighCPUPressure', okReason: 'CPUPressureNormal', okMessage: 'CPU stall time is within limits (or PSI is not available)' },
  { type: 'HighIOPressure', okReason: 'IOPressureNormal', okMessage: 'I/O stall time is within limits (or PSI is not available)' },
  { type: 'PIDExhaustion', okReason: 'PIDsAvailable', okMessage: 'tasks are below kernel.pid_max and kernel.threads-max' },
  { type: 'FileDescriptorExhaustion', okReason: 'FileDescriptorsAvailable', okMessage: 'file handles are below fs.file-max' },
  { type: 'ConntrackExhaustion', okReason: 'ConntrackAvailable', okMessage: 'the conntrack table has room (or conntrack is not loaded)' },
  { type: 'ZombieProcesses', okReason: 'FewZombies', okMessage: 'zombie processes are below the limit' },
];

const pct = (n: number): string => `${n.toFixed(1)}%`;

function psiFindings(resource: string, text: string | undefined, limits: { someAvg60: number; fullAvg60: number }, type: string, reason: string): Finding[] {
  if (text === undefined) return [];
  const psi = parsePsi(text);
  const out: Finding[] = [];
  for (const kind of ['some', 'full'] as const) {
    const limit = kind === 'some' ? limits.someAvg60 : limits.fullAvg60;
    const line = psi[kind];
    if (limit <= 0 || line === undefined || line.avg60 < limit) continue;
    out.push({ type, reason, key: kind, message: `${resource} PSI ${kind} avg60=${line.avg60}% (avg10=${line.avg10}%, avg300=${line.avg300}%), threshold ${limit}%` });
  }
  return out;
}

export const pressure: DetectorDefinition<typeof configSchema> = {
  description: 'Memory, CPU and I/O pressure (MemAvailable, PSI), and PIDs, file handles, conntrack entries and zombies against their kernel limits',
  configSchema,
  defaults: { enabled: true, interval: '30s', timeout: '10s' },
  create(config, ctx) {
    const { host } = ctx;
    const tracker = new Conditions(PRESSURE_CONDITIONS, ctx, { failuresToTrip: tripAfter(ctx.mode, config.failuresToTrip), successesToClear: config.successesToClear });
    // Every file this probe reads is one of the host's pseudo-files, read without the threadpool.
    const read = (p: string): string | undefined => {
      try {
        return host.readPseudoFile(p);
      } catch {
        return undefined;
      }
    };

    return {
      async probe(): Promise<DetectorResult> {
        const findings: Finding[] = [];
        const unknown = new Map<string, string>();

        // Memory: MemAvailable (3.14+) against MemTotal.
        const meminfoText = read('/proc/meminfo');
        if (meminfoText === undefined) unknown.set('HighMemoryPressure', '/proc/meminfo is not readable');
        else if (config.memoryAvailablePercent > 0) {
          const mem = parseMeminfo(meminfoText);
          const total = mem.get('MemTotal');
          const available = mem.get('MemAvailable');
          if (total !== undefined && available !== undefined && total > 0) {
            const share = (available / total) * 100;
            if (share < config.memoryAvailablePercent) {
              findings.push({ type: 'HighMemoryPressure', reason: 'MemoryAvailableLow', message: `MemAvailable ${Math.round(available / 1024)} MiB is ${pct(share)} of MemTotal ${Math.round(total / 1024)} MiB (threshold ${config.memoryAvailablePercent}%)` });
            }
          }
        }

        // PSI: absent before 4.20 or without psi=1: those checks are skipped, not unknown.
        const [psiMem, psiCpu, psiIo] = ['memory', 'cpu', 'io'].map((r) => read(`/proc/pressure/${r}`));
        findings.push(...psiFindings('memory', psiMem, config.psiMemory, 'HighMemoryPressure', 'MemoryPSIHigh'));
        findings.push(...psiFindings('CPU', psiCpu, config.psiCpu, 'HighCPUPressure', 'CPUPSIHigh'));
        findings.push(...psiFindings('I/O', psiIo, config.psiIo, 'HighIOPressure', 'IOPSIHigh'));

        // PIDs and threads: every thread takes a PID, so the loadavg task total is what counts against both limits.
        const tasks = parseLoadavgTasks(read('/proc/loadavg') ?? '');
        const pidMax = parseIntText(read('/proc/sys/kernel/pid_max'));
        const threadsMax = parseIntText(read('/proc/sys/kernel/threads-max'));
        if (tasks === undefined) unknown.set('PIDExhaustion', '/proc/loadavg is not readable');
        else {
          if (pidMax !== undefined && pidMax > 0 && (tasks.total / pidMax) * 100 >= config.pidsPercent) {
            findings.push({ type: 'PIDExhaustion', reason: 'PIDsNearLimit', message: `${tasks.total} tasks use ${pct((tasks.total / pidMax) * 100)} of kernel.pid_max ${pidMax} (threshold ${config.pidsPercent}%)` });
          }
          if (threadsMax !== undefined && threadsMax > 0 && (tasks.total / threadsMax) * 100 >= config.pidsPercent) {
            findings.push({ type: 'PIDExhaustion', reason: 'ThreadsNearLimit', message: `${tasks.total} tasks use ${pct((tasks.total / threadsMax) * 100)} of kernel.threads-max ${threadsMax} (threshold ${config.pidsPercent}%)` });
          }
        }

        const fileNr = parseFileNr(read('/proc/sys/fs/file-nr') ?? '');
        if (fileNr === undefined) unknown.set('FileDescriptorExhaustion', '/proc/sys/fs/file-nr is not readable');
        else if (fileNr.max > 0 && ((fileNr.allocated - fileNr.unused) / fileNr.max) * 100 >= config.fileDescriptorsPercent) {
          const used = fileNr.allocated - fileNr.unused;
          findings.push({ type: 'FileDescriptorExhaustion', reason: 'FileDescriptorsNearLimit', message: `${used} file handles use ${pct((used / fileNr.max) * 100)} of fs.file-max ${fileNr.max} (threshold ${config.fileDescriptorsPercent}%)` });
        }

        // Conntrack: absent when nf_conntrack is not loaded; then there is no table to fill.
        const ctCount = parseIntText(read('/proc/sys/net/netfilter/nf_conntrack_count'));
        const ctMax = parseIntText(read('/proc/sys/net/netfilter/nf_conntrack_max'));
        if (ctCount !== undefined && ctMax !== undefined && ctMax > 0 && (ctCount / ctMax) * 100 >= config.conntrackPercent) {
          findings.push({ type: 'ConntrackExhaustion', reason: 'ConntrackTableNearFull', message: `nf_conntrack_count ${ctCount} is ${pct((ctCount / ctMax) * 100)} of nf_conntrack_max ${ctMax} (threshold ${config.conntrackPercent}%)` });
        }

        // Zombies: loadavg's total counts every task not yet reaped, zombies included (one leaves the
        // count only when its parent reaps it), so fewer tasks than zombieCount cannot hold that many
        // zombies, and the scan of every /proc/PID/stat is skipped.
        if (config.zombieCount > 0 && (tasks === undefined || tasks.total >= config.zombieCount)) {
          try {
            const procs = readProcesses(host);
            const zombies = procs.filter((p) => p.state === 'Z').length;
            const processes = procs.length;
            if (zombies >= config.zombieCount) {
              findings.push({ type: 'ZombieProcesses', reason: 'TooManyZombies', message: `${zombies} of ${processes} processes are zombies (threshold ${config.zombieCount}); their parents do not reap them` });
            }
          } catch (err) {
            unknown.set('ZombieProcesses', `cannot list /proc: ${err instanceof Error ? err.message : String(err)}`);
          }
        }

        const { conditions, events } = tracker.update({ findings, unknown });
        const unknownText = [...unknown.entries()].map(([t, m]) => `${t}: ${m}`).join('; ');
        return { conditions, events, ...(unknownText === '' ? {} : { unknown: unknownText }) };
      },
    };
  },
};
