import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
// A context made after the flag is set has gc() as a global.
const gc = runInNewContext('gc') as () => void;

/** Bytes of heap still in use after a full collection, once `fn` has run, over the same before it. */
export function retainedBy(fn: () => unknown): { bytes: number; result: unknown } {
  gc();
  const before = process.memoryUsage().heapUsed;
  const result = fn();
  gc();
  return { bytes: process.memoryUsage().heapUsed - before, result };
}

/** A 256 KiB log chunk (src/host/log-follow.ts reads at most this at once) whose last line is `line`; the line returned is cut from it, as a LineSplitter cuts it. */
export function lineCutFromChunk(line: string): string {
  const chunk = `${'a line before it that no rule matches\n'.repeat(Math.ceil((256 * 1024) / 38))}${line}\n`;
  return chunk.split('\n').at(-2) as string;
}
