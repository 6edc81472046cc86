// The per-node coordination Lease between rollouts and central remedies, against a real
// apiserver: several rollouts holding one node (the node is handed back only when the last lets
// go), claims that cost one write with the informer's cache, optimistic concurrency between
// racing claimants, releases read from the Leases themselves (so a restarted controller hands
// back what its predecessor held), and a deferred batch that goes on when the remedy's Lease is
// released, through the watch.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Controller } from '../../src/controller/index.ts';
import { COORDINATION_SELECTOR, HOLDERS_ANNOTATION, nodeLeaseName, NodeCoordinator, type CoordinationLease } from '../../src/controller/remedy/coordination.ts';
import { systemClock } from '../../src/host/clock.ts';
import { createKubeClient, loadKubeConfig } from '../../src/kube/client.ts';
import { createLogger } from '../../src/log.ts';
import { Informer } from '../../src/watch/informer.ts';
import type { Cluster } from '../harness/cluster.ts';
import { MC_PATH, MCS_PATH } from '../helpers/kube-api.ts';
import { listMcs, must, rolloutCluster, type Mc, type SimulatedAgents, until } from './helpers.ts';

const log = createLogger(process.env.KUBENODE_TEST_LOG === '1' ? 'debug' : 'silent');
const NS = 'kubenode-system';
const SHA = 'd'.repeat(64);
const LEASES = `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases`;

const lease = async (cluster: Cluster, node: string): Promise<CoordinationLease | undefined> => {
  const r = await cluster.request('GET', `${LEASES}/${nodeLeaseName(node)}`);
  return r.status === 404 ? undefined : (JSON.parse(r.body) as CoordinationLease);
};
/** The holders the Lease records as holding now (its holderIdentity empty: none). */
const holders = async (cluster: Cluster, node: string): Promise<string[]> => {
  const l = await lease(cluster, node);
  if (l === undefined || (l.spec?.holderIdentity ?? '') === '') return [];
  const until = Date.parse(l.spec?.renewTime ?? '') + (l.spec?.leaseDurationSeconds ?? 0) * 1000;
  if (until <= Date.now()) return [];
  return Object.entries(JSON.parse(l.metadata.annotations?.[HOLDERS_ANNOTATION] ?? '{}') as Record<string, string>)
    .filter(([, at]) => Date.parse(at) > Date.now())
    .map(([h]) => h)
    .sort();
};

function set(name: string, pool: string, batches: (number | string)[]) {
  return {
    apiVersion: 'kubenode.io/v1alpha1',
    kind: 'MachineComponentSet',
    metadata: { name },
    spec: {
      selector: { matchLabels: { pool } },
      template: { spec: { component: name, version: '1.0.0', source: { type: 'binary', url: `https://example.com/${name}`, sha256: SHA } } },
      rollout: { batches, maxUnavailable: 10, bakeTime: '1s', progressDeadline: '10m' },
    },
  };
}

/** The agent's status for one MachineComponent: installed at its spec. */
async function report(cluster: Cluster, mc: Mc): Promise<void> {
  const at = new Date().toISOString();
  const status = { phase: 'Installed', installedVersion: mc.spec.version, observedGeneration: mc.metadata.generation, attemptedGeneration: mc.metadata.generation, updatedAt: at, history: [], conditions: [{ type: 'Ready', status: 'True', reason: 'Installed', message: '', lastTransitionTime: at }] };
  await must(cluster, 'PUT', `${MC_PATH}/${mc.metadata.name}/status`, { ...mc, status });
}
const mcsOf = async (cluster: Cluster, setName: string): Promise<Mc[]> => (await listMcs(cluster)).filter((m) => m.metadata.labels['kubenode.io/component-set'] === setName);
const phaseOf = async (cluster: Cluster, name: string): Promise<string | undefined> => (await must<{ status?: { phase?: string } }>(cluster, 'GET', `${MCS_PATH}/${name}`)).status?.phase;

