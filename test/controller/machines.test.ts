// The Machine lifecycle against a real apiserver, the controller in this process, the kubelet and
// the agent played by the test (Node status and MachineComponent status writes as they make them):
// phases and conditions through an import, nodeStartupTimeout, Node labels and taints the
// controller owns (and only those), the importing taint, a 409 looked at again.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Controller } from '../../src/controller/index.ts';
import { ANNOTATION_OWNED_LABELS, IMPORTING_TAINT, MachineLifecycle, type MachineObject, type NodeObject } from '../../src/controller/machines/lifecycle.ts';
import { MACHINE_FINALIZER } from '../../src/controller/machines/deletion.ts';
import { systemClock } from '../../src/host/clock.ts';
import { createLogger } from '../../src/log.ts';
import { startCluster, type Cluster } from '../harness/cluster.ts';
import { goodObjects, installCrds } from '../helpers/kube-objects.ts';
import { conditionOf, MACHINES_PATH, MC_PATH, MERGE_PATCH, type Condition } from '../helpers/kube-api.ts';
import { adminKube, ensureNamespace, must, setNodeReady, until } from './helpers.ts';

const log = createLogger(process.env.KUBENODE_TEST_LOG === '1' ? 'debug' : 'silent');
const NS = 'kubenode-system';

interface MachineView {
  status?: { lifecycle?: string; importedTime?: string; conditions?: Condition[] };
}
const machine = (cluster: Cluster, name: string): Promise<MachineView> => must<MachineView>(cluster, 'GET', `${MACHINES_PATH}/${name}`);
const node = (cluster: Cluster, name: string): Promise<NodeObject> => must<NodeObject>(cluster, 'GET', `/api/v1/nodes/${name}`);
const cache = <T>(m: Map<string, T>) => ({ get: (k: string) => m.get(k), snapshot: (): ReadonlyMap<string, T> => m });
/** The apiserver's TaintNodesByCondition admission adds node.kubernetes.io/not-ready to a new Node: foreign too, and kept. */
const taints = (n: NodeObject): string[] => (n.spec?.taints ?? []).filter((t) => !t.key.startsWith('node.kubernetes.io/')).map((t) => `${t.key}=${t.value ?? ''}:${t.effect}`).sort();
const eventsFor = async (cluster: Cluster, name: string): Promise<{ reason: string; type: string }[]> =>
  (await must<{ items: { reason: string; type: string; involvedObject: { kind: string; name: string } }[] }>(cluster, 'GET', '/api/v1/namespaces/default/events')).items.filter((e) => e.involvedObject.kind === 'Machine' && e.involvedObject.name === name);
const hasImportingTaint = (n: NodeObject): boolean => (n.spec?.taints ?? []).some((t) => t.key === IMPORTING_TAINT.key && t.effect === IMPORTING_TAINT.effect);

async function patch(cluster: Cluster, path: string, body: unknown): Promise<void> {
  const r = await cluster.request('PATCH', path, { body, headers: MERGE_PATCH });
  if (r.status !== 200) throw new Error(`PATCH ${path}: ${r.status} ${r.body.slice(0, 400)}`);
}

async function createMachine(cluster: Cluster, name: string, spec: Record<string, unknown>): Promise<void> {
  await must(cluster, 'POST', MACHINES_PATH, { apiVersion: 'kubenode.io/v1alpha1', kind: 'Machine', metadata: { name }, spec });
}

