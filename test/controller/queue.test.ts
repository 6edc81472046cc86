// The work queue: a key runs at most once at a time (an add while it runs runs it once more
// after), at most `workers` keys in parallel, failures come back with growing backoff and a
// success forgets them, addAfter keeps the earliest wake-up.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkQueue } from '../../src/controller/queue.ts';
import { createLogger } from '../../src/log.ts';

const log = createLogger('silent');

describe('work queue', () => {
  it('dedupes, never runs a key twice at once, and caps parallelism', async () => {
    let running = 0;
    let peak = 0;
    const runs = new Map<string, number>();
    const active = new Set<string>();
    const q = new WorkQueue({
      workers: 3,
      log,
      handle: async (key) => {
        assert.equal(active.has(key), false, `${key} ran twice at once`);
        active.add(key);
        running += 1;
        peak = Math.max(peak, running);
        await sleep(30);
        runs.set(key, (runs.get(key) ?? 0) + 1);
        running -= 1;
        active.delete(key);
        return undefined;
      },
    });
    // a, b, c start at once; their later adds come while they run (once more each, afterwards);
    // d, e, f wait queued and their repeats fold into one run.
    for (let i = 0; i < 10; i++) for (const k of ['a', 'b', 'c', 'd', 'e', 'f']) q.add(k);
    await sleep(300);
    assert.equal(peak, 3);
    for (const k of ['a', 'b', 'c']) assert.equal(runs.get(k), 2, k);
    for (const k of ['d', 'e', 'f']) assert.equal(runs.get(k), 1, k);
    await q.stop();
  });

  it('retries a failing key with growing backoff and forgets it after a success', async () => {
    const at: number[] = [];
    const q = new WorkQueue({
      workers: 1,
      log,
      backoffMs: 40,
      maxBackoffMs: 1000,
      handle: async () => {
        at.push(Date.now());
        if (at.length < 4) throw new Error('boom');
        return undefined;
      },
    });
    q.add('x');
    await sleep(900);
    assert.equal(at.length, 4);
    const gaps = at.slice(1).map((t, i) => t - (at[i] as number));
    // Jittered in [d/2, d): 20–40, 40–80, 80–160 ms.
    assert.ok(gaps[0] as number >= 18 && (gaps[2] as number) >= 78, `gaps ${gaps.join(', ')}`);
    await sleep(300);
    assert.equal(at.length, 4, 'no retry after the success');
    await q.stop();
  });

  it('addAfter keeps the earliest wake-up; a returned delay schedules the next look', async () => {
    const at: number[] = [];
    const started = Date.now();
    const q = new WorkQueue({ workers: 1, log, handle: async () => (at.push(Date.now() - started), at.length === 1 ? 50 : undefined) });
    q.addAfter('k', 400);
    q.addAfter('k', 100);
    q.addAfter('k', 300);
    await sleep(600);
    assert.equal(at.length, 2, `runs at ${at.join(', ')}`);
    assert.ok((at[0] as number) >= 95 && (at[0] as number) < 300);
    assert.ok((at[1] as number) - (at[0] as number) >= 45);
    await q.stop();
  });

  it('a wake-up past what a Node timer holds (~24.8 days) does not fire at once', async () => {
    let runs = 0;
    const q = new WorkQueue({ workers: 1, log, handle: async () => (runs++, undefined) });
    q.addAfter('k', 30 * 24 * 3_600_000);
    await sleep(100);
    assert.equal(runs, 0);
    await q.stop();
  });
});
