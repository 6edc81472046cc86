import { errorMessage, execFailure } from '../../errors.ts';
import type { CommandLog, Host, LogReader } from '../../host/host.ts';
import { KernelLog, KMSG_PATH, LineSplitter, parseUptime } from '../engine/kmsg.ts';
import type { ParsedLogMonitor } from './config.ts';
import { compileGoLayout, parseGoTime } from './go-time.ts';
import type { LogLine } from './log-rules.ts';
import { compileRe2 } from '../../util/re2.ts';

/**
 * A log to read, as NPD's log watchers do: lines from before the start time (NPD's GetStartTime:
 * the later of boot + delay and now - lookback, so no lookback means nothing old) are dropped, and
 * so are lines logged within `delay` of boot. read() hands out one bounded batch at a time, so a
 * huge log is streamed, never held whole. Timestamps are epoch ms on the host's clock.
 */
export interface LogSource {
  /** The next batch, or undefined once caught up. `final`: the last read of a one-shot check, so an unterminated last line counts. */
  read(signal: AbortSignal, final?: boolean): Promise<LogLine[] | undefined>;
  /** Resolves once read() may have more. */
  wait(signal: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

export async function openLogSource(host: Host, monitor: ParsedLogMonitor): Promise<LogSource> {
  const window = await startWindow(host, monitor);
  switch (monitor.config.plugin) {
    case 'kmsg':
      return openKmsg(host, monitor, window);
    case 'filelog':
      return openFilelog(host, monitor, window);
    case 'journald':
      return openJournald(host, monitor, window);
  }
}

interface StartWindow {
  /** Epoch ms: older lines are not replayed at start. */
  start: number;
  /** Epoch ms: boot + delay; lines before it never count (NPD's delay lets a node settle after boot). */
  settled: number;
}

async function startWindow(host: Host, monitor: ParsedLogMonitor): Promise<StartWindow> {
  const now = host.clock.now();
  const uptimeText = await host.tryReadText('/proc/uptime').catch(() => undefined);
  const uptime = uptimeText === undefined ? undefined : parseUptime(uptimeText);
  const boot = uptime === undefined ? Number.NEGATIVE_INFINITY : now - uptime * 1000;
  const settled = boot + monitor.delayMs;
  return { start: Math.max(settled, now - monitor.lookbackMs), settled };
}

function skipper(monitor: ParsedLogMonitor): (message: string) => boolean {
  const skipList = monitor.config.skipList ?? [];
  return (message) => skipList.some((s) => message.includes(s));
}

/** Keeps the lines of a batch inside the window; the start applies while the backlog is read. */
function inWindow(window: StartWindow, backlog: boolean): (line: LogLine) => boolean {
  return (line) => line.timestamp >= window.settled && (!backlog || line.timestamp >= window.start);
}

// NPD's skipList is a filelog and journald setting: kmsg records are never skipped.
async function openKmsg(host: Host, monitor: ParsedLogMonitor, window: StartWindow): Promise<LogSource> {
  const log = await KernelLog.open(host, monitor.config.logPath ?? KMSG_PATH);
  let backlog = true;
  return {
    async read(_signal, final = false) {
      for (;;) {
        const batch = await log.read(final);
        if (batch === undefined) {
          backlog = false;
          return undefined;
        }
        const lines = batch.filter(inWindow(window, backlog));
        if (lines.length > 0) return lines.map((r) => ({ timestamp: r.timestamp, message: r.message }));
      }
    },
    wait: (signal) => log.wait(signal),
    close: () => log.close(),
  };
}

/** The value of the last submatch, as NPD's translator takes it (the whole match without groups). */
function lastSubmatch(m: RegExpExecArray): string {
  return m.length > 1 ? (m[m.length - 1] ?? '') : m[0];
}

async function openFilelog(host: Host, monitor: ParsedLogMonitor, window: StartWindow): Promise<LogSource> {
  const pc = monitor.config.pluginConfig ?? {};
  const timestampRe = compileRe2(pc.timestamp as string);
  const messageRe = compileRe2(pc.message as string);
  const layout = compileGoLayout(pc.timestampFormat as string);
  // Without a lookback nothing already in the file can count (NPD): start at its end.
  const reader: LogReader = await host.openLog(monitor.config.logPath as string, { fromStart: monitor.lookbackMs > 0 });
  const splitter = new LineSplitter();
  const skip = skipper(monitor);
  let backlog = true;
  return {
    async read(_signal, final = false) {
      for (;;) {
        const text = await reader.read();
        const raws = text === '' ? (final ? splitter.flush() : []) : splitter.push(text);
        if (raws.length === 0) {
          if (text !== '') continue;
          backlog = false;
          return undefined;
        }
        const now = host.clock.now();
        const keep = inWindow(window, backlog);
        const lines: LogLine[] = [];
        for (const raw of raws) {
          if (skip(raw)) continue;
          const ts = timestampRe.exec(raw);
          if (ts === null) continue;
          const timestamp = parseGoTime(layout, lastSubmatch(ts), now);
          if (timestamp === undefined) continue;
          const line = { timestamp, message: '' };
          if (!keep(line)) continue;
          const msg = messageRe.exec(raw);
          if (msg === null) continue;
          line.message = lastSubmatch(msg);
          lines.push(line);
        }
        if (lines.length > 0) return lines;
      }
    },
    wait: (signal) => reader.wait(signal),
    close: () => reader.close(),
  };
}

interface JournalEntry {
  MESSAGE?: string | number[];
  __REALTIME_TIMESTAMP?: string;
  __CURSOR?: string;
}

/** Before a `journalctl -f` that ended is started again (from the last cursor). */
const JOURNAL_RESTART_MS = 5_000;

/**
 * journald through journalctl's JSON output. A one-shot read (check) runs journalctl once; the
 * daemon keeps one `journalctl -f` open and reads what it prints as it comes, so an idle journal
 * costs no process starts. A follower that ends is restarted after the cursor it last printed.
 */
async function openJournald(host: Host, monitor: ParsedLogMonitor, window: StartWindow): Promise<LogSource> {
  const identifier = monitor.config.pluginConfig?.source;
  const logPath = monitor.config.logPath ?? '/var/log/journal';
  const directory = (await host.exists(logPath)) ? ['-D', host.path(logPath)] : [];
  let cursor: string | undefined;
  let caughtUp = false;
  let follower: CommandLog | undefined;
  let restartAt = 0;
  const splitter = new LineSplitter();
  const skip = skipper(monitor);
  const argv = (follow: boolean): string[] => {
    const since = cursor !== undefined ? [`--after-cursor=${cursor}`] : Number.isFinite(window.start) ? [`--since=@${Math.floor(window.start / 1000)}`] : [];
    // -f alone starts at the last 10 entries: --lines=all keeps it to the window, as the one-shot run.
    const mode = follow ? ['-f', '--lines=all'] : [];
    return ['journalctl', '--no-pager', '-o', 'json', ...mode, ...directory, ...since, ...(identifier === undefined ? [] : [`SYSLOG_IDENTIFIER=${identifier}`])];
  };
  const parse = (raws: readonly string[]): LogLine[] => {
    const now = host.clock.now();
    const lines: LogLine[] = [];
    for (const raw of raws) {
      if (raw.trim() === '') continue;
      let entry: JournalEntry;
      try {
        entry = JSON.parse(raw) as JournalEntry;
      } catch (err) {
        throw new Error(`journalctl printed a line that is not JSON: ${errorMessage(err)}`);
      }
      if (entry.__CURSOR !== undefined) cursor = entry.__CURSOR;
      const message = Array.isArray(entry.MESSAGE) ? Buffer.from(entry.MESSAGE).toString('utf8') : entry.MESSAGE;
      if (message === undefined || skip(message)) continue;
      const timestamp = Number(entry.__REALTIME_TIMESTAMP ?? now * 1000) / 1000;
      if (timestamp < window.settled) continue;
      lines.push({ timestamp, message });
    }
    return lines;
  };
  const follow = async (): Promise<LogLine[] | undefined> => {
    if (follower === undefined) {
      if (host.clock.now() < restartAt) return undefined;
      follower = await host.followCommand(argv(true));
      if (follower === undefined) throw new Error('journalctl not found');
    }
    for (;;) {
      const text = await follower.read();
      if (text === '') break;
      const lines = parse(splitter.push(text));
      if (lines.length > 0) return lines;
    }
    const ended = follower.ended();
    if (ended === undefined) return undefined;
    follower = undefined;
    splitter.flush();
    restartAt = host.clock.now() + JOURNAL_RESTART_MS;
    throw new Error(`journalctl -f ${ended}`);
  };
  return {
    async read(signal, final = false) {
      if (!final) return follow();
      // One journalctl run per catch-up: its output is the batch, the next read() reports caught up.
      if (caughtUp) {
        caughtUp = false;
        return undefined;
      }
      caughtUp = true;
      const result = await host.exec(argv(false), { timeoutMs: 30_000, signal });
      const failure = execFailure(result);
      if (failure !== undefined) throw failure;
      return parse(result.stdout.split('\n'));
    },
    async wait(signal) {
      if (follower !== undefined) return follower.wait(signal);
      await host.clock.sleep(Math.max(0, restartAt - host.clock.now()), signal).catch(() => undefined);
    },
    async close() {
      await follower?.close();
      follower = undefined;
    },
  };
}
