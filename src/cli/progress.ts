// Progress on an operator's terminal: a download's line rewritten in place, a lock wait said once.
// Only for a TTY and never with --json, so pipes, logs and JSON output stay as they were.
import type { LockHolder } from '../host/lock.ts';
import type { InstallProgress } from '../installers/types.ts';

/** At most this often a download's line is redrawn: a few times a second, not per chunk. */
const REDRAW_MS = 250;

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(n: number): string {
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

export function lockWaitLine(holder: LockHolder | undefined): string {
  if (holder === undefined) return 'waiting for the install lock: held by another process';
  return `waiting for the install lock: held by pid ${holder.pid} since ${holder.since} (boot ${holder.bootId.slice(0, 8)}, ${holder.purpose})`;
}

export interface TerminalStream {
  isTTY?: boolean;
  write(text: string): unknown;
}

/** The progress display for a terminal; undefined when there is none to draw on (not a TTY, or --json). */
export function terminalProgress(stream: TerminalStream, json: boolean, now: () => number = () => performance.now()): InstallProgress | undefined {
  if (stream.isTTY !== true || json) return undefined;
  const downloads = new Map<string, { started: number; firstBytes: number; drawn: number; width: number }>();
  return {
    download(component, bytes, total) {
      const t = now();
      let d = downloads.get(component);
      if (d === undefined) {
        d = { started: t, firstBytes: bytes, drawn: -Infinity, width: 0 };
        downloads.set(component, d);
      }
      const done = total !== undefined && bytes >= total;
      if (!done && t - d.drawn < REDRAW_MS) return;
      d.drawn = t;
      const seconds = (t - d.started) / 1000;
      const rate = seconds > 0 ? `, ${formatBytes(Math.round((bytes - d.firstBytes) / seconds))}/s` : '';
      const line = `${component}: downloading ${formatBytes(bytes)}${total === undefined ? '' : ` of ${formatBytes(total)}`}${rate}`;
      // Pad over the longer line drawn before, so no tail of it is left behind.
      stream.write(`\r${line.padEnd(d.width)}`);
      d.width = line.length;
    },
    downloadEnd(component) {
      if (downloads.get(component)?.width) stream.write('\n');
      downloads.delete(component);
    },
    lockWait(holder) {
      stream.write(`${lockWaitLine(holder)}\n`);
    },
  };
}
