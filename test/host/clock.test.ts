// The system clock's sleep: a duration past what one Node timer holds (~24.8 days) does not end at
// once, and an abort still ends it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { systemClock } from '../../src/host/clock.ts';

test('a 30-day sleep is still asleep after 100 ms and ends with its abort reason', async () => {
  const controller = new AbortController();
  let ended = false;
  const slept = systemClock.sleep(30 * 24 * 3_600_000, controller.signal).finally(() => {
    ended = true;
  });
  await sleep(100);
  assert.equal(ended, false);
  controller.abort(new Error('stopped'));
  await assert.rejects(slept, /stopped/);
});

test('a short sleep ends after its time', async () => {
  const started = performance.now();
  await systemClock.sleep(30);
  assert.ok(performance.now() - started >= 29);
});
