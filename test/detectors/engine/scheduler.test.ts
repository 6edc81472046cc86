import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ProbeOutcome } from '../../../src/detectors/engine/run.ts';
import { nextSlot, Scheduler } from '../../../src/detectors/engine/scheduler.ts';
import type { Detector, DetectorInstance } from '../../../src/detectors/engine/types.ts';
import { createHost } from '../../../src/host/host.ts';
import { createLogger } from '../../../src/log.ts';
import { FakeClock } from '../../helpers/fake-clock.ts';

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

function instance(name: string, intervalMs: number, detector: Detector): DetectorInstance {
  return { name, logDerived: false, metricsReporting: true, settings: { enabled: true, intervalMs, timeoutMs: 60_000 }, create: () => detector };
}

function scheduler(clock: FakeClock, maxConcurrent: number, outcomes: [string, ProbeOutcome][], phaseMs?: number): Scheduler {
  const host = createHost({ clock });
  return new Scheduler({
    maxConcurrent,
    clock,
    log: createLogger('silent'),
    context: () => ({ host, log: createLogger('silent'), nodeName: 'n', mode: 'run', previous: [], silenced: new Set() }),
    onOutcome: (name, outcome) => outcomes.push([name, outcome]),
    ...(phaseMs === undefined ? {} : { phaseMs }),
  });
}

test('a probed detector runs on its interval (invoke_interval for custom plugins), never faster', async () => {
  const clock = new FakeClock();
  let probes = 0;
  const outcomes: [string, ProbeOutcome][] = [];
  const s = scheduler(clock, 4, outcomes, 5_000);
  s.start([instance('p', 30_000, { probe: async () => ({ conditions: [], events: [], unknown: String(++probes) }) })]);
  await clock.advance(5_000);
  await settle();
  assert.equal(probes, 1);
  await clock.advance(29_000);
  await settle();
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

test('probes due at one time wait on one timer: detectors of 30 s and 60 s share every tick', async () => {
  const clock = new FakeClock();
  const t0 = clock.now();
  const probes: [string, number][] = [];
  const detector = (name: string): Detector => ({ probe: async () => (probes.push([name, clock.now() - t0]), { conditions: [], events: [] }) });
  const s = scheduler(clock, 4, [], 2_000);
  s.start([instance('a', 30_000, detector('a')), instance('b', 30_000, detector('b')), instance('c', 60_000, detector('c')), instance('d', 60_000, detector('d'))]);
  await settle();
  assert.equal(clock.sleeping, 1, 'one timer for the first tick');
  // After a tick of all four: one timer for the 30 s pair's next tick, one for the 60 s pair's.
  // After a tick of the 30 s pair: their next tick is the 60 s pair's, so one timer.
  for (const [tick, timers] of [2, 1, 2, 1].entries()) {
    await clock.advance(tick === 0 ? 2_000 : 30_000);
    await settle();
    assert.equal(clock.sleeping, timers, `timers after tick ${tick}`);
  }
  const at = (t: number): string[] => probes.filter(([, when]) => when === t).map(([n]) => n).sort();
  assert.deepEqual(at(2_000), ['a', 'b', 'c', 'd']);
  assert.deepEqual(at(32_000), ['a', 'b']);
  assert.deepEqual(at(62_000), ['a', 'b', 'c', 'd']);
  assert.deepEqual(at(92_000), ['a', 'b']);
  assert.equal(probes.length, 12);
  await s.stop();
});

test('a probe that runs past half its interval skips the next tick instead of starting again at once', async () => {
  const clock = new FakeClock();
  const t0 = clock.now();
  const starts: number[] = [];
  const s = scheduler(clock, 4, [], 0);
  s.start([instance('slow', 30_000, { probe: async () => (starts.push(clock.now() - t0), await clock.sleep(20_000), { conditions: [], events: [] }) })]);
  for (let i = 0; i < 9; i += 1) {
    await settle();
    await clock.advance(10_000);
  }
  await settle();
  assert.deepEqual(starts, [0, 60_000]);
  await s.stop();
});

test('nextSlot: the first grid time at or after the given one, also when the wall clock went back past the origin', () => {
  const origin = 1_000_000;
  assert.equal(nextSlot(origin, 30_000, origin), origin);
  assert.equal(nextSlot(origin, 30_000, origin + 15_000), origin + 30_000);
  assert.equal(nextSlot(origin, 30_000, origin + 30_001), origin + 60_000);
  const stepped = origin - 3_600_000 + 15_000;
  const slot = nextSlot(origin, 30_000, stepped);
  assert.ok(slot >= stepped && slot < stepped + 30_000, `${slot - stepped} ms ahead`);
  assert.ok((slot - origin) % 30_000 === 0, 'on the grid');
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