describe('per-node coordination Leases (real apiserver)', () => {
  let cluster: Cluster;
  let agents: SimulatedAgents;
  const machines = ['n-0', 'n-1', 'n-2', 'n-3'];

  before(async () => {
    // No agents played in the background: each test reports exactly the components it means to.
    ({ cluster, agents } = await rolloutCluster(machines, NS));
    await agents.stop();
  });
  after(async () => {
    await cluster?.stop();
  });

  it('two rollouts hold one node: the first to let go leaves it held for the other, and a remedy is refused until the last is done', async () => {
    const kc = await loadKubeConfig({ kubeconfig: cluster.adminKubeconfig });
    const a = new NodeCoordinator(createKubeClient(kc), NS, systemClock, log);
    const b = new NodeCoordinator(createKubeClient(kc), NS, systemClock, log);
    assert.deepEqual(await a.claim('n-0', 'rollout/a', 600_000), { ok: true });
    assert.deepEqual(await b.claim('n-0', 'rollout/b', 60_000), { ok: true });
    assert.deepEqual(await holders(cluster, 'n-0'), ['rollout/a', 'rollout/b']);
    const l = (await lease(cluster, 'n-0')) as CoordinationLease;
    assert.equal(l.spec?.holderIdentity, 'rollout/a', 'the first holder stays named');
    assert.ok((l.spec?.leaseDurationSeconds ?? 0) >= 590, 'the Lease runs as long as its longest claim');

    await a.release('n-0', 'rollout/a');
    assert.deepEqual(await holders(cluster, 'n-0'), ['rollout/b']);
    assert.equal((await lease(cluster, 'n-0'))?.spec?.holderIdentity, 'rollout/b');
    const refused = await a.claim('n-0', 'remedy/r', 60_000);
    assert.equal(refused.ok, false);
    assert.equal(refused.ok ? '' : refused.holder, 'rollout/b');

    await b.release('n-0', 'rollout/b');
    assert.deepEqual(await holders(cluster, 'n-0'), []);
    assert.deepEqual(await a.claim('n-0', 'remedy/r', 60_000), { ok: true });
    // While the remedy has it, no rollout joins.
    const rollout = await b.claim('n-0', 'rollout/b', 60_000);
    assert.equal(rollout.ok ? '' : rollout.holder, 'remedy/r');
    await a.release('n-0', 'remedy/r');
    assert.deepEqual(await holders(cluster, 'n-0'), []);
  });

  it('racing claimants: two rollouts both land (no holder lost to a conflict); of a remedy and a rollout exactly one wins', async () => {
    const kc = await loadKubeConfig({ kubeconfig: cluster.adminKubeconfig });
    const make = (): NodeCoordinator => new NodeCoordinator(createKubeClient(kc), NS, systemClock, log);
    for (let i = 0; i < 5; i++) {
      const [x, y] = await Promise.all([make().claim('n-1', 'rollout/x', 60_000), make().claim('n-1', 'rollout/y', 60_000)]);
      assert.deepEqual([x, y], [{ ok: true }, { ok: true }]);
      assert.deepEqual(await holders(cluster, 'n-1'), ['rollout/x', 'rollout/y']);
      await Promise.all([make().release('n-1', 'rollout/x'), make().release('n-1', 'rollout/y')]);
      assert.deepEqual(await holders(cluster, 'n-1'), [], 'both releases landed');

      const [r, o] = await Promise.all([make().claim('n-1', 'remedy/r', 60_000), make().claim('n-1', 'rollout/x', 60_000)]);
      assert.equal([r, o].filter((c) => c.ok).length, 1, `one winner: ${JSON.stringify([r, o])}`);
      const winner = r.ok ? 'remedy/r' : 'rollout/x';
      assert.deepEqual(await holders(cluster, 'n-1'), [winner]);
      await make().release('n-1', winner);
    }
  });

  it('with the informer, a claim or release is one write (a POST where there is no Lease yet); only a stale cache costs a read', async () => {
    const kc = await loadKubeConfig({ kubeconfig: cluster.adminKubeconfig });
    const requests: string[] = [];
    const client = createKubeClient(kc, { observe: (verb) => requests.push(verb) });
    const cache = new Informer<CoordinationLease>({ client: createKubeClient(kc), kubeConfig: kc, resource: { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', namespace: NS }, labelSelector: COORDINATION_SELECTOR, log });
    cache.start();
    await cache.waitForSync();
    try {
      const c = new NodeCoordinator(client, NS, systemClock, log, cache);
      assert.equal(await lease(cluster, 'n-2'), undefined);
      assert.deepEqual(await c.claim('n-2', 'rollout/c', 60_000), { ok: true });
      assert.deepEqual(requests.splice(0), ['POST']);
      // At once, before the watch brought the Lease: read from what the POST returned.
      await c.release('n-2', 'rollout/c');
      assert.deepEqual(requests.splice(0), ['PUT']);
      await until('the cache has the release', () => (cache.get(`${NS}/${nodeLeaseName('n-2')}`)?.spec?.holderIdentity ?? 'x') === '');
      assert.deepEqual(await c.claim('n-2', 'rollout/c', 60_000), { ok: true });
      assert.deepEqual(requests.splice(0), ['PUT']);
      // Someone else writes it behind a cache that does not follow (one that stands still): the
      // stale write is refused, read again and retried; neither holder is lost.
      const key = `${NS}/${nodeLeaseName('n-2')}`;
      await until('the cache has the claim', () => cache.get(key)?.spec?.holderIdentity === 'rollout/c');
      const still = new Map([[key, cache.get(key) as CoordinationLease]]);
      const stale = new NodeCoordinator(client, NS, systemClock, log, { get: (k) => still.get(k), snapshot: () => still, on: () => undefined });
      const other = new NodeCoordinator(createKubeClient(kc), NS, systemClock, log);
      await other.claim('n-2', 'rollout/d', 60_000);
      requests.splice(0);
      assert.deepEqual(await stale.claim('n-2', 'rollout/c', 120_000), { ok: true });
      assert.deepEqual(requests.splice(0), ['PUT', 'GET', 'PUT']);
      assert.deepEqual(await holders(cluster, 'n-2'), ['rollout/c', 'rollout/d'], 'no holder lost');
      // A claim refused by a remedy the cache knows of costs nothing.
      await c.releaseExcept('rollout/c', new Set());
      await other.release('n-2', 'rollout/d');
      await other.claim('n-2', 'remedy/r', 60_000);
      await until('the cache has the remedy', () => cache.get(`${NS}/${nodeLeaseName('n-2')}`)?.spec?.holderIdentity === 'remedy/r');
      requests.splice(0);
      const refused = await c.claim('n-2', 'rollout/c', 60_000);
      assert.equal(refused.ok ? '' : refused.holder, 'remedy/r');
      assert.deepEqual(requests, []);
      await other.release('n-2', 'remedy/r');
    } finally {
      await cache.stop();
    }
  });

  it('what a set held is read from the Leases: a coordinator that never claimed (a restarted controller) hands back all but the active batch', async () => {
    const kc = await loadKubeConfig({ kubeconfig: cluster.adminKubeconfig });
    const before = new NodeCoordinator(createKubeClient(kc), NS, systemClock, log);
    for (const m of machines) assert.deepEqual(await before.claim(m, 'rollout/crashed', 600_000), { ok: true });
    await before.claim('n-3', 'rollout/other', 600_000);
    const restarted = new NodeCoordinator(createKubeClient(kc), NS, systemClock, log);
    await restarted.releaseExcept('rollout/crashed', new Set(['n-3']));
    for (const m of ['n-0', 'n-1', 'n-2']) assert.deepEqual(await holders(cluster, m), [], m);
    assert.deepEqual(await holders(cluster, 'n-3'), ['rollout/crashed', 'rollout/other']);
    await restarted.releaseExcept('rollout/crashed', new Set());
    assert.deepEqual(await holders(cluster, 'n-3'), ['rollout/other'], 'the other set keeps its hold');
    await restarted.release('n-3', 'rollout/other');
  });

  describe('with the controller', () => {
    let controller: Controller;
    let coord: NodeCoordinator;

    before(async () => {
      controller = new Controller({ kubeconfig: cluster.adminKubeconfig, leaderElect: false, namespace: NS, listen: '127.0.0.1:0' }, log);
      await controller.start();
      const kc = await loadKubeConfig({ kubeconfig: cluster.adminKubeconfig });
      coord = new NodeCoordinator(createKubeClient(kc), NS, systemClock, log);
    });
    after(async () => {
      await controller?.stop();
    });

    it('two sets share a node: the first set finishing leaves the node held for the second set\'s batch; a remedy defers until it is done', async () => {
      await must(cluster, 'POST', MCS_PATH, set('first', 'a', [1, '100%']));
      await must(cluster, 'POST', MCS_PATH, set('second', 'a', ['100%']));
      await until('both sets wrote their batches', async () => (await mcsOf(cluster, 'first')).length >= 1 && (await mcsOf(cluster, 'second')).length === machines.length, 60_000);
      const shared = (await mcsOf(cluster, 'first'))[0]?.metadata.labels['kubenode.io/machine'] as string;
      await until('both hold the shared node', async () => (await holders(cluster, shared)).join() === 'rollout/first,rollout/second', 30_000);
      // The agent reports the first set's components only: it completes; the second stays in its batch.
      await until('the first set completes', async () => {
        for (const mc of await mcsOf(cluster, 'first')) if (mc.status?.observedGeneration !== mc.metadata.generation) await report(cluster, mc);
        return (await phaseOf(cluster, 'first')) === 'Completed';
      }, 90_000);
      await until('the first set let go of its nodes', async () => {
        for (const m of machines) if ((await holders(cluster, m)).includes('rollout/first')) return false;
        return true;
      }, 30_000);
      assert.deepEqual(await holders(cluster, shared), ['rollout/second'], 'still held for the second set');
      const refused = await coord.claim(shared, 'remedy/r', 60_000);
      assert.equal(refused.ok ? '' : refused.holder, 'rollout/second', 'the remedy defers to the batch still on the node');
      for (const mc of await mcsOf(cluster, 'second')) await report(cluster, mc);
      await until('the second set completes', async () => (await phaseOf(cluster, 'second')) === 'Completed', 90_000);
      await until('the second set let go', async () => (await holders(cluster, shared)).length === 0, 30_000);
      assert.deepEqual(await coord.claim(shared, 'remedy/r', 60_000), { ok: true });
      await coord.release(shared, 'remedy/r');
      // No garbage collector runs here: the sets' components stay, and the next set installs another component.
      for (const name of ['first', 'second']) await must(cluster, 'DELETE', `${MCS_PATH}/${name}`);
    });

    it('a batch deferred by a remedy goes on when the remedy hands the node back (the watch), not when its claim would run out', async () => {
      // The remedy holds n-2 for 10 minutes; the rollout takes the others and defers n-2.
      assert.deepEqual(await coord.claim('n-2', 'remedy/r', 600_000), { ok: true });
      await must(cluster, 'POST', MCS_PATH, set('third', 'a', ['100%']));
      await until('n-2 deferred, the others written', async () => {
        const s = (await must<{ status?: { deferredMachines?: string[] } }>(cluster, 'GET', `${MCS_PATH}/third`)).status;
        return (s?.deferredMachines ?? []).some((d) => d.startsWith('n-2: under repair (node Lease held by remedy/r)')) && (await mcsOf(cluster, 'third')).length === machines.length - 1;
      }, 60_000);
      const released = Date.now();
      await coord.release('n-2', 'remedy/r');
      // Nothing else changes: no agent reports, no Node or Lease moves. The old 15 s re-check timer
      // would have come after this bound, and the claim would have run out after 10 minutes.
      await until('n-2 written after the release', async () => (await mcsOf(cluster, 'third')).some((m) => m.metadata.labels['kubenode.io/machine'] === 'n-2'), 10_000);
      log.debug({ ms: Date.now() - released }, 'deferred machine written after the release');
      assert.deepEqual(await holders(cluster, 'n-2'), ['rollout/third']);
      await must(cluster, 'DELETE', `${MCS_PATH}/third`);
      await until('the deleted set let go', async () => (await holders(cluster, 'n-2')).length === 0, 30_000);
    });
  });
});
