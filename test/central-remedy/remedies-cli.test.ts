// `kubenode-agent remedies`: the report over RemedyOperations and NodeRemediers as the apiserver
// returns them (shapes of src/api/), filtered by node and rule.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { remediesReport, type OperationView, type RemedierView } from '../../src/cli/remedies.ts';

const now = Date.parse('2026-12-02T12:00:00Z');
const ago = (min: number): string => new Date(now - min * 60_000).toISOString().replace(/\.\d+Z$/, 'Z');
const op = (name: string, node: string, extra: Partial<OperationView['spec']>, status: OperationView['status'], createdMinAgo: number): OperationView => ({
  metadata: { name, creationTimestamp: ago(createdMinAgo) },
  spec: { node, action: 'cordon', ...extra },
  ...(status === undefined ? {} : { status }),
});

const ops: OperationView[] = [
  op('a', 'n1', { remedier: 'workers', rule: 'central', actor: 'controller', action: 'power-cycle', step: 1 }, { phase: 'Verifying', message: 'power cycled through BMC 10.0.0.5' }, 3),
  op('b', 'n1', { remedier: 'workers', rule: 'central', actor: 'controller', action: 'cordon', step: 0 }, { phase: 'Succeeded', endTime: ago(4) }, 5),
  op('c', 'n2', { remedier: 'runtime', rule: 'runtime/containerd-down', action: 'restart-runtime' }, { phase: 'Failed', result: 'Error', endTime: ago(100) }, 120),
  op('d', 'n3', { rule: 'disk-full', action: 'clean-disk' }, { phase: 'Succeeded', endTime: ago(60 * 30) }, 60 * 30),
];
const remediers: RemedierView[] = [
  { metadata: { name: 'workers' }, spec: { central: {} }, status: { stormBreaker: { state: 'Closed' } } },
  { metadata: { name: 'runtime' }, spec: { stormBreaker: { maxShare: 0.3, window: '1h' } }, status: { stormBreaker: { state: 'Open', trippedAt: ago(30), reason: '4 of 10 selected nodes had operations within 1h' } } },
];

test('the whole fleet: tripped rules, rates per rule, current and recent operations', () => {
  const out = remediesReport(ops, remediers, now, { recentMs: 24 * 3_600_000 }).join('\n');
  assert.match(out, /TRIPPED RULES\n {2}runtime: storm breaker open since .*4 of 10 selected nodes/);
  assert.match(out, /kubectl patch noderemedier runtime --subresource=status/);
  assert.match(out, /workers\/central\s+2\s+2\s+0\s+1/);
  assert.match(out, /runtime\/containerd-down\s+0\s+1\s+1\s+1/);
  assert.doesNotMatch(out.split('RECENT')[0] as string, /agent\.yaml\/disk-full/, 'older than a day: not in the rates');
  const current = out.split('CURRENT')[1]?.split('RECENT')[0] ?? '';
  assert.match(current, /n1\s+workers\/central\s+power-cycle\s+controller\s+Verifying\s+3m\s+power cycled/);
  assert.doesNotMatch(current, /cordon/);
  const recent = out.split('RECENT')[1] ?? '';
  assert.match(recent, /n1\s+workers\/central\s+cordon/);
  assert.match(recent, /n2\s+runtime\/containerd-down\s+restart-runtime\s+agent\s+Failed/);
  assert.doesNotMatch(recent, /n3/, 'ended 30 h ago');
});

test('--node and --rule narrow every part', () => {
  const byNode = remediesReport(ops, remediers, now, { node: 'n2', recentMs: 24 * 3_600_000 }).join('\n');
  assert.doesNotMatch(byNode, /workers\/central/);
  assert.match(byNode, /runtime\/containerd-down/);
  const byRule = remediesReport(ops, remediers, now, { rule: 'workers', recentMs: 24 * 3_600_000 }).join('\n');
  assert.match(byRule, /TRIPPED RULES\n {2}none/);
  assert.doesNotMatch(byRule, /containerd-down/);
  const oneRule = remediesReport(ops, remediers, now, { rule: 'runtime/containerd-down', recentMs: 24 * 3_600_000 }).join('\n');
  assert.match(oneRule, /runtime: storm breaker open/);
  assert.match(remediesReport([], [], now, { recentMs: 3_600_000 }).join('\n'), /no operations in the last 24h[\s\S]*CURRENT\n {2}none[\s\S]*RECENT \(ended within 1h, newest first\)\n {2}none/);
});
