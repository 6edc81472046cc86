// MachineComponentSet rollouts against a real apiserver, with the controller in this process and
// agents played by the test (status writes as the agent makes them): batches, the health gate,
// pause and acknowledgement, a new template, conflicts, bad input.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Controller } from '../../src/controller/index.ts';
import { createLogger } from '../../src/log.ts';
import type { Cluster } from '../harness/cluster.ts';
import { addMachine, setNodeReady, listMcs, MCS_PATH, must, patchSet, renewLease, rolloutCluster, type SimulatedAgents, until } from './helpers.ts';

const log = createLogger(process.env.KUBENODE_TEST_LOG === '1' ? 'debug' : 'silent');
const NS = 'kubenode-system';
const SHA = 'b'.repeat(64);

function template(version: string, component = 'ne') {
  return { spec: { component, version, source: { type: 'binary', url: `https://example.com/${component}-${version}`, sha256: SHA } } };
}

interface SetStatus {
  phase?: string;
  currentRevision?: string;
  updateRevision?: string;
  matched: number;
  updated: number;
  ready: number;
  failed: number;
  currentBatch: number;
  pausedReason?: string;
  failure?: { token: string; batch: number; machines: string[]; reason: string };
  batches: { index: number; state: string; startTime?: string; readyTime?: string; observationEndTime?: string }[];
  conditions: { type: string; status: string; reason: string; message: string }[];
  conflicts: string[];
}
const statusOf = async (cluster: Cluster, name: string): Promise<SetStatus> => (await must<{ status?: SetStatus }>(cluster, 'GET', `${MCS_PATH}/${name}`)).status ?? ({} as SetStatus);

