// Central remedies against a real apiserver and a real BMC (OpenIPMI's ipmi_sim on 127.0.0.1,
// driven by the real ipmitool): the controller in this process, agents played by the test (fleet.ts).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { Controller } from '../../src/controller/index.ts';
import { NodeCoordinator } from '../../src/controller/remedy/coordination.ts';
import { createKubeClient, loadKubeConfig } from '../../src/kube/client.ts';
import { createLogger } from '../../src/log.ts';
import { systemClock } from '../../src/host/clock.ts';
import { createHost } from '../../src/host/host.ts';
import { decodeSection } from '../../src/config/decode.ts';
import { RemediesConfig } from '../../src/remedies/config.ts';
import { createRemedies } from '../../src/remedies/setup.ts';
import { createKubeApi } from '../../src/remedies/kube-api.ts';
import { startCluster, type Cluster } from '../harness/cluster.ts';
import { installCrds } from '../helpers/kube-objects.ts';
import { TcpProxy } from '../watch/helpers.ts';
import { ensureNamespace, must, MCS_PATH, until } from '../controller/helpers.ts';
import { MERGE_PATCH } from '../helpers/kube-api.ts';
import { riskGate, silent } from '../remedies/helpers.ts';
import { BMC_PASSWORD, BMC_USER, removeSim, startBmcSim, unusedUdpPort, type BmcSim } from './bmc.ts';
import { central, Fleet, ops, remedier, TAINT, type NodeObj, type Op } from './fleet.ts';

const log = createLogger(process.env.KUBENODE_TEST_LOG === '1' ? 'debug' : 'silent');
const NS = 'kubenode-system';

