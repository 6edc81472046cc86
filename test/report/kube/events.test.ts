// Node Events against a real apiserver, written with an agent identity.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createKubeClient, loadKubeConfig, type KubeClient } from '../../../src/kube/client.ts';
import { NodeEventsReporter } from '../../../src/report/kube/events.ts';
import type { ProblemEvent } from '../../../src/types.ts';
import { startCluster, type Cluster } from '../../harness/cluster.ts';
import { FakeClock } from '../../helpers/fake-clock.ts';
import { quietLog, waitAllowed } from './helpers.ts';
import { createNode } from './rbac.ts';
import { grantAgentRbac } from '../../helpers/kube-objects.ts';

interface EventJson {
  metadata: { name: string; namespace: string };
  involvedObject: { kind: string; name: string; uid: string };
  reason: string;
  message: string;
  type: string;
  count: number;
  source: { component: string; host: string };
  firstTimestamp: string;
  lastTimestamp: string;
}

const ev = (reason: string, message: string, severity: ProblemEvent['severity'] = 'warn'): ProblemEvent => ({ severity, reason, message, timestamp: 0 });

describe('Node Events (real apiserver)', () => {
  let cluster: Cluster;
  const uids = new Map<string, string>();
  const clients: KubeClient[] = [];
  const reporters: NodeEventsReporter[] = [];

  before(async () => {
    cluster = await startCluster({ agents: 3 });
    await grantAgentRbac(cluster);
    for (const i of [0, 1, 2]) uids.set(`node-${i}`, await createNode(cluster, `node-${i}`));
    await waitAllowed(cluster, 0, '/api/v1/nodes/node-0');
  });
  after(async () => {
    await Promise.all(reporters.map((r) => r.stop()));
    for (const c of clients) c.close();
    await cluster?.stop();
  });

  async function reporterFor(i: number, clock: FakeClock): Promise<NodeEventsReporter> {
    const client = createKubeClient(await loadKubeConfig({ kubeconfig: cluster.agentKubeconfig(i) }), { timeoutMs: 5000 });
    clients.push(client);
    const r = new NodeEventsReporter({ client, nodeName: `node-${i}`, clock, log: quietLog });
    reporters.push(r);
    return r;
  }

  async function eventsOf(node: string): Promise<EventJson[]> {
    const res = await cluster.request('GET', `/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3D${node}`);
    assert.equal(res.status, 200, res.body);
    return (JSON.parse(res.body) as { items: EventJson[] }).items;
  }

  test('an event lands on the Node as NPD records it; repeats within the window bump count and lastTimestamp', async () => {
    const clock = new FakeClock(Date.UTC(2026, 3, 1));
    const r = await reporterFor(0, clock);
    r.record('kernel', ev('TaskHung', 'INFO: task jbd2/sda1-8:161 blocked for more than 120 seconds.'));
    r.record('kernel', ev('OOMKilling', 'Killed process 1234 (stress)'));
    await r.settled();
    await clock.advance(30_000);
    r.record('kernel', ev('TaskHung', 'INFO: task jbd2/sda1-8:161 blocked for more than 120 seconds.'));
    await clock.advance(30_000);
    r.record('kernel', ev('TaskHung', 'INFO: task jbd2/sda1-8:161 blocked for more than 120 seconds.'));
    r.record('systemd', ev('UnitRestarted', 'kubelet.service restarted', 'info'));
    await r.settled();

    const items = await eventsOf('node-0');
    assert.equal(items.length, 3, JSON.stringify(items.map((e) => e.reason)));
    const hung = items.find((e) => e.reason === 'TaskHung');
    assert.ok(hung);
    assert.equal(hung.count, 3);
    assert.equal(hung.type, 'Warning');
    assert.equal(hung.firstTimestamp, '2026-04-01T00:00:00Z');
    assert.equal(hung.lastTimestamp, '2026-04-01T00:01:00Z');
    assert.deepEqual(hung.involvedObject, { kind: 'Node', name: 'node-0', uid: uids.get('node-0'), apiVersion: 'v1' });
    assert.deepEqual(hung.source, { component: 'kubenode-agent', host: 'node-0' });
    assert.equal(hung.metadata.namespace, 'default');
    assert.equal(items.find((e) => e.reason === 'OOMKilling')?.count, 1);
    assert.equal(items.find((e) => e.reason === 'UnitRestarted')?.type, 'Normal');
    assert.deepEqual(r.stats, { created: 3, patched: 2, dropped: 0, failed: 0 });

    // Past the 10-minute window the same problem is a new Event.
    await clock.advance(11 * 60_000);
    r.record('kernel', ev('TaskHung', 'INFO: task jbd2/sda1-8:161 blocked for more than 120 seconds.'));
    await r.settled();
    assert.equal((await eventsOf('node-0')).filter((e) => e.reason === 'TaskHung').length, 2);
  });

  test('the token bucket lets a burst of 25 through, then one write per 5 s', async () => {
    const clock = new FakeClock(Date.UTC(2026, 3, 2));
    const r = await reporterFor(1, clock);
    for (let i = 0; i < 30; i++) r.record('kernel', ev('KernelOops', `oops number ${i}`));
    await r.settled();
    assert.equal(r.stats.created, 25);
    assert.equal(r.stats.dropped, 5);
    assert.equal((await eventsOf('node-1')).length, 25);

    await clock.advance(4_999);
    r.record('kernel', ev('KernelOops', 'too soon'));
    await clock.advance(1);
    r.record('kernel', ev('KernelOops', 'one token back'));
    r.record('kernel', ev('KernelOops', 'and none left'));
    await r.settled();
    const messages = (await eventsOf('node-1')).map((e) => e.message);
    assert.equal(messages.length, 26);
    assert.ok(messages.includes('one token back'));
    assert.ok(!messages.includes('too soon') && !messages.includes('and none left'));
    assert.deepEqual(r.stats, { created: 26, patched: 0, dropped: 7, failed: 0 });
  });

  test('a repeat dropped by the rate limit still counts: the next write carries the true count', async () => {
    const clock = new FakeClock(Date.UTC(2026, 3, 3));
    const client = createKubeClient(await loadKubeConfig({ kubeconfig: cluster.agentKubeconfig(2) }), { timeoutMs: 5000 });
    clients.push(client);
    const r = new NodeEventsReporter({ client, nodeName: 'node-2', clock, log: quietLog, burst: 1, refillMs: 5000 });
    reporters.push(r);
    r.record('kernel', ev('TaskHung', 'same'));
    await r.settled();
    r.record('kernel', ev('TaskHung', 'same')); // no token: counted, not written
    await clock.advance(5000);
    r.record('kernel', ev('TaskHung', 'same'));
    await r.settled();
    const items = await eventsOf('node-2');
    assert.equal(items.length, 1);
    assert.equal(items[0]?.count, 3);
  });
});
