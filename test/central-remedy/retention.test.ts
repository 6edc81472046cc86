// Finished RemedyOperations, the agents' and the controller's, are deleted by the controller once
// they ended longer ago than the retention (default 14 days, here 8); recent and unfinished ones stay.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { labelValueOf, NODE_LABEL } from '../../src/api/common.ts';
import { Controller } from '../../src/controller/index.ts';
import { createLogger } from '../../src/log.ts';
import { startCluster, type Cluster } from '../harness/cluster.ts';
import { installCrds } from '../helpers/kube-objects.ts';
import { MERGE_PATCH } from '../helpers/kube-api.ts';
import { ensureNamespace, must, until } from '../controller/helpers.ts';
import { OPS, ops } from './fleet.ts';

const log = createLogger(process.env.KUBENODE_TEST_LOG === '1' ? 'debug' : 'silent');
const NS = 'kubenode-system';
const daysAgo = (d: number): string => new Date(Date.now() - d * 86_400_000).toISOString().replace(/\.\d+Z$/, 'Z');

describe('RemedyOperation retention on a real apiserver', () => {
  let cluster: Cluster;
  let controller: Controller | undefined;

  const record = async (name: string, actor: 'agent' | 'controller', status: Record<string, unknown>): Promise<void> => {
    const node = `r-${name}`;
    await must(cluster, 'POST', OPS, {
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'RemedyOperation',
      metadata: { name, labels: { [NODE_LABEL]: labelValueOf(node) } },
      spec: { node, actor, action: 'cordon', problem: { conditionType: 'AgentUnreachable', reason: 'NodeStatusUnknown', message: '' }, risk: 'disruptive', step: 0, dryRun: false },
    });
    const r = await cluster.request('PATCH', `${OPS}/${name}/status`, { body: { status }, headers: MERGE_PATCH });
    assert.equal(r.status, 200, r.body);
  };

  before(async () => {
    cluster = await startCluster();
    await installCrds(cluster);
    await ensureNamespace(cluster, NS);
  });
  after(async () => {
    await controller?.stop();
    await cluster?.stop();
  });

  it('deletes what ended before the retention, keeps what ended since and what has not ended', async () => {
    await record('old-agent', 'agent', { phase: 'Succeeded', result: 'Fixed', startTime: daysAgo(21), endTime: daysAgo(20) });
    await record('old-failed', 'controller', { phase: 'Failed', result: 'NotFixed', startTime: daysAgo(30), endTime: daysAgo(30) });
    await record('recent', 'agent', { phase: 'Succeeded', result: 'Fixed', startTime: daysAgo(3), endTime: daysAgo(3) });
    await record('old-running', 'agent', { phase: 'Verifying', startTime: daysAgo(20) });
    await record('old-denied', 'agent', { phase: 'Denied', startTime: daysAgo(10), endTime: daysAgo(10) });

    controller = new Controller({ kubeconfig: cluster.adminKubeconfig, leaderElect: false, namespace: NS, listen: '127.0.0.1:0', remedySweepMs: 200, remedyOperationRetentionMs: 8 * 86_400_000 }, log);
    await controller.start();
    await until('the old finished operations are gone', async () => (await ops(cluster)).length === 2, 30_000);
    assert.deepEqual((await ops(cluster)).map((o) => o.metadata.name).sort(), ['old-running', 'recent']);
  });
});
