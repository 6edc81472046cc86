// The informer against a real kube-apiserver (one per file): apiserver restart, a half-dead
// connection (stall watchdog), periodic resync without replays reaching handlers, and a soak of
// two minutes of churn on one watch connection that also checks client-node 1.4.0 for the
// 30-second watch abort (#3020) and that memory stays flat.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import { createLogger } from '../../src/log.ts';
import { Informer, type InformerEvent, type KubeObject } from '../../src/watch/informer.ts';
import { machineInformer } from '../../src/watch/sources.ts';
import { startCluster, type Cluster } from '../harness/cluster.ts';
import { agentKube, createMc, deleteMc, grantAgents, installCrd, MC_PATH, patchMc, TcpProxy, until } from './helpers.ts';
import { MACHINES_PATH, MERGE_PATCH } from '../helpers/kube-api.ts';

const log = createLogger('silent');
const resource = { group: 'kubenode.io', version: 'v1alpha1', plural: 'machinecomponents' };

// node --test gives no way to pass --expose-gc to the file's process; the flag can still be set
// at run time and gc() fetched from a fresh context.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

async function informerFor(cluster: Cluster, node: number, extra: { server?: string; stallMs?: number; resyncMs?: number; record?: boolean } = {}): Promise<{ informer: Informer<KubeObject>; events: InformerEvent<KubeObject>[] }> {
  const { kc, client } = await agentKube(cluster, node, extra.server === undefined ? {} : { server: extra.server });
  const informer = new Informer<KubeObject>({
    client,
    kubeConfig: kc,
    resource,
    labelSelector: `kubenode.io/machine=node-${node}`,
    log,
    backoffMs: 200,
    maxBackoffMs: 2000,
    ...(extra.stallMs === undefined ? {} : { stallMs: extra.stallMs }),
    ...(extra.resyncMs === undefined ? {} : { resyncMs: extra.resyncMs }),
  });
  const events: InformerEvent<KubeObject>[] = [];
  // The soak records nothing: a list of every event would be the very growth it looks for.
  if (extra.record !== false) informer.on((e) => events.push(e));
  informer.start();
  await informer.waitForSync();
  return { informer, events };
}

const rv = (informer: Informer<KubeObject>, name: string): string | undefined => informer.get(name)?.metadata.resourceVersion;

