// Retiring a Machine on a real apiserver and a real kube-controller-manager (its disruption
// controller keeps the PodDisruptionBudget's status): the Node is cordoned and drained with the
// budget honoured, the component is uninstalled by a real agent (the project's installer on the
// agent's own identity, into a sandbox root), the Node is deleted, and the Machine goes. The
// controller is restarted mid-drain and carries on. An agent that never answers: the deletion
// says it is stalled and waits, until kubenode.io/force-delete=true.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { UNINSTALL_FINALIZER } from '../../src/api/common.ts';
import { validateConfig } from '../../src/config/load.ts';
import { Controller } from '../../src/controller/index.ts';
import { ANNOTATION_FORCE_DELETE, DELETION_POLL_MAX_MS, DELETION_POLL_MS, deletionPollMs, MACHINE_FINALIZER, MachineDeletion } from '../../src/controller/machines/deletion.ts';
import type { MachineObject, NodeObject } from '../../src/controller/machines/lifecycle.ts';
import { createHost } from '../../src/host/host.ts';
import { createInstallContext } from '../../src/installers/context.ts';
import { createKubeClient, loadKubeConfig } from '../../src/kube/client.ts';
import { startKubeInstaller } from '../../src/installers/kube-source.ts';
import type { InstallReconciler } from '../../src/installers/reconciler.ts';
import { createLogger } from '../../src/log.ts';
import { CORDONED_BY } from '../../src/remedies/node-ops.ts';
import { allowAll } from '../../src/risk/gate.ts';
import { startCluster, type Cluster } from '../harness/cluster.ts';
import { grantAgentRbac, installCrds } from '../helpers/kube-objects.ts';
import { conditionOf, MACHINES_PATH, MC_PATH, MERGE_PATCH, type Condition } from '../helpers/kube-api.ts';
import { makeSandbox, makeTar, sha256, startArtifactServer, type ArtifactServer } from '../installers/helpers.ts';
import { agentKube } from '../watch/helpers.ts';
import { ensureNamespace, must, setNodeReady, until } from './helpers.ts';

const log = createLogger(process.env.KUBENODE_TEST_LOG === '1' ? 'debug' : 'silent');
const NS = 'kubenode-system';
const APPS = 'retire';

interface MachineView {
  metadata: { finalizers?: string[]; deletionTimestamp?: string };
  status?: { lifecycle?: string; conditions?: Condition[] };
}
interface PodView {
  metadata: { name: string; deletionTimestamp?: string };
  spec: { nodeName?: string };
}

const demo = (): Buffer =>
  makeTar([
    { path: 'demo-1.0.0/', type: 'Directory' },
    { path: 'demo-1.0.0/bin/', type: 'Directory' },
    { path: 'demo-1.0.0/bin/demo', mode: 0o755, content: '#!/bin/sh\nexit 0\n' },
  ]);

