import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ProbeOutcome } from '../../../src/detectors/engine/run.ts';
import { Scheduler } from '../../../src/detectors/engine/scheduler.ts';
import type { Detector, DetectorInstance } from '../../../src/detectors/engine/types.ts';
import { createHost } from '../../../src/host/host.ts';
import { createLogger } from '../../../src/log.ts';
import { FakeClock } from '../../helpers/fake-clock.ts';

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

function instance(name: string, intervalMs: number, detector: Detector): DetectorInstance {
  return { name, logDerived: false, metricsReporting: true, settings: { enabled: true, intervalMs, timeoutMs: 60_000 }, create: () => detector };
}

function scheduler(clock: FakeClock, maxConcurrent: number, outcomes: [string, ProbeOutcome][]): Scheduler {
  const host = createHost({ clock });
  return new Scheduler({
    maxConcurrent,
    clock,
    log: createLogger('silent'),
    context: () => ({ host, log: createLogger('silent'), nodeName: 'n', mode: 'run', previous: [], silenced: new Set() }),
    onOutcome: (name, outcome) => outcomes.push([name, outcome]),
  });
}

test('a probed detector runs on its interval (invoke_interval for custom plugins), never faster', async () => {
  const clock = new FakeClock();
  let probes = 0;
  const outcomes: [string, ProbeOutcome][] = [];
  const s = scheduler(clock, 4, outcomes);
  s.start([instance('p', 30_000, { probe: async () => ({ conditions: [], events: [], unknown: String(++probes) }) })]);
  await clock.advance(5_000); // past the start-up spread (at most 5 s)
  await settle();
  assert.equal(probes, 1);
  await clock.advance(29_000);
  assert.equal(probes, 1);
  await clock.advance(1_000);
  await settle();
  assert.equal(probes, 2);
  await clock.advance(30_000);
  await settle();
  assert.equal(probes, 3);
  assert.equal(outcomes.length, 3);
  await s.stop();
});

test('no more than maxConcurrent probes run at once', async () => {
  const clock = new FakeClock();
  let running = 0;
  let peak = 0;
  const releases: (() => void)[] = [];
  const slow: Detector = {
    probe: () =>
      new Promise((resolve) => {
        running += 1;
        peak = Math.max(peak, running);
        releases.push(() => {
          running -= 1;
          resolve({ conditions: [], events: [] });
        });
      }),
  };
  const s = scheduler(clock, 2, []);
  s.start(['a', 'b', 'c', 'd', 'e'].map((n) => instance(n, 60_000, slow)));
  await clock.advance(5_000);
  await settle();
  assert.equal(peak, 2);
  while (releases.length > 0) {
    releases.shift()?.();
    await settle();
  }
  assert.equal(peak, 2);
  await s.stop();
});

test('a stream detector that fails is restarted with growing backoff, and its failures are reported', async () => {
  const clock = new FakeClock();
  let starts = 0;
  const outcomes: [string, ProbeOutcome][] = [];
  const s = scheduler(clock, 4, outcomes);
  s.start([
    instance('w', 60_000, {
      probe: async () => ({ conditions: [], events: [] }),
      watch: async () => {
        starts += 1;
        throw new Error('log vanished');
      },
    }),
  ]);
  await settle();
  assert.equal(starts, 1);
  await clock.advance(1_000);
  await settle();
  assert.equal(starts, 2);
  await clock.advance(1_000);
  await settle();
  assert.equal(starts, 2, 'the second wait is 2 s');
  await clock.advance(1_000);
  await settle();
  assert.equal(starts, 3);
  assert.deepEqual(outcomes.map(([, o]) => (o.ok ? 'ok' : o.error)), ['log vanished', 'log vanished', 'log vanished']);
  await s.stop();
});
