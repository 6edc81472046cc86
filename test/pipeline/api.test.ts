// The ReleasePipeline, Release and ReleaseApproval CRDs on a real apiserver: what their CEL rules
// refuse (a cluster in two stages, a stage with no clusters, a template edited after the start,
// a stopped release run again, an approval taken back) and that a good object goes in; Pause → Run is allowed.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startCluster, type Cluster } from '../harness/cluster.ts';
import { installCrds } from '../helpers/kube-objects.ts';
import { KUBENODE_API, MERGE_PATCH } from '../helpers/kube-api.ts';


const pipeline = (name: string, stages: unknown[]) => ({ apiVersion: 'kubenode.io/v1alpha1', kind: 'ReleasePipeline', metadata: { name }, spec: { stages } });
const release = (name: string, spec: Record<string, unknown> = {}) => ({
  apiVersion: 'kubenode.io/v1alpha1',
  kind: 'Release',
  metadata: { name },
  spec: {
    pipeline: 'p',
    componentSet: 'demo',
    selector: {},
    template: { spec: { component: 'demo', version: '1.0.0', source: { type: 'binary', url: 'https://example.com/demo-1.0.0', sha256: 'a'.repeat(64) } } },
    ...spec,
  },
});

describe('release pipeline CRDs on a real apiserver', () => {
  let cluster: Cluster;
  const post = (plural: string, body: unknown) => cluster.request('POST', `${KUBENODE_API}/${plural}`, { body });
  const patch = (plural: string, name: string, body: unknown) => cluster.request('PATCH', `${KUBENODE_API}/${plural}/${name}`, { body, headers: MERGE_PATCH });

  before(async () => {
    cluster = await startCluster({ agents: 1 });
    await installCrds(cluster);
  });
  after(async () => cluster?.stop());

  test('a pipeline with ordered lists, a selector and after-stage tasks goes in, with defaults', async () => {
    const r = await post('releasepipelines', pipeline('p', [
      { name: 'test', clusters: ['t1'], afterStage: [{ type: 'TimedWait', duration: '1h' }] },
      { name: 'staging', clusters: ['s1', 's2'], maxConcurrency: 2, afterStage: [{ type: 'Approval' }] },
      { name: 'production', clusterSelector: { matchLabels: { env: 'prod' } }, sortingLabelKey: 'kubenode.io/order', maxConcurrency: '10%', rolloutOverride: { batches: [1, '100%'], bakeTime: '30m' } },
    ]));
    assert.equal(r.status, 201, r.body);
    const stages = (JSON.parse(r.body) as { spec: { stages: { maxFailures: number; maxConcurrency: number | string; deadline: string; afterStage: unknown[] }[] } }).spec.stages;
    assert.equal(stages[0]?.maxFailures, 0, 'failure tolerance defaults to 0');
    assert.equal(stages[0]?.maxConcurrency, 1);
    assert.equal(stages[0]?.deadline, '24h');
    assert.deepEqual(stages[2]?.afterStage, []);
  });

  test('a cluster in two stages, no stages, a stage with no clusters, both or neither of list and selector are refused', async () => {
    const cases: [string, unknown[], RegExp][] = [
      ['twice', [{ name: 'a', clusters: ['c1', 'c2'] }, { name: 'b', clusters: ['c2'] }], /a cluster may appear in at most one stage/],
      ['none', [], /should have at least 1 items|must have at least 1 items/],
      ['empty', [{ name: 'a', clusters: [] }], /at least 1 items/],
      ['both', [{ name: 'a', clusters: ['c1'], clusterSelector: {} }], /exactly one of them/],
      ['neither', [{ name: 'a' }], /exactly one of them/],
      ['dup-name', [{ name: 'a', clusters: ['c1'] }, { name: 'a', clusters: ['c2'] }], /Duplicate value/],
      ['dup-cluster', [{ name: 'a', clusters: ['c1', 'c1'] }], /Duplicate value/],
      ['wait-without-duration', [{ name: 'a', clusters: ['c1'], afterStage: [{ type: 'TimedWait' }] }], /duration is required for TimedWait/],
      ['approval-with-duration', [{ name: 'a', clusters: ['c1'], afterStage: [{ type: 'Approval', duration: '1h' }] }], /not allowed for Approval/],
      ['sorting-a-list', [{ name: 'a', clusters: ['c1'], sortingLabelKey: 'x' }], /sortingLabelKey orders a clusterSelector/],
      ['zero-deadline', [{ name: 'a', clusters: ['c1'], deadline: '0s' }], /deadline/],
    ];
    for (const [name, stages, error] of cases) {
      const r = await post('releasepipelines', pipeline(`bad-${name}`, stages));
      assert.equal(r.status, 422, `${name}: ${r.body}`);
      assert.match(r.body, error, name);
    }
  });

  test('a release pins its template: edits are refused, Pause can return to Run, Stop is final', async () => {
    const r = await post('releases', release('r1'));
    assert.equal(r.status, 201, r.body);
    assert.equal((JSON.parse(r.body) as { spec: { state: string } }).spec.state, 'Run');
    const edit = await patch('releases', 'r1', { spec: { template: { spec: { version: '2.0.0' } } } });
    assert.equal(edit.status, 422, edit.body);
    assert.match(edit.body, /template is immutable/);
    for (const [field, value] of [['pipeline', 'other'], ['componentSet', 'other'], ['selector', { matchLabels: { a: 'b' } }], ['rollout', { bakeTime: '1s' }]] as const) {
      const e = await patch('releases', 'r1', { spec: { [field]: value } });
      assert.equal(e.status, 422, `${field}: ${e.body}`);
      assert.match(e.body, new RegExp(`${field} is immutable`));
    }
    // Pause is undone by Run; who and why go along.
    assert.equal((await patch('releases', 'r1', { spec: { state: 'Pause', stateBy: 'bob', stateReason: 'checking alerts' } })).status, 200);
    assert.equal((await patch('releases', 'r1', { spec: { state: 'Run', stateBy: 'bob' } })).status, 200);
    const bad = await patch('releases', 'r1', { spec: { state: 'Hold' } });
    assert.equal(bad.status, 422, bad.body);
    assert.match(bad.body, /supported values: \\"Run\\", \\"Pause\\", \\"Stop\\"/);
    assert.equal((await patch('releases', 'r1', { spec: { state: 'Stop' } })).status, 200);
    const again = await patch('releases', 'r1', { spec: { state: 'Run' } });
    assert.equal(again.status, 422, again.body);
    assert.match(again.body, /a stopped release cannot run again/);
  });

  test('an approval cannot be taken back nor moved to another stage', async () => {
    const body = { apiVersion: 'kubenode.io/v1alpha1', kind: 'ReleaseApproval', metadata: { name: 'r1-staging' }, spec: { release: 'r1', releaseUID: 'u', stage: 'staging' } };
    assert.equal((await post('releaseapprovals', body)).status, 201);
    assert.equal((await patch('releaseapprovals', 'r1-staging', { spec: { approved: true, approvedBy: 'alice' } })).status, 200);
    const back = await patch('releaseapprovals', 'r1-staging', { spec: { approved: false } });
    assert.equal(back.status, 422, back.body);
    assert.match(back.body, /cannot be taken back/);
    const moved = await patch('releaseapprovals', 'r1-staging', { spec: { stage: 'production' } });
    assert.equal(moved.status, 422, moved.body);
    assert.match(moved.body, /stage is immutable/);
  });
});
