// What the controller writes about a remedy run, read back from a real apiserver: a NodeRemedier's
// status counts (coalesced, none at steady state, the same after a controller restart) and its
// printer columns; a Machine's ReplacementRequested condition, set by the replace step and cleared
// when a person withdraws the request. The BMC is OpenIPMI's ipmi_sim, the agents the test's (fleet.ts).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Controller } from '../../src/controller/index.ts';
import { createKubeClient, loadKubeConfig } from '../../src/kube/client.ts';
import { createLogger } from '../../src/log.ts';
import { Informer, type KubeObject } from '../../src/watch/informer.ts';
import { startCluster, type Cluster } from '../harness/cluster.ts';
import { labelValueOf, NODE_LABEL } from '../../src/api/common.ts';
import { installCrds } from '../helpers/kube-objects.ts';
import { ensureNamespace, must, until } from '../controller/helpers.ts';
import { MERGE_PATCH } from '../helpers/kube-api.ts';
import { BMC_PASSWORD, BMC_USER, removeSim, startBmcSim, type BmcSim } from './bmc.ts';
import { central, Fleet, ops, OPS, remedier, TAINT, type NodeObj } from './fleet.ts';

const log = createLogger(process.env.KUBENODE_TEST_LOG === '1' ? 'debug' : 'silent');
const NS = 'kubenode-system';
const REMEDIER = '/apis/kubenode.io/v1alpha1/noderemediers/s';
const EVERY_MS = 3000;

interface Counts {
  matchedNodes?: number;
  activeOperations?: number;
  succeeded?: number;
  failed?: number;
  observedGeneration?: number;
}
interface RemedierObj extends KubeObject {
  status?: Counts;
}
interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
  lastTransitionTime: string;
}
interface MachineObj {
  metadata: { annotations?: Record<string, string>; managedFields?: { manager: string; subresource?: string }[] };
  status?: { conditions?: Condition[] };
}

const counts = (s: Counts | undefined): Counts => ({ matchedNodes: s?.matchedNodes, activeOperations: s?.activeOperations, succeeded: s?.succeeded, failed: s?.failed });

