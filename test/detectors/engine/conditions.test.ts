import assert from 'node:assert/strict';
import os from 'node:os';
import { test } from 'node:test';
import { Conditions, tripAfter, type ConditionSpec, type Damping, type Finding } from '../../../src/detectors/engine/conditions.ts';
import { createHost } from '../../../src/host/host.ts';
import type { Condition } from '../../../src/types.ts';
import { FakeClock } from '../../helpers/fake-clock.ts';

const SPECS: readonly ConditionSpec[] = [
  { type: 'DiskFull', okReason: 'DiskHasSpace', okMessage: 'disks have space' },
  { type: 'ClockSkew', okReason: 'ClockIsSynchronized', okMessage: 'clock is synchronized', unknownReason: 'ClockStateUnknown' },
];

function make(options: { previous?: Condition[]; silenced?: string[]; damping?: Damping; clock?: FakeClock } = {}): { c: Conditions; clock: FakeClock } {
  const clock = options.clock ?? new FakeClock(1_000);
  const ctx = { host: createHost({ root: os.tmpdir(), clock }), previous: options.previous ?? [], silenced: new Set(options.silenced ?? []) };
  return { c: new Conditions(SPECS, ctx, options.damping), clock };
}

const of = (conditions: readonly Condition[], type: string): Condition => {
  const found = conditions.find((x) => x.type === type);
  if (found === undefined) throw new Error(`no ${type} in ${JSON.stringify(conditions)}`);
  return found;
};
const full = (key = '/'): Finding => ({ type: 'DiskFull', reason: 'DiskSpaceLow', message: `${key} is 97% full`, key });
const unsynced: Finding = { type: 'ClockSkew', reason: 'ClockNotSynchronized', message: 'no NTP source' };
const offset: Finding = { type: 'ClockSkew', reason: 'ClockOffsetTooLarge', message: 'clock is 900ms off' };

test('every declared type starts False with its ok reason, in declaration order', () => {
  const { c } = make();
  assert.deepEqual(c.list(), [
    { type: 'DiskFull', status: 'False', reason: 'DiskHasSpace', message: 'disks have space', transitionTime: 1_000 },
    { type: 'ClockSkew', status: 'False', reason: 'ClockIsSynchronized', message: 'clock is synchronized', transitionTime: 1_000 },
  ]);
});

test('update(): a finding turns its type True with a warn event; its absence clears it with an info event', async () => {
  const { c, clock } = make();
  await clock.advance(5_000);
  const tripped = c.update({ findings: [full('/'), full('/var')] });
  assert.deepEqual(of(tripped.conditions, 'DiskFull'), { type: 'DiskFull', status: 'True', reason: 'DiskSpaceLow', message: '/ is 97% full; /var is 97% full', transitionTime: 6_000 });
  assert.equal(of(tripped.conditions, 'ClockSkew').status, 'False');
  assert.deepEqual(tripped.events, [{ severity: 'warn', reason: 'DiskSpaceLow', message: '/ is 97% full; /var is 97% full', timestamp: 6_000 }]);

  await clock.advance(5_000);
  const still = c.update({ findings: [full('/')] });
  assert.equal(of(still.conditions, 'DiskFull').transitionTime, 6_000, 'same status and reason: the time does not move');
  assert.deepEqual(still.events, []);

  await clock.advance(5_000);
  const cleared = c.update({ findings: [] });
  assert.deepEqual(of(cleared.conditions, 'DiskFull'), { type: 'DiskFull', status: 'False', reason: 'DiskHasSpace', message: 'disks have space', transitionTime: 16_000 });
  assert.deepEqual(cleared.events, [{ severity: 'info', reason: 'DiskHasSpace', message: 'disks have space', timestamp: 16_000 }]);
});

test('update(): other reasons of the same type join the message after the first', () => {
  const { c } = make();
  const r = c.update({ findings: [unsynced, offset] });
  assert.equal(of(r.conditions, 'ClockSkew').reason, 'ClockNotSynchronized');
  assert.equal(of(r.conditions, 'ClockSkew').message, 'no NTP source; ClockOffsetTooLarge: clock is 900ms off');
});

test('update(): failuresToTrip consecutive findings trip, successesToClear absences clear', () => {
  const { c } = make({ damping: { failuresToTrip: 3, successesToClear: 2 } });
  const states = [true, true, false, true, true, true, false, false, true].map((bad) => of(c.update({ findings: bad ? [full()] : [] }).conditions, 'DiskFull').status);
  assert.deepEqual(states, ['False', 'False', 'False', 'False', 'False', 'True', 'True', 'False', 'False']);
});