describe('MachineComponentSet rollout on a real apiserver', () => {
  let cluster: Cluster;
  let controller: Controller;
  let agents: SimulatedAgents;
  const machines = Array.from({ length: 20 }, (_, i) => `m-${String(i).padStart(2, '0')}`);

  before(async () => {
    ({ cluster, agents } = await rolloutCluster(machines, NS));
    controller = new Controller({ kubeconfig: cluster.adminKubeconfig, leaderElect: true, namespace: NS, listen: '127.0.0.1:0', leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 500 }, log);
    await controller.start();
  });
  after(async () => {
    await controller?.stop();
    await agents?.stop();
    await cluster?.stop();
  });

  it('rolls a new set out in batches, pauses on a failed machine, resumes on a new template and completes', async () => {
    await must(cluster, 'POST', MCS_PATH, {
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'MachineComponentSet',
      metadata: { name: 'ne' },
      spec: { selector: { matchLabels: { pool: 'a' } }, template: template('1.0.0'), rollout: { batches: [1, 2, '25%'], maxUnavailable: 5, bakeTime: '1s' } },
    });
    await until('v1 completes', async () => (await statusOf(cluster, 'ne')).phase === 'Completed', 120_000);
    let s = await statusOf(cluster, 'ne');
    assert.equal(s.matched, 20);
    assert.equal(s.updated, 20);
    assert.equal(s.ready, 20);
    assert.equal(s.currentRevision, s.updateRevision);
    // 1, 2, then 25% of 20 = 5 repeating until all 20 are done. Each MC's batch label says which.
    const v1 = await listMcs(cluster);
    assert.equal(v1.length, 20);
    const perBatch = new Map<string, number>();
    for (const mc of v1) perBatch.set(mc.metadata.labels['kubenode.io/batch'] as string, (perBatch.get(mc.metadata.labels['kubenode.io/batch'] as string) ?? 0) + 1);
    assert.deepEqual([...perBatch.entries()].sort(), [['0', 1], ['1', 2], ['2', 5], ['3', 5], ['4', 5], ['5', 2]]);
    for (const mc of v1) assert.ok(mc.metadata.ownerReferences?.length === 1, 'owned by the set');
    const gen1 = new Map(v1.map((mc) => [mc.metadata.name, mc.metadata.generation]));
    for (const b of s.batches) assert.ok(b.readyTime !== undefined && b.observationEndTime !== undefined && Date.parse(b.observationEndTime) - Date.parse(b.readyTime) === 1000, 'bake clock in status');

    // v2 fails on the first machine chosen for batch 2.
    let victim = '';
    agents.fail = (m, v) => v === '2.0.0' && m === victim;
    await patchSet(cluster, 'ne', { spec: { template: template('2.0.0') } });
    await until('batch 2 starts', async () => {
      const mcs = await listMcs(cluster);
      const b2 = mcs.filter((mc) => mc.spec.version === '2.0.0' && mc.metadata.labels['kubenode.io/batch'] === '2');
      if (b2.length > 0 && victim === '') victim = b2.map((mc) => mc.metadata.labels['kubenode.io/machine'] as string).sort()[0] as string;
      return victim !== '';
    }, 60_000);
    await until('paused on the failure', async () => (await statusOf(cluster, 'ne')).pausedReason === 'HealthGateFailed', 60_000);
    s = await statusOf(cluster, 'ne');
    assert.equal(s.phase, 'Paused');
    assert.equal(s.failure?.batch, 2);
    assert.deepEqual(s.failure?.machines, [victim]);
    const onV2 = (await listMcs(cluster)).filter((mc) => mc.spec.version === '2.0.0');
    assert.ok(onV2.length <= 1 + 2 + 5, `only batches 0-2 touched (${onV2.length})`);
    for (const mc of onV2) assert.ok(['0', '1', '2'].includes(mc.metadata.labels['kubenode.io/batch'] as string));
    const untouched = (await listMcs(cluster)).filter((mc) => mc.spec.version === '1.0.0');
    for (const mc of untouched) assert.equal(mc.metadata.generation, gen1.get(mc.metadata.name), 'machines outside the batches keep their spec');
    // It stays paused.
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal((await listMcs(cluster)).filter((mc) => mc.spec.version === '2.0.0').length, onV2.length);

    // The revision that failed is marked.
    const revs = (await must<{ items: { metadata: { name: string; annotations?: Record<string, string> } }[] }>(cluster, 'GET', `/apis/apps/v1/namespaces/${NS}/controllerrevisions`)).items;
    assert.equal(revs.find((r) => r.metadata.name === s.updateRevision)?.metadata.annotations?.['kubenode.io/failed'], 'HealthGateFailed');

    // Acknowledge and fix: v3 goes everywhere, machines left on v2 first.
    await patchSet(cluster, 'ne', { spec: { template: template('3.0.0'), rollout: { acknowledgeFailure: s.failure?.token } } });
    await until('v3 completes', async () => (await statusOf(cluster, 'ne')).phase === 'Completed', 120_000);
    const v3 = await listMcs(cluster);
    assert.ok(v3.every((mc) => mc.spec.version === '3.0.0'));
    // One spec write per revision: v1 → (v2) → v3.
    for (const mc of v3) {
      const was = gen1.get(mc.metadata.name) as number;
      const touchedByV2 = onV2.some((o) => o.metadata.name === mc.metadata.name);
      assert.equal(mc.metadata.generation, was + (touchedByV2 ? 2 : 1), `${mc.metadata.name} spec written once per revision`);
    }
    const events = (await must<{ items: { involvedObject: { name: string }; reason: string }[] }>(cluster, 'GET', '/api/v1/namespaces/default/events')).items.filter((e) => e.involvedObject.name === 'ne');
    for (const reason of ['BatchStarted', 'BatchSucceeded', 'BatchFailed', 'Paused', 'RolloutCompleted', 'RolloutStarted']) assert.ok(events.some((e) => e.reason === reason), `Event ${reason}`);
  });

  it('partition stops after batch N; a machine that joins gets the stable revision; machines that vanish drop out', async () => {
    for (let i = 0; i < 4; i++) await addMachine(cluster, `b-${i}`, { pool: 'b' });
    await must(cluster, 'POST', MCS_PATH, { apiVersion: 'kubenode.io/v1alpha1', kind: 'MachineComponentSet', metadata: { name: 'mem' }, spec: { selector: { matchLabels: { pool: 'b' } }, template: template('1.0.0', 'mem'), rollout: { batches: [1], maxUnavailable: 2, bakeTime: '200ms' } } });
    await until('v1 completes', async () => (await statusOf(cluster, 'mem')).phase === 'Completed', 60_000);
    const mems = async () => (await listMcs(cluster)).filter((mc) => mc.spec.component === 'mem');
    await patchSet(cluster, 'mem', { spec: { template: template('2.0.0', 'mem'), rollout: { partition: 1 } } });
    await until('stopped at the partition', async () => (await statusOf(cluster, 'mem')).pausedReason === 'Partition', 60_000);
    assert.equal((await mems()).filter((mc) => mc.spec.version === '2.0.0').length, 1, 'one batch of one');
    const s = await statusOf(cluster, 'mem');
    assert.equal(s.phase, 'Paused');
    assert.equal(s.conditions.find((c) => c.type === 'Paused')?.reason, 'Partition');

    await addMachine(cluster, 'b-9', { pool: 'b' });
    await until('the new machine gets the stable revision', async () => (await mems()).some((mc) => mc.metadata.labels['kubenode.io/machine'] === 'b-9' && mc.spec.version === '1.0.0'), 30_000);
    const gone = (await mems()).find((mc) => mc.spec.version === '1.0.0' && mc.metadata.labels['kubenode.io/machine'] !== 'b-9')?.metadata.labels['kubenode.io/machine'] as string;
    await must(cluster, 'DELETE', `/apis/kubenode.io/v1alpha1/machines/${gone}`);
    await until('the deleted machine drops out', async () => (await mems()).every((mc) => mc.metadata.labels['kubenode.io/machine'] !== gone), 30_000);
    await until('matched counts it out', async () => (await statusOf(cluster, 'mem')).matched === 4, 30_000);

    await patchSet(cluster, 'mem', { spec: { rollout: { partition: 100 } } });
    await until('v2 completes past the partition', async () => (await statusOf(cluster, 'mem')).phase === 'Completed', 60_000);
    assert.deepEqual((await mems()).map((mc) => mc.spec.version), ['2.0.0', '2.0.0', '2.0.0', '2.0.0']);

    for (const mc of await mems()) await must(cluster, 'DELETE', `/apis/kubenode.io/v1alpha1/machines/${mc.metadata.labels['kubenode.io/machine']}`);
    await until('no machines left', async () => (await statusOf(cluster, 'mem')).conditions?.some((c) => c.reason === 'NoMachinesMatched') === true, 30_000);
    // Retired Machines' components go once their agents have uninstalled them.
    await until('components gone', async () => (await mems()).length === 0, 30_000);
    const events = (await must<{ items: { involvedObject: { name: string }; reason: string }[] }>(cluster, 'GET', '/api/v1/namespaces/default/events')).items.filter((e) => e.involvedObject.name === 'mem');
    assert.ok(events.some((e) => e.reason === 'MachinesRemoved'));
    assert.ok(events.some((e) => e.reason === 'NoMachinesMatched'));
  });

  it('defers NotReady machines (InsufficientBudget), fails on a Node that turns bad after its update, and on the progress deadline', async () => {
    const ds = Array.from({ length: 4 }, (_, i) => `d-${i}`);
    for (const m of ds) await addMachine(cluster, m, { pool: 'd' });
    await setNodeReady(cluster, 'd-0', 'False');
    const rollout = { batches: [2], maxUnavailable: 1, bakeTime: '200ms' };
    await must(cluster, 'POST', MCS_PATH, { apiVersion: 'kubenode.io/v1alpha1', kind: 'MachineComponentSet', metadata: { name: 'dz' }, spec: { selector: { matchLabels: { pool: 'd' } }, template: template('1.0.0', 'dz'), rollout } });
    await until('no budget left', async () => (await statusOf(cluster, 'dz')).pausedReason === 'InsufficientBudget', 30_000);
    const paused = (await must<{ status: { deferred: number; deferredMachines: string[] } }>(cluster, 'GET', `${MCS_PATH}/dz`)).status;
    assert.equal(paused.deferred, 1);
    assert.deepEqual(paused.deferredMachines, ['d-0: Node Ready=False']);
    assert.equal((await listMcs(cluster)).filter((mc) => mc.spec.component === 'dz').length, 0, 'nothing chosen while the budget is taken');
    await setNodeReady(cluster, 'd-0', 'True');
    await until('v1 completes once the Node is back', async () => (await statusOf(cluster, 'dz')).phase === 'Completed', 60_000);

    await patchSet(cluster, 'dz', { spec: { template: template('2.0.0', 'dz'), rollout: { bakeTime: '1h' } } });
    let hit = '';
    await until('a machine is on 2.0.0 and ready', async () => {
      const mc = (await listMcs(cluster)).find((x) => x.spec.component === 'dz' && x.spec.version === '2.0.0' && x.status?.phase === 'Installed' && x.status.observedGeneration === x.metadata.generation);
      hit = mc?.metadata.labels['kubenode.io/machine'] ?? '';
      return hit !== '';
    }, 30_000);
    await setNodeReady(cluster, hit, 'False');
    await until('node problem fails the batch', async () => (await statusOf(cluster, 'dz')).failure?.reason === 'HealthGateFailed', 30_000);
    assert.match((await statusOf(cluster, 'dz')).conditions.find((c) => c.type === 'Paused')?.message ?? '', new RegExp(`nodeConditions: ${hit}: Node Ready=False`));
    await setNodeReady(cluster, hit, 'True');

    for (const m of ds) agents.silent.add(m);
    await patchSet(cluster, 'dz', { spec: { template: template('3.0.0', 'dz'), rollout: { progressDeadline: '2s', bakeTime: '200ms' } } });
    await until('progress deadline', async () => (await statusOf(cluster, 'dz')).pausedReason === 'ProgressDeadlineExceeded', 30_000);
    for (const m of ds) agents.silent.delete(m);
  });

  it('an agent Lease that goes stale defers its machine at that moment, with no other event; renewed, the rollout goes on', async () => {
    const ls = ['l-0', 'l-1', 'l-2'];
    for (const m of ls) await addMachine(cluster, m, { pool: 'l' });
    // Paused: nothing but the Lease's expiry can make the controller look at the set again.
    await must(cluster, 'POST', MCS_PATH, { apiVersion: 'kubenode.io/v1alpha1', kind: 'MachineComponentSet', metadata: { name: 'lz' }, spec: { paused: true, selector: { matchLabels: { pool: 'l' } }, template: template('1.0.0', 'lz'), rollout: { batches: [3], maxUnavailable: 1, bakeTime: '200ms' } } });
    type Deferred = { status?: { matched?: number; deferred?: number; deferredMachines?: string[] } };
    // Every Lease is good for an hour here, so however long the controller takes to first look at
    // the set, it finds nothing deferred (a short Lease written before the set could run out first).
    await until('seen, nothing deferred', async () => {
      const s = (await must<Deferred>(cluster, 'GET', `${MCS_PATH}/lz`)).status;
      return s?.matched === 3 && s.deferred === 0;
    }, 30_000);
    // Renewed fresh for 5 s: a renewal that keeps a Lease fresh queues nothing, so the expiry alone
    // brings the deferral (an informer more than 5 s behind would queue the set on the renewal
    // instead; lease-clock.test.ts holds the timer to the moment under a fake clock).
    await renewLease(cluster, 'l-0', 5);
    await until('deferred when the Lease expires', async () => (await must<Deferred>(cluster, 'GET', `${MCS_PATH}/lz`)).status?.deferred === 1, 30_000);
    assert.deepEqual((await must<Deferred>(cluster, 'GET', `${MCS_PATH}/lz`)).status?.deferredMachines, ['l-0: agent Lease stale']);
    await patchSet(cluster, 'lz', { spec: { paused: false } });
    await until('no budget with l-0 deferred', async () => (await statusOf(cluster, 'lz')).pausedReason === 'InsufficientBudget', 30_000);
    await renewLease(cluster, 'l-0', 3600);
    await until('renewed: completes', async () => (await statusOf(cluster, 'lz')).phase === 'Completed', 60_000);
  });

  it('refuses a second set for the same component with a condition, and reports bad input', async () => {
    await must(cluster, 'POST', MCS_PATH, {
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'MachineComponentSet',
      metadata: { name: 'ne-twin' },
      spec: { selector: { matchLabels: { pool: 'a' } }, template: template('9.0.0'), rollout: { batches: [20] } },
    });
    await until('twin refused', async () => ((await statusOf(cluster, 'ne-twin')).conflicts ?? []).length === 20, 30_000);
    const twin = await statusOf(cluster, 'ne-twin');
    assert.equal(twin.conditions.find((c) => c.type === 'Conflict')?.status, 'True');
    assert.ok((await listMcs(cluster)).every((mc) => mc.spec.version !== '9.0.0'));

    await must(cluster, 'POST', MCS_PATH, { apiVersion: 'kubenode.io/v1alpha1', kind: 'MachineComponentSet', metadata: { name: 'nobody' }, spec: { selector: { matchLabels: { pool: 'none' } }, template: template('1.0.0', 'other') } });
    await until('no machines', async () => (await statusOf(cluster, 'nobody')).conditions?.some((c) => c.reason === 'NoMachinesMatched') === true, 30_000);

    const badBatches = await cluster.request('POST', MCS_PATH, { body: { apiVersion: 'kubenode.io/v1alpha1', kind: 'MachineComponentSet', metadata: { name: 'bad' }, spec: { selector: {}, template: template('1.0.0', 'bad'), rollout: { batches: ['ten'] } } } });
    assert.equal(badBatches.status, 422);
    assert.match(badBatches.body, /batch is a count/);

    // The set's schema takes any string as a template label; a MachineComponent's metadata does not.
    await must(cluster, 'POST', MCS_PATH, { apiVersion: 'kubenode.io/v1alpha1', kind: 'MachineComponentSet', metadata: { name: 'badtpl' }, spec: { selector: { matchLabels: { pool: 'a' } }, template: { metadata: { labels: { team: 'not a label value!' } }, ...template('1.0.0', 'badtpl') }, rollout: { batches: [1] } } });
    await until('template refused', async () => (await statusOf(cluster, 'badtpl')).conditions?.some((c) => c.reason === 'InvalidTemplate') === true, 30_000);
    assert.equal((await statusOf(cluster, 'badtpl')).phase, 'Failed');
    assert.match((await statusOf(cluster, 'badtpl')).conditions.find((c) => c.reason === 'InvalidTemplate')?.message ?? '', /metadata\.labels/);
    assert.ok((await listMcs(cluster)).every((mc) => mc.spec.component !== 'badtpl'), 'nothing applied');
    const evs = (await must<{ items: { involvedObject: { name: string }; reason: string }[] }>(cluster, 'GET', '/api/v1/namespaces/default/events')).items;
    assert.ok(evs.some((e) => e.involvedObject.name === 'badtpl' && e.reason === 'InvalidTemplate'));

    await must(cluster, 'POST', MCS_PATH, { apiVersion: 'kubenode.io/v1alpha1', kind: 'MachineComponentSet', metadata: { name: 'shrinking' }, spec: { selector: { matchLabels: { pool: 'a' } }, template: template('1.0.0', 'shrink'), rollout: { batches: [10, '10%'] } } });
    await until('decreasing batches refused', async () => (await statusOf(cluster, 'shrinking')).conditions?.some((c) => c.type === 'InvalidSpec' && /must not decrease/.test(c.message)) === true, 30_000);
    assert.ok((await listMcs(cluster)).every((mc) => mc.spec.component !== 'shrink'), 'nothing applied');
  });
});
