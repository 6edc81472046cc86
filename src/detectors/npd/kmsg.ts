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
