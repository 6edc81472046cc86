// The risk gate and node actions against a real kube-apiserver: 40 agent identities, RiskPolicy
// permits, Node Ready conditions and PodDisruptionBudgets written by the test as controllers would.
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, test } from 'node:test';
import { systemClock } from '../../src/host/clock.ts';
import { createHost } from '../../src/host/host.ts';
import { actions } from '../../src/remedies/actions/index.ts';
import { RiskPolicyClient } from '../../src/risk/policy.ts';
import { createKubeApi, type KubeApi } from '../../src/remedies/kube-api.ts';
import { CORDONED_AT, CORDONED_BY } from '../../src/remedies/node-ops.ts';
import { createRemedies } from '../../src/remedies/setup.ts';
import { printManualResult } from '../../src/cli/remedy.ts';
import { remedySlice } from '../../src/cli/common.ts';
import { runManualRemedy } from '../../src/remedies/manual.ts';
import { bootstrap } from '../../src/bootstrap.ts';
import { pino } from 'pino';
import { RemediesConfig } from '../../src/remedies/config.ts';
import { startCluster, type Cluster } from '../harness/cluster.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import type { TempRoot } from '../helpers/host-root.ts';
import { grantAgentRbac, installCrds } from '../helpers/kube-objects.ts';
import { createNode, must, setReady } from './cluster-fixture.ts';
import { actionContext, recordingRoot, riskGate, silent } from './helpers.ts';
import { decodeSection } from '../../src/config/decode.ts';
import { KUBENODE_API, MERGE_PATCH } from '../helpers/kube-api.ts';

const RP = `${KUBENODE_API}/riskpolicies`;

async function policy(cluster: Cluster, name: string, spec: Record<string, unknown>): Promise<void> {
  await must(cluster, 'POST', RP, { apiVersion: 'kubenode.io/v1alpha1', kind: 'RiskPolicy', metadata: { name }, spec });
}

/** A raw watch stream as admin; calls onEvent for every object seen. */
function watch(cluster: Cluster, path: string, onEvent: (type: string, obj: any) => void): () => void {
  const req = httpsRequest(new URL(`${path}?watch=1&allowWatchBookmarks=false`, cluster.server), { headers: { authorization: `Bearer ${cluster.adminToken}` }, ca: cluster.ca, agent: false }, (res) => {
    let buf = '';
    res.setEncoding('utf8');
    res.on('data', (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.trim() === '') continue;
        const ev = JSON.parse(line) as { type: string; object: unknown };
        onEvent(ev.type, ev.object);
      }
    });
    res.on('error', () => undefined);
  });
  req.on('error', () => undefined);
  req.end();
  return () => req.destroy();
}

