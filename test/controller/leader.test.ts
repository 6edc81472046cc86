// Leader election against a real apiserver: two electors on one Lease, handover after a crash
// (no release) only once the lease duration has passed on the waiting replica's clock, a clean
// release that hands over at once, and a leader cut off from the apiserver that stops leading
// before its lease can expire.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LeaderElector } from '../../src/controller/leader.ts';
import { createLogger } from '../../src/log.ts';
import { startCluster, type Cluster } from '../harness/cluster.ts';
import { TcpProxy } from '../watch/helpers.ts';
import { adminKube, ensureNamespace, must, until } from './helpers.ts';

const log = createLogger('silent');
const NS = 'kubenode-system';
// Short but in client-go's proportions (15/10/2).
const TIMING = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 400 };

interface LeaseSpec { holderIdentity?: string; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string; leaseTransitions?: number }
const leaseOf = (cluster: Cluster, name: string) => must<{ spec: LeaseSpec }>(cluster, 'GET', `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/${name}`).then((l) => l.spec);

describe('leader election on a real apiserver', () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await startCluster({ agents: 1 });
    await ensureNamespace(cluster, NS);
  });
  after(async () => {
    await cluster?.stop();
  });

  async function elector(name: string, identity: string, server?: string): Promise<LeaderElector> {
    const { client } = await adminKube(cluster, server);
    return new LeaderElector({ client, namespace: NS, name, identity, log, ...TIMING });
  }

  it('one of two candidates leads; the other takes over only after the lease duration once the leader dies', async () => {
    const a = await elector('l1', 'a');
    const b = await elector('l1', 'b');
    const leading: string[] = [];
    const ra = a.run(() => leading.push('a'));
    await until('a leads', () => leading.includes('a'));
    const rb = b.run(() => leading.push('b'));
    await sleep(TIMING.leaseDurationMs + 1000);
    assert.deepEqual(leading, ['a'], 'b must wait while a renews');
    assert.equal(b.isLeader(), false);
    const first = await leaseOf(cluster, 'l1');
    assert.equal(first.holderIdentity, 'a');
    assert.equal(first.leaseDurationSeconds, 3);
    assert.equal(first.leaseTransitions, 0);
    assert.ok(a.stats.renewals >= 3, `a renewed (${a.stats.renewals})`);
    assert.notEqual(first.renewTime, first.acquireTime, 'renewals move renewTime, not acquireTime');

    // a crashes: stops without releasing.
    a.stop();
    assert.equal(await ra, 'stopped');
    const diedAt = Date.now();
    await until('b leads', () => leading.includes('b'), 10_000);
    const waited = Date.now() - diedAt;
    assert.ok(waited >= TIMING.leaseDurationMs - TIMING.retryPeriodMs, `b took over after ${waited} ms, not before the lease could expire`);
    const second = await leaseOf(cluster, 'l1');
    assert.equal(second.holderIdentity, 'b');
    assert.equal(second.leaseTransitions, 1);
    assert.notEqual(second.acquireTime, first.acquireTime);
    b.stop();
    assert.equal(await rb, 'stopped');
  });

  it('a released lease is taken over at once', async () => {
    const a = await elector('l2', 'a');
    const b = await elector('l2', 'b');
    let bLed = 0;
    const ra = a.run(() => {});
    await until('a leads', () => a.isLeader());
    const rb = b.run(() => (bLed = Date.now()));
    await sleep(500);
    a.stop();
    await ra;
    const releasedAt = Date.now();
    await a.release();
    assert.equal((await leaseOf(cluster, 'l2')).holderIdentity, '');
    await until('b leads', () => bLed > 0, 10_000);
    assert.ok(bLed - releasedAt < TIMING.leaseDurationMs, 'no wait for a released lease');
    b.stop();
    await rb;
  });

  it('a leader that cannot reach the apiserver stops leading before its lease expires', async () => {
    const proxy = new TcpProxy(cluster.server);
    await proxy.listen();
    const a = await elector('l3', 'a', proxy.url);
    const b = await elector('l3', 'b');
    let aSignal: AbortSignal | undefined;
    let bLedAt = 0;
    const ra = a.run((s) => (aSignal = s));
    await until('a leads', () => a.isLeader());
    const rb = b.run(() => (bLedAt = Date.now()));
    await sleep(800);
    proxy.partition();
    const cutAt = Date.now();
    assert.equal(await ra, 'lost');
    const stoppedAt = Date.now();
    assert.equal(aSignal?.aborted, true, 'the leading signal aborts');
    assert.equal(a.isLeader(), false);
    await until('b leads', () => bLedAt > 0, 15_000);
    assert.ok(stoppedAt < bLedAt, `a stopped acting (${stoppedAt - cutAt} ms after the cut) before b led (${bLedAt - cutAt} ms)`);
    b.stop();
    await rb;
    await proxy.close();
  });

  it('refuses timings client-go refuses', async () => {
    const { client } = await adminKube(cluster);
    assert.throws(() => new LeaderElector({ client, namespace: NS, name: 'x', identity: 'x', log, leaseDurationMs: 10_000, renewDeadlineMs: 10_000 }), /renewDeadline/);
    assert.throws(() => new LeaderElector({ client, namespace: NS, name: 'x', identity: 'x', log, retryPeriodMs: 0 }), /retryPeriod/);
  });
});
