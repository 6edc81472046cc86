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
 * Every process's /proc/PID/stat, read synchronously (Host.readPseudoFile says why that cannot
 * block): a few hundred small reads a probe with no threadpool round trip. A process that exits
 * or cannot be read meanwhile is left out; throws only when /proc itself cannot be listed.
 */
export function readProcesses(host: Host): ProcStat[] {
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
  return out;
}
