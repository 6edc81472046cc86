import { isatty } from 'node:tty';
import { pino, type DestinationStream, type LevelWithSilent, type Logger } from 'pino';
import { connectedToJournal } from './host/journal.ts';

export type { Logger };

import type { LogFormat } from './log-levels.ts';

/** syslog priorities journald files each level under (`journalctl -p warning` shows warn and worse). */
const PRIORITY: Record<string, number> = { trace: 7, debug: 7, info: 6, warn: 4, error: 3, fatal: 2 };

const SPACE = /[\s"=]/;
const textValue = (v: unknown): string => {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s === '' || SPACE.test(s) ? JSON.stringify(s) : s;
};

/**
 * Where pino's lines go, synchronously and on the calling thread (pino transports run in worker
 * threads, which do not survive bundling into the single executable). Each line is parsed and
 * written again, so a key that a child logger bound and a call repeated appears once (the call's
 * value wins): Elasticsearch and Loki refuse documents with duplicate keys.
 */
class LineWriter implements DestinationStream {
  // SonicBoom, synchronous: it waits out a full pipe rather than drop a line.
  readonly #out: DestinationStream;
  readonly #format: LogFormat;
  readonly #journal: boolean;
  constructor(fd: 1 | 2, format: LogFormat) {
    this.#out = pino.destination({ dest: fd, sync: true });
    this.#format = format;
    this.#journal = format === 'json' && connectedToJournal(fd);
  }

  write(line: string): void {
    const record = JSON.parse(line) as Record<string, unknown>;
    const level = String(record.level);
    let out: string;
    if (this.#format === 'text') {
      const { time, level: _level, msg, ...fields } = record;
      const rest = Object.entries(fields).map(([k, v]) => `${k}=${textValue(v)}`).join(' ');
      out = `${String(time)} ${level.toUpperCase().padEnd(5)} ${String(msg ?? '')}${rest === '' ? '' : ` ${rest}`}\n`;
    } else {
      out = `${this.#journal ? `<${PRIORITY[level] ?? 6}>` : ''}${JSON.stringify(record)}\n`;
    }
    this.#out.write(out);
  }
}

/** The format a terminal gets unless told: text for people, JSON lines for journald and collectors. */
export function defaultLogFormat(fd: 1 | 2): LogFormat {
  return isatty(fd) ? 'text' : 'json';
}

export function createLogger(level: LevelWithSilent, fd: 1 | 2 = 1, format: LogFormat = defaultLogFormat(fd)): Logger {
  return pino(
    { level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } },
    new LineWriter(fd, format),
  );
}