describe('risk gate and node actions against a real apiserver', () => {
  let cluster: Cluster;
  const kubes: KubeApi[] = [];
  const agent = async (i: number): Promise<KubeApi> => {
    const k = await createKubeApi({ kubeconfig: cluster.agentKubeconfig(i) });
    kubes.push(k);
    return k;
  };

  before(async () => {
    cluster = await startCluster({ agents: 40 });
    await installCrds(cluster);
    await grantAgentRbac(cluster);
    const pools: [number, number, string][] = [[0, 29, 'fleet'], [30, 31, 'solo'], [32, 34, 'health'], [35, 38, 'breaker'], [39, 39, 'blackout']];
    await Promise.all(pools.flatMap(([lo, hi, pool]) => Array.from({ length: hi - lo + 1 }, (_, k) => createNode(cluster, `node-${lo + k}`, { pool }))));
  });
  after(async () => {
    for (const k of kubes) k.close();
    await cluster?.stop();
  });

  test('30 agents, 15 hit by the same fault at once: never more than maxInFlight=2 disruptive operations in flight, all done, across trials', async () => {
    await policy(cluster, 'fleet', { nodeSelector: { matchLabels: { pool: 'fleet' } }, maxInFlight: 2, minHealthyShare: 0.5, permitTTL: '5m' });
    let maxPermits = 0;
    let maxRunning = 0;
    const phases = new Map<string, string>();
    const stops = [
      watch(cluster, `${RP}`, (_t, obj) => {
        if (obj?.metadata?.name !== 'fleet') return;
        const now = Date.now();
        const held = (obj.status?.permits ?? []).filter((p: any) => p.releasedAt === undefined && Date.parse(p.expiresAt) > now).length;
        maxPermits = Math.max(maxPermits, held);
      }),
      watch(cluster, `${KUBENODE_API}/remedyoperations`, (type, obj) => {
        if (obj?.metadata?.name === undefined) return;
        if (type === 'DELETED') phases.delete(obj.metadata.name);
        else if (obj.spec?.risk === 'disruptive') phases.set(obj.metadata.name, obj.status?.phase ?? 'Pending');
        maxRunning = Math.max(maxRunning, [...phases.values()].filter((p) => p === 'Running' || p === 'Verifying').length);
      }),
    ];
    try {
      const config = decodeSection('test', RemediesConfig, {
        enabled: true,
        denyBackoff: '100ms',
        denyBackoffMax: '400ms',
        rulesResync: '1h',
        rules: [{ name: 'task-hung', condition: { type: 'KernelDeadlock', reasons: ['TaskHung'] }, steps: [{ action: 'restart-runtime', verifyAfter: '300ms', cooldown: '100ms', maxAttempts: 3 }] }],
      });
      const total = { restarts: 0, trials: 0 };
      for (let trial = 0; trial < 3; trial++) {
        const faulty = Array.from({ length: 30 }, (_, i) => i).filter((i) => (i + trial) % 2 === 0);
        const agents = await Promise.all(
          Array.from({ length: 30 }, async (_, i) => {
            const root = recordingRoot();
            root.script('/usr/bin/systemctl', `echo "systemctl $*" >> '${root.path('/calls.log')}'\ncase "$1" in restart) sleep 0.2 ;; is-active) echo active ;; show) echo loaded ;; esac\nexit 0`);
            const host = createHost({ root: root.dir });
            const kube = await agent(i);
            const r = createRemedies({ host, config, stateDir: '/var/lib/kubenode', nodeName: `node-${i}`, bootId: 'b', log: process.env.REMEDY_TEST_LOG ? pino({ level: 'warn' }) : silent, kube, gate: riskGate(host, { local: { maxDisruptive: 100 } }, kube) });
            await r.engine.resume();
            return { i, root, r };
          }),
        );
        const t0 = Date.now();
        for (const a of agents) {
          if (faulty.includes(a.i)) a.r.engine.observe([{ type: 'KernelDeadlock', status: 'True', reason: 'TaskHung', message: 'task blocked', transitionTime: t0 }]);
        }
        const deadline = Date.now() + Number(process.env.REMEDY_TEST_DEADLINE_MS ?? 120_000);
        await Promise.all(
          agents.map(async (a) => {
            for (;;) {
              const restarted = a.root.calls().some((c) => c.startsWith('systemctl restart containerd'));
              // The fault goes away once the runtime restarted, as a real TaskHung in the runtime would.
              if (restarted) a.r.engine.observe([{ type: 'KernelDeadlock', status: 'False', reason: 'NoDeadlock', message: '', transitionTime: Date.now() }]);
              await a.r.engine.tick();
              if (!faulty.includes(a.i) || (restarted && a.r.engine.ladders().size === 0)) return;
              if (Date.now() > deadline) throw new Error(`node-${a.i} not done: ladders ${JSON.stringify([...a.r.engine.ladders().values()])}; calls ${a.root.calls().join('|')}; fleet ${JSON.stringify((await must(cluster, 'GET', `${RP}/fleet`)).status)}`);
              await new Promise((res) => setTimeout(res, 50));
            }
          }),
        );
        for (const a of agents) {
          const restarts = a.root.calls().filter((c) => c.startsWith('systemctl restart')).length;
          assert.equal(restarts, faulty.includes(a.i) ? 1 : 0, `node-${a.i}`);
          total.restarts += restarts;
          a.root.remove();
        }
        total.trials += 1;
      }
      await new Promise((r) => setTimeout(r, 300));
      const ops = (await must(cluster, 'GET', `${KUBENODE_API}/remedyoperations`)).items as any[];
      const succeeded = ops.filter((o) => o.status?.phase === 'Succeeded' && o.status?.result === 'Fixed');
      assert.equal(succeeded.length, 45);
      assert.ok(ops.some((o) => o.status?.phase === 'Denied'), 'some agents were made to wait by the policy');
      assert.equal(total.restarts, 45);
      assert.ok(maxPermits >= 1 && maxRunning >= 1, `the watches saw operations: permits ${maxPermits}, running ${maxRunning}, phases ${JSON.stringify([...phases.values()].slice(0, 5))}`);
      assert.ok(maxPermits <= 2, `max permits held at once: ${maxPermits}`);
      assert.ok(maxRunning <= 2, `max RemedyOperations Running/Verifying at once: ${maxRunning}`);
      const fleet = await must(cluster, 'GET', `${RP}/fleet`);
      assert.equal(fleet.status.permits.filter((p: any) => p.releasedAt === undefined).length, 0, 'every permit handed back');
    } finally {
      for (const s of stops) s();
    }
  });

  test('a permit held by a killed agent expires and is taken over', async () => {
    await policy(cluster, 'solo', { nodeSelector: { matchLabels: { pool: 'solo' } }, maxInFlight: 1, minHealthyShare: 0, permitTTL: '1m' });
    const clock = new FakeClock(Date.now());
    const a = new RiskPolicyClient(await agent(30), clock, silent);
    const b = new RiskPolicyClient(await agent(31), clock, silent);
    const req = (node: string, operation: string) => ({ node, action: 'reboot', risk: 'disruptive' as const, operation });
    assert.equal((await a.acquire(req('node-30', 'op-a'))).allowed, true);
    // node-30's agent dies here without releasing.
    const denied = await b.acquire(req('node-31', 'op-b'));
    assert.equal(denied.allowed, false);
    assert.match(denied.verdicts[0]?.reason ?? '', /1 of 1 permits in flight \(node-30:reboot\)/);
    await clock.advance(61_000);
    const taken = await b.acquire(req('node-31', 'op-b'));
    assert.equal(taken.allowed, true, JSON.stringify(taken));
    const solo = await must(cluster, 'GET', `${RP}/solo`);
    const held = solo.status.permits.filter((p: any) => p.releasedAt === undefined && Date.parse(p.expiresAt) > clock.now());
    assert.deepEqual(held.map((p: any) => p.holder), ['node-31']);
    await b.release('op-b');
  });

  test("an installer restart takes a RiskPolicy permit through the same gate and hands it back when the step is over", async () => {
    // The fleet's nodes, whose own policy has handed every permit back by now.
    await policy(cluster, 'fleet-installs', { nodeSelector: { matchLabels: { pool: 'fleet' } }, maxInFlight: 1, minHealthyShare: 0, permitTTL: '1h' });
    // Each agent's gate as the daemon builds it: its own state dir, its local budget, then the policy.
    const roots = [recordingRoot(), recordingRoot()];
    const gateFor = async (i: number) => riskGate(createHost({ root: (roots[i] as TempRoot).dir }), {}, await agent(i));
    const installer = (await gateFor(0)).forInstallers('node-0');
    const other = await gateFor(1);
    const restart = await installer.ask({ component: 'containerd', step: 'restart', action: 'systemctl restart containerd.service' });
    assert.equal(restart.allowed, true, restart.reason);
    const held = await other.decide({ node: 'node-1', action: 'reboot', risk: 'disruptive', reason: 'test', operation: 'op-other-1' });
    assert.equal(held.allowed, false, 'the installer holds the only slot while it restarts');
    await restart.release?.();
    const after = await other.decide({ node: 'node-1', action: 'reboot', risk: 'disruptive', reason: 'test', operation: 'op-other-2' });
    assert.equal(after.allowed, true, JSON.stringify(after.path));
    await other.release('op-other-2');
    for (const r of roots) r.remove();
  });

  test('a node the apiserver does not know is refused disruptive actions, saying so', async () => {
    const root = recordingRoot();
    try {
      const gate = riskGate(createHost({ root: root.dir }), {}, await agent(33));
      const d = await gate.decide({ node: 'node-unknown', action: 'reboot', risk: 'disruptive', reason: 'test', operation: 'op-unknown' });
      assert.deepEqual([d.allowed, d.gate], [false, 'policy']);
      assert.match(d.path.at(-1)?.reason ?? '', /^Node node-unknown or a RiskPolicy is not on the apiserver \(.*\): only safe actions run$/);
    } finally {
      root.remove();
    }
  });

  test('min healthy share blocks when too many selected Nodes are NotReady', async () => {
    await policy(cluster, 'health', { nodeSelector: { matchLabels: { pool: 'health' } }, maxInFlight: 3, minHealthyShare: 0.6 });
    const gate = new RiskPolicyClient(await agent(32), systemClock, silent);
    const req = { node: 'node-32', action: 'drain', risk: 'disruptive' as const, operation: 'op-health' };
    await setReady(cluster, 'node-33', false);
    const denied = await gate.acquire(req);
    assert.equal(denied.allowed, false);
    assert.match(denied.verdicts[0]?.reason ?? '', /only 1 of 3 selected nodes would stay Ready .* < minHealthyShare 0\.6/);
    await setReady(cluster, 'node-33', true);
    assert.equal((await gate.acquire(req)).allowed, true);
    await gate.release('op-health');
  });

  test('the circuit breaker trips on a burst of cordons and stays open until a person closes it', async () => {
    await policy(cluster, 'breaker', { nodeSelector: { matchLabels: { pool: 'breaker' } }, maxInFlight: 10, minHealthyShare: 0, circuitBreaker: { cordonedShare: 0.5, window: '1h' } });
    const gate = new RiskPolicyClient(await agent(35), systemClock, silent);
    const req = (op: string) => ({ node: 'node-35', action: 'reboot', risk: 'disruptive' as const, operation: op });
    const mark = (name: string, on: boolean) =>
      must(cluster, 'PATCH', `/api/v1/nodes/${name}`, { spec: { unschedulable: on ? true : null }, metadata: { annotations: { [CORDONED_BY]: on ? 'kubenode-agent' : null, [CORDONED_AT]: on ? new Date().toISOString() : null } } }, MERGE_PATCH);
    await mark('node-36', true);
    await mark('node-37', true);
    const tripped = await gate.acquire(req('op-1'));
    assert.equal(tripped.allowed, false);
    assert.match(tripped.verdicts[0]?.reason ?? '', /circuit breaker tripped: 2 of 4 selected nodes cordoned/);
    let status = (await must(cluster, 'GET', `${RP}/breaker`)).status;
    assert.equal(status.circuitBreaker.state, 'Open');
    assert.equal(status.circuitBreaker.trippedBy, 'node-35');
    // The fleet recovers; the breaker does not close by itself.
    await mark('node-36', false);
    await mark('node-37', false);
    const still = await gate.acquire(req('op-2'));
    assert.equal(still.allowed, false);
    assert.match(still.verdicts[0]?.reason ?? '', /circuit breaker open since/);
    // A person closes it.
    const obj = await must(cluster, 'GET', `${RP}/breaker`);
    await must(cluster, 'PUT', `${RP}/breaker/status`, { ...obj, status: { ...obj.status, circuitBreaker: { state: 'Closed', resetAt: new Date().toISOString(), resetBy: 'kubenode:admin' } } });
    const allowed = await gate.acquire(req('op-3'));
    assert.equal(allowed.allowed, true, JSON.stringify(allowed));
    status = (await must(cluster, 'GET', `${RP}/breaker`)).status;
    assert.equal(status.circuitBreaker.state, 'Closed');
    await gate.release('op-3');
  });

  test('a blackout window (cron, duration, time zone) denies; outside it the permit is granted', async () => {
    await policy(cluster, 'blackout', { nodeSelector: { matchLabels: { pool: 'blackout' } }, maxInFlight: 1, minHealthyShare: 0, blackoutWindows: [{ cron: '0 22 * * *', duration: '8h', timeZone: 'Europe/Berlin' }] });
    const clock = new FakeClock(Date.parse('2026-01-01T23:30:00Z'));
    const gate = new RiskPolicyClient(await agent(39), clock, silent);
    const req = { node: 'node-39', action: 'reboot', risk: 'disruptive' as const, operation: 'op-bo' };
    const denied = await gate.acquire(req);
    assert.equal(denied.allowed, false);
    assert.match(denied.verdicts[0]?.reason ?? '', /blackout window 0 \("0 22 \* \* \*" Europe\/Berlin for 8h\) began 2026-01-01T21:00:00.000Z/);
    await clock.advance(Date.parse('2026-01-02T06:30:00Z') - clock.now());
    assert.equal((await gate.acquire(req)).allowed, true);
    await gate.release('op-bo');
  });

  test('drain honours a PodDisruptionBudget (429 → fails and uncordons), skips DaemonSet and mirror pods, and succeeds once the budget allows', async () => {
    const ns = 'drain-test';
    await must(cluster, 'POST', '/api/v1/namespaces', { metadata: { name: ns } });
    const pod = (name: string, extra: Record<string, unknown> = {}) => ({
      metadata: { name, namespace: ns, labels: { app: 'web' }, ...extra },
      spec: { nodeName: 'node-30', containers: [{ name: 'c', image: 'registry.invalid/web:1' }] },
    });
    // Running and Ready, as the kubelet would report: the Eviction API ignores PDBs for Pending pods.
    const running = async (name: string) => {
      const cur = await must(cluster, 'GET', `/api/v1/namespaces/${ns}/pods/${name}`);
      await must(cluster, 'PUT', `/api/v1/namespaces/${ns}/pods/${name}/status`, { ...cur, status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] } });
    };
    await must(cluster, 'POST', `/api/v1/namespaces/${ns}/pods`, pod('web-1'));
    await must(cluster, 'POST', `/api/v1/namespaces/${ns}/pods`, pod('web-2'));
    await running('web-1');
    await running('web-2');
    await must(cluster, 'POST', `/api/v1/namespaces/${ns}/pods`, pod('ds-1', { labels: { app: 'ds' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'ds', uid: '00000000-0000-0000-0000-000000000001', controller: true }] }));
    const pdb = await must(cluster, 'POST', `/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets`, { metadata: { name: 'web', namespace: ns }, spec: { minAvailable: 2, selector: { matchLabels: { app: 'web' } } } });
    const writePdbStatus = async (allowed: number) => {
      const cur = await must(cluster, 'GET', `/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets/web`);
      await must(cluster, 'PUT', `/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets/web/status`, {
        ...cur,
        status: { observedGeneration: cur.metadata.generation, disruptionsAllowed: allowed, currentHealthy: 2, desiredHealthy: 2 - allowed, expectedPods: 2 },
      });
    };
    void pdb;
    await writePdbStatus(0);
    const root = recordingRoot();
    const kube = await agent(30);
    const ctx = actionContext(root, { kube, nodeName: 'node-30' });
    const failed = await actions.drain.execute(ctx, { timeout: '2s' });
    assert.equal(failed.ok, false);
    assert.match(failed.message, /PodDisruptionBudget/);
    assert.match(failed.message, /uncordon: uncordoned/);
    let node = await must(cluster, 'GET', '/api/v1/nodes/node-30');
    assert.notEqual(node.spec.unschedulable, true);
    assert.equal(node.metadata.annotations?.[CORDONED_BY], undefined);
    assert.equal((await must(cluster, 'GET', `/api/v1/namespaces/${ns}/pods`)).items.length, 3);

    // With budget, evictions go through; the test plays the kubelet and removes terminating pods.
    await writePdbStatus(2);
    let kubeletRunning = true;
    const kubelet = (async () => {
      while (kubeletRunning) {
        const pods = (await must(cluster, 'GET', `/api/v1/namespaces/${ns}/pods`)).items as any[];
        for (const p of pods) {
          if (p.metadata.deletionTimestamp === undefined) continue;
          const r = await cluster.request('DELETE', `/api/v1/namespaces/${ns}/pods/${p.metadata.name}?gracePeriodSeconds=0`);
          if (r.status !== 200 && r.status !== 404) throw new Error(`kubelet stand-in: DELETE ${p.metadata.name}: ${r.status} ${r.body}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const ok = await actions.drain.execute(ctx, { timeout: '20s' });
    kubeletRunning = false;
    await kubelet;
    assert.equal(ok.ok, true, ok.message);
    assert.match(ok.message, /2 evicted, 1 skipped/);
    const left = (await must(cluster, 'GET', `/api/v1/namespaces/${ns}/pods`)).items.map((p: any) => p.metadata.name);
    assert.deepEqual(left, ['ds-1']);
    node = await must(cluster, 'GET', '/api/v1/nodes/node-30');
    assert.equal(node.spec.unschedulable, true);
    assert.equal(node.metadata.annotations?.[CORDONED_BY], 'kubenode-agent');
    // Recovered: our own cordon is undone.
    assert.equal((await actions.uncordon.execute(ctx, {})).ok, true);
    node = await must(cluster, 'GET', '/api/v1/nodes/node-30');
    assert.notEqual(node.spec.unschedulable, true);
    root.remove();
  });

  test('a NodeRemedier reboot: drain, intent, systemctl reboot at the seam; after a new boot_id verify, uncordon, release the permit', async () => {
    await must(cluster, 'POST', `${KUBENODE_API}/noderemediers`, {
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'NodeRemedier',
      metadata: { name: 'kernel' },
      spec: { nodeSelector: { matchLabels: { pool: 'health' } }, rules: [{ name: 'hung', condition: { type: 'KernelDeadlock', reasons: ['TaskHung'] }, steps: [{ action: 'reboot', verifyAfter: '1s', cooldown: '1s' }] }] },
    });
    const root = recordingRoot();
    const config = decodeSection('test', RemediesConfig, {});
    const make = async (bootId: string) => {
      const host = createHost({ root: root.dir });
      const kube = await agent(32);
      return createRemedies({ host, config, stateDir: '/var/lib/kubenode', nodeName: 'node-32', bootId, log: silent, kube, gate: riskGate(host, {}, kube) });
    };
    try {
      const before = await make('boot-1');
      await before.engine.resume();
      before.engine.observe([{ type: 'KernelDeadlock', status: 'True', reason: 'TaskHung', message: 'blocked', transitionTime: Date.now() }]);
      await before.engine.tick();
      assert.deepEqual(root.calls().filter((c) => c === 'systemctl reboot'), ['systemctl reboot']);
      let node = await must(cluster, 'GET', '/api/v1/nodes/node-32');
      assert.equal(node.spec.unschedulable, true);
      assert.equal(node.metadata.annotations[CORDONED_BY], 'kubenode-agent');
      const held = () => must(cluster, 'GET', `${RP}/health`).then((p: any) => p.status.permits.filter((x: any) => x.holder === 'node-32' && x.releasedAt === undefined));
      assert.equal((await held()).length, 1, 'permit held across the reboot');
      const op = (await held())[0].operation;
      assert.equal((await must(cluster, 'GET', `${KUBENODE_API}/remedyoperations/${op}`)).status.phase, 'Running');

      // The machine comes back with a new boot_id.
      const afterBoot = await make('boot-2');
      await afterBoot.engine.resume();
      node = await must(cluster, 'GET', '/api/v1/nodes/node-32');
      assert.notEqual(node.spec.unschedulable, true, 'uncordoned after boot');
      assert.equal((await held()).length, 1, 'permit still held while verifying');
      afterBoot.engine.observe([{ type: 'KernelDeadlock', status: 'False', reason: 'NoDeadlock', message: '', transitionTime: Date.now() }]);
      await afterBoot.engine.tick();
      assert.equal((await held()).length, 0, 'permit released once verified');
      const record = await must(cluster, 'GET', `${KUBENODE_API}/remedyoperations/${op}`);
      assert.deepEqual([record.spec.remedier, record.spec.rule, record.status.phase, record.status.result], ['kernel', 'kernel/hung', 'Succeeded', 'Fixed']);
      assert.equal(record.status.gate.gate, 'policy');
    } finally {
      root.remove();
    }
  });

  test('remedy --dry-run against the cluster prints the RiskPolicy decision and changes nothing', async () => {
    const root = recordingRoot();
    try {
      let out = '';
      const options = { root: root.dir, kubeconfig: cluster.agentKubeconfig(34), nodeName: 'node-34', dryRun: true, reason: 'disk errors' };
      const result = await runManualRemedy('drain', options, { ...remedySlice(await bootstrap(options)), log: silent });
      assert.equal(result.verdict, 'would-run');
      const code = printManualResult(result, false, (t) => (out += t));
      assert.equal(code, 0, out);
      assert.match(out, /ALLOW policy  RiskPolicy health: permit 1 of 3/);
      const policyNow = await must(cluster, 'GET', `${RP}/health`);
      assert.equal(policyNow.status.permits.filter((p: any) => p.holder === 'node-34').length, 0);
      assert.notEqual((await must(cluster, 'GET', '/api/v1/nodes/node-34')).spec.unschedulable, true);
    } finally {
      root.remove();
    }
  });

  test('uncordon never touches a node someone else cordoned', async () => {
    await must(cluster, 'PATCH', '/api/v1/nodes/node-31', { spec: { unschedulable: true } }, MERGE_PATCH);
    const root = recordingRoot();
    const ctx = actionContext(root, { kube: await agent(31), nodeName: 'node-31' });
    assert.deepEqual(await actions.uncordon.stillNeeded(ctx, {}), { needed: false, why: 'node was cordoned by someone else; leaving it' });
    const r = await actions.uncordon.execute(ctx, {});
    assert.equal(r.ok, false);
    assert.match(r.message, /cordoned by someone else/);
    // cordon on an already-cordoned node does not claim it either.
    assert.match((await actions.cordon.execute(ctx, {})).message, /already cordoned by other/);
    const node = await must(cluster, 'GET', '/api/v1/nodes/node-31');
    assert.equal(node.spec.unschedulable, true);
    assert.equal(node.metadata.annotations?.[CORDONED_BY], undefined);
    root.remove();
  });
});