describe('NodeRemedier status and the Machine replacement condition on a real apiserver', () => {
  let cluster: Cluster;
  let sim: BmcSim;
  let fleet: Fleet;
  let controller: Controller | undefined;
  let watch: Informer<RemedierObj> | undefined;
  /** Every status the apiserver sent for NodeRemedier s, in order: each is one write. */
  const writes: Counts[] = [];
  const machines = ['s-0', 's-1', 's-2'];

  const start = async (): Promise<Controller> => {
    const c = new Controller({ kubeconfig: cluster.adminKubeconfig, leaderElect: false, namespace: NS, listen: '127.0.0.1:0', remedySweepMs: 300, remedyRetryMs: 500, remedyStatusEveryMs: EVERY_MS }, log);
    await c.start();
    await until('the controller leads with synced caches', () => c.remedies !== undefined, 30_000);
    return c;
  };
  const status = async (): Promise<RemedierObj> => must<RemedierObj>(cluster, 'GET', REMEDIER);
  const machine = (name: string) => must<MachineObj>(cluster, 'GET', `/apis/kubenode.io/v1alpha1/machines/${name}`);
  const replacement = async (name: string) => (await machine(name)).status?.conditions?.find((c) => c.type === 'ReplacementRequested');

  before(async () => {
    cluster = await startCluster({ agents: 1 });
    await installCrds(cluster);
    await ensureNamespace(cluster, NS);
    sim = await startBmcSim(machines);
    await must(cluster, 'POST', `/api/v1/namespaces/${NS}/secrets`, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'bmc' }, stringData: { username: BMC_USER, password: BMC_PASSWORD } });
    fleet = new Fleet(cluster, sim);
    for (const m of machines) await fleet.add(m, 's', { address: `127.0.0.1:${sim.port(m)}`, credentialsSecret: { name: 'bmc' } });
    fleet.start();
    const kc = await loadKubeConfig({ kubeconfig: cluster.adminKubeconfig });
    watch = new Informer<RemedierObj>({ client: createKubeClient(kc), kubeConfig: kc, resource: { group: 'kubenode.io', version: 'v1alpha1', plural: 'noderemediers' }, log });
    watch.on((e) => {
      if (e.type === 'update' && e.object.metadata.name === 's' && JSON.stringify(e.old.status) !== JSON.stringify(e.object.status)) writes.push(counts(e.object.status));
    });
    watch.start();
    await watch.waitForSync();
  });
  after(async () => {
    await controller?.stop();
    await watch?.stop();
    await fleet?.stop();
    await sim?.stop();
    if (sim !== undefined) removeSim(sim);
    await cluster?.stop();
  });

  it('counts the nodes and operations, during and after a run, in few writes and none at steady state', async () => {
    // s-1 comes back after its power cycle; s-2 never does and is marked for replacement.
    fleet.neverBoot.add('s-2');
    await remedier(cluster, 's', central([{ action: 'cordon', timeout: '1m' }, { action: 'power-cycle', timeout: '15s' }, { action: 'replace' }]));
    controller = await start();
    await until('the matched nodes are counted', async () => (await status()).status?.matchedNodes === 3, 30_000);
    assert.deepEqual(counts((await status()).status), { matchedNodes: 3, activeOperations: 0, succeeded: 0, failed: 0 });
    const first = await status();
    assert.equal(first.status?.observedGeneration, (first.metadata as { generation?: number }).generation);

    await fleet.kill('s-1');
    await fleet.kill('s-2');
    // The count is written at most once per EVERY_MS, so the operation it counts may have finished
    // (and the next step not yet begun) by the time the list is read: both are asked until both stand.
    await until('an operation is counted active while one is unfinished', async () => {
      const unfinished = (await ops(cluster)).some((o) => !['Succeeded', 'Failed', 'Skipped', 'Denied'].includes(o.status?.phase ?? 'Pending'));
      return unfinished && ((await status()).status?.activeOperations ?? 0) >= 1;
    }, 60_000);

    await until('s-2 is marked for replacement', async () => (await replacement('s-2'))?.status === 'True', 120_000);
    await until('the run is counted', async () => {
      const c = counts((await status()).status);
      return c.activeOperations === 0 && c.succeeded === 3 && c.failed === 2;
    }, 30_000).catch(async (err: unknown) => {
      throw new Error(`${String(err)}: status ${JSON.stringify((await status()).status)}; ops ${JSON.stringify((await ops(cluster)).map((o) => [o.spec.node, o.spec.action, o.status?.phase, o.status?.result]))}`);
    });
    // s-1: cordon and power cycle (Fixed) succeeded; s-2: cordon succeeded, the power cycle failed, replace ended NotFixed.
    const list = await ops(cluster);
    assert.equal(list.length, 5);
    assert.equal(list.filter((o) => o.status?.phase === 'Succeeded' && o.status.result !== 'NotFixed').length, 3);

    // A burst of 20 operations (agents' records, as many nodes at once) is a handful of writes, not 20.
    const before = writes.length;
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        must(cluster, 'POST', OPS, {
          apiVersion: 'kubenode.io/v1alpha1',
          kind: 'RemedyOperation',
          metadata: { name: `burst-${i}`, labels: { 'kubenode.io/node': `s-0` } },
          spec: { node: 's-0', problem: { conditionType: 'KernelDeadlock', reason: 'TaskHung', message: '' }, action: 'restart-kubelet', risk: 'disruptive', remedier: 's', rule: 's/kernel', step: 0, dryRun: false },
        }),
      ),
    );
    await until('the burst is counted', async () => (await status()).status?.activeOperations === 20, 30_000);
    const burst = writes.length - before;
    assert.ok(burst >= 1 && burst <= 4, `20 new operations in ${burst} status writes (one per ${EVERY_MS} ms at most)`);
    assert.deepEqual(writes.at(-1), { matchedNodes: 3, activeOperations: 20, succeeded: 3, failed: 2 });

    // Steady state: several sweeps and coalescing windows, not one write.
    const rv = (await status()).metadata.resourceVersion;
    const quiet = writes.length;
    await new Promise((r) => setTimeout(r, 2.5 * EVERY_MS));
    assert.equal((await status()).metadata.resourceVersion, rv, 'no write at steady state');
    assert.equal(writes.length, quiet);

    const table = await cluster.kubectl(['get', 'noderemediers']);
    assert.equal(table.code, 0, table.stderr);
    const [header, row] = table.stdout.trim().split('\n');
    assert.match(header ?? '', /^NAME\s+RULES\s+NODES\s+ACTIVE\s+SUCCEEDED\s+FAILED\s+BREAKER\s+PAUSED\s+AGE$/);
    assert.match(row ?? '', /^s\s+3\s+20\s+3\s+2\s+Closed\s+false\s+\S+$/, 'no rules (blank), 3 nodes, 20 active, 3 succeeded, 2 failed, breaker Closed');
  });

  it('after a controller restart the counts stand, and what changed while nobody led is counted', async () => {
    assert.ok(controller !== undefined);
    await controller.stop();
    controller = undefined;
    const held = await status();
    // While no controller runs, agents finish some of their operations.
    const end = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    for (const [i, phase, result] of [[0, 'Succeeded', 'Fixed'], [1, 'Succeeded', 'Fixed'], [2, 'Failed', 'NotFixed']] as const) {
      const r = await cluster.request('PATCH', `${OPS}/burst-${i}/status`, { body: { status: { phase, result, startTime: end, endTime: end, gate: { gate: 'local', allowed: true, decidedAt: end } } }, headers: MERGE_PATCH });
      assert.equal(r.status, 200, r.body);
    }
    assert.deepEqual(counts((await status()).status), counts(held.status), 'nobody wrote while no controller ran');
    controller = await start();
    await until('the new leader counts what happened', async () => {
      const c = counts((await status()).status);
      return c.activeOperations === 17 && c.succeeded === 5 && c.failed === 3;
    }, 30_000);
    assert.equal((await status()).status?.matchedNodes, 3);
    const rv = (await status()).metadata.resourceVersion;
    await new Promise((r) => setTimeout(r, 2.5 * EVERY_MS));
    assert.equal((await status()).metadata.resourceVersion, rv, 'no write at steady state after the restart');
    // A relabelled node moves matchedNodes.
    const r = await cluster.request('PATCH', '/api/v1/nodes/s-0', { body: { metadata: { labels: { pool: 'elsewhere' } } }, headers: MERGE_PATCH });
    assert.equal(r.status, 200, r.body);
    await until('the relabelled node is no longer counted', async () => (await status()).status?.matchedNodes === 2, 30_000);
  });

  it('marks the Machine ReplacementRequested for people and automation, and clears it when the request is withdrawn', async () => {
    assert.ok(controller !== undefined);
    const c = await replacement('s-2');
    assert.ok(c !== undefined);
    assert.equal(c.status, 'True');
    assert.equal(c.reason, 'AgentUnreachable');
    assert.match(c.message, /agent unreachable since .*NodeRemedier s tried every central step.*remove annotation kubenode\.io\/replace to withdraw/);
    assert.ok(Number.isFinite(Date.parse(c.lastTransitionTime)));
    const m = await machine('s-2');
    assert.match(m.metadata.annotations?.['kubenode.io/replace'] ?? '', /NodeRemedier s/);
    // Written under its own manager: the lifecycle's conditions stay beside it.
    assert.ok(m.metadata.managedFields?.some((f) => f.manager === 'kubenode-controller-remedy' && f.subresource === 'status'), JSON.stringify(m.metadata.managedFields?.map((f) => f.manager)));
    assert.ok(m.status?.conditions?.some((x) => x.type === 'NodeRegistered'), 'the lifecycle conditions are kept');
    // Selectable as a person or a script would: kubectl wait on the condition, a JSONPath filter.
    const waited = await cluster.kubectl(['wait', '--for=condition=ReplacementRequested', 'machine/s-2', '--timeout=10s']);
    assert.equal(waited.code, 0, waited.stderr);
    const listed = await cluster.kubectl(['get', 'machines', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="ReplacementRequested")].status}{"\\n"}{end}']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(listed.stdout.trim().split('\n').filter((l) => l.endsWith('=True')), ['s-2=True']);
    assert.match(listed.stdout, /^s-1=$/m, `the others have none: ${listed.stdout}`);

    // Marked, the node stays cordoned even though it comes back: a person decides.
    await fleet.revive('s-2');
    await new Promise((r) => setTimeout(r, 3000));
    const held = await must<NodeObj>(cluster, 'GET', '/api/v1/nodes/s-2');
    assert.equal(held.spec?.unschedulable, true, 'a Machine marked for replacement stays cordoned');

    // A person withdraws the request: the condition goes False, and the node, back, is handed back.
    const r = await cluster.request('PATCH', '/apis/kubenode.io/v1alpha1/machines/s-2', { body: { metadata: { annotations: { 'kubenode.io/replace': null, 'kubenode.io/replace-requested-at': null } } }, headers: MERGE_PATCH });
    assert.equal(r.status, 200, r.body);
    await until('the condition is cleared', async () => (await replacement('s-2'))?.status === 'False', 30_000);
    const cleared = await replacement('s-2');
    assert.equal(cleared?.reason, 'ReplacementWithdrawn');
    assert.notEqual(cleared?.lastTransitionTime, undefined);
    await until('s-2 uncordoned and untainted', async () => {
      const n = await must<NodeObj>(cluster, 'GET', '/api/v1/nodes/s-2');
      return n.spec?.unschedulable !== true && !(n.spec?.taints ?? []).some((t) => t.key === TAINT);
    }, 30_000);
    const events = await must<{ items: { reason: string; involvedObject: { kind: string; name: string } }[] }>(cluster, 'GET', '/api/v1/namespaces/default/events');
    assert.ok(events.items.some((e) => e.reason === 'ReplacementWithdrawn' && e.involvedObject.kind === 'Machine' && e.involvedObject.name === 's-2'));
  });

  it('a node name longer than a label value: one cordon, not one per pass, and handed back when it returns', async () => {
    assert.ok(controller !== undefined);
    const long = `l-${'0123456789'.repeat(7)}`;
    await fleet.add(long, 'l', undefined);
    await remedier(cluster, 'l', central([{ action: 'cordon', timeout: '1m' }]));
    await fleet.kill(long);
    await until('the long-named node is cordoned', async () => (await must<NodeObj>(cluster, 'GET', `/api/v1/nodes/${long}`)).spec?.unschedulable === true, 60_000);
    // The operation's Succeeded is written after the cordon and the taint: waited for, not assumed.
    await until('its cordon recorded as done', async () => (await ops(cluster)).some((o) => o.spec.node === long && o.status?.phase === 'Succeeded'), 30_000);
    // Passes go on (sweep 300 ms): a second cordon would show by now.
    await new Promise((r) => setTimeout(r, 3000));
    const list = (await ops(cluster)).filter((o) => o.spec.node === long);
    assert.deepEqual(list.map((o) => [o.spec.action, o.status?.phase, o.metadata.labels?.[NODE_LABEL]]), [['cordon', 'Succeeded', labelValueOf(long)]]);
    assert.equal((await must<{ status?: { attempts?: number } }>(cluster, 'GET', `${OPS}/${list[0]?.metadata.name ?? ''}`)).status?.attempts, 1, 'the cordon ran once');
    await fleet.revive(long);
    await until('the long-named node is handed back', async () => {
      const n = await must<NodeObj>(cluster, 'GET', `/api/v1/nodes/${long}`);
      return n.spec?.unschedulable !== true && !(n.spec?.taints ?? []).some((t) => t.key === TAINT);
    }, 30_000);
  });
});