async function createNode(cluster: Cluster, name: string, metadata: Record<string, unknown> = {}, spec: Record<string, unknown> = {}): Promise<void> {
  await must(cluster, 'POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name, ...metadata }, spec });
}

describe('Machine lifecycle on a real apiserver', () => {
  let cluster: Cluster;
  let controller: Controller;

  before(async () => {
    cluster = await startCluster({ agents: 1 });
    await installCrds(cluster);
    await ensureNamespace(cluster, NS);
    controller = new Controller({ kubeconfig: cluster.adminKubeconfig, leaderElect: false, namespace: NS, listen: '127.0.0.1:0' }, log);
    await controller.start();
  });
  after(async () => {
    await controller?.stop();
    await cluster?.stop();
  });

  it('goes Pending → WaitingForNode → InstallingComponents → Running through an import; the importing taint appears and goes', async () => {
    await createMachine(cluster, 'imp', { labels: { 'kubenode.io/pool': 'gpu' }, components: ['node-exporter'] });
    await until('Pending', async () => (await machine(cluster, 'imp')).status?.lifecycle === 'Pending', 30_000);
    let m = await machine(cluster, 'imp');
    assert.equal(conditionOf(m, 'NodeRegistered')?.status, 'False');
    assert.equal(conditionOf(m, 'NodeRegistered')?.reason, 'NodeNotRegistered');
    assert.equal(conditionOf(m, 'Ready')?.status, 'False');

    await createNode(cluster, 'imp');
    await until('WaitingForNode', async () => (await machine(cluster, 'imp')).status?.lifecycle === 'WaitingForNode', 30_000);
    m = await machine(cluster, 'imp');
    assert.equal(conditionOf(m, 'NodeRegistered')?.status, 'True');
    assert.equal(conditionOf(m, 'NodeReady')?.reason, 'NodeStarting');
    let n = await node(cluster, 'imp');
    assert.equal(n.metadata.labels?.['kubenode.io/pool'], 'gpu');
    assert.ok(hasImportingTaint(n), 'importing taint while the components are not ready');

    await setNodeReady(cluster, 'imp', 'True');
    await until('InstallingComponents', async () => (await machine(cluster, 'imp')).status?.lifecycle === 'InstallingComponents', 30_000);
    m = await machine(cluster, 'imp');
    assert.equal(conditionOf(m, 'NodeReady')?.status, 'True');
    assert.equal(conditionOf(m, 'ComponentsReady')?.reason, 'ComponentsMissing');

    const mc = { ...goodObjects('imp').machinecomponents, metadata: { name: 'imp-node-exporter', labels: { 'kubenode.io/machine': 'imp' } } };
    const created = await must<Record<string, unknown> & { metadata: { generation: number } }>(cluster, 'POST', MC_PATH, mc);
    await until('ComponentsNotReady', async () => conditionOf(await machine(cluster, 'imp'), 'ComponentsReady')?.reason === 'ComponentsNotReady', 30_000);
    assert.ok(hasImportingTaint(await node(cluster, 'imp')), 'still tainted while a component installs');

    const at = new Date().toISOString();
    await must(cluster, 'PUT', `${MC_PATH}/imp-node-exporter/status`, {
      ...created,
      status: { phase: 'Installed', installedVersion: '1.8.2', observedGeneration: created.metadata.generation, updatedAt: at, history: [], conditions: [{ type: 'Ready', status: 'True', reason: 'Installed', message: '', lastTransitionTime: at }] },
    });
    await until('Running', async () => (await machine(cluster, 'imp')).status?.lifecycle === 'Running', 30_000);
    m = await machine(cluster, 'imp');
    for (const t of ['NodeRegistered', 'NodeReady', 'ComponentsReady', 'Ready']) assert.equal(conditionOf(m, t)?.status, 'True', t);
    assert.ok(m.status?.importedTime !== undefined);
    n = await node(cluster, 'imp');
    assert.ok(!hasImportingTaint(n), 'importing taint gone once the components are ready');
    await until('Imported event', async () => (await eventsFor(cluster, 'imp')).some((e) => e.reason === 'Imported' && e.type === 'Normal'), 30_000);

    // The agent's own status write (server-side apply, its manager) and the controller's keep each other's fields.
    const agentStatus = { apiVersion: 'kubenode.io/v1alpha1', kind: 'Machine', metadata: { name: 'imp' }, status: { phase: 'Ready', agentVersion: '0.1.0', conditions: [{ type: 'KernelDeadlock', status: 'False', reason: 'KernelHasNoDeadlock', message: '', lastTransitionTime: at.replace(/\.\d+Z$/, 'Z') }] } };
    const r = await cluster.request('PATCH', `${MACHINES_PATH}/imp/status?fieldManager=kubenode-agent&force=true`, { body: agentStatus, headers: { 'content-type': 'application/apply-patch+yaml' } });
    assert.equal(r.status, 200, r.body);
    m = await machine(cluster, 'imp');
    assert.equal(conditionOf(m, 'Ready')?.status, 'True', "the agent's write keeps the controller's conditions");

    // Imported: a component that stops being ready does not bring the taint back.
    await setNodeReady(cluster, 'imp', 'False');
    await until('NodeNotReady', async () => conditionOf(await machine(cluster, 'imp'), 'NodeReady')?.reason === 'NodeNotReady', 30_000);
    m = await machine(cluster, 'imp');
    assert.equal(m.status?.lifecycle, 'WaitingForNode');
    assert.equal(conditionOf(m, 'Ready')?.status, 'False');
    assert.ok(!hasImportingTaint(await node(cluster, 'imp')));
    assert.equal(conditionOf(m, 'KernelDeadlock')?.reason, 'KernelHasNoDeadlock', "the controller's write keeps the agent's conditions");
    assert.equal((m.status as { phase?: string }).phase, 'Ready');

    // kubectl get shows the lifecycle and Ready next to the agent's phase.
    const table = await cluster.request('GET', MACHINES_PATH, { headers: { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' } });
    const t = JSON.parse(table.body) as { columnDefinitions: { name: string }[]; rows: { cells: unknown[]; object: { metadata: { name: string } } }[] };
    const names = t.columnDefinitions.map((c) => c.name);
    const row = t.rows.find((x) => x.cells[0] === 'imp');
    assert.ok(row, table.body);
    assert.equal(row.cells[names.indexOf('Lifecycle')], 'WaitingForNode');
    assert.equal(row.cells[names.indexOf('Ready')], 'False');
    assert.equal(row.cells[names.indexOf('Phase')], 'Ready');
  });

  it('sets NodeReady=False NodeStartupTimeout when the Node does not come up within nodeStartupTimeout', async () => {
    await createMachine(cluster, 'slow', { nodeStartupTimeout: '2s' });
    await until('NodeStartupTimeout', async () => conditionOf(await machine(cluster, 'slow'), 'NodeReady')?.reason === 'NodeStartupTimeout', 30_000);
    const m = await machine(cluster, 'slow');
    assert.equal(conditionOf(m, 'NodeReady')?.status, 'False');
    assert.match(conditionOf(m, 'NodeReady')?.message ?? '', /nodeStartupTimeout 2s/);
    assert.equal(conditionOf(m, 'Ready')?.reason, 'NodeNotRegistered');
    await until('NodeStartupTimeout event', async () => (await eventsFor(cluster, 'slow')).some((e) => e.reason === 'NodeStartupTimeout' && e.type === 'Warning'), 30_000);
  });

  it('refuses a nodeStartupTimeout that is not a duration', async () => {
    const r = await cluster.request('POST', MACHINES_PATH, { body: { apiVersion: 'kubenode.io/v1alpha1', kind: 'Machine', metadata: { name: 'bad-timeout' }, spec: { nodeStartupTimeout: 'soon' } } });
    assert.equal(r.status, 422, r.body);
    assert.match(r.body, /nodeStartupTimeout/);
  });

  it("keeps the Machine's labels and taints on the Node and never touches keys it did not set", async () => {
    await createNode(cluster, 'lt', { labels: { team: 'other' } }, { taints: [{ key: 'other.io/dedicated', value: 'x', effect: 'NoExecute' }] });
    await setNodeReady(cluster, 'lt', 'True');
    await createMachine(cluster, 'lt', { labels: { a: '1', b: '2' }, taints: [{ key: 'kubenode.io/gpu', value: 'true', effect: 'NoSchedule' }] });
    await until('Running', async () => (await machine(cluster, 'lt')).status?.lifecycle === 'Running', 30_000);
    let n = await node(cluster, 'lt');
    assert.equal(n.metadata.labels?.a, '1');
    assert.equal(n.metadata.labels?.b, '2');
    assert.equal(n.metadata.labels?.team, 'other');
    assert.equal(n.metadata.annotations?.[ANNOTATION_OWNED_LABELS], 'a,b');
    assert.deepEqual(taints(n), ['kubenode.io/gpu=true:NoSchedule', 'other.io/dedicated=x:NoExecute']);

    // Someone else labels the Node; the Machine drops b and its taint and corrects a.
    await patch(cluster, '/api/v1/nodes/lt', { metadata: { labels: { late: 'yes' } } });
    await patch(cluster, `${MACHINES_PATH}/lt`, { spec: { labels: { a: '3', b: null }, taints: [] } });
    await until('b removed', async () => (await node(cluster, 'lt')).metadata.labels?.b === undefined, 30_000);
    await until('taint removed', async () => !(await node(cluster, 'lt')).spec?.taints?.some((t) => t.key === 'kubenode.io/gpu'), 30_000);
    n = await node(cluster, 'lt');
    assert.equal(n.metadata.labels?.a, '3');
    assert.equal(n.metadata.labels?.team, 'other', 'a label set by someone else survives');
    assert.equal(n.metadata.labels?.late, 'yes', 'a label added later by someone else survives');
    assert.deepEqual(taints(n), ['other.io/dedicated=x:NoExecute'], 'a foreign taint survives');
    assert.ok(n.spec?.taints?.some((t) => t.key === 'node.kubernetes.io/not-ready'), "the apiserver's taint survives");
    assert.equal(n.metadata.annotations?.[ANNOTATION_OWNED_LABELS], 'a');

    // A foreign label removed from the Node by its owner is not put back; one the Machine asks for is.
    await patch(cluster, '/api/v1/nodes/lt', { metadata: { labels: { team: null, a: null } } });
    await until('a restored', async () => (await node(cluster, 'lt')).metadata.labels?.a === '3', 30_000);
    assert.equal((await node(cluster, 'lt')).metadata.labels?.team, undefined);
  });
});

describe('Machine lifecycle: a Node write that meets a newer Node', () => {
  let cluster: Cluster;

  before(async () => {
    cluster = await startCluster({ agents: 1 });
    await installCrds(cluster);
  });
  after(async () => {
    await cluster?.stop();
  });

  it('gets a 409, changes nothing, and applies on the next pass from the fresher Node', async () => {
    await createMachine(cluster, 'c1', { labels: { mine: 'yes' } });
    await createNode(cluster, 'c1');
    const stale = await node(cluster, 'c1');
    await patch(cluster, '/api/v1/nodes/c1', { metadata: { labels: { theirs: 'yes' } } });
    const { client } = await adminKube(cluster);
    const machines = new Map([['c1', await must<MachineObject>(cluster, 'GET', `${MACHINES_PATH}/c1`)]]);
    const nodes = new Map([['c1', stale]]);
    const lifecycle = new MachineLifecycle({ client, caches: { machines: cache(machines), nodes: cache(nodes), components: cache(new Map()) }, clock: systemClock, log, mayWrite: () => true });
    try {
      const again = await lifecycle.reconcile('c1');
      const held = await must<MachineObject & { metadata: { finalizers?: string[] } }>(cluster, 'GET', `${MACHINES_PATH}/c1`);
      assert.deepEqual(held.metadata.finalizers, [MACHINE_FINALIZER], 'the deletion finalizer is put on in the same pass');
      machines.set('c1', held);
      assert.ok(again !== undefined && again > 0, 'looked at again soon');
      let n = await node(cluster, 'c1');
      assert.equal(n.metadata.labels?.mine, undefined, 'nothing written from the stale Node');
      assert.equal(n.metadata.labels?.theirs, 'yes');

      nodes.set('c1', await node(cluster, 'c1'));
      await lifecycle.reconcile('c1');
      n = await node(cluster, 'c1');
      assert.equal(n.metadata.labels?.mine, 'yes');
      assert.equal(n.metadata.labels?.theirs, 'yes', 'the concurrent write survives');
      assert.equal((await machine(cluster, 'c1')).status?.lifecycle, 'Importing');
    } finally {
      client.close();
    }
  });
});
