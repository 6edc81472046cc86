// The pure rules of a rollout, table by table: batch sizes and targets, percentages rounding up,
// selectors, stable selection order, how a MachineComponent's status reads.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { componentHealth, componentName, matchesSelector, planBatches, resolveIntOrPercent, revisionName, selectionOrder, templateHash } from '../../src/controller/rollout/plan.ts';

describe('batch plan', () => {
  const cases: { batches: (number | string)[]; total: number; targets: number[] }[] = [
    { batches: [1, 5, 10, 50, 100], total: 100, targets: [1, 6, 16, 66, 100] },
    { batches: [1, 5, 10, 50], total: 100, targets: [1, 6, 16, 66, 100] },
    { batches: [1, 2, '25%'], total: 20, targets: [1, 3, 8, 13, 18, 20] },
    { batches: ['1%', '10%'], total: 5, targets: [1, 2, 3, 4, 5] },
    { batches: [10], total: 3, targets: [3] },
    { batches: ['100%'], total: 7, targets: [7] },
  ];
  for (const c of cases) {
    it(`${JSON.stringify(c.batches)} of ${c.total}`, () => {
      const plan = planBatches(c.batches, c.total);
      assert.deepEqual(Array.from({ length: c.targets.length }, (_, k) => plan.target(k)), c.targets);
      assert.equal(plan.lastIndex, c.targets.length - 1);
    });
  }
  it('refuses sizes that decrease once resolved, naming the batch', () => {
    assert.throws(() => planBatches([10, '10%'], 20), /batches\[1\] \("?10%"? = 2 of 20 machines\) is smaller than batches\[0\]/);
  });
  it('percentages round up', () => {
    assert.equal(resolveIntOrPercent('10%', 5), 1);
    assert.equal(resolveIntOrPercent('34%', 100), 34);
    assert.equal(resolveIntOrPercent('1%', 101), 2);
    assert.equal(resolveIntOrPercent(3, 100), 3);
    assert.throws(() => resolveIntOrPercent('x', 1), /neither/);
  });
});

describe('selectors', () => {
  const cases: [Parameters<typeof matchesSelector>[0], Record<string, string>, boolean][] = [
    [{}, {}, true],
    [{ matchLabels: { pool: 'a' } }, { pool: 'a', x: 'y' }, true],
    [{ matchLabels: { pool: 'a' } }, { pool: 'b' }, false],
    [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['z1', 'z2'] }] }, { zone: 'z2' }, true],
    [{ matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['z1'] }] }, {}, true],
    [{ matchExpressions: [{ key: 'gpu', operator: 'Exists' }] }, {}, false],
    [{ matchExpressions: [{ key: 'gpu', operator: 'DoesNotExist' }] }, { gpu: '' }, false],
  ];
  for (const [sel, labels, want] of cases) it(`${JSON.stringify(sel)} on ${JSON.stringify(labels)}`, () => assert.equal(matchesSelector(sel, labels), want));
});

describe('selection order', () => {
  const names = Array.from({ length: 50 }, (_, i) => ({ name: `n-${i}`, labels: {} as Record<string, string>, abandoned: false }));
  it('is the same every time for a revision, and differs between revisions', () => {
    const a = selectionOrder(names, 'r1').map((c) => c.name);
    assert.deepEqual(selectionOrder([...names].reverse(), 'r1').map((c) => c.name), a);
    assert.notDeepEqual(selectionOrder(names, 'r2').map((c) => c.name), a);
  });
  it('puts machines on an abandoned revision first, then by priority label', () => {
    const list = [...names];
    list[7] = { name: 'n-7', labels: { prio: '2' }, abandoned: false };
    list[9] = { name: 'n-9', labels: { prio: '1' }, abandoned: false };
    list[30] = { name: 'n-30', labels: {}, abandoned: true };
    assert.deepEqual(selectionOrder(list, 'r1', 'prio').slice(0, 3).map((c) => c.name), ['n-30', 'n-9', 'n-7']);
  });
});

