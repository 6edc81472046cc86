import { errorMessage, execFailure } from '../../errors.ts';
import type { Host } from '../../host/host.ts';
import type { ParsedLogMonitor } from './config.ts';
import { compileGoLayout, parseGoTime } from './go-time.ts';
import { LineSplitter, parseKmsgLines, parseUptime } from './kmsg.ts';
import type { LogLine } from './log-rules.ts';
import { compileRe2 } from './re2.ts';

/**
 * A log to read: the first read() returns what is inside the lookback window, later ones what
 * arrived since. Timestamps are epoch ms on the host's clock.
 */
export interface LogSource {
  /** `final`: this is the last read (a one-shot check), so an unterminated last line counts. */
  read(signal: AbortSignal, final?: boolean): Promise<LogLine[]>;
  close(): Promise<void>;
  /** How often the daemon polls for new lines. */
  readonly pollMs: number;
}

export async function openLogSource(host: Host, monitor: ParsedLogMonitor): Promise<LogSource> {
  switch (monitor.config.plugin) {
    case 'kmsg':
      return openKmsg(host, monitor);
    case 'filelog':
      return openFilelog(host, monitor);
    case 'journald':
      return openJournald(host, monitor);
  }
}

function skipper(monitor: ParsedLogMonitor): (message: string) => boolean {
  const skipList = monitor.config.skipList ?? [];
  return (message) => skipList.some((s) => message.includes(s));
}

async function openKmsg(host: Host, monitor: ParsedLogMonitor): Promise<LogSource> {
  const reader = await host.openLog(monitor.config.logPath ?? '/dev/kmsg', { fromStart: true });
  const splitter = new LineSplitter();
  const skip = skipper(monitor);
  let first = true;
  return {
    pollMs: 250,
    async read(_signal, final = false) {
      const text = await reader.read();
      // A record's age is uptime minus its timestamp; that keeps lookback right on a replayed host.
      const uptimeText = await host.tryReadText('/proc/uptime');
      const uptime = uptimeText === undefined ? undefined : parseUptime(uptimeText);
      const now = host.clock.now();
      const records = parseKmsgLines([...splitter.push(text), ...(final ? splitter.flush() : [])]);
      const lines: LogLine[] = [];
      for (const record of records) {
        const ageMs = uptime === undefined ? 0 : Math.max(0, uptime * 1000 - record.usec / 1000);
        if (first && monitor.lookbackMs > 0 && uptime !== undefined && ageMs > monitor.lookbackMs) continue;
        if (skip(record.message)) continue;
        lines.push({ timestamp: now - ageMs, message: record.message });
      }
      first = false;
      return lines;
    },
    close: () => reader.close(),
  };
}

async function openFilelog(host: Host, monitor: ParsedLogMonitor): Promise<LogSource> {
  const pc = monitor.config.pluginConfig ?? {};
  const timestampRe = compileRe2(pc.timestamp as string);
  const messageRe = compileRe2(pc.message as string);
  const layout = compileGoLayout(pc.timestampFormat as string);
  const reader = await host.openLog(monitor.config.logPath as string, { fromStart: true });
  const splitter = new LineSplitter();
  const skip = skipper(monitor);
  let first = true;
  return {
    pollMs: 1000,
    async read(_signal, final = false) {
      const now = host.clock.now();
      const lines: LogLine[] = [];
      for (const raw of [...splitter.push(await reader.read()), ...(final ? splitter.flush() : [])]) {
        if (skip(raw)) continue;
        const ts = timestampRe.exec(raw);
        const msg = messageRe.exec(raw);
        if (ts === null || msg === null) continue;
        const timestamp = parseGoTime(layout, ts[1] ?? ts[0], now);
        if (timestamp === undefined) continue;
        if (first && monitor.lookbackMs > 0 && now - timestamp > monitor.lookbackMs) continue;
        lines.push({ timestamp, message: msg[1] ?? msg[0] });
      }
      first = false;
      return lines;
    },
    close: async () => reader.close(),
  };
}

interface JournalEntry {
  MESSAGE?: string | number[];
  __REALTIME_TIMESTAMP?: string;
  __CURSOR?: string;
}

async function openJournald(host: Host, monitor: ParsedLogMonitor): Promise<LogSource> {
  const identifier = monitor.config.pluginConfig?.source;
  const logPath = monitor.config.logPath ?? '/var/log/journal';
  const directory = (await host.exists(logPath)) ? ['-D', host.path(logPath)] : [];
  let cursor: string | undefined;
  const skip = skipper(monitor);
  return {
    pollMs: 5000,
    async read(signal) {
      const now = host.clock.now();
      const since =
        cursor !== undefined
          ? [`--after-cursor=${cursor}`]
          : monitor.lookbackMs > 0
            ? [`--since=@${Math.floor((now - monitor.lookbackMs) / 1000)}`]
            : [];
      const argv = ['journalctl', '--no-pager', '-o', 'json', ...directory, ...since, ...(identifier === undefined ? [] : [`SYSLOG_IDENTIFIER=${identifier}`])];
      const result = await host.exec(argv, { timeoutMs: 30_000, signal });
      const failure = execFailure(result);
      if (failure !== undefined) throw failure;
      const lines: LogLine[] = [];
      for (const raw of result.stdout.split('\n')) {
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
        lines.push({ timestamp: Number(entry.__REALTIME_TIMESTAMP ?? now * 1000) / 1000, message });
      }
      return lines;
    },
    close: async () => undefined,
  };
}
