// A RiskPolicy written by someone else between the agent's read and its write: the 409 is retried
// after a wait on the Host clock (so a fake clock drives it), against a real kube-apiserver.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import type { KubeApi } from '../../src/remedies/kube-api.ts';
import { createKubeApi } from '../../src/remedies/kube-api.ts';
import { RiskPolicyClient, type PolicyKube } from '../../src/risk/policy.ts';
import { startCluster, type Cluster } from '../harness/cluster.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { grantAgentRbac, installCrds } from '../helpers/kube-objects.ts';
import { createNode, must } from '../remedies/cluster-fixture.ts';
import { KUBENODE_API, MERGE_PATCH } from '../helpers/kube-api.ts';

const RP = `${KUBENODE_API}/riskpolicies`;

class RecordingClock extends FakeClock {
  readonly sleeps: number[] = [];
  override sleep(ms: number, signal?: AbortSignal): Promise<void> {
    this.sleeps.push(ms);
    return super.sleep(ms, signal);
  }
}

let cluster: Cluster;
let kube: KubeApi;
before(async () => {
  cluster = await startCluster({ agents: 1 });
  await installCrds(cluster);
  await grantAgentRbac(cluster);
  await createNode(cluster, 'node-0', { pool: 'conflict' });
  kube = await createKubeApi({ kubeconfig: cluster.agentKubeconfig(0) });
});
after(async () => {
  kube?.close();
  await cluster?.stop();
});

test('a conflicting write to the RiskPolicy is retried after a jittered wait on the Host clock, for taking and for handing back', async () => {
  await must(cluster, 'POST', RP, { apiVersion: 'kubenode.io/v1alpha1', kind: 'RiskPolicy', metadata: { name: 'conflict' }, spec: { nodeSelector: { matchLabels: { pool: 'conflict' } }, maxInFlight: 1, minHealthyShare: 0 } });
  let bumps = 0;
  let raceNext = true;
  // Before the next status write after raceNext is set, an admin changes the object: that write gets a real 409.
  const racing: PolicyKube = {
    request: async <T>(verb: string, path: string, options?: Parameters<PolicyKube['request']>[2]): Promise<T> => {
      if (verb === 'PUT' && path.endsWith('/status') && raceNext) {
        raceNext = false;
        bumps++;
        await must(cluster, 'PATCH', `${RP}/conflict`, { metadata: { annotations: { bumped: String(bumps) } } }, MERGE_PATCH);
      }
      return kube.request<T>(verb, path, options);
    },
  };
  const clock = new RecordingClock(Date.now());
  const client = new RiskPolicyClient(racing, clock, pino({ level: 'silent' }));
  const acquiring = client.acquire({ node: 'node-0', action: 'reboot', risk: 'disruptive', operation: 'op-1' });
  const waitForSleeps = async (n: number): Promise<void> => {
    for (let i = 0; clock.sleeps.length < n; i++) {
      assert.ok(i < 1000, `no wait on the Host clock after conflict ${n}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  await waitForSleeps(1);
  assert.ok((clock.sleeps[0] as number) >= 5 && (clock.sleeps[0] as number) <= 10, `first wait ${clock.sleeps[0]} ms`);
  await clock.advance(10);
  const taken = await acquiring;
  assert.equal(taken.allowed, true, JSON.stringify(taken));
  raceNext = true;
  const releasing = client.release('op-1');
  await waitForSleeps(2);
  await clock.advance(10);
  await releasing;
  assert.equal(bumps, 2);
  const policy = await must(cluster, 'GET', `${RP}/conflict`);
  assert.deepEqual(policy.status.permits.map((p: { holder: string; releasedAt?: string }) => [p.holder, p.releasedAt !== undefined]), [['node-0', true]]);
});
