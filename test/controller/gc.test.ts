// Ownership with the real garbage collector (kube-controller-manager from the harness): deleting a
// MachineComponentSet removes its MachineComponents and ControllerRevisions, and nothing else.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Controller } from '../../src/controller/index.ts';
import { createLogger } from '../../src/log.ts';
import type { Cluster } from '../harness/cluster.ts';
import { listMcs, MCS_PATH, must, rolloutCluster, type SimulatedAgents, until } from './helpers.ts';
import { MERGE_PATCH } from '../helpers/kube-api.ts';

const NS = 'kubenode-system';
const SHA = 'a'.repeat(64);
const set = (name: string, component: string) => ({
  apiVersion: 'kubenode.io/v1alpha1',
  kind: 'MachineComponentSet',
  metadata: { name },
  spec: { selector: {}, template: { spec: { component, version: '1.0.0', source: { type: 'binary', url: `https://example.com/${component}`, sha256: SHA } } }, rollout: { batches: [3], maxUnavailable: 3, bakeTime: '0s' } },
});

describe('deleting a set cascades through the real garbage collector', () => {
  let cluster: Cluster;
  let agents: SimulatedAgents;
  let controller: Controller;
  before(async () => {
    ({ cluster, agents } = await rolloutCluster(['x-0', 'x-1', 'x-2'], NS, { controllerManager: true }));
    controller = new Controller({ kubeconfig: cluster.adminKubeconfig, leaderElect: false, namespace: NS, listen: '127.0.0.1:0' }, createLogger('silent'));
    await controller.start();
  });
  after(async () => {
    await controller?.stop();
    await agents?.stop();
    await cluster?.stop();
  });

  it('removes what the set owns and keeps the other set’s', async () => {
    await must(cluster, 'POST', MCS_PATH, set('doomed', 'c1'));
    await must(cluster, 'POST', MCS_PATH, set('kept', 'c2'));
    const done = async (name: string) => (await must<{ status?: { phase?: string } }>(cluster, 'GET', `${MCS_PATH}/${name}`)).status?.phase === 'Completed';
    await until('both complete', async () => (await done('doomed')) && (await done('kept')), 60_000);
    assert.equal((await listMcs(cluster)).length, 6);
    await must(cluster, 'DELETE', `${MCS_PATH}/doomed`);
    await until('the collector removed its components', async () => (await listMcs(cluster)).every((mc) => mc.metadata.labels['kubenode.io/component-set'] !== 'doomed'), 90_000);
    const revisions = async () => (await must<{ items: { metadata: { labels: Record<string, string> } }[] }>(cluster, 'GET', `/apis/apps/v1/namespaces/${NS}/controllerrevisions`)).items;
    await until('and its revisions', async () => (await revisions()).every((r) => r.metadata.labels['kubenode.io/component-set'] !== 'doomed'), 90_000);
    assert.equal((await listMcs(cluster)).filter((mc) => mc.metadata.labels['kubenode.io/component-set'] === 'kept').length, 3);
    assert.equal((await revisions()).length, 1);
  });

  it('keeps revisionHistoryLimit old revisions besides the current one', async () => {
    const ofKept = async () => (await must<{ items: { revision: number; metadata: { labels: Record<string, string> } }[] }>(cluster, 'GET', `/apis/apps/v1/namespaces/${NS}/controllerrevisions`)).items.filter((r) => r.metadata.labels['kubenode.io/component-set'] === 'kept');
    for (const v of ['2.0.0', '3.0.0', '4.0.0']) {
      const r = await cluster.request('PATCH', `${MCS_PATH}/kept`, { body: { spec: { revisionHistoryLimit: 1, template: { spec: { version: v } } } }, headers: MERGE_PATCH });
      assert.equal(r.status, 200, r.body);
      await until(`${v} completes`, async () => (await listMcs(cluster)).filter((mc) => mc.spec.version === v).length === 3 && (await must<{ status?: { phase?: string; observedGeneration?: number }; metadata: { generation: number } }>(cluster, 'GET', `${MCS_PATH}/kept`)).status?.phase === 'Completed', 60_000);
    }
    await until('pruned to the limit', async () => (await ofKept()).length === 2, 30_000);
    assert.deepEqual((await ofKept()).map((r) => r.revision).sort(), [3, 4]);
  });
});