describe('a Machine deleted: drained (PDB respected), uninstalled by its agent, Node removed', () => {
  let cluster: Cluster;
  let artifacts: ArtifactServer;
  let controller: Controller;
  let reconciler: InstallReconciler | undefined;
  let kubelet: { stop: () => Promise<void> } | undefined;
  let root: string;

  const get = async <T>(p: string): Promise<T | undefined> => {
    const r = await cluster.request('GET', p);
    if (r.status === 404) return undefined;
    if (r.status !== 200) throw new Error(`GET ${p}: ${r.status} ${r.body.slice(0, 300)}`);
    return JSON.parse(r.body) as T;
  };
  const machine = (name: string): Promise<MachineView | undefined> => get<MachineView>(`${MACHINES_PATH}/${name}`);
  const pods = async (): Promise<PodView[]> => (await must<{ items: PodView[] }>(cluster, 'GET', `/api/v1/namespaces/${APPS}/pods`)).items;
  const events = async (name: string): Promise<{ reason: string; type: string; message: string }[]> =>
    (await must<{ items: { reason: string; type: string; message: string; involvedObject: { kind: string; name: string } }[] }>(cluster, 'GET', '/api/v1/namespaces/default/events')).items.filter((e) => e.involvedObject.kind === 'Machine' && e.involvedObject.name === name);
  const startController = async (): Promise<Controller> => {
    const c = new Controller({ kubeconfig: cluster.adminKubeconfig, leaderElect: false, namespace: NS, listen: '127.0.0.1:0' }, log);
    await c.start();
    return c;
  };
  const createNode = async (name: string): Promise<void> => {
    await must(cluster, 'POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name } });
    await setNodeReady(cluster, name, 'True');
  };
  /** A pod bound to a node, Running and Ready as a kubelet would report it (the Eviction API ignores PDBs for pods not Ready). */
  const runPod = async (name: string, nodeName: string, app = 'web'): Promise<void> => {
    await must(cluster, 'POST', `/api/v1/namespaces/${APPS}/pods`, { metadata: { name, namespace: APPS, labels: { app } }, spec: { nodeName, containers: [{ name: 'c', image: 'registry.invalid/web:1' }] } });
    const cur = await must<Record<string, unknown>>(cluster, 'GET', `/api/v1/namespaces/${APPS}/pods/${name}`);
    const at = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    await must(cluster, 'PUT', `/api/v1/namespaces/${APPS}/pods/${name}/status`, { ...cur, status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: at }] } });
  };
  /** The kubelet's part of an eviction: a terminating pod goes once its containers stop. */
  const startKubelet = (): { stop: () => Promise<void> } => {
    let running = true;
    const loop = (async () => {
      while (running) {
        for (const p of await pods()) {
          if (p.metadata.deletionTimestamp === undefined) continue;
          const r = await cluster.request('DELETE', `/api/v1/namespaces/${APPS}/pods/${p.metadata.name}?gracePeriodSeconds=0`);
          if (r.status !== 200 && r.status !== 404) throw new Error(`kubelet stand-in: DELETE ${p.metadata.name}: ${r.status} ${r.body}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    return {
      stop: async () => {
        running = false;
        await loop;
      },
    };
  };

  before(async () => {
    cluster = await startCluster({ agents: 2, controllerManager: true });
    await installCrds(cluster);
    await grantAgentRbac(cluster);
    await ensureNamespace(cluster, NS);
    await ensureNamespace(cluster, APPS);
    artifacts = await startArtifactServer();
    artifacts.put('demo-1.0.0.tar.gz', demo());
    controller = await startController();
  });
  after(async () => {
    await kubelet?.stop();
    await reconciler?.stop();
    await controller?.stop();
    await artifacts?.close();
    await cluster?.stop();
  });

  it('cordons, drains within the budget (waiting while it says no, across a controller restart), uninstalls, deletes the Node, drops the finalizer', async () => {
    const name = 'node-0';
    await createNode(name);
    await createNode('spare');
    await must(cluster, 'POST', MACHINES_PATH, { apiVersion: 'kubenode.io/v1alpha1', kind: 'Machine', metadata: { name }, spec: { deleteNode: true, components: ['demo'] } });
    await until('finalizer on the Machine', async () => (await machine(name))?.metadata.finalizers?.includes(MACHINE_FINALIZER) === true, 30_000);

    root = makeSandbox();
    const config = validateConfig('test', { nodeName: name, installers: { downloadBackoff: '20ms', lockTimeout: '2s' } });
    const ctx = createInstallContext(createHost({ root }), { installers: config.installers, stateDir: config.stateDir, nodeName: name }, log, { risk: allowAll });
    const { kc, client } = await agentKube(cluster, 0);
    reconciler = startKubeInstaller(ctx, { client, kubeConfig: kc, intervalMs: 600_000 }).reconciler;
    await must(cluster, 'POST', MC_PATH, {
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'MachineComponent',
      metadata: { name: `${name}-demo`, labels: { 'kubenode.io/machine': name } },
      spec: { component: 'demo', version: '1.0.0', source: { type: 'tarball', url: artifacts.url('demo-1.0.0.tar.gz'), sha256: sha256(demo()), stripComponents: 1 }, install: { links: [{ path: '/usr/local/bin/demo', target: 'bin/demo' }] } },
    });
    const installed = path.join(root, 'opt/kubenode/demo');
    await until('Running with demo installed', async () => (await machine(name))?.status?.lifecycle === 'Running', 60_000);
    assert.ok(existsSync(path.join(installed, 'current')), 'demo installed in the sandbox root');

    // Two pods on the node, one elsewhere; the budget lets one of the three go at a time.
    await runPod('web-1', name);
    await runPod('web-2', name);
    await runPod('web-3', 'spare');
    await must(cluster, 'POST', `/apis/policy/v1/namespaces/${APPS}/poddisruptionbudgets`, { metadata: { name: 'web', namespace: APPS }, spec: { minAvailable: 2, selector: { matchLabels: { app: 'web' } } } });
    await until('the disruption controller allows one', async () => (await must<{ status?: { disruptionsAllowed?: number } }>(cluster, 'GET', `/apis/policy/v1/namespaces/${APPS}/poddisruptionbudgets/web`)).status?.disruptionsAllowed === 1, 60_000);
    kubelet = startKubelet();

    const r = await cluster.request('DELETE', `${MACHINES_PATH}/${name}`);
    assert.equal(r.status, 200, r.body);
    await until('drain blocked by the budget', async () => conditionOf(await machine(name), 'Drained')?.reason === 'DrainBlocked', 60_000);
    let m = await machine(name);
    assert.equal(m?.status?.lifecycle, 'Deleting');
    assert.equal(conditionOf(m, 'Ready')?.reason, 'Deleting');
    assert.match(conditionOf(m, 'Drained')?.message ?? '', /PodDisruptionBudget/);
    assert.equal(conditionOf(m, 'ComponentsRemoved')?.reason, 'WaitingForDrain');
    const onNode = async (): Promise<string[]> => (await pods()).filter((p) => p.spec.nodeName === name).map((p) => p.metadata.name);
    await until('one of the two pods evicted (and gone)', async () => (await onNode()).length === 1, 30_000);
    // Several passes later the other is still there: the budget holds it.
    await new Promise((r) => setTimeout(r, 6000));
    assert.equal((await onNode()).length, 1, 'the budget holds the second pod');
    assert.equal(conditionOf(await machine(name), 'Drained')?.reason, 'DrainBlocked');
    const node = await must<{ spec: { unschedulable?: boolean }; metadata: { annotations?: Record<string, string> } }>(cluster, 'GET', `/api/v1/nodes/${name}`);
    assert.equal(node.spec.unschedulable, true, 'cordoned');
    assert.equal(node.metadata.annotations?.[CORDONED_BY], 'kubenode-agent');
    assert.ok(existsSync(path.join(installed, 'current')), 'nothing uninstalled before the drain is done');
    assert.ok((await get(`${MC_PATH}/${name}-demo`)) !== undefined, 'the component stays while the node drains');

    // A controller restart in the middle: the new one reads where things are and goes on.
    await controller.stop();
    controller = await startController();

    // The evicted pod's replacement comes up elsewhere: the budget allows one more.
    await runPod('web-4', 'spare');
    await until('Machine gone', async () => (await machine(name)) === undefined, 120_000);
    assert.deepEqual((await pods()).filter((p) => p.spec.nodeName === name), [], 'drained');
    assert.equal(existsSync(path.join(installed, 'current')), false, 'demo uninstalled by the agent');
    assert.equal(existsSync(path.join(root, 'usr/local/bin/demo')), false, 'its link removed');
    assert.equal(await get(`${MC_PATH}/${name}-demo`), undefined, 'MachineComponent gone');
    assert.equal(await get(`/api/v1/nodes/${name}`), undefined, 'Node deleted (spec.deleteNode)');
    const ev = await events(name);
    assert.ok(ev.some((e) => e.reason === 'NodeDeleted' && e.type === 'Normal'), JSON.stringify(ev));
    assert.ok(!ev.some((e) => e.reason === 'DeletionStalled'), 'no stall reported within the timeout');
    await kubelet.stop();
    kubelet = undefined;
  });

  it('an agent that never uninstalls: RemovalTimeout after deletionTimeout, a Warning Event, still waiting; force-delete goes on and keeps the Node', async () => {
    const name = 'node-1';
    await createNode(name);
    await must(cluster, 'POST', MACHINES_PATH, { apiVersion: 'kubenode.io/v1alpha1', kind: 'Machine', metadata: { name }, spec: { deletionTimeout: '3s' } });
    await must(cluster, 'POST', MC_PATH, {
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'MachineComponent',
      metadata: { name: `${name}-demo`, labels: { 'kubenode.io/machine': name } },
      spec: { component: 'demo', version: '1.0.0', source: { type: 'tarball', url: artifacts.url('demo-1.0.0.tar.gz'), sha256: sha256(demo()), stripComponents: 1 } },
    });
    await until('finalizer on the Machine', async () => (await machine(name))?.metadata.finalizers?.includes(MACHINE_FINALIZER) === true, 30_000);
    assert.equal((await cluster.request('DELETE', `${MACHINES_PATH}/${name}`)).status, 200);
    await until('RemovalTimeout', async () => conditionOf(await machine(name), 'ComponentsRemoved')?.reason === 'RemovalTimeout', 60_000);
    const m = await machine(name);
    assert.equal(conditionOf(m, 'Drained')?.status, 'True');
    assert.match(conditionOf(m, 'ComponentsRemoved')?.message ?? '', /node-1-demo.*deletionTimeout 3s.*kubenode\.io\/force-delete=true/);
    const mc = await get<{ metadata: { finalizers?: string[]; deletionTimestamp?: string } }>(`${MC_PATH}/${name}-demo`);
    assert.ok(mc?.metadata.deletionTimestamp !== undefined, 'the component is deleted');
    assert.deepEqual(mc?.metadata.finalizers, [UNINSTALL_FINALIZER], 'held for the agent');
    await until('DeletionStalled event', async () => (await events(name)).some((e) => e.reason === 'DeletionStalled' && e.type === 'Warning' && /RemovalTimeout|not reported/.test(e.message)), 30_000);
    assert.ok((await machine(name)) !== undefined, 'still waiting: nothing is left unmanaged without a person saying so');

    const p = await cluster.request('PATCH', `${MACHINES_PATH}/${name}`, { body: { metadata: { annotations: { [ANNOTATION_FORCE_DELETE]: 'true' } } }, headers: MERGE_PATCH });
    assert.equal(p.status, 200, p.body);
    await until('Machine gone', async () => (await machine(name)) === undefined, 60_000);
    assert.equal(await get(`${MC_PATH}/${name}-demo`), undefined);
    const n = await get<{ spec: { unschedulable?: boolean } }>(`/api/v1/nodes/${name}`);
    assert.ok(n !== undefined, 'Node kept: deleteNode is false');
    assert.equal(n.spec.unschedulable, true, 'left cordoned: the machine was retired');
  });

  it('a waiting deletion lists the node\'s pods once a pass, none once drained, and looks again less often the longer it waits', async () => {
    const name = 'node-2';
    await createNode(name);
    await must(cluster, 'POST', `/apis/policy/v1/namespaces/${APPS}/poddisruptionbudgets`, { metadata: { name: 'held', namespace: APPS }, spec: { minAvailable: 1, selector: { matchLabels: { app: 'held' } } } });
    await runPod('held-1', name, 'held');
    await until('the budget allows none', async () => (await must<{ status?: { disruptionsAllowed?: number; currentHealthy?: number } }>(cluster, 'GET', `/apis/policy/v1/namespaces/${APPS}/poddisruptionbudgets/held`)).status?.currentHealthy === 1, 60_000);

    // The deletion's passes, run directly (not a Machine the controller sees) on a client that counts.
    const lists: string[] = [];
    const client = createKubeClient(await loadKubeConfig({ kubeconfig: cluster.adminKubeconfig }), { observe: (verb, p) => void (verb === 'GET' && p.startsWith('/api/v1/pods') && lists.push(p)) });
    const deletion = new MachineDeletion({ client, log, now: () => Date.now() });
    const deletedAt = new Date(Date.now() - 1000).toISOString();
    const gone: MachineObject = { metadata: { name, uid: 'not-a-stored-machine', deletionTimestamp: deletedAt, finalizers: [MACHINE_FINALIZER] }, spec: { deletionTimeout: '1h' } } as unknown as MachineObject;
    const node = async (): Promise<NodeObject> => must<NodeObject>(cluster, 'GET', `/api/v1/nodes/${name}`);
    const pass = async (m: MachineObject = gone): Promise<Awaited<ReturnType<MachineDeletion['step']>>> => {
      lists.length = 0;
      return deletion.step(m, await node(), []);
    };

    let r = await pass();
    assert.equal(r.drained.reason, 'DrainBlocked', r.drained.message);
    assert.equal(lists.length, 1, `a pass that finds every pod held by its budget lists once: ${lists.join(', ')}`);
    assert.equal(r.wakeIn, DELETION_POLL_MS);
    r = await pass();
    assert.equal(r.drained.reason, 'DrainBlocked');
    assert.equal(lists.length, 1, 'and so does the next');

    // The budget goes: the pod is evicted (a list to see what is left), then gone (the kubelet's part).
    await must(cluster, 'DELETE', `/apis/policy/v1/namespaces/${APPS}/poddisruptionbudgets/held`);
    await until('the eviction goes through', async () => {
      r = await pass();
      return r.drained.reason !== 'DrainBlocked';
    });
    assert.equal(r.drained.reason, 'Draining', r.drained.message);
    assert.match(r.drained.message, /held-1 \(evicted; terminating\)/);
    assert.equal(lists.length, 2, `an evicting pass lists, evicts, lists again: ${lists.join(', ')}`);
    await must(cluster, 'DELETE', `/api/v1/namespaces/${APPS}/pods/held-1?gracePeriodSeconds=0`);
    r = await pass();
    assert.equal(r.drained.reason, 'Drained', r.drained.message);
    assert.equal(lists.length, 1);
    assert.equal(r.done, true, 'no components and no Node to delete: the finalizer goes (this Machine is not stored: its 404 is done)');

    // Drained recorded: the passes that wait on the uninstall list no pods at all...
    const drained = { ...gone, status: { conditions: [{ type: 'Drained', status: 'True', reason: 'Drained', message: r.drained.message, lastTransitionTime: deletedAt }] } } as unknown as MachineObject;
    r = await pass(drained);
    assert.deepEqual(lists, []);
    assert.equal(r.drained.reason, 'Drained');
    // ...unless someone uncordoned the node: then it is cordoned and drained again.
    const p = await cluster.request('PATCH', `/api/v1/nodes/${name}`, { body: { spec: { unschedulable: false } }, headers: MERGE_PATCH });
    assert.equal(p.status, 200, p.body);
    r = await pass(drained);
    assert.equal(lists.length, 1);
    assert.equal((await node() as { spec?: { unschedulable?: boolean } }).spec?.unschedulable, true, 'cordoned again');

    // The longer it waits, the less often it looks: 5 s at first, a tenth of the wait later, at most 30 s.
    assert.equal(deletionPollMs(0), DELETION_POLL_MS);
    assert.equal(deletionPollMs(50_000), DELETION_POLL_MS);
    assert.equal(deletionPollMs(120_000), 12_000);
    assert.equal(deletionPollMs(3_600_000), DELETION_POLL_MAX_MS);
    await must(cluster, 'POST', `/apis/policy/v1/namespaces/${APPS}/poddisruptionbudgets`, { metadata: { name: 'held', namespace: APPS }, spec: { minAvailable: 1, selector: { matchLabels: { app: 'held' } } } });
    const longAgo = { ...gone, metadata: { ...gone.metadata, deletionTimestamp: new Date(Date.now() - 600_000).toISOString() } } as unknown as MachineObject;
    await runPod('held-2', name, 'held');
    r = await pass(longAgo);
    assert.notEqual(r.drained.status, 'True');
    assert.equal(r.wakeIn, DELETION_POLL_MAX_MS, 'a deletion waiting 10 minutes looks again in 30 s');
  });
});
