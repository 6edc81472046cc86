// The reconciler uses an object it wrote until its informer catches up. Found by bench/controller.ts
// on a loaded machine (a 1,000-machine rollout stalled at "564/566 ready" with every agent's
// status in the apiserver): the watch delivered a MachineComponent's creation and the agent's
// status write before the controller read the creation's response, and the reconciler kept the
// bare object it had written in place of the cache's newer one, with no event left to come.
// Reproduced here deterministically on the real apiserver: the agent's status is written, and
// seen by the informer, before the reconciler gets its create's response.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EventRecorder } from '../../src/controller/events.ts';
import { LABEL_SET, RolloutReconciler, type RolloutCaches } from '../../src/controller/rollout/reconciler.ts';
import { systemClock } from '../../src/host/clock.ts';
import { createKubeClient, loadKubeConfig, type KubeClient } from '../../src/kube/client.ts';
import { createLogger } from '../../src/log.ts';
import { MACHINE_LABEL } from '../../src/api/common.ts';
import { LEASE_NAMESPACE } from '../../src/report/kube/lease.ts';
import { Informer, type KubeObject, type ResourceRef } from '../../src/watch/informer.ts';
import { startCluster, type Cluster } from '../harness/cluster.ts';
import { installCrds } from '../helpers/kube-objects.ts';
import { addMachine, ensureNamespace, MCS_PATH, must, until } from './helpers.ts';
import { MC_PATH } from '../helpers/kube-api.ts';

const NS = 'kubenode-system';
const log = createLogger('silent');

describe('objects the reconciler wrote, against a faster watch', () => {
  let cluster: Cluster;
  const informers: Informer<KubeObject>[] = [];

  before(async () => {
    cluster = await startCluster({ agents: 1 });
    await installCrds(cluster);
    await ensureNamespace(cluster, NS);
    await addMachine(cluster, 'w-0');
  });
  after(async () => {
    await Promise.all(informers.map((i) => i.stop()));
    await cluster?.stop();
  });

  it('an agent status the watch delivered before the create’s response is not hidden by the object written', async () => {
    const kc = await loadKubeConfig({ kubeconfig: cluster.adminKubeconfig });
    const inf = <T extends KubeObject>(resource: ResourceRef, extra: { labelSelector?: string } = {}): Informer<T> => {
      const i = new Informer<T>({ client: createKubeClient(kc), kubeConfig: kc, resource, log, ...extra });
      informers.push(i as unknown as Informer<KubeObject>);
      return i;
    };
    const caches: RolloutCaches = {
      sets: inf({ group: 'kubenode.io', version: 'v1alpha1', plural: 'machinecomponentsets' }),
      components: inf({ group: 'kubenode.io', version: 'v1alpha1', plural: 'machinecomponents' }, { labelSelector: MACHINE_LABEL }),
      revisions: inf({ group: 'apps', version: 'v1', plural: 'controllerrevisions', namespace: NS }, { labelSelector: LABEL_SET }),
      machines: inf({ group: 'kubenode.io', version: 'v1alpha1', plural: 'machines' }),
      nodes: inf({ group: '', version: 'v1', plural: 'nodes' }),
      leases: inf({ group: 'coordination.k8s.io', version: 'v1', plural: 'leases', namespace: LEASE_NAMESPACE }),
    };
    for (const i of informers) i.start();
    await Promise.all(informers.map((i) => i.waitForSync()));

    const real = createKubeClient(kc);
    // The create's response is handed back only after the agent answered and the watch showed it.
    const client: KubeClient = {
      server: real.server,
      get: (path, options) => real.get(path, options),
      patch: (path, body, kind, options) => real.patch(path, body, kind, options),
      close: () => real.close(),
      request: async <T,>(verb: string, path: string, options?: Parameters<KubeClient['request']>[2]): Promise<T> => {
        const out = await real.request<T>(verb, path, options);
        if (verb === 'POST' && path === MC_PATH && options?.query?.dryRun === undefined) {
          const mc = out as unknown as { metadata: { name: string; generation: number }; spec: { version: string } };
          const at = new Date().toISOString();
          await must(cluster, 'PUT', `${MC_PATH}/${mc.metadata.name}/status`, {
            ...mc,
            status: { phase: 'Installed', installedVersion: mc.spec.version, observedGeneration: mc.metadata.generation, attemptedGeneration: mc.metadata.generation, updatedAt: at, history: [], conditions: [{ type: 'Ready', status: 'True', reason: 'Installed', message: '', lastTransitionTime: at }] },
          });
          await until('the watch shows the status', async () => (caches.components.get(mc.metadata.name) as { status?: unknown } | undefined)?.status !== undefined, 30_000);
        }
        return out;
      },
    };
    const events = new EventRecorder(client, systemClock, log, 'test', () => true);
    const reconciler = new RolloutReconciler({ client, caches, namespace: NS, events, clock: systemClock, log, mayWrite: () => true });

    await must(cluster, 'POST', MCS_PATH, {
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'MachineComponentSet',
      metadata: { name: 'w' },
      spec: { selector: {}, template: { spec: { component: 'w', version: '1.0.0', source: { type: 'binary', url: 'https://example.com/w-1.0.0', sha256: 'e'.repeat(64) } } }, rollout: { batches: [1], maxUnavailable: 1, bakeTime: '1ms' } },
    });
    await until('the set is in the cache', async () => caches.sets.get('w') !== undefined, 30_000);
    const signal = new AbortController().signal;
    // Each pass is what the queue runs on an event; the agent's status event came during the first.
    await reconciler.reconcile('w', signal);
    assert.equal(caches.components.snapshot().size, 1, 'the first pass wrote the batch’s one MachineComponent');
    await reconciler.reconcile('w', signal);
    const s = (await must<{ status?: { ready?: number; updated?: number } }>(cluster, 'GET', `${MCS_PATH}/w`)).status;
    assert.deepEqual([s?.updated, s?.ready], [1, 1], 'the next pass sees the agent’s status');
  });
});
