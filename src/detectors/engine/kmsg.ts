import type { Host, LogReader } from '../../host/host.ts';

// /dev/kmsg records: "prio,seq,usec,flags[,…];message", then dictionary lines that start
// with a space (" SUBSYSTEM=pci"). See Documentation/ABI/testing/dev-kmsg in the kernel tree.

export interface KmsgRecord {
  priority: number;
  seq: number;
  /** Microseconds since boot. */
  usec: number;
  message: string;
  dict: Record<string, string>;
}

const HEADER = /^(\d+),(\d+),(\d+),[^;]*;/;

/**
 * Splits complete lines from a text stream; keeps the unfinished tail for the next call.
 */
export class LineSplitter {
  #carry = '';
  push(text: string): string[] {
    if (text === '') return [];
    const joined = this.#carry + text;
    const lines = joined.split('\n');
    this.#carry = lines.pop() ?? '';
    return lines;
  }

  /** Hands out an unterminated last line: a one-shot read has no later data to wait for. */
  flush(): string[] {
    const rest = this.#carry;
    this.#carry = '';
    return rest === '' ? [] : [rest];
  }
}

/** Parses complete kmsg lines into records; lines that are neither a header nor a dictionary entry are skipped. */
export function parseKmsgLines(lines: readonly string[]): KmsgRecord[] {
  const records: KmsgRecord[] = [];
  let last: KmsgRecord | undefined;
  for (const line of lines) {
    if (line.startsWith(' ')) {
      if (last !== undefined) {
        const eq = line.indexOf('=');
        if (eq > 1) last.dict[line.slice(1, eq)] = line.slice(eq + 1);
      }
      continue;
    }
    const m = HEADER.exec(line);
    if (m === null) {
      last = undefined;
      continue;
    }
    last = {
      priority: Number(m[1]),
      seq: Number(m[2]),
      usec: Number(m[3]),
      message: line.slice(m[0].length),
      dict: {},
    };
    records.push(last);
  }
  return records;
}

/** Seconds since boot from /proc/uptime's first field. */
export function parseUptime(text: string): number | undefined {
  const first = Number(text.trim().split(/\s+/)[0]);
  return Number.isFinite(first) ? first : undefined;
}

/** Records the kernel itself logged: syslog facility 0 (prio < 8). Userspace writes to /dev/kmsg get facility 1 or higher. */
export function isKernelRecord(record: Pick<KmsgRecord, 'priority'>): boolean {
  return record.priority >> 3 === 0;
}

export interface KernelRecord {
  seq: number;
  priority: number;
  /** Epoch ms on the host clock: the boot time (now minus uptime, taken once) plus the record's time since boot. */
  timestamp: number;
  /** Trimmed of surrounding whitespace, as NPD's kmsg watcher does. */
  message: string;
}

export const KMSG_PATH = '/dev/kmsg';

/**
 * Per host, when it booted on the host clock, estimated once from /proc/uptime: a record read again
 * (a monitor restarted by a reload reads its lookback again) gets the same timestamp, which is
 * how the daemon knows it was reported already; /proc/uptime's 10 ms steps would otherwise move it.
 */
const bootEpochs = new WeakMap<Host, Promise<number | undefined>>();

/**
 * The kernel log, for every detector that reads it (kernel, gpu-nvidia, NPD kmsg monitors): only
 * records of facility 0 come out, so nothing user space writes to /dev/kmsg can raise a kernel
 * problem. read() hands out one bounded batch at a time; wait() blocks until the kernel logs more.
 */
export class KernelLog {
  readonly #host: Host;
  readonly #reader: LogReader;
  readonly #splitter = new LineSplitter();

  private constructor(host: Host, reader: LogReader) {
    this.#host = host;
    this.#reader = reader;
  }

  /** Opens the log at its oldest record. Throws the open error (ENOENT, EACCES) for the caller to describe. */
  static async open(host: Host, hostPath = KMSG_PATH): Promise<KernelLog> {
    return new KernelLog(host, await host.openLog(hostPath, { fromStart: true }));
  }

  /**
   * The next batch of kernel records, or undefined once caught up. `final`: nothing more will be
   * read (a one-shot check), so an unterminated last line of a replayed file counts.
   */
  async read(final = false): Promise<KernelRecord[] | undefined> {
    for (;;) {
      const text = await this.#reader.read();
      const lines = text === '' ? (final ? this.#splitter.flush() : []) : this.#splitter.push(text);
      if (lines.length === 0) {
        if (text === '') return undefined;
        continue;
      }
      const records = parseKmsgLines(lines).filter(isKernelRecord);
      if (records.length === 0) continue;
      const now = this.#host.clock.now();
      const boot = await this.#bootEpoch(now);
      const out: KernelRecord[] = [];
      for (const r of records) {
        const message = r.message.trim();
        if (message === '') continue;
        out.push({ seq: r.seq, priority: r.priority, timestamp: boot === undefined ? now : Math.min(now, boot + r.usec / 1000), message });
      }
      if (out.length > 0) return out;
    }
  }

  /**
   * The estimate is shared while it is being made: two readers opened together (two kmsg monitors
   * at start) would otherwise each estimate, and the one whose estimate was overwritten would give
   * its records other timestamps when read again after a reload, and report them twice.
   */
  #bootEpoch(now: number): Promise<number | undefined> {
    const host = this.#host;
    const known = bootEpochs.get(host);
    if (known !== undefined) return known;
    const estimate = (async () => {
      const uptimeText = await host.tryReadText('/proc/uptime').catch(() => undefined);
      const uptime = uptimeText === undefined ? undefined : parseUptime(uptimeText);
      // Unknown is not kept: the next read tries again.
      if (uptime === undefined) bootEpochs.delete(host);
      return uptime === undefined ? undefined : now - uptime * 1000;
    })();
    bootEpochs.set(host, estimate);
    return estimate;
  }

  wait(signal: AbortSignal): Promise<void> {
    return this.#reader.wait(signal);
  }

  close(): Promise<void> {
    return this.#reader.close();
  }
}
