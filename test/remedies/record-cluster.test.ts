// The agent's RemedyOperation record on a real apiserver, for node names a label value cannot
// hold: a node name may have 253 characters, a label value 63.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { labelValueOf, NODE_LABEL } from '../../src/api/common.ts';
import { createKubeApi, type KubeApi } from '../../src/remedies/kube-api.ts';
import { ClusterRecorder, type OperationInput } from '../../src/remedies/record.ts';
import { startCluster, type Cluster } from '../harness/cluster.ts';
import { installCrds } from '../helpers/kube-objects.ts';

const OPS = '/apis/kubenode.io/v1alpha1/remedyoperations';
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

const input = (node: string): OperationInput => ({
  node,
  problem: { conditionType: 'KernelDeadlock', reason: 'DockerHung', message: 'task docker:1234 blocked for more than 120 seconds.' },
  action: 'restart-runtime',
  params: {},
  risk: 'safe',
  step: 0,
  dryRun: false,
});

test('labelValueOf: a name that fits is itself; a longer one a valid, recognisable, distinct value', () => {
  assert.equal(labelValueOf('node-1'), 'node-1');
  const base = `gpu-a100-${'0123456789'.repeat(6)}`;
  const a = labelValueOf(`${base}.rack-a.example.com`);
  const b = labelValueOf(`${base}.rack-b.example.com`);
  for (const v of [a, b]) {
    assert.ok(v.length <= 63, v);
    assert.match(v, LABEL_VALUE);
    assert.ok(v.startsWith(base.slice(0, 40)), v);
  }
  assert.notEqual(a, b, 'names sharing their first 63 characters get different values');
  assert.equal(labelValueOf(`${base}.rack-a.example.com`), a);
  // A cut that would end on '.' or '-' is trimmed to an alphanumeric.
  assert.match(labelValueOf(`${'a'.repeat(45)}.${'b'.repeat(30)}`), LABEL_VALUE);
});

describe('ClusterRecorder (real apiserver)', () => {
  let cluster: Cluster;
  let kube: KubeApi;
  before(async () => {
    cluster = await startCluster();
    await installCrds(cluster);
    kube = await createKubeApi({ kubeconfig: cluster.adminKubeconfig });
  });
  after(async () => {
    kube?.close();
    await cluster?.stop();
  });

  test('an operation of a node whose name is longer than a label value is recorded and found by its label', async () => {
    const long = `worker-${'0123456789'.repeat(7)}.example.com`;
    const recorder = new ClusterRecorder(kube, long, pino({ level: 'silent' }));
    const id = await recorder.create(input(long));
    await recorder.create(input('short-node'));
    const r = await cluster.request('GET', `${OPS}?labelSelector=${NODE_LABEL}=${labelValueOf(long)}`);
    assert.equal(r.status, 200, r.body);
    const items = (JSON.parse(r.body) as { items: { metadata: { name: string }; spec: { node: string } }[] }).items;
    assert.deepEqual(items.map((o) => [o.metadata.name, o.spec.node]), [[id, long]]);
  });

  test('a node name of 253 characters with a dot where a cut lands: recorded under a valid name that starts with the node name and says the action', async () => {
    // Cut at 200 (what the name was cut to before) or at 58 (the apiserver's cut of a generateName), it ends in '.'.
    const long = `${'rack-07.hall-2.'.repeat(4).slice(0, 57)}.${'b'.repeat(141)}.${'c'.repeat(53)}`;
    assert.deepEqual([long.length, long[57], long[199]], [253, '.', '.']);
    const recorder = new ClusterRecorder(kube, long, pino({ level: 'silent' }));
    const id = await recorder.create(input(long));
    assert.ok(id.length <= 63 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(id), id);
    assert.ok(id.startsWith(long.slice(0, 20)) && id.includes('-restart-runtime-'), id);
  });

  test("the agent's remedy Event for a node name of 253 characters: named within the apiserver's cut, starting with the node name", async () => {
    const long = `${'rack-07.hall-2.'.repeat(4).slice(0, 57)}.${'b'.repeat(141)}.${'c'.repeat(53)}`;
    await new ClusterRecorder(kube, long, pino({ level: 'silent' })).event('Normal', 'RemedySucceeded', 'long node', Date.UTC(2026, 4, 6));
    const r = await cluster.request('GET', '/api/v1/namespaces/default/events');
    const names = (JSON.parse(r.body) as { items: { metadata: { name: string }; involvedObject: { name: string } }[] }).items.filter((e) => e.involvedObject.name === long).map((e) => e.metadata.name);
    assert.equal(names.length, 1);
    const [name] = names as [string];
    assert.ok(name.length <= 63 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(name), name);
    assert.ok(name.startsWith(long.slice(0, 40)), name);
  });
});
