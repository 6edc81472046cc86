// The agent's Lease against a real apiserver, written with an agent identity.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createKubeClient, loadKubeConfig, type KubeClient } from '../../../src/kube/client.ts';
import { agentLeaseName, LeaseHeartbeat, microTime, type LeaseObject } from '../../../src/report/kube/lease.ts';
import { startCluster, type Cluster } from '../../harness/cluster.ts';
import { FakeClock } from '../../helpers/fake-clock.ts';
import { quietLog, waitAllowed, waitForbidden } from './helpers.ts';
import { createNode } from './rbac.ts';
import { grantAgentRbac, impersonatedAgentClient, READYZ_BINDINGS, takeClusterRoleBindings } from '../../helpers/kube-objects.ts';

describe('Lease heartbeat (real apiserver)', () => {
  let cluster: Cluster;
  const uids = new Map<string, string>();
  const clients: KubeClient[] = [];
  const leases: LeaseHeartbeat[] = [];

  before(async () => {
    cluster = await startCluster({ agents: 3 });
    await grantAgentRbac(cluster);
    for (const i of [0, 1, 2]) uids.set(`node-${i}`, await createNode(cluster, `node-${i}`));
    await waitAllowed(cluster, 0, '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/kubenode-agent-node-0');
  });
  after(async () => {
    await Promise.all(leases.map((l) => l.stop()));
    for (const c of clients) c.close();
    await cluster?.stop();
  });

  async function heartbeatFor(i: number, clock: FakeClock): Promise<LeaseHeartbeat> {
    const client = createKubeClient(await loadKubeConfig({ kubeconfig: cluster.agentKubeconfig(i) }), { timeoutMs: 5000 });
    clients.push(client);
    const h = new LeaseHeartbeat({ client, nodeName: `node-${i}`, clock, log: quietLog });
    leases.push(h);
    return h;
  }

  async function readLease(name: string): Promise<LeaseObject> {
    const res = await cluster.request('GET', `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${name}`);
    assert.equal(res.status, 200, res.body);
    return JSON.parse(res.body) as LeaseObject;
  }

  /** Waits (without a deadline assertion) for the loop to reach a count. */
  async function until(cond: () => boolean): Promise<void> {
    for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
    assert.ok(cond(), 'condition never reached');
  }

  test('created when missing, owned by the Node, renewed every 10 s with a 40 s duration', async () => {
    const t0 = Date.UTC(2026, 4, 1, 8, 0, 0, 123);
    const clock = new FakeClock(t0);
    const h = await heartbeatFor(0, clock);
    h.start();
    await until(() => h.stats.creates === 1);
    const created = await readLease('kubenode-agent-node-0');
    assert.equal(created.spec.holderIdentity, 'node-0');
    assert.equal(created.spec.leaseDurationSeconds, 40);
    assert.equal(created.spec.renewTime, '2026-05-01T08:00:00.123000Z');
    assert.deepEqual(created.metadata.ownerReferences?.map((o) => ({ kind: o.kind, name: o.name, uid: o.uid })), [{ kind: 'Node', name: 'node-0', uid: uids.get('node-0') }]);

    await clock.advance(9_999);
    assert.equal(h.stats.renewals, 0);
    await clock.advance(1);
    await until(() => h.stats.renewals === 1);
    const renewed = await readLease('kubenode-agent-node-0');
    assert.equal(renewed.spec.renewTime, microTime(t0 + 10_000));
    assert.notEqual(renewed.metadata.resourceVersion, created.metadata.resourceVersion);

    await clock.advance(10_000);
    await until(() => h.stats.renewals === 2);
    assert.equal((await readLease('kubenode-agent-node-0')).spec.renewTime, microTime(t0 + 20_000));
    assert.deepEqual({ ...h.stats }, { creates: 1, renewals: 2, conflicts: 0, failures: 0 });
  });

  test('a second writer in between makes our PUT a 409: the agent re-reads and renews on top of their change', async () => {
    const clock = new FakeClock(Date.UTC(2026, 4, 2));
    const h = await heartbeatFor(1, clock);
    await h.renew();
    assert.equal(h.stats.creates, 1);

    // Someone else writes the Lease after our read: our cached resourceVersion is stale now.
    const theirs = await readLease('kubenode-agent-node-1');
    theirs.metadata.labels = { ...theirs.metadata.labels, 'example.com/audited': 'yes' };
    const put = await cluster.request('PUT', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/kubenode-agent-node-1', { body: theirs });
    assert.equal(put.status, 200, put.body);

    await clock.advance(10_000);
    const lease = await h.renew();
    assert.equal(h.stats.conflicts, 1, 'the stale PUT was refused once');
    assert.equal(h.stats.renewals, 1);
    const stored = await readLease('kubenode-agent-node-1');
    assert.equal(stored.metadata.resourceVersion, lease.metadata.resourceVersion);
    assert.equal(stored.metadata.labels?.['example.com/audited'], 'yes', 'the other writer\'s change survived');
    assert.equal(stored.spec.renewTime, microTime(Date.UTC(2026, 4, 2) + 10_000));
  });
  test('the Node refused while /readyz is not ready: no Lease yet (it would stay unowned for good), the next renewal asks again; refused by a ready apiserver, the Lease is created unowned', async () => {
    const h = await heartbeatFor(2, new FakeClock(Date.UTC(2026, 4, 3)));
    const NODE = '/api/v1/nodes/node-2';
    const LEASE = '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/kubenode-agent-node-2';
    // The Lease's own Role stays: only reading the Node (and everyone's /readyz) is refused.
    const giveAgent = await takeClusterRoleBindings(cluster, ['kubenode:agent']);
    let giveReadyz: (() => Promise<void>) | undefined = await takeClusterRoleBindings(cluster, READYZ_BINDINGS);
    try {
      await waitForbidden(cluster, 2, NODE);
      await waitForbidden(cluster, 2, '/readyz');
      await assert.rejects(h.renew(), /^KubeApiError: GET \/readyz: 403 not ready: forbidden/);
      assert.equal((await cluster.request('GET', LEASE)).status, 404, 'not created without its owner');
      assert.equal(h.stats.creates, 0);

      await giveReadyz();
      giveReadyz = undefined;
      await waitAllowed(cluster, 2, '/readyz');
      await h.renew();
      assert.equal(h.stats.creates, 1);
      const lease = await readLease('kubenode-agent-node-2');
      assert.equal(lease.metadata.ownerReferences, undefined, 'a real refusal: unowned, as with no right to read the Node');
      assert.equal(lease.spec.holderIdentity, 'node-2');
    } finally {
      await giveReadyz?.();
      await giveAgent();
    }
  });

  test('a node name of 253 characters: its agent creates and renews its Lease under the shortened name, through the admission policy', async () => {
    const node = `${'worker.rack-07.hall-2.eu-central-1.example.'.repeat(6).slice(0, 252)}z`;
    assert.equal(node.length, 253);
    const uid = await createNode(cluster, node);
    const client = await impersonatedAgentClient(cluster, node);
    clients.push(client);
    // The policy is in force for this identity: another node's Lease is refused by name.
    for (let i = 0; ; i++) {
      const r = await cluster.request('POST', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases', {
        headers: { 'Impersonate-User': `kubenode:agent:${node}`, 'Impersonate-Group': 'kubenode:agents' },
        body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'kubenode-agent-node-0', namespace: 'kube-node-lease' }, spec: { holderIdentity: node } },
      });
      if (r.status === 403 && /may only modify Lease/.test(r.body)) break;
      assert.ok(i < 100, `policy not in force: ${r.status} ${r.body}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const t0 = Date.UTC(2026, 4, 4);
    const clock = new FakeClock(t0);
    const h = new LeaseHeartbeat({ client, nodeName: node, clock, log: quietLog });
    leases.push(h);
    assert.equal(h.name, agentLeaseName(node));
    // 242 characters less the '-' the cut ends on, then '-' and the hash.
    assert.equal(h.name.length, 252);
    assert.ok(h.name.startsWith(`kubenode-agent-${node.slice(0, 200)}`), h.name);
    await h.renew();
    await clock.advance(10_000);
    await h.renew();
    assert.deepEqual({ ...h.stats }, { creates: 1, renewals: 1, conflicts: 0, failures: 0 });
    const stored = await readLease(h.name);
    assert.equal(stored.spec.holderIdentity, node);
    assert.equal(stored.spec.renewTime, microTime(t0 + 10_000));
    assert.deepEqual(stored.metadata.ownerReferences?.map((o) => ({ kind: o.kind, name: o.name, uid: o.uid })), [{ kind: 'Node', name: node, uid }]);
  });
});
