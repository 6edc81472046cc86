// 410 Gone for real: the apiserver runs with its watch cache off (watches are served by etcd) and
// compacts etcd every second (--etcd-compaction-interval=1s; the default is 5 min). The informer
// is cut off by a proxy while objects change, etcd compacts past the informer's resourceVersion,
// and on reconnect its watch gets 410 Expired: it must re-list and lose no change.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../src/log.ts';
import { Informer, type InformerEvent, type KubeObject } from '../../src/watch/informer.ts';
import { startCluster, type Cluster } from '../harness/cluster.ts';
import { agentKube, createMc, deleteMc, grantAgents, installCrd, MC_PATH, patchMc, TcpProxy, until } from './helpers.ts';

describe('informer and 410 Gone', () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await startCluster({ apiserverArgs: ['--watch-cache=false', '--etcd-compaction-interval=1s'] });
    await installCrd(cluster);
    await grantAgents(cluster);
  });
  after(async () => {
    await cluster?.stop();
  });

  it('a watch from a compacted resourceVersion gets 410; the informer re-lists and has every change it missed', async () => {
    const proxy = new TcpProxy(cluster.server);
    await proxy.listen();
    await createMc(cluster, { name: 'g-a', node: 'node-4', version: '1.0.0' });
    await createMc(cluster, { name: 'g-c', node: 'node-4', version: '1.0.0' });
    const { kc, client } = await agentKube(cluster, 4, { server: proxy.url });
    const informer = new Informer<KubeObject>({
      client,
      kubeConfig: kc,
      resource: { group: 'kubenode.io', version: 'v1alpha1', plural: 'machinecomponents' },
      labelSelector: 'kubenode.io/machine=node-4',
      log: createLogger('silent'),
      backoffMs: 200,
      maxBackoffMs: 1000,
    });
    const events: InformerEvent<KubeObject>[] = [];
    informer.on((e) => events.push(e));
    informer.start();
    try {
      await informer.waitForSync();
      await until('watch connected', () => informer.stats.watches >= 1 && proxy.connections >= 2);
      const staleRv = informer.resourceVersion as string;
      proxy.partition();

      // Changes the informer cannot see while cut off.
      const patched = await patchMc(cluster, 'g-a', { version: '2.0.0' });
      const added = await createMc(cluster, { name: 'g-b', node: 'node-4', version: '1.0.0' });
      await deleteMc(cluster, 'g-c');
      // Wait until etcd has really compacted past the informer's resourceVersion: the same watch,
      // asked by the admin, is answered with 410 Expired.
      await until(
        'compaction past the informer',
        async () => {
          await patchMc(cluster, 'g-a', { version: '2.0.0' }); // a no-op write keeps revisions moving
          const r = await cluster.request('GET', `${MC_PATH}?watch=1&resourceVersion=${staleRv}&timeoutSeconds=1`);
          return r.status === 410 || /"code":410/.test(r.body);
        },
        30_000,
      );
      const goneBefore = informer.stats.gone;
      proxy.heal();

      await until('re-listed after 410', () => informer.stats.gone > goneBefore && informer.stats.lists >= 2, 30_000);
      await until('state caught up', () => informer.get('g-a')?.metadata.resourceVersion !== undefined && !informer.snapshot().has('g-c') && informer.snapshot().has('g-b'), 10_000);
      assert.equal((informer.get('g-a') as { spec?: { version?: string } }).spec?.version, '2.0.0');
      assert.ok(Number(informer.get('g-a')?.metadata.resourceVersion) >= Number(patched.metadata.resourceVersion));
      assert.equal(informer.get('g-b')?.metadata.resourceVersion, added.metadata.resourceVersion);
      assert.deepEqual([...informer.snapshot().keys()].sort(), ['g-a', 'g-b']);
      // Handlers saw each missed change once, as the diff of the re-list.
      assert.equal(events.filter((e) => e.type === 'add' && e.object.metadata.name === 'g-b').length, 1);
      assert.equal(events.filter((e) => e.type === 'delete' && e.object.metadata.name === 'g-c').length, 1);
      assert.ok(events.some((e) => e.type === 'synced' && e.reason === 'gone'));
    } finally {
      await informer.stop();
      await proxy.close();
    }
  });
});
