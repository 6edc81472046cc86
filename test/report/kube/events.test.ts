// Node Events against a real apiserver, written with an agent identity.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createKubeClient, loadKubeConfig, type KubeClient } from '../../../src/kube/client.ts';
import { NodeEventsReporter } from '../../../src/report/kube/events.ts';
import type { ProblemEvent } from '../../../src/types.ts';
import { startCluster, type Cluster } from '../../harness/cluster.ts';
import { FakeClock } from '../../helpers/fake-clock.ts';
import { captureLog, quietLog, waitAllowed, waitForbidden } from './helpers.ts';
import { createNode } from './rbac.ts';
import { grantAgentRbac, impersonatedAgentClient, READYZ_BINDINGS, takeClusterRoleBindings } from '../../helpers/kube-objects.ts';
import { until } from '../../watch/helpers.ts';

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
    cluster = await startCluster({ agents: 4 });
    await grantAgentRbac(cluster);
    for (const i of [0, 1, 2, 3]) uids.set(`node-${i}`, await createNode(cluster, `node-${i}`));
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
  test('refused while /readyz is not ready (an apiserver just started refuses everyone until its RBAC caches fill), an event is tried again and lands; refused by a ready apiserver, it is dropped with one line', async () => {
    const clock = new FakeClock(Date.UTC(2026, 3, 4));
    const { log, lines } = captureLog();
    const tries: boolean[] = [];
    const client = createKubeClient(await loadKubeConfig({ kubeconfig: cluster.agentKubeconfig(3) }), { timeoutMs: 5000 });
    clients.push(client);
    // random 1: the backoff is exactly 1 s, then 2 s.
    const r = new NodeEventsReporter({ client, nodeName: 'node-3', clock, log, random: () => 1, observe: (_, ok) => tries.push(ok) });
    reporters.push(r);
    r.record('kernel', ev('KernelOops', 'written while allowed'));
    await r.settled();
    assert.equal(r.stats.created, 1, 'the Node uid is read');
    const NODE = '/api/v1/nodes/node-3';
    const refusedLines = () => lines.filter((l) => l.msg === 'Apiserver refused the Event; dropped');

    // The agent's rights (events create, with nodes get) and everyone's /readyz gone: every answer is 403.
    let giveAgent: (() => Promise<void>) | undefined = await takeClusterRoleBindings(cluster, ['kubenode:agent']);
    let giveReadyz: (() => Promise<void>) | undefined = await takeClusterRoleBindings(cluster, READYZ_BINDINGS);
    try {
      await waitForbidden(cluster, 3, NODE);
      await waitForbidden(cluster, 3, '/readyz');
      r.record('kernel', ev('KernelOops', 'refused while not ready'));
      await until('the first try refused and the retry waiting', () => tries.length === 2 && clock.sleeping === 1);
      assert.deepEqual({ ...r.stats, tries }, { created: 1, patched: 0, dropped: 0, failed: 0, tries: [true, false] }, 'not dropped');
      const waiting = lines.filter((l) => l.msg === 'Cannot record Event yet; will retry');
      assert.equal(waiting.length, 1);
      assert.match(String(waiting[0]?.err), /^GET \/readyz: 403 not ready: forbidden/);
      await clock.advance(1000);
      await until('the second try refused and the next waiting', () => tries.length === 3 && clock.sleeping === 1);
      assert.equal(r.stats.failed, 0);

      // The rights come back while /readyz still refuses: the third try lands.
      await giveAgent();
      giveAgent = undefined;
      await waitAllowed(cluster, 3, NODE);
      await clock.advance(2000);
      await r.settled();
      assert.deepEqual({ ...r.stats, tries: tries.slice(1) }, { created: 2, patched: 0, dropped: 0, failed: 0, tries: [false, false, true] });
      assert.ok((await eventsOf('node-3')).some((e) => e.message === 'refused while not ready' && e.count === 1));
      assert.equal(refusedLines().length, 0);

      // /readyz answers 200 and the agent is refused: the refusal is real, the event dropped at once.
      await giveReadyz();
      giveReadyz = undefined;
      await waitAllowed(cluster, 3, '/readyz');
      giveAgent = await takeClusterRoleBindings(cluster, ['kubenode:agent']);
      await waitForbidden(cluster, 3, NODE);
      r.record('kernel', ev('KernelOops', 'refused by a ready apiserver'));
      await r.settled();
      assert.equal(clock.sleeping, 0, 'no retry');
      assert.deepEqual({ ...r.stats, tries: tries.slice(4) }, { created: 2, patched: 0, dropped: 0, failed: 1, tries: [false] });
      const refused = refusedLines();
      assert.equal(refused.length, 1);
      assert.equal(refused[0]?.kind, 'forbidden');
      assert.match(String(refused[0]?.err), /^POST \/api\/v1\/namespaces\/default\/events: 403 .*cannot create resource "events"/);
      assert.ok(!(await eventsOf('node-3')).some((e) => e.message === 'refused by a ready apiserver'));
    } finally {
      await giveReadyz?.();
      await giveAgent?.();
    }
  });

  test('a node name of 253 characters: its Events are named within 253 characters, the node name shortened, and counted on repeat', async () => {
    const node = `${'worker.rack-07.hall-2.eu-central-1.example.'.repeat(6).slice(0, 252)}z`;
    const uid = await createNode(cluster, node);
    const client = await impersonatedAgentClient(cluster, node);
    clients.push(client);
    const r = new NodeEventsReporter({ client, nodeName: node, clock: new FakeClock(Date.UTC(2026, 4, 5)), log: quietLog });
    reporters.push(r);
    r.record('kernel', ev('KernelOops', 'long node'));
    r.record('kernel', ev('KernelOops', 'long node'));
    await r.settled();
    assert.deepEqual({ ...r.stats }, { created: 1, patched: 1, dropped: 0, failed: 0 });
    const [e] = (await eventsOf(node)).filter((x) => x.message === 'long node');
    assert.ok(e !== undefined);
    assert.ok(e.metadata.name.length <= 253 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(e.metadata.name), e.metadata.name);
    assert.ok(e.metadata.name.startsWith(node.slice(0, 200)), e.metadata.name);
    assert.deepEqual([e.involvedObject.name, e.involvedObject.uid, e.count], [node, uid, 2]);
  });
});
