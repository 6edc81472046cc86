// Node conditions against a real apiserver, written with an agent identity.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createKubeClient, loadKubeConfig, type KubeClient } from '../../../src/kube/client.ts';
import { NodeConditionsReporter } from '../../../src/report/kube/node-conditions.ts';
import { startClusterReporter } from '../../../src/report/kube/index.ts';
import { createHost } from '../../../src/host/host.ts';
import { Registry } from 'prom-client';
import { systemClock, type Clock } from '../../../src/host/clock.ts';
import type { Condition } from '../../../src/types.ts';
import { startCluster, type Cluster } from '../../harness/cluster.ts';
import { FakeClock } from '../../helpers/fake-clock.ts';
import { nodeConditions, quietLog, waitAllowed, waitForbidden } from './helpers.ts';
import { createNode } from './rbac.ts';
import { grantAgentRbac, READYZ_BINDINGS, takeClusterRoleBindings } from '../../helpers/kube-objects.ts';
import { until } from '../../watch/helpers.ts';

const cond = (type: string, status: Condition['status'], reason: string, message: string, transitionTime: number): Condition => ({ type, status, reason, message, transitionTime });

describe('Node conditions (real apiserver)', () => {
  let cluster: Cluster;
  const clients: KubeClient[] = [];
  const reporters: NodeConditionsReporter[] = [];

  before(async () => {
    cluster = await startCluster({ agents: 6 });
    await grantAgentRbac(cluster);
    for (const i of [0, 1, 2, 3, 4, 5]) await createNode(cluster, `node-${i}`);
    await waitAllowed(cluster, 0, '/api/v1/nodes/node-0');
  });
  after(async () => {
    await Promise.all(reporters.map((r) => r.stop()));
    for (const c of clients) c.close();
    await cluster?.stop();
  });

  async function reporterFor(i: number, clock: Clock = new FakeClock(), extra: { backoffBaseMs?: number; backoffMaxMs?: number } = {}): Promise<NodeConditionsReporter> {
    const client = createKubeClient(await loadKubeConfig({ kubeconfig: cluster.agentKubeconfig(i) }), { timeoutMs: 5000 });
    clients.push(client);
    const r = new NodeConditionsReporter({ client, nodeName: `node-${i}`, clock, log: quietLog, backoffBaseMs: 50, backoffMaxMs: 200, ...extra });
    reporters.push(r);
    return r;
  }

  test('a condition appears on the Node and the kubelet-written Ready and another writer\'s condition survive', async () => {
    // What the kubelet and some other agent wrote first, as admin.
    const kubeletReady = { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status', lastHeartbeatTime: '2026-01-01T00:00:00Z', lastTransitionTime: '2025-12-31T00:00:00Z' };
    const other = { type: 'GPUDriverProblem', status: 'False', reason: 'DriverOK', message: 'from another writer', lastHeartbeatTime: '2026-01-01T00:00:00Z', lastTransitionTime: '2025-12-30T00:00:00Z' };
    const res = await cluster.request('PATCH', '/api/v1/nodes/node-0/status', {
      body: { status: { conditions: [kubeletReady, other] } },
      headers: { 'content-type': 'application/strategic-merge-patch+json' },
    });
    assert.equal(res.status, 200, res.body);

    const clock = new FakeClock(Date.UTC(2026, 0, 2));
    const r = await reporterFor(0, clock);
    // A detector that claims a kubelet type must not get to write it.
    r.setDetector('kernel', [cond('KernelDeadlock', 'True', 'DockerHung', 'task docker:1234 blocked for more than 120 seconds.', Date.UTC(2026, 0, 1, 12)), cond('Ready', 'False', 'Nope', 'not ours', 1)]);
    await r.settled();

    const got = await nodeConditions(cluster, 'node-0');
    assert.deepEqual(got.get('KernelDeadlock'), {
      type: 'KernelDeadlock', status: 'True', reason: 'DockerHung', message: 'task docker:1234 blocked for more than 120 seconds.',
      lastHeartbeatTime: '2026-01-02T00:00:00Z', lastTransitionTime: '2026-01-01T12:00:00Z',
    });
    assert.deepEqual(got.get('Ready'), kubeletReady);
    assert.deepEqual(got.get('GPUDriverProblem'), other);
    assert.equal(r.stats.writes, 1);
  });

  test('the heartbeat resync moves lastHeartbeatTime but not lastTransitionTime; an unchanged set, or one whose message alone moved, waits for it', async () => {
    const clock = new FakeClock(Date.UTC(2026, 1, 1));
    const r = await reporterFor(1, clock);
    r.start();
    r.setDetector('pressure', [cond('HighMemoryPressure', 'False', 'NoMemoryPressure', 'ok', Date.UTC(2026, 0, 15))]);
    await r.settled();
    const first = (await nodeConditions(cluster, 'node-1')).get('HighMemoryPressure');
    assert.equal(first?.lastHeartbeatTime, '2026-02-01T00:00:00Z');
    assert.equal(first?.lastTransitionTime, '2026-01-15T00:00:00Z');

    // Same state again from the next probe: nothing to write before the heartbeat.
    await clock.advance(60_000);
    r.setDetector('pressure', [cond('HighMemoryPressure', 'False', 'NoMemoryPressure', 'ok', Date.UTC(2026, 0, 15))]);
    await r.settled();
    assert.equal(r.stats.writes, 1);
    // Only the figures in the message moved: news for the heartbeat, not for a write per probe.
    await clock.advance(60_000);
    r.setDetector('pressure', [cond('HighMemoryPressure', 'False', 'NoMemoryPressure', 'ok, avg60=3.10%', Date.UTC(2026, 0, 15))]);
    await r.settled();
    assert.equal(r.stats.writes, 1);
    assert.equal((await nodeConditions(cluster, 'node-1')).get('HighMemoryPressure')?.message, 'ok');

    await clock.advance(3 * 60_000); // 5 min after start: NPD's default heartbeat period
    await r.settled();
    assert.equal(r.stats.writes, 2);
    const second = (await nodeConditions(cluster, 'node-1')).get('HighMemoryPressure');
    assert.equal(second?.lastHeartbeatTime, '2026-02-01T00:05:00Z');
    assert.equal(second?.lastTransitionTime, '2026-01-15T00:00:00Z');
    assert.equal(second?.status, 'False');
    assert.equal(second?.message, 'ok, avg60=3.10%');
  });

  test('two detectors reporting one type make one Node condition: True wins, earliest transition, both sources named', async () => {
    const clock = new FakeClock(Date.UTC(2026, 2, 1));
    const r = await reporterFor(2, clock);
    const t1 = Date.UTC(2026, 1, 28, 10);
    const t2 = Date.UTC(2026, 1, 28, 11);
    r.setDetector('kernel', [cond('ReadonlyFilesystem', 'True', 'FilesystemIsReadOnly', 'Remounting filesystem read-only', t1)]);
    r.setDetector('storage', [cond('ReadonlyFilesystem', 'True', 'FilesystemIsReadOnly', '/var/lib/kubelet is read-only', t2), cond('DiskFull', 'False', 'DiskHasSpace', 'ok', t2)]);
    await r.settled();
    let got = await nodeConditions(cluster, 'node-2');
    assert.equal(got.get('ReadonlyFilesystem')?.status, 'True');
    assert.equal(got.get('ReadonlyFilesystem')?.lastTransitionTime, '2026-02-28T10:00:00Z');
    assert.equal(got.get('ReadonlyFilesystem')?.message, 'kernel: Remounting filesystem read-only; storage: /var/lib/kubelet is read-only');
    assert.equal(got.get('DiskFull')?.status, 'False');
    assert.equal([...got.keys()].filter((t) => t === 'ReadonlyFilesystem').length, 1);

    // The kernel side clears (new boot); storage still sees it: still True, same transition.
    r.setDetector('kernel', [cond('ReadonlyFilesystem', 'False', 'FilesystemIsNotReadOnly', 'ok', Date.UTC(2026, 2, 1))]);
    await r.settled();
    got = await nodeConditions(cluster, 'node-2');
    assert.equal(got.get('ReadonlyFilesystem')?.status, 'True');
    assert.equal(got.get('ReadonlyFilesystem')?.message, '/var/lib/kubelet is read-only');
    assert.equal(got.get('ReadonlyFilesystem')?.lastTransitionTime, '2026-02-28T10:00:00Z');

    const t3 = Date.UTC(2026, 2, 1, 1);
    r.setDetector('storage', [cond('ReadonlyFilesystem', 'False', 'FilesystemIsNotReadOnly', 'ok', t3), cond('DiskFull', 'False', 'DiskHasSpace', 'ok', t2)]);
    await r.settled();
    got = await nodeConditions(cluster, 'node-2');
    assert.equal(got.get('ReadonlyFilesystem')?.status, 'False');
    assert.equal(got.get('ReadonlyFilesystem')?.lastTransitionTime, '2026-03-01T01:00:00Z');
  });

  test('apiserver down: changes coalesce and exactly the latest state is written once on reconnect', async () => {
    const r = await reporterFor(3, systemClock, { backoffBaseMs: 100, backoffMaxMs: 400 });
    r.setDetector('kernel', [cond('KernelDeadlock', 'False', 'KernelHasNoDeadlock', 'ok', Date.UTC(2026, 0, 1))]);
    await r.settled();
    assert.equal(r.stats.writes, 1);

    const server = cluster.server;
    const restarted = cluster.restart();
    await waitRefused(server);
    for (let i = 1; i <= 5; i++) {
      r.setDetector('kernel', [cond('KernelDeadlock', i % 2 === 1 ? 'True' : 'False', `Reason${i}`, `change ${i}`, Date.UTC(2026, 0, 1, i))]);
    }
    await restarted;
    await r.settled();

    assert.equal(r.stats.writes, 2, 'one write before the outage, exactly one after it');
    assert.ok(r.stats.failures >= 1, 'writes were attempted while the apiserver was away');
    const got = (await nodeConditions(cluster, 'node-3')).get('KernelDeadlock');
    assert.equal(got?.status, 'True');
    assert.equal(got?.reason, 'Reason5');
    assert.equal(got?.message, 'change 5');
    assert.equal(got?.lastTransitionTime, '2026-01-01T05:00:00Z');
  });

  test('startClusterReporter (the daemon\'s entry point): conditions reach the Node, events the Node\'s Events, the Lease appears, and writes are counted', async () => {
    const registry = new Registry();
    const host = createHost({ root: '/' });
    const r = await startClusterReporter({ kube: { kubeconfig: cluster.agentKubeconfig(4) }, nodeName: 'node-4', host, log: quietLog, agentVersion: 't', registry, machineStatus: false });
    try {
      r.setConditions('kernel', [cond('KernelDeadlock', 'True', 'DockerHung', 'blocked', Date.UTC(2026, 0, 1))]);
      r.recordEvents('kernel', [{ severity: 'warn', reason: 'TaskHung', message: 'task blocked', timestamp: 0 }]);
      const seen = async (): Promise<boolean> => {
        const node = (await nodeConditions(cluster, 'node-4')).get('KernelDeadlock')?.status === 'True';
        const ev = await cluster.request('GET', '/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dnode-4');
        const lease = await cluster.request('GET', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/kubenode-agent-node-4');
        return node && (JSON.parse(ev.body) as { items: unknown[] }).items.length === 1 && lease.status === 200;
      };
      for (let i = 0; i < 200 && !(await seen()); i++) await new Promise((res) => setTimeout(res, 50));
      assert.ok(await seen(), 'condition, event and lease all written');
      const text = await registry.metrics();
      assert.match(text, /kubenode_apiserver_writes_total\{writer="node_conditions",result="ok"\} 1/);
      assert.match(text, /kubenode_apiserver_writes_total\{writer="lease",result="ok"\} [1-9]/);
    } finally {
      await r.stop();
    }
  });

  test('refused, whether /readyz is ready or not, the latest conditions are kept and retried, never dropped: they land once the agent may write again', async () => {
    const clock = new FakeClock(Date.UTC(2026, 0, 5));
    const r = await reporterFor(5, clock);
    const NODE = '/api/v1/nodes/node-5';
    const giveAgent = await takeClusterRoleBindings(cluster, ['kubenode:agent']);
    let giveReadyz: (() => Promise<void>) | undefined = await takeClusterRoleBindings(cluster, READYZ_BINDINGS);
    try {
      await waitForbidden(cluster, 5, NODE);
      await waitForbidden(cluster, 5, '/readyz');
      r.setDetector('kernel', [cond('KernelDeadlock', 'True', 'DockerHung', 'refused at first', Date.UTC(2026, 0, 5))]);
      await until('refused while not ready', () => r.stats.failures >= 1 && clock.sleeping >= 1);
      await giveReadyz();
      giveReadyz = undefined;
      await waitAllowed(cluster, 5, '/readyz');
      await clock.advance(200);
      await until('refused by a ready apiserver', () => r.stats.failures >= 2 && clock.sleeping >= 1);
      assert.equal(r.stats.writes, 0);
    } finally {
      await giveReadyz?.();
      await giveAgent();
    }
    await waitAllowed(cluster, 5, NODE);
    await clock.advance(200);
    await r.settled();
    assert.equal(r.stats.writes, 1);
    assert.equal((await nodeConditions(cluster, 'node-5')).get('KernelDeadlock')?.message, 'refused at first');
  });
});

/** Until a TCP connect to the apiserver's port is refused: it is really gone. */
async function waitRefused(server: string): Promise<void> {
  const { hostname, port } = new URL(server);
  for (let i = 0; i < 600; i++) {
    const refused = await new Promise<boolean>((resolve) => {
      const s = connect({ host: hostname, port: Number(port) });
      s.once('connect', () => {
        s.destroy();
        resolve(false);
      });
      s.once('error', () => resolve(true));
    });
    if (refused) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('apiserver never went away');
}
