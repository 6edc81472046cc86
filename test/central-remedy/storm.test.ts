// The storm breaker's arithmetic (src/controller/remedy/storm.ts) and its gate stage failing
// closed when the breaker cannot be read. The operations are shaped as the apiserver returns them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { stormVerdict, type OperationLike } from '../../src/controller/remedy/storm.ts';
import { stormStage } from '../../src/risk/gate.ts';

const now = Date.parse('2026-12-02T12:00:00Z');
const op = (node: string, minAgo: number, extra: Partial<NonNullable<OperationLike['spec']>> = {}): OperationLike => ({
  metadata: { name: `${node}-${minAgo}`, creationTimestamp: new Date(now - minAgo * 60_000).toISOString().replace(/\.\d+Z$/, 'Z') },
  spec: { node, remedier: 'workers', dryRun: false, ...extra },
});
const breaker = { maxShare: 0.3, window: '1h' };

test('counts nodes, not operations, within the window, of this NodeRemedier, dry runs aside', () => {
  const ops = [op('a', 5), op('a', 6), op('b', 10), op('c', 59), op('d', 61), op('e', 1, { dryRun: true }), op('f', 1, { remedier: 'other' })];
  const v = stormVerdict('workers', breaker, ops, 10, now, undefined);
  assert.deepEqual(v.nodes, ['a', 'b', 'c']);
  assert.equal(v.trip, false, '3 of 10 is not more than 0.3');
  assert.match(v.reason, /^3 of 10 selected nodes had operations within 1h \(0\.30 <= maxShare 0\.3\)/);
  const tripped = stormVerdict('workers', breaker, [...ops, op('g', 2)], 10, now, undefined);
  assert.equal(tripped.trip, true);
  assert.match(tripped.reason, /4 of 10 .*\(0\.40 > maxShare 0\.3\): a, b, c, g$/);
});

test('a reset forgets what came before it; a reset from the future (a stepped clock) is ignored', () => {
  const ops = [op('a', 30), op('b', 30), op('c', 30), op('d', 30), op('e', 5)];
  assert.equal(stormVerdict('workers', breaker, ops, 10, now, undefined).trip, true);
  assert.deepEqual(stormVerdict('workers', breaker, ops, 10, now, now - 10 * 60_000).nodes, ['e']);
  assert.equal(stormVerdict('workers', breaker, ops, 10, now, now + 60_000).trip, true);
  assert.equal(stormVerdict('workers', breaker, ops, 0, now, undefined).trip, false, 'selecting no node, nothing trips');
});

test('the storm gate fails closed when the breaker cannot be read, and asks nothing of other requests', async () => {
  const stage = stormStage(async () => {
    throw new Error('connect ECONNREFUSED 127.0.0.1:6443');
  });
  const req = { node: 'n1', action: 'power-cycle', risk: 'disruptive' as const, reason: 'agent unreachable', operation: 'n1-central-1-1' };
  const [denied] = await stage.ask({ ...req, remedier: 'workers' }, false);
  assert.equal(denied?.allowed, false);
  assert.match(denied?.reason ?? '', /^cannot read the storm breaker of NodeRemedier workers \(connect ECONNREFUSED 127\.0\.0\.1:6443\): only safe actions run$/);
  const [free] = await stage.ask(req, false);
  assert.equal(free?.allowed, true, 'a request of no NodeRemedier has no breaker to read');
});
