import type { Host } from '../../host/host.ts';

export interface ProcStat {
  pid: number;
  comm: string;
  state: string;
}

/** /proc/PID/stat: "pid (comm) state ..."; comm may hold spaces and parentheses, so split at the last ')'. */
export function parseProcStat(text: string): ProcStat | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const pid = Number(text.slice(0, open).trim());
  const state = text.slice(close + 1).trim().split(/\s+/)[0];
  if (!Number.isInteger(pid) || state === undefined || state === '') return undefined;
  return { pid, comm: text.slice(open + 1, close), state };
}

/**
 * How long one scan answers every detector that asks on the same host. The scheduler starts the
 * probes of one tick together (scheduler.ts), so kubelet, container-runtime and pressure, due at
 * the same times, read /proc once a tick between them, not once each: on a node of a thousand
 * processes that is two thousand fewer files opened every 30 s.
 */
const SHARED_SCAN_MS = 1_000;
const lastScan = new WeakMap<Host, { at: number; procs: readonly ProcStat[] }>();

/**
 * Every process's /proc/PID/stat, read synchronously (Host.readPseudoFile says why that cannot
 * block): a few hundred small reads a probe with no threadpool round trip. A process that exits
 * or cannot be read meanwhile is left out; throws only when /proc itself cannot be listed. A scan
 * less than SHARED_SCAN_MS old (on the host's clock) is answered again.
 */
export function readProcesses(host: Host): readonly ProcStat[] {
  const now = host.clock.now();
  const last = lastScan.get(host);
  if (last !== undefined && now >= last.at && now - last.at < SHARED_SCAN_MS) return last.procs;
  const out: ProcStat[] = [];
  for (const pid of host.listProcessIds()) {
    let text: string | undefined;
    try {
      text = host.readPseudoFile(`/proc/${pid}/stat`);
    } catch {
      continue;
    }
    const stat = text === undefined ? undefined : parseProcStat(text);
    if (stat !== undefined) out.push(stat);
  }
  lastScan.set(host, { at: now, procs: out });
  return out;
}