describe('component health from the agent status', () => {
  const at = '2026-01-01T00:00:10.000Z';
  const mc = (status: unknown, generation = 2) => ({ metadata: { generation }, status }) as Parameters<typeof componentHealth>[0];
  const ready = (t: string) => [{ type: 'Ready', status: 'True', reason: 'Installed', message: '', lastTransitionTime: t }];
  it('ready only at this generation, Installed and Ready=True', () => {
    assert.equal(componentHealth(mc({ phase: 'Installed', observedGeneration: 2, attemptedGeneration: 2, conditions: ready(at) })).health, 'ready');
    assert.equal(componentHealth(mc({ phase: 'Installed', observedGeneration: 1, attemptedGeneration: 1, conditions: ready(at) })).health, 'progressing');
    assert.equal(componentHealth(mc(undefined)).health, 'progressing');
  });
  const rolledBack = (attemptedGeneration: number | undefined) => ({
    phase: 'Failed',
    observedGeneration: 1,
    ...(attemptedGeneration === undefined ? {} : { attemptedGeneration }),
    lastError: 'health check failed',
    conditions: [{ type: 'Ready', status: 'False', reason: 'RolledBack', message: 'x', lastTransitionTime: at }],
  });
  it('failed when the agent attempted this generation and rolled it back (observedGeneration stays on the good one)', () => {
    const h = componentHealth(mc(rolledBack(2)));
    assert.equal(h.health, 'failed');
    assert.match(h.message, /RolledBack: health check failed/);
  });
  it('a failure of an earlier generation is not this one’s, whatever the timestamps say', () => {
    assert.equal(componentHealth(mc(rolledBack(1))).health, 'progressing');
    assert.equal(componentHealth(mc(rolledBack(1), 3)).health, 'progressing');
  });
  it('an agent that writes no attemptedGeneration is never judged failed (the progress deadline catches it)', () => {
    assert.equal(componentHealth(mc(rolledBack(undefined))).health, 'progressing');
  });
  it('Installing is progress, not failure', () => {
    const s = { phase: 'Installing', observedGeneration: 1, attemptedGeneration: 2, conditions: [{ type: 'Ready', status: 'False', reason: 'Installing', message: '', lastTransitionTime: at }] };
    assert.equal(componentHealth(mc(s)).health, 'progressing');
  });
});

describe('names and hashes', () => {
  it('hashes templates by content, not key order', () => {
    assert.equal(templateHash({ a: 1, b: { c: 2, d: 3 } }), templateHash({ b: { d: 3, c: 2 }, a: 1 }));
    assert.notEqual(templateHash({ a: 1 }), templateHash({ a: 2 }));
  });
  it('keeps MachineComponent names within 253 characters', () => {
    assert.equal(componentName('ne', 'm-1'), 'ne-m-1');
    const long = componentName('s'.repeat(200), 'm'.repeat(200));
    assert.equal(long.length, 253);
    assert.notEqual(long, componentName('s'.repeat(200), `${'m'.repeat(199)}x`));
  });
  const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
  it('cuts a long name where it stays a DNS subdomain (never ending in . or -)', () => {
    // The set's 242nd character is a dot: the cut of SET-MACHINE at 242 ends there.
    const set = `${'a'.repeat(241)}.bbbbbbbb`;
    const name = componentName(set, 'node-0');
    assert.ok(name.length <= 253, name);
    assert.match(name, DNS_SUBDOMAIN);
  });
  it('names revisions SET-HASH, the set shortened past 242 characters, distinct per set', () => {
    assert.equal(revisionName('ne', '0123456789'), 'ne-0123456789');
    assert.equal(revisionName('s'.repeat(242), '0123456789'), `${'s'.repeat(242)}-0123456789`);
    const a = revisionName(`${'s'.repeat(241)}.aaaaaaaaaaa`, '0123456789');
    const b = revisionName(`${'s'.repeat(241)}.bbbbbbbbbbb`, '0123456789');
    for (const r of [a, b]) {
      assert.ok(r.length <= 253, r);
      assert.match(r, DNS_SUBDOMAIN);
      assert.ok(r.endsWith('-0123456789'), r);
    }
    assert.notEqual(a, b, 'two sets sharing their first 242 characters');
  });
});
