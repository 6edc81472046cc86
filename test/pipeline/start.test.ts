// What keeps a Release from starting, on a real management apiserver with the in-process
// controller (`pipelines` on): a missing pipeline, a selector overlap between stages, a listed
// cluster with no Secret — each Pending with a reason, fixed by fixing the cause — and what a
// start records: the frozen stages, clusters no stage selects, and a member Secret that is no
// kubeconfig (named in the cluster's message, nothing sent anywhere).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ReleaseStatus } from '../../src/api/release.ts';
import { Controller } from '../../src/controller/index.ts';
import { stageClusters } from '../../src/controller/pipeline/reconciler.ts';
import { createLogger } from '../../src/log.ts';
import { startCluster, type Cluster } from '../harness/cluster.ts';
import { installCrds } from '../helpers/kube-objects.ts';
import { ensureNamespace, must, until } from '../controller/helpers.ts';
import { KUBENODE_API, MERGE_PATCH } from '../helpers/kube-api.ts';

const NS = 'kubenode-system';

describe('release start rules', () => {
  let cluster: Cluster;
  let controller: Controller;
  const secret = (name: string, labels: Record<string, string>, kubeconfig = 'bm90IGEga3ViZWNvbmZpZw==') =>
    must(cluster, 'POST', `/api/v1/namespaces/${NS}/secrets`, { apiVersion: 'v1', kind: 'Secret', metadata: { name, labels }, data: { kubeconfig } });
  const pipeline = (name: string, stages: unknown[]) => must(cluster, 'POST', `${KUBENODE_API}/releasepipelines`, { apiVersion: 'kubenode.io/v1alpha1', kind: 'ReleasePipeline', metadata: { name }, spec: { stages } });
  const release = (name: string, pipelineName: string, set: string) =>
    must(cluster, 'POST', `${KUBENODE_API}/releases`, {
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'Release',
      metadata: { name },
      spec: { pipeline: pipelineName, componentSet: set, selector: {}, template: { spec: { component: set, version: '1.0.0', source: { type: 'binary', url: `https://example.com/${set}`, sha256: 'a'.repeat(64) } } } },
    });
  const statusOf = async (name: string): Promise<ReleaseStatus | undefined> => (await must<{ status?: ReleaseStatus }>(cluster, 'GET', `${KUBENODE_API}/releases/${name}`)).status;
  const reason = async (name: string): Promise<string | undefined> => (await statusOf(name))?.conditions?.find((c) => c.type === 'Initialized')?.reason;

  before(async () => {
    cluster = await startCluster({ agents: 1 });
    await installCrds(cluster);
    await ensureNamespace(cluster, NS);
    controller = new Controller({ kubeconfig: cluster.adminKubeconfig, leaderElect: false, namespace: NS, listen: '127.0.0.1:0', pipelines: { probeIntervalMs: 1000 } }, createLogger('silent'));
    await controller.start();
  });
  after(async () => {
    await controller?.stop();
    await cluster?.stop();
  });

  it('selector stages order by sortingLabelKey, then name', () => {
    const members = new Map<string, { labels: Record<string, string> }>([
      ['b', { labels: { env: 'prod', order: '2' } }],
      ['a', { labels: { env: 'prod' } }],
      ['c', { labels: { env: 'prod', order: '1' } }],
      ['d', { labels: { env: 'test', order: '0' } }],
    ]);
    assert.deepEqual(stageClusters({ name: 'p', clusterSelector: { matchLabels: { env: 'prod' } }, sortingLabelKey: 'order', maxConcurrency: 1, maxFailures: 0, deadline: '1h', afterStage: [] }, members), ['c', 'b', 'a']);
    assert.deepEqual(stageClusters({ name: 'p', clusterSelector: { matchLabels: { env: 'prod' } }, maxConcurrency: 1, maxFailures: 0, deadline: '1h', afterStage: [] }, members), ['a', 'b', 'c']);
  });

  it('waits for a missing pipeline, a missing Secret and a selector overlap, and starts once each is fixed', async () => {
    await release('r-nopipe', 'later', 'set-a');
    await until('PipelineNotFound', async () => (await reason('r-nopipe')) === 'PipelineNotFound');
    assert.equal((await statusOf('r-nopipe'))?.phase, 'Pending');

    await secret('cluster-one', { 'kubenode.io/member-cluster': 'one', env: 'prod' });
    await secret('cluster-spare', { 'kubenode.io/member-cluster': 'spare', env: 'lab' });
    await pipeline('later', [{ name: 'first', clusters: ['one'] }, { name: 'second', clusters: ['two'] }]);
    await until('ClusterNotFound', async () => (await reason('r-nopipe')) === 'ClusterNotFound');
    assert.match((await statusOf('r-nopipe'))?.message ?? '', /stage second: no Secret labelled kubenode\.io\/member-cluster=two/);

    await secret('cluster-two', { 'kubenode.io/member-cluster': 'two', env: 'prod' });
    await until('started', async () => (await reason('r-nopipe')) === 'Started');
    const started = (await statusOf('r-nopipe')) as ReleaseStatus;
    assert.deepEqual(started.pipelineSnapshot?.stages.map((s) => s.name), ['first', 'second']);
    assert.deepEqual(started.unassignedClusters, ['spare'], 'a member no stage selects is reported');
    // The Secret holds no kubeconfig: the cluster says so and stays Pending; nothing is sent anywhere.
    await until('bad Secret named', async () => /is not a kubeconfig|current-context names no cluster/.test((await statusOf('r-nopipe'))?.stages[0]?.clusters[0]?.message ?? ''));
    assert.equal((await statusOf('r-nopipe'))?.stages[0]?.clusters[0]?.state, 'Pending');
    assert.equal((await statusOf('r-nopipe'))?.stages[1]?.state, 'Pending', 'the next stage waits');

    await pipeline('overlap', [{ name: 'a', clusters: ['one'] }, { name: 'b', clusterSelector: { matchLabels: { env: 'prod' } } }]);
    await release('r-overlap', 'overlap', 'set-b');
    await until('ClusterInTwoStages', async () => (await reason('r-overlap')) === 'ClusterInTwoStages');
    assert.match((await statusOf('r-overlap'))?.message ?? '', /cluster one is in stages a and b/);
    const fixed = await cluster.request('PATCH', `${KUBENODE_API}/releasepipelines/overlap`, { body: { spec: { stages: [{ name: 'a', clusters: ['one'] }, { name: 'b', clusterSelector: { matchLabels: { env: 'prod' } }, sortingLabelKey: 'order' }] } }, headers: MERGE_PATCH });
    assert.equal(fixed.status, 200, fixed.body);
    // Still an overlap (one is env=prod): the fix is a selector that leaves it out.
    await until('still overlapping', async () => (await reason('r-overlap')) === 'ClusterInTwoStages');
    const narrowed = await cluster.request('PATCH', `${KUBENODE_API}/releasepipelines/overlap`, { body: { spec: { stages: [{ name: 'a', clusters: ['one'] }, { name: 'b', clusterSelector: { matchExpressions: [{ key: 'kubenode.io/member-cluster', operator: 'NotIn', values: ['one'] }], matchLabels: { env: 'prod' } } }] } }, headers: MERGE_PATCH });
    assert.equal(narrowed.status, 200, narrowed.body);
    await until('overlap release started', async () => (await reason('r-overlap')) === 'Started');
    assert.deepEqual((await statusOf('r-overlap'))?.stages.map((s) => s.clusters.map((c) => c.name)), [['one'], ['two']]);
    const pipe = await must<{ status?: { lastRelease?: string } }>(cluster, 'GET', `${KUBENODE_API}/releasepipelines/overlap`);
    assert.equal(pipe.status?.lastRelease, 'r-overlap');
  });
});