describe('central remedies on a real apiserver with a real BMC', () => {
  let cluster: Cluster;
  let sim: BmcSim;
  let fleet: Fleet;
  const controllers: Controller[] = [];
  const p4 = Array.from({ length: 30 }, (_, i) => `p4-${String(i).padStart(2, '0')}`);
  const machines = ['p1-0', 'p1-1', 'p2-0', 'p2-1', 'p3-0', 'p3-1', ...p4, 'p6-0', 'p6-1', 'p6-2'];
  const bmc = (m: string, secret = 'bmc') => ({ address: `127.0.0.1:${sim.port(m)}`, credentialsSecret: { name: secret } });

  const startController = async (kubeconfig: string): Promise<Controller> => {
    const c = new Controller({ kubeconfig, leaderElect: false, namespace: NS, listen: '127.0.0.1:0', remedySweepMs: 300, remedyRetryMs: 500 }, log);
    controllers.push(c);
    await c.start();
    return c;
  };

  /** The shared controller, for the tests that run with it (each may run alone). */
  const ensureController = async (): Promise<void> => {
    if (controllers.length === 0) await startController(cluster.adminKubeconfig);
  };

  before(async () => {
    cluster = await startCluster({ agents: 1 });
    await installCrds(cluster);
    await ensureNamespace(cluster, NS);
    sim = await startBmcSim(machines);
    const nobody = await unusedUdpPort();
    for (const [name, password] of [['bmc', BMC_PASSWORD], ['bmc-wrong', 'not-the-password']] as const) {
      await must(cluster, 'POST', `/api/v1/namespaces/${NS}/secrets`, { apiVersion: 'v1', kind: 'Secret', metadata: { name }, stringData: { username: BMC_USER, password } });
    }
    fleet = new Fleet(cluster, sim);
    for (const m of machines) {
      const pool = m.split('-')[0] as string;
      const spec = m === 'p2-0' ? bmc(m, 'bmc-wrong') : m === 'p2-1' ? { ...bmc(m), address: `127.0.0.1:${nobody}` } : bmc(m);
      await fleet.add(m, pool, spec);
    }
    fleet.start();
  });
  after(async () => {
    for (const c of controllers) await c.stop();
    await fleet?.stop();
    await sim?.stop();
    if (sim !== undefined) removeSim(sim);
    await cluster?.stop();
  });

  it('does nothing while cut off from the apiserver, though its cache shows Leases stale on NotReady nodes', async () => {
    const proxy = new TcpProxy(cluster.server);
    await proxy.listen();
    const dir = mkdtempSync(join(tmpdir(), 'kubenode-proxy-kc-'));
    try {
      const kc = parse(readFileSync(cluster.adminKubeconfig, 'utf8')) as { clusters: { cluster: { server: string } }[] };
      for (const c of kc.clusters) c.cluster.server = proxy.url;
      writeFileSync(join(dir, 'kubeconfig'), stringify(kc));
      await remedier(cluster, 'p3', central([{ action: 'cordon', timeout: '1m' }, { action: 'power-cycle', timeout: '1m' }]));
      // A kubelet problem under live agents: Ready goes Unknown while the Leases are renewed.
      for (const m of ['p3-0', 'p3-1']) await fleet.ready(m, 'Unknown');
      const c = await startController(join(dir, 'kubeconfig'));
      await until('the controller leads with synced caches', () => c.remedies !== undefined, 30_000);
      await new Promise((r) => setTimeout(r, 2000));
      proxy.partition();
      // Past the Lease duration and the grace period, as the cache sees it.
      await until('the partitioned controller tried to confirm and could not', () => (c.remedies?.stats.partitioned ?? 0) > 0, 40_000);
      await new Promise((r) => setTimeout(r, 3000));
      assert.deepEqual((await ops(cluster)).filter((o) => o.spec.node.startsWith('p3-')), [], 'no RemedyOperation');
      for (const m of ['p3-0', 'p3-1']) assert.notEqual((await must<NodeObj>(cluster, 'GET', `/api/v1/nodes/${m}`)).spec?.unschedulable, true, `${m} not cordoned`);
      assert.equal(sim.log().filter((e) => e.machine.startsWith('p3-')).length, 0, 'ipmi_sim saw nothing');
      proxy.heal();
      // Back in touch: the live reads show the agents alive, so still nothing.
      await new Promise((r) => setTimeout(r, 4000));
      assert.equal((await ops(cluster)).filter((o) => o.spec.node.startsWith('p3-')).length, 0);
      await c.stop();
      controllers.splice(controllers.indexOf(c), 1);
    } finally {
      for (const m of ['p3-0', 'p3-1']) await fleet.ready(m, 'True');
      await must(cluster, 'DELETE', '/apis/kubenode.io/v1alpha1/noderemediers/p3');
      await proxy.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('cordons, power cycles through ipmi_sim, and uncordons once the agent is back with a new boot ID', async () => {
    await ensureController();
    await remedier(cluster, 'p1', central([{ action: 'cordon', timeout: '1m' }, { action: 'power-cycle', timeout: '2m' }, { action: 'replace' }]));
    const staleFrom = Date.now();
    await fleet.kill('p1-0');
    await until('p1-0 is cordoned and tainted', async () => {
      const n = await must<NodeObj>(cluster, 'GET', '/api/v1/nodes/p1-0');
      return n.spec?.unschedulable === true && (n.spec.taints ?? []).some((t) => t.key === TAINT && t.effect === 'NoExecute');
    }, 60_000);
    // Not before the grace period: the Lease ran out after LEASE_S, then 10 s more.
    assert.ok(Date.now() - staleFrom >= 10_000, 'nothing before unreachableFor');
    await until('the power cycle succeeds', async () => (await ops(cluster, 'p1-0')).some((o) => o.spec.action === 'power-cycle' && o.status?.phase === 'Succeeded'), 60_000).catch(async (err: unknown) => {
      throw new Error(`${String(err)}: ${JSON.stringify((await ops(cluster, 'p1-0')).map((o) => [o.spec.action, o.status]))}; BMC saw ${JSON.stringify(sim.log().filter((e) => e.machine === 'p1-0'))}`);
    });
    const list = (await ops(cluster, 'p1-0')).sort((a, b) => a.spec.step - b.spec.step);
    assert.deepEqual(list.map((o) => [o.spec.action, o.spec.actor, o.status?.phase]), [['cordon', 'controller', 'Succeeded'], ['power-cycle', 'controller', 'Succeeded']]);
    const pc = list[1] as Op;
    assert.equal(pc.status?.result, 'Fixed');
    assert.match(pc.status?.message ?? '', /boot ID/);
    assert.equal(pc.status?.gate?.allowed, true);
    const cycled = sim.log().filter((e) => e.machine === 'p1-0' && e.op === 'set' && e.parm === 'power');
    assert.deepEqual(cycled.map((e) => e.value), ['0', '1'], 'ipmi_sim powered it off and on once');
    await until('uncordoned and untainted', async () => {
      const n = await must<NodeObj>(cluster, 'GET', '/api/v1/nodes/p1-0');
      return n.spec?.unschedulable !== true && !(n.spec?.taints ?? []).some((t) => t.key === TAINT);
    }, 20_000);
    assert.equal((await ops(cluster, 'p1-1')).length, 0, 'the live node was left alone');
    assert.equal(sim.log().filter((e) => e.machine === 'p1-1' && e.op === 'set').length, 0);
  });

  it('fails the power cycle with a clear reason on wrong credentials or a BMC that is down, and escalates', async () => {
    await ensureController();
    await remedier(cluster, 'p2', central([{ action: 'power-cycle', timeout: '2m' }, { action: 'replace' }]));
    await fleet.kill('p2-0');
    await fleet.kill('p2-1');
    for (const m of ['p2-0', 'p2-1']) {
      await until(`${m} is marked for replacement`, async () => (await ops(cluster, m)).some((o) => o.spec.action === 'replace' && o.status?.phase === 'Succeeded'), 90_000);
      assert.match((await must<{ metadata: { annotations?: Record<string, string> } }>(cluster, 'GET', `/apis/kubenode.io/v1alpha1/machines/${m}`)).metadata.annotations?.['kubenode.io/replace'] ?? '', /NodeRemedier p2/);
      const list = (await ops(cluster, m)).sort((a, b) => a.spec.step - b.spec.step);
      assert.deepEqual(list.map((o) => [o.spec.action, o.status?.phase]), [['power-cycle', 'Failed'], ['replace', 'Succeeded']]);
      assert.match(list[0]?.status?.message ?? '', /ipmitool chassis power cycle on BMC 127\.0\.0\.1:\d+ failed \(wrong credentials, or the BMC does not answer\)|did not answer/);
    }
    assert.equal(sim.log().filter((e) => e.machine.startsWith('p2-') && e.op === 'set').length, 0, 'the BMC never cycled anything');
  });

  it('30 nodes die at once under a policy of 3 in flight: never more than 3 power cycles at once', async () => {
    await must(cluster, 'POST', '/apis/kubenode.io/v1alpha1/riskpolicies', {
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'RiskPolicy',
      metadata: { name: 'p4' },
      spec: { nodeSelector: { matchLabels: { pool: 'p4' } }, actions: ['power-cycle'], maxInFlight: 3, minHealthyShare: 0, permitTTL: '2m' },
    });
    await ensureController();
    await remedier(cluster, 'p4', central([{ action: 'power-cycle', timeout: '2m' }]));
    await Promise.all(p4.map((m) => fleet.kill(m)));
    await until('every p4 node is back', async () => {
      const list = await ops(cluster);
      return p4.every((m) => list.some((o) => o.spec.node === m && o.spec.action === 'power-cycle' && o.status?.phase === 'Succeeded'));
    }, 300_000);
    const list = (await ops(cluster)).filter((o) => o.spec.node.startsWith('p4-'));
    assert.equal(list.length, 30, 'one operation per node');
    // From the operations: a power cycle is in flight from its start to its verified end.
    const overlap = (intervals: [number, number][]): number => {
      const edges = intervals.flatMap(([a, b]) => [[a, 1], [b, -1]] as [number, number][]).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
      let cur = 0;
      let max = 0;
      for (const [, d] of edges) max = Math.max(max, (cur += d));
      return max;
    };
    const fromOps = overlap(list.map((o) => [Date.parse(o.status?.startTime ?? ''), Date.parse(o.status?.endTime ?? '')]));
    // From ipmi_sim's log: from the BMC's power-off to the machine's boot (the agent back).
    const fromBmc = overlap(p4.map((m) => [fleet.cycles.get(m)?.[0] ?? Number.NaN, fleet.boots.get(m)?.[0] ?? Number.NaN]));
    for (const m of p4) assert.equal(fleet.cycles.get(m)?.length, 1, `${m} cycled once`);
    assert.ok(fromOps <= 3, `at most 3 power cycles in flight by the operations, saw ${fromOps}`);
    assert.ok(fromBmc <= 3, `at most 3 power cycles in flight by ipmi_sim's log, saw ${fromBmc}`);
    assert.ok(fromBmc >= 2, `the limit was used, not a serial run (saw ${fromBmc})`);
    await until('p4 permits handed back', async () => {
      const rp = await must<{ status?: { permits?: { releasedAt?: string }[] } }>(cluster, 'GET', '/apis/kubenode.io/v1alpha1/riskpolicies/p4');
      return (rp.status?.permits ?? []).every((p) => p.releasedAt !== undefined);
    }, 20_000);
  });

  it('a rule firing on 40% of its nodes trips the storm breaker, and agents stop acting on it until a person resets it', async () => {
    const pool = Array.from({ length: 10 }, (_, i) => `p5-${i}`);
    for (const m of pool) await fleet.add(m, 'p5', undefined);
    await ensureController();
    await remedier(cluster, 'p5', {
      rules: [{ name: 'runtime', condition: { type: 'ContainerRuntimeUnhealthy' }, steps: [{ action: 'cordon' }] }],
      stormBreaker: { maxShare: 0.3, window: '1h' },
    });
    const kube = await createKubeApi({ kubeconfig: cluster.adminKubeconfig });
    const agentOn = (node: string) => {
      const host = createHost({ root: mkdtempSync(join(tmpdir(), 'kubenode-storm-')), clock: systemClock });
      return createRemedies({ host, config: decodeSection('test', RemediesConfig, {}), stateDir: '/var/lib/kubenode', nodeName: node, bootId: 'b', log: silent, kube, gate: riskGate(host, { local: { maxDisruptive: 10 } }, kube) });
    };
    const fire = (node: string) =>
      agentOn(node).operations.run({ action: 'cordon', params: {}, problem: { conditionType: 'ContainerRuntimeUnhealthy', reason: 'ContainerdDown', message: '' }, reason: 'ContainerRuntimeUnhealthy/ContainerdDown', rule: 'p5/runtime', remedier: 'p5', step: 0, attempt: 1, dryRun: false });
    for (const m of pool.slice(0, 3)) {
      const r = await fire(m);
      assert.equal(r.kind, 'acted', `${m}: 3 of 10 is within maxShare 0.3: ${JSON.stringify(r)}`);
    }
    await new Promise((r) => setTimeout(r, 1500));
    type Remedier = { status?: { stormBreaker?: { state?: string; reason?: string }; conditions?: { type: string; status: string }[] } };
    assert.notEqual((await must<Remedier>(cluster, 'GET', '/apis/kubenode.io/v1alpha1/noderemediers/p5')).status?.stormBreaker?.state, 'Open');
    // The fourth operation crosses the share: recorded before the gate is asked, it may already be refused.
    const fourth = await fire('p5-3');
    assert.ok(fourth.kind === 'acted' || (fourth.kind === 'denied' && fourth.decision.gate === 'storm'), JSON.stringify(fourth));
    await until('the breaker opens', async () => (await must<Remedier>(cluster, 'GET', '/apis/kubenode.io/v1alpha1/noderemediers/p5')).status?.stormBreaker?.state === 'Open', 20_000);
    const r = await must<Remedier>(cluster, 'GET', '/apis/kubenode.io/v1alpha1/noderemediers/p5');
    assert.match(r.status?.stormBreaker?.reason ?? '', /4 of 10 selected nodes/);
    assert.equal(r.status?.conditions?.find((c) => c.type === 'StormBreakerTripped')?.status, 'True');
    const events = await must<{ items: { reason: string; involvedObject: { kind: string; name: string } }[] }>(cluster, 'GET', '/api/v1/namespaces/default/events');
    assert.ok(events.items.some((e) => e.reason === 'StormBreakerTripped' && e.involvedObject.kind === 'NodeRemedier' && e.involvedObject.name === 'p5'));
    // The fifth agent is stopped by the storm gate; its node stays schedulable.
    const denied = await fire('p5-4');
    assert.equal(denied.kind, 'denied');
    assert.equal(denied.kind === 'denied' ? denied.decision.gate : '', 'storm');
    assert.notEqual((await must<NodeObj>(cluster, 'GET', '/api/v1/nodes/p5-4')).spec?.unschedulable, true);
    // A person resets it: status.stormBreaker.state=Closed; the operations before no longer count.
    const rr = await cluster.request('PATCH', '/apis/kubenode.io/v1alpha1/noderemediers/p5/status', { body: { status: { stormBreaker: { state: 'Closed', resetBy: 'alice' } } }, headers: MERGE_PATCH });
    assert.equal(rr.status, 200, rr.body);
    await until('the reset is recorded', async () => (await must<{ status?: { stormBreaker?: { resetAt?: string } } }>(cluster, 'GET', '/apis/kubenode.io/v1alpha1/noderemediers/p5')).status?.stormBreaker?.resetAt !== undefined, 20_000);
    assert.equal((await fire('p5-5')).kind, 'acted', 'after the reset agents act again');
    kube.close();
  });

  it('remedy vs rollout on the same node: whoever holds the node Lease wins, the other defers', async () => {
    await ensureController();
    await remedier(cluster, 'p6', central([{ action: 'cordon', timeout: '1m' }, { action: 'power-cycle', timeout: '1m' }]));
    const sha = 'c'.repeat(64);
    const set = (name: string, size: number) => ({
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'MachineComponentSet',
      metadata: { name },
      spec: {
        selector: { matchLabels: { pool: 'p6' } },
        template: { spec: { component: name, version: '1.0.0', source: { type: 'binary', url: `https://example.com/${name}`, sha256: sha } } },
        rollout: { batches: [size], maxUnavailable: 3, progressDeadline: '10m' },
      },
    });
    // The remedy holds p6-1 (as it does during a step): a rollout over p6-1 and p6-2 defers p6-1.
    const kc = await loadKubeConfig({ kubeconfig: cluster.adminKubeconfig });
    const coord = new NodeCoordinator(createKubeClient(kc), NS, systemClock, silent);
    assert.deepEqual(await coord.claim('p6-1', 'remedy/p6', 120_000), { ok: true });
    await must(cluster, 'POST', MCS_PATH, set('agentx', 3));
    await until('p6-1 deferred, the others written', async () => {
      const s = (await must<{ status?: { deferredMachines?: string[] } }>(cluster, 'GET', `${MCS_PATH}/agentx`)).status;
      return (s?.deferredMachines ?? []).some((d) => d.startsWith('p6-1: under repair (node Lease held by remedy/p6)'));
    }, 60_000);
    const mcs = (await must<{ items: { metadata: { labels: Record<string, string> } }[] }>(cluster, 'GET', '/apis/kubenode.io/v1alpha1/machinecomponents')).items.filter((m) => m.metadata.labels['kubenode.io/component-set'] === 'agentx').map((m) => m.metadata.labels['kubenode.io/machine']).sort();
    assert.deepEqual(mcs, ['p6-0', 'p6-2'], 'the batch took the machines nobody holds');
    // The rollout holds p6-0 (its batch is active: no agent reports the component): p6-0 dies, the remedy defers.
    assert.equal((await coord.holderOf('p6-0'))?.holder, 'rollout/agentx');
    await fleet.kill('p6-0');
    await until('the remedy of p6-0 defers to the rollout', async () => (await ops(cluster, 'p6-0')).some((o) => o.status?.phase === 'Pending' && /deferred: node Lease held by rollout\/agentx/.test(o.status.message ?? '')), 60_000);
    await new Promise((r) => setTimeout(r, 2000));
    assert.notEqual((await must<NodeObj>(cluster, 'GET', '/api/v1/nodes/p6-0')).spec?.unschedulable, true, 'not cordoned during the batch');
    assert.equal(sim.log().filter((e) => e.machine === 'p6-0' && e.op === 'set').length, 0, 'not power cycled during the batch');
    await coord.release('p6-1', 'remedy/p6');
  });
});
