// The escalation ladder under a fake clock, standalone (state-dir records, local budget only).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { createHost } from '../../src/host/host.ts';
import { RemediesConfig } from '../../src/remedies/config.ts';
import { createRemedies } from '../../src/remedies/setup.ts';
import type { Condition } from '../../src/types.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { RemedyMetrics } from '../../src/remedies/metrics.ts';
import { recordingRoot, riskGate, silent } from './helpers.ts';
import { decodeSection } from '../../src/config/decode.ts';

const hung = (at: number): Condition => ({ type: 'KernelDeadlock', status: 'True', reason: 'TaskHung', message: 'task containerd blocked', transitionTime: at });

function setup(config: Record<string, unknown>, options: { clock?: FakeClock } = {}, risk: Record<string, unknown> = {}) {
  const clock = options.clock ?? new FakeClock();
  const root = recordingRoot();
  const published: Condition[] = [];
  const registry = new Registry();
  const host = createHost({ root: root.dir, clock });
  const r = createRemedies({
    host,
    config: decodeSection('test', RemediesConfig, config),
    stateDir: '/var/lib/kubenode',
    nodeName: 'node-a',
    bootId: 'boot-1',
    log: silent,
    gate: riskGate(host, risk),
    metrics: new RemedyMetrics(registry),
    publish: (c) => published.push(c),
  });
  const records = () =>
    readdirSync(root.path('/var/lib/kubenode/remedies/operations'))
      .map((f) => JSON.parse(readFileSync(root.path(`/var/lib/kubenode/remedies/operations/${f}`), 'utf8')) as { spec: { action: string }; status: { phase: string; result?: string; startTime?: string; gate?: { gate: string; reasons: string[] } } })
      .sort((a, b) => (a.status.startTime ?? '').localeCompare(b.status.startTime ?? ''));
  return { clock, root, r, published, registry, records };
}

const LADDER = [
  { action: 'restart-runtime', maxAttempts: 2, verifyAfter: '1m', cooldown: '10m' },
  { action: 'reboot', maxAttempts: 1, verifyAfter: '5m', cooldown: '1h' },
];