describe('informer on a real apiserver', () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await startCluster();
    await installCrd(cluster);
    await installCrd(cluster, 'machines');
    await grantAgents(cluster);
  });
  after(async () => {
    await cluster?.stop();
  });

  it('sees only its node, and keeps delivering across an apiserver restart', async () => {
    await createMc(cluster, { name: 'r-a', node: 'node-0', version: '1.0.0' });
    await createMc(cluster, { name: 'r-other', node: 'node-9', version: '1.0.0' });
    const { informer, events } = await informerFor(cluster, 0);
    try {
      assert.deepEqual([...informer.snapshot().keys()], ['r-a']);
      await cluster.restart();
      const patched = await patchMc(cluster, 'r-a', { version: '1.1.0' });
      await until('update after restart', () => rv(informer, 'r-a') === patched.metadata.resourceVersion, 60_000);
      assert.ok(informer.stats.watches >= 2, `reconnected: ${JSON.stringify(informer.stats)}`);
      // The object was added once; the reconnect did not replay it to the handler as new.
      assert.equal(events.filter((e) => e.type === 'add' && e.object.metadata.name === 'r-a').length, 1);
      assert.equal(events.filter((e) => e.type === 'update').length, 1);
    } finally {
      await informer.stop();
    }
  });

  it('watches its own Machine by field selector on the name', async () => {
    const machine = (name: string, paused: boolean): Record<string, unknown> => ({
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'Machine',
      metadata: { name },
      spec: { labels: {}, taints: [], components: [], paused },
    });
    for (const n of ['node-5', 'node-6']) {
      const r = await cluster.request('POST', MACHINES_PATH, { body: machine(n, false) });
      assert.equal(r.status, 201, r.body);
    }
    const { kc, client } = await agentKube(cluster, 5);
    const informer = machineInformer(client, kc, 'node-5', log);
    const events: InformerEvent<KubeObject>[] = [];
    informer.on((e) => events.push(e));
    informer.start();
    try {
      await informer.waitForSync();
      assert.deepEqual([...informer.snapshot().keys()], ['node-5']);
      for (const n of ['node-6', 'node-5']) {
        const r = await cluster.request('PATCH', `${MACHINES_PATH}/${n}`, { body: { spec: { paused: true } }, headers: MERGE_PATCH });
        assert.equal(r.status, 200, r.body);
      }
      await until('update of node-5', () => events.some((e) => e.type === 'update'));
      assert.deepEqual(events.filter((e) => e.type !== 'synced').map((e) => [e.type, e.object.metadata.name]), [['add', 'node-5'], ['update', 'node-5']]);
    } finally {
      await informer.stop();
    }
  });

  it('re-lists when the watch connection goes silent without an error (stall watchdog)', async () => {
    const proxy = new TcpProxy(cluster.server);
    await proxy.listen();
    await createMc(cluster, { name: 's-a', node: 'node-1', version: '1.0.0' });
    const { informer, events } = await informerFor(cluster, 1, { server: proxy.url, stallMs: 2000 });
    try {
      assert.equal(informer.stats.lists, 1);
      // The watch is open; make it (and every open connection) a black hole.
      await until('watch connected', () => informer.stats.watches >= 1 && proxy.connections >= 1);
      await sleep(200);
      assert.ok(proxy.freeze() >= 1);
      const patched = await patchMc(cluster, 's-a', { version: '2.0.0' });
      // Only a new list over a new connection can bring this update.
      await until('update after stall', () => rv(informer, 's-a') === patched.metadata.resourceVersion, 30_000);
      assert.ok(informer.stats.stalls >= 1, JSON.stringify(informer.stats));
      assert.ok(informer.stats.lists >= 2, JSON.stringify(informer.stats));
      assert.equal(events.filter((e) => e.type === 'update').length, 1);
    } finally {
      await informer.stop();
      await proxy.close();
    }
  });

  it('resyncs periodically by re-listing, and unchanged objects reach no handler again', async () => {
    for (const n of ['y-a', 'y-b', 'y-c']) await createMc(cluster, { name: n, node: 'node-2', version: '1.0.0' });
    const { informer, events } = await informerFor(cluster, 2, { resyncMs: 700 });
    try {
      await until('three resyncs', () => informer.stats.resyncs >= 3, 30_000);
      assert.equal(events.filter((e) => e.type === 'add').length, 3);
      assert.equal(events.filter((e) => e.type === 'update' || e.type === 'delete').length, 0);
      assert.ok(events.filter((e) => e.type === 'synced').length >= 4);
      await deleteMc(cluster, 'y-b');
      await until('delete', () => !informer.snapshot().has('y-b'));
      assert.deepEqual([...informer.snapshot().keys()].sort(), ['y-a', 'y-c']);
    } finally {
      await informer.stop();
    }
  });

  it('two minutes of churn on one watch connection: events keep coming after 60 s (#3020), memory stays flat, the cache matches the apiserver', async () => {
    const node = 3;
    const { informer } = await informerFor(cluster, node, { record: false });
    const started = Date.now();
    let lastEventAt = 0;
    const off = informer.on((e) => {
      if (e.type !== 'synced') lastEventAt = Date.now();
    });
    const names = Array.from({ length: 25 }, (_, i) => `soak-${i}`);
    const live = new Set<string>();
    let ops = 0;
    const churn = async (untilMs: number): Promise<void> => {
      while (Date.now() - started < untilMs) {
        const name = names[ops % names.length] as string;
        if (!live.has(name)) {
          await createMc(cluster, { name, node: `node-${node}`, version: '1.0.0', spec: { files: [{ path: `/etc/${name}`, content: 'x'.repeat(2000) }] } });
          live.add(name);
        } else if (ops % 3 === 0) {
          await deleteMc(cluster, name);
          live.delete(name);
        } else {
          await patchMc(cluster, name, { version: `1.0.${ops}` });
        }
        ops += 1;
      }
    };
    try {
      // Warm up (JIT, client pools), then measure from a collected heap.
      await churn(10_000);
      gc();
      await sleep(100);
      gc();
      const before = process.memoryUsage();
      await churn(125_000);
      // The last change after 60 s must arrive on the same connection the informer opened first.
      const final = JSON.parse((await cluster.request('GET', `${MC_PATH}?labelSelector=kubenode.io/machine=node-${node}`)).body) as { items: KubeObject[] };
      const want = new Map(final.items.map((o) => [o.metadata.name, o.metadata.resourceVersion]));
      await until('cache matches the apiserver', () => informer.snapshot().size === want.size && [...want].every(([n, r]) => rv(informer, n) === r), 30_000);
      gc();
      await sleep(100);
      gc();
      const afterMem = process.memoryUsage();
      const growthMb = (afterMem.heapUsed - before.heapUsed) / 1024 / 1024;
      process.stdout.write(
        `# soak: ${ops} changes in ${Math.round((Date.now() - started) / 1000)} s; watches=${informer.stats.watches} events=${informer.stats.events} lists=${informer.stats.lists} ` +
          `heapUsed ${(before.heapUsed / 1048576).toFixed(1)} → ${(afterMem.heapUsed / 1048576).toFixed(1)} MB (${growthMb >= 0 ? '+' : ''}${growthMb.toFixed(1)} MB), rss ${(before.rss / 1048576).toFixed(0)} → ${(afterMem.rss / 1048576).toFixed(0)} MB, external ${(before.external / 1048576).toFixed(1)} → ${(afterMem.external / 1048576).toFixed(1)} MB\n`,
      );
      assert.ok(lastEventAt - started > 65_000, `an event arrived ${Math.round((lastEventAt - started) / 1000)} s after the watch opened`);
      assert.equal(informer.stats.watches, 1, `one watch connection for the whole soak: ${JSON.stringify(informer.stats)}`);
      assert.equal(informer.stats.errors, 0);
      assert.ok(growthMb < 20, `heap grew ${growthMb.toFixed(1)} MB`);
    } finally {
      off();
      await informer.stop();
    }
  });
});
