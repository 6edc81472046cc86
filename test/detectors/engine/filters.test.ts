import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RecoveryHold, silence } from '../../../src/detectors/engine/filters.ts';
import type { Condition } from '../../../src/types.ts';

const cond = (status: Condition['status'], reason: string, transitionTime = 0): Condition => ({ type: 'KernelDeadlock', status, reason, message: reason, transitionTime });

test('a silenced reason loses its events and cannot turn its condition True', () => {
  const result = silence(
    {
      conditions: [cond('True', 'DockerHung'), { ...cond('True', 'Other'), type: 'Other' }],
      events: [
        { severity: 'warn', reason: 'DockerHung', message: 'x', timestamp: 1 },
        { severity: 'warn', reason: 'TaskHung', message: 'y', timestamp: 2 },
      ],
    },
    new Set(['DockerHung']),
  );
  assert.deepEqual(result.events.map((e) => e.reason), ['TaskHung']);
  assert.deepEqual(result.conditions.map((c) => [c.type, c.status, c.reason]), [['KernelDeadlock', 'False', 'Silenced'], ['Other', 'True', 'Other']]);
});

test('recovery hold: True at once, False only after it has been reported clear for the whole hold', () => {
  const hold = new RecoveryHold(60_000);
  let published: Condition[] = [cond('False', 'Ok')];
  const report = (c: Condition, now: number): Condition => {
    published = hold.apply('d', [c], published, now);
    return published[0] as Condition;
  };
  assert.equal(report(cond('True', 'Bad', 0), 0).status, 'True', 'turns True without delay');
  assert.equal(report(cond('False', 'Ok', 10_000), 10_000).status, 'True', 'a clear report alone does not clear it');
  assert.equal(report(cond('False', 'Ok', 40_000), 40_000).status, 'True');
  assert.equal(report(cond('True', 'Bad', 50_000), 50_000).status, 'True', 'flapped back: the hold starts over');
  assert.equal(report(cond('False', 'Ok', 60_000), 60_000).status, 'True');
  assert.equal(report(cond('False', 'Ok', 100_000), 100_000).status, 'True', '40 s clear is not enough');
  assert.equal(report(cond('False', 'Ok', 120_000), 120_000).status, 'False', '60 s clear without interruption clears it');
});

test('recovery hold of 0 publishes what is reported', () => {
  const hold = new RecoveryHold(0);
  assert.deepEqual(hold.apply('d', [cond('False', 'Ok', 5)], [cond('True', 'Bad')], 5), [cond('False', 'Ok', 5)]);
});