describe('remedy engine: escalation ladder (fake clock)', () => {
  test('TaskHung ×2 → restart runtime twice with a cool-down, then reboot, then RemedyExhausted', async () => {
    const { clock, root, r, published, records, registry } = setup({ rules: [{ name: 'task-hung', condition: { type: 'KernelDeadlock', reasons: ['TaskHung'] }, minDuration: '2m', steps: LADDER } as never] }, {}, { local: { maxDisruptive: 10 } });
    try {
      await r.engine.resume();
      r.engine.observe([hung(clock.now())]);
      await r.engine.tick();
      assert.deepEqual(root.calls(), [], 'minDuration not yet reached');
      await clock.advance(2 * 60_000);
      await r.engine.tick();
      assert.deepEqual(root.calls().filter((c) => !c.includes(' show ')), ['systemctl restart containerd.service', 'systemctl is-active containerd.service']);
      // Verification after 1m fails; the cool-down (10m from the run) holds the second attempt back.
      await clock.advance(60_000);
      await r.engine.tick();
      await clock.advance(5 * 60_000);
      await r.engine.tick();
      assert.equal(root.calls().filter((c) => c.startsWith('systemctl restart')).length, 1, 'cool-down respected');
      await clock.advance(4 * 60_000);
      await r.engine.tick();
      assert.equal(root.calls().filter((c) => c.startsWith('systemctl restart')).length, 2, 'second attempt after the cool-down');
      // Second attempt not verified → escalate to reboot after that step's cool-down.
      await clock.advance(60_000);
      await r.engine.tick();
      assert.equal(root.calls().filter((c) => c === 'systemctl reboot').length, 0, 'escalation waits out the cool-down');
      await clock.advance(9 * 60_000);
      await r.engine.tick();
      assert.equal(root.calls().filter((c) => c === 'systemctl reboot').length, 1, 'escalated to reboot');
      assert.equal(r.engine.ladders().get('task-hung')?.phase, 'rebooting');
      // "After boot": a new engine with a new boot_id, the problem still there.
      const registry2 = new Registry();
      const host2 = createHost({ root: root.dir, clock });
      const again = createRemedies({ host: host2, config: decodeSection('test', RemediesConfig, { rules: [{ name: 'task-hung', condition: { type: 'KernelDeadlock', reasons: ['TaskHung'] }, minDuration: '2m', steps: LADDER }] }), stateDir: '/var/lib/kubenode', nodeName: 'node-a', bootId: 'boot-2', log: silent, gate: riskGate(host2, { local: { maxDisruptive: 10 } }), metrics: new RemedyMetrics(registry2), publish: (c) => published.push(c) });
      await again.engine.resume();
      assert.equal(again.engine.ladders().get('task-hung')?.phase, 'verifying');
      again.engine.observe([hung(clock.now())]);
      await clock.advance(5 * 60_000);
      await again.engine.tick();
      await again.engine.tick();
      assert.equal(again.engine.ladders().get('task-hung')?.phase, 'exhausted');
      assert.deepEqual(published.at(-1)?.type, 'RemedyExhausted');
      assert.equal(published.at(-1)?.status, 'True');
      const phases = records().map((o) => `${o.spec.action}:${o.status.phase}:${o.status.result ?? ''}`);
      assert.deepEqual(phases, ['restart-runtime:Failed:NotFixed', 'restart-runtime:Failed:NotFixed', 'reboot:Failed:NotFixed']);
      // The problem clears: the ladder resets and RemedyExhausted goes False.
      again.engine.observe([{ ...hung(clock.now()), status: 'False', reason: 'NoDeadlock' }]);
      await again.engine.tick();
      assert.equal(again.engine.ladders().size, 0);
      assert.equal(published.at(-1)?.status, 'False');
      assert.match(await registry.getSingleMetricAsString('kubenode_remedy_operations_total'), /action="restart-runtime",result="not_fixed"} 2/);
      // The reboot's outcome is counted by the agent that came back after it.
      assert.match(await registry2.getSingleMetricAsString('kubenode_remedy_operations_total'), /action="reboot",result="not_fixed"} 1/);
      assert.match(await registry2.getSingleMetricAsString('kubenode_remedy_operation_duration_seconds'), /kubenode_remedy_operation_duration_seconds_sum\{action="reboot",result="not_fixed"\} 300$/m);
    } finally {
      root.remove();
    }
  });

  test('a step whose problem clears during verifyAfter succeeds and resets the ladder', async () => {
    const { clock, root, r, records, registry } = setup({ rules: [{ name: 'task-hung', condition: { type: 'KernelDeadlock', reasons: [] }, steps: LADDER } as never] });
    try {
      await r.engine.resume();
      r.engine.observe([hung(clock.now())]);
      await r.engine.tick();
      assert.equal(r.engine.ladders().get('task-hung')?.phase, 'verifying');
      r.engine.observe([]);
      await clock.advance(30_000);
      await r.engine.tick();
      assert.equal(r.engine.ladders().size, 0);
      const [op] = records();
      assert.equal(op?.status.phase, 'Succeeded');
      assert.equal(op?.status.result, 'Fixed');
      assert.equal(op?.status.gate?.gate, 'local');
      assert.match(await registry.getSingleMetricAsString('kubenode_remedy_operations_total'), /action="restart-runtime",result="fixed"} 1/);
    } finally {
      root.remove();
    }
  });

  test('cold start: a condition True since long before the agent started waits minDuration from start', async () => {
    const clock = new FakeClock();
    const { root, r } = setup({ rules: [{ name: 'task-hung', condition: { type: 'KernelDeadlock', reasons: [] }, minDuration: '5m', steps: LADDER } as never] }, { clock });
    try {
      await r.engine.resume();
      r.engine.observe([hung(clock.now() - 24 * 3_600_000)]);
      await r.engine.tick();
      await clock.advance(4 * 60_000);
      await r.engine.tick();
      assert.deepEqual(root.calls(), []);
      await clock.advance(60_000);
      await r.engine.tick();
      assert.equal(root.calls().filter((c) => c.startsWith('systemctl restart')).length, 1);
    } finally {
      root.remove();
    }
  });

  test('a local-budget denial is recorded with the gate path and retried with backoff', async () => {
    const { clock, root, r, records } = setup({ denyBackoff: '1m', rules: [{ name: 'task-hung', condition: { type: 'KernelDeadlock', reasons: [] }, steps: LADDER } as never] }, {}, { local: { maxDisruptive: 0 } });
    try {
      await r.engine.resume();
      r.engine.observe([hung(clock.now())]);
      await r.engine.tick();
      await r.engine.tick();
      const [denied, ...rest] = records();
      assert.equal(rest.length, 0, 'no retry before the backoff');
      assert.equal(denied?.status.phase, 'Denied');
      assert.match(denied?.status.gate?.reasons.join() ?? '', /local: denied: local budget spent: 0 of 0/);
      await clock.advance(2 * 60_000);
      await r.engine.tick();
      assert.equal(records().length, 2, 'retried after the backoff');
      assert.deepEqual(root.calls().filter((c) => c.startsWith('systemctl restart')), []);
    } finally {
      root.remove();
    }
  });

  test('dry run records the plan and does nothing', async () => {
    const { clock, root, r, records } = setup({ dryRun: true, rules: [{ name: 'task-hung', condition: { type: 'KernelDeadlock', reasons: [] }, steps: LADDER } as never] });
    try {
      await r.engine.resume();
      r.engine.observe([hung(clock.now())]);
      await r.engine.tick();
      assert.deepEqual(root.calls().filter((c) => !c.includes(' show ')), []);
      const [op] = records();
      assert.equal(op?.status.result, 'DryRun');
    } finally {
      root.remove();
    }
  });

  test('a reboot that never happens is failed and undone after rebootTimeout, and the ladder moves on', async () => {
    const { clock, root, r, records } = setup({ rebootTimeout: '15m', rules: [{ name: 'hung', condition: { type: 'KernelDeadlock', reasons: [] }, steps: [{ action: 'reboot', verifyAfter: '5m', cooldown: '1m' }] } as never] });
    try {
      await r.engine.resume();
      r.engine.observe([hung(clock.now())]);
      await r.engine.tick();
      assert.equal(r.engine.ladders().get('hung')?.phase, 'rebooting');
      await clock.advance(14 * 60_000);
      await r.engine.tick();
      assert.equal(r.engine.ladders().get('hung')?.phase, 'rebooting');
      await clock.advance(60_000);
      await r.engine.tick();
      assert.equal(readFileSync(root.path('/var/lib/kubenode/remedies/reboot-intent.json'), 'utf8'), '{}');
      const [op] = records();
      assert.equal(op?.status.phase, 'Failed');
      await r.engine.tick();
      assert.equal(r.engine.ladders().get('hung')?.phase, 'exhausted', 'the only step was spent');
    } finally {
      root.remove();
    }
  });

  test('after the clock is stepped back a day, a ladder waits at most its longest wait, not the day', async () => {
    const { clock, root, r } = setup({ rules: [{ name: 'task-hung', condition: { type: 'KernelDeadlock', reasons: [] }, steps: LADDER } as never] }, {}, { local: { maxDisruptive: 10 } });
    try {
      await r.engine.resume();
      r.engine.observe([hung(clock.now())]);
      await r.engine.tick();
      assert.equal(root.calls().filter((c) => c.startsWith('systemctl restart')).length, 1);
      await clock.advance(-24 * 3_600_000);
      r.engine.observe([hung(clock.now())]);
      await r.engine.tick();
      const l = r.engine.ladders().get('task-hung');
      assert.ok((l?.lastRunAt ?? Infinity) <= clock.now(), 'the last run is no longer in the future');
      // The longest the current step can ask to wait: the denial backoff's 10m (with jitter 12.5m), more than its 10m cool-down.
      await clock.advance(13 * 60_000);
      await r.engine.tick();
      await r.engine.tick();
      assert.equal(root.calls().filter((c) => c.startsWith('systemctl restart')).length, 2, 'second attempt within the horizon');
    } finally {
      root.remove();
    }
  });

  test('a corrupt ladder state is set aside and the engine starts clean instead of failing', async () => {
    const { clock, root, r } = setup({ rules: [{ name: 'task-hung', condition: { type: 'KernelDeadlock', reasons: [] }, steps: LADDER } as never] });
    try {
      root.write('/var/lib/kubenode/remedies/ladders.json', '[{"rule":"task-hung","step":"two"}]');
      await r.engine.resume();
      assert.equal(r.engine.ladders().size, 0);
      assert.equal(readdirSync(root.path('/var/lib/kubenode/remedies')).filter((f) => f.startsWith('ladders.json.corrupt-')).length, 1);
      r.engine.observe([hung(clock.now())]);
      await r.engine.tick();
      assert.equal(r.engine.ladders().get('task-hung')?.phase, 'verifying');
    } finally {
      root.remove();
    }
  });

  test('a condition whose transitionTime lies in the future (the clock went back) holds minDuration from when it was seen', async () => {
    const { clock, root, r } = setup({ rules: [{ name: 'task-hung', condition: { type: 'KernelDeadlock', reasons: [] }, minDuration: '2m', steps: LADDER } as never] });
    try {
      await r.engine.resume();
      r.engine.observe([hung(clock.now() + 24 * 3_600_000)]);
      await r.engine.tick();
      await clock.advance(60_000);
      await r.engine.tick();
      assert.equal(root.calls().filter((c) => c.startsWith('systemctl restart')).length, 0, 'not before minDuration');
      await clock.advance(60_000);
      await r.engine.tick();
      assert.equal(root.calls().filter((c) => c.startsWith('systemctl restart')).length, 1, 'not a day later either');
    } finally {
      root.remove();
    }
  });
});