test('update(): an unreadable type goes Unknown without an event, and does not count as a success', () => {
  const { c } = make({ damping: { failuresToTrip: 2, successesToClear: 1 } });
  c.update({ findings: [unsynced] });
  assert.equal(of(c.update({ findings: [unsynced] }).conditions, 'ClockSkew').status, 'True');
  const r = c.update({ findings: [], unknown: new Map([['ClockSkew', 'chronyc timed out']]) });
  assert.deepEqual(of(r.conditions, 'ClockSkew'), { type: 'ClockSkew', status: 'Unknown', reason: 'ClockStateUnknown', message: 'chronyc timed out', transitionTime: 1_000 });
  assert.deepEqual(r.events, []);
  // The finding's debounce survived the unknown probe (a success would have cleared it, and a new one needs 2): one more finding is True at once.
  const again = c.update({ findings: [unsynced] });
  assert.equal(of(again.conditions, 'ClockSkew').status, 'True');
  const defaulted = make().c.update({ findings: [], unknown: new Map([['DiskFull', 'df failed']]) });
  assert.equal(of(defaulted.conditions, 'DiskFull').reason, 'DiskFullUnknown');
});

test('a silenced reason never turns its type True, and another reason of the same type still surfaces', () => {
  const { c } = make({ silenced: ['ClockNotSynchronized'] });
  const alone = c.update({ findings: [unsynced] });
  assert.deepEqual(of(alone.conditions, 'ClockSkew').status, 'False');
  assert.equal(of(alone.conditions, 'ClockSkew').reason, 'ClockIsSynchronized');
  assert.deepEqual(alone.events, []);
  const both = c.update({ findings: [unsynced, offset] });
  assert.equal(of(both.conditions, 'ClockSkew').status, 'True');
  assert.equal(of(both.conditions, 'ClockSkew').reason, 'ClockOffsetTooLarge');
  assert.equal(of(both.conditions, 'ClockSkew').message, 'clock is 900ms off');
  assert.deepEqual(both.events.map((e) => [e.severity, e.reason]), [['warn', 'ClockOffsetTooLarge']]);
  assert.equal(c.surfaces('ClockNotSynchronized'), false);
  assert.equal(c.surfaces('ClockOffsetTooLarge'), true);
});

test('ctx.previous: a restart keeps the transition time, and a True condition stays tripped', () => {
  const previous: Condition[] = [{ type: 'DiskFull', status: 'True', reason: 'DiskSpaceLow', message: 'old', transitionTime: 42 }];
  const { c } = make({ previous, damping: { failuresToTrip: 3, successesToClear: 1 } });
  assert.deepEqual(c.get('DiskFull'), previous[0]);
  const r = c.update({ findings: [full()] });
  assert.equal(of(r.conditions, 'DiskFull').status, 'True', 'no new failuresToTrip wait after a restart');
  assert.equal(of(r.conditions, 'DiskFull').transitionTime, 42);
  assert.deepEqual(r.events, []);
  assert.equal(of(r.conditions, 'ClockSkew').transitionTime, 1_000);
});

test('set()/ok(): direct setting keeps the time while status and reason stay, and moves it when they change', async () => {
  const { c, clock } = make();
  await clock.advance(1_000);
  c.set('DiskFull', 'True', 'DiskSpaceLow', 'first');
  await clock.advance(1_000);
  c.set('DiskFull', 'True', 'DiskSpaceLow', 'second');
  assert.deepEqual(c.get('DiskFull'), { type: 'DiskFull', status: 'True', reason: 'DiskSpaceLow', message: 'second', transitionTime: 2_000 });
  await clock.advance(1_000);
  c.set('DiskFull', 'True', 'InodesLow', 'inodes');
  assert.equal(c.get('DiskFull')?.transitionTime, 4_000);
  await clock.advance(1_000);
  c.ok('DiskFull', '12% used');
  assert.deepEqual(c.get('DiskFull'), { type: 'DiskFull', status: 'False', reason: 'DiskHasSpace', message: '12% used', transitionTime: 5_000 });
  await clock.advance(1_000);
  c.ok('DiskFull');
  assert.deepEqual(c.get('DiskFull'), { type: 'DiskFull', status: 'False', reason: 'DiskHasSpace', message: 'disks have space', transitionTime: 5_000 });
  c.set('ClockSkew', 'Unknown', 'ClockStateUnknown', 'unreadable');
  assert.equal(c.get('ClockSkew')?.status, 'Unknown');
  assert.equal(c.list().length, 2);
});

test('set(): a True with a silenced reason publishes the ok state instead', () => {
  const { c } = make({ silenced: ['DiskSpaceLow'] });
  c.set('DiskFull', 'True', 'DiskSpaceLow', 'full');
  assert.deepEqual(c.get('DiskFull'), { type: 'DiskFull', status: 'False', reason: 'DiskHasSpace', message: 'disks have space', transitionTime: 1_000 });
  c.set('DiskFull', 'True', 'InodesLow', 'inodes');
  assert.equal(c.get('DiskFull')?.status, 'True');
});

test('a type that was not declared is refused', () => {
  const { c } = make();
  assert.throws(() => c.set('Nope', 'True', 'X', 'x'), /condition type Nope is not declared/);
  assert.throws(() => c.ok('Nope'), /not declared/);
  assert.equal(c.get('Nope'), undefined);
});

test('tripAfter: check takes one look; run uses the configured count (at least 1)', () => {
  assert.equal(tripAfter('check', 5), 1);
  assert.equal(tripAfter('run', 5), 5);
  assert.equal(tripAfter('run', 0), 1);
});
