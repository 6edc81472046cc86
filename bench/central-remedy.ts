// Central remedy figures for BENCHMARKS.md, against the real test apiserver with the real
// controller process (the built CLI):
//   1. Controller cost with N agents' Leases watched (default 5,000), renewed by a driver every
//      renewSeconds as agents do: REST requests per minute (its own counter; watches not counted),
//      RSS, CPU seconds over the window (from /proc/PID).
//   2. Time from an agent's Lease going stale to the first remedy step (the cordon operation's
//      startTime), less the grace period (unreachableFor), for `dead` nodes killed at once: the
//      target is ≤ 5 s. A wall-clock figure: taken on a loaded machine it is labelled so.
// Run: npm run build && node bench/central-remedy.ts [nodes=5000] [windowSeconds=60] [renewSeconds=10] [dead=5]
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { microTime } from '../src/report/kube/lease.ts';
import { startCluster } from '../test/harness/cluster.ts';
import { installCrds } from '../test/helpers/kube-objects.ts';
import { ensureNamespace, must } from '../test/controller/helpers.ts';
import { eachBounded } from '../src/util/parallel.ts';
import { counter, procStats as proc, startController, untilRequestsQuiet } from './helpers.ts';
import { KUBENODE_API, MACHINES_PATH, NODE_LEASES_PATH, MERGE_PATCH } from '../test/helpers/kube-api.ts';

const nodes = Number(process.argv[2] ?? 5000);
const windowSeconds = Number(process.argv[3] ?? 60);
const renewSeconds = Number(process.argv[4] ?? 10);
const deadCount = Number(process.argv[5] ?? 5);
const LEASE_S = 40;
const GRACE_S = 10;
const NS = 'kubenode-system';

const cluster = await startCluster({ agents: 1, apiserverArgs: ['--max-requests-inflight=2000', '--max-mutating-requests-inflight=1000'] });
try {
  await installCrds(cluster);
  await ensureNamespace(cluster, NS);
  const names = Array.from({ length: nodes }, (_, i) => `r-${String(i).padStart(5, '0')}`);
  const ready = (status: string) => {
    const t = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    return { status: { conditions: [{ type: 'Ready', status, reason: status === 'True' ? 'KubeletReady' : 'NodeStatusUnknown', message: '', lastHeartbeatTime: t, lastTransitionTime: t }] } };
  };
  await eachBounded(names, 32, async (name) => {
    await must(cluster, 'POST', MACHINES_PATH, { apiVersion: 'kubenode.io/v1alpha1', kind: 'Machine', metadata: { name, labels: { pool: 'bench' } }, spec: {} });
    await must(cluster, 'POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { pool: 'bench' } } });
    await cluster.request('PATCH', `/api/v1/nodes/${name}/status`, { body: ready('True'), headers: MERGE_PATCH });
    await must(cluster, 'POST', NODE_LEASES_PATH, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: `kubenode-agent-${name}` }, spec: { holderIdentity: name, leaseDurationSeconds: LEASE_S, renewTime: microTime(Date.now()) } });
  });
  await must(cluster, 'POST', `${KUBENODE_API}/noderemediers`, {
    apiVersion: 'kubenode.io/v1alpha1',
    kind: 'NodeRemedier',
    metadata: { name: 'bench' },
    spec: { nodeSelector: { matchLabels: { pool: 'bench' } }, central: { unreachableFor: `${GRACE_S}s`, steps: [{ action: 'cordon' }] } },
  });

  // The agents: every Lease renewed every renewSeconds, spread over the interval; the dead stop.
  const dead = new Set<string>();
  const lastRenew = new Map<string, number>();
  let stop = false;
  const renewals = (async () => {
    while (!stop) {
      const t0 = Date.now();
      const alive = names.filter((n) => !dead.has(n));
      await eachBounded(alive, 16, async (name) => {
        if (dead.has(name)) return;
        const at = Date.now();
        const r = await cluster.request('PATCH', `${NODE_LEASES_PATH}/kubenode-agent-${name}`, { body: { spec: { renewTime: microTime(at) } }, headers: MERGE_PATCH });
        if (r.status === 200 && !dead.has(name)) lastRenew.set(name, at);
      });
      await sleep(Math.max(0, renewSeconds * 1000 - (Date.now() - t0)));
    }
  })();

  const { child, metrics } = await startController(cluster.adminKubeconfig);
  // Synced, then quiet: the Machine lifecycle's first writes for N new Machines are not the
  // remedies' cost. Quiet = the request count stood still for 15 s (at most 10 min).
  await sleep(15_000);
  const quietS = await untilRequestsQuiet(metrics, 10 * 60_000);
  const c0 = proc(child.pid as number);
  const m0 = await metrics();
  const r0 = counter(m0, 'kubenode_controller_api_requests_total');
  let peak = 0;
  for (let s = 0; s < windowSeconds; s += 5) {
    await sleep(5000);
    peak = Math.max(peak, proc(child.pid as number).rssMiB);
  }
  const c1 = proc(child.pid as number);
  const m1 = await metrics();
  const r1 = counter(m1, 'kubenode_controller_api_requests_total');
  const verb = (m: string, v: string): number => counter(m, 'kubenode_controller_api_requests_total', (l) => l.includes(`verb="${v}"`));
  const byVerb = ['GET', 'LIST', 'POST', 'PUT', 'PATCH', 'DELETE'].map((v) => [v, verb(m1, v) - verb(m0, v)] as const).filter(([, n]) => n > 0).map(([v, n]) => `${v} ${n}`).join(', ');

  // The dead: Leases stop, Nodes go Unknown; the first step is the cordon operation's startTime.
  const victims = names.slice(0, deadCount);
  for (const v of victims) dead.add(v);
  await Promise.all(victims.map((v) => cluster.request('PATCH', `/api/v1/nodes/${v}/status`, { body: ready('Unknown'), headers: MERGE_PATCH })));
  const delays: number[] = [];
  const deadline = Date.now() + (LEASE_S + GRACE_S + 120) * 1000;
  while (delays.length < victims.length && Date.now() < deadline) {
    await sleep(1000);
    const ops = (await must<{ items: { spec: { node: string }; status?: { startTime?: string } }[] }>(cluster, 'GET', `${KUBENODE_API}/remedyoperations`)).items;
    delays.length = 0;
    for (const v of victims) {
      const op = ops.find((o) => o.spec.node === v && o.status?.startTime !== undefined);
      if (op !== undefined) delays.push((Date.parse(op.status?.startTime as string) - ((lastRenew.get(v) ?? NaN) + LEASE_S * 1000) - GRACE_S * 1000) / 1000);
    }
  }
  const sorted = [...delays].sort((a, b) => a - b);
  const [l1, l5, l15] = loadavg();
  process.stdout.write(
    [
      `nodes: ${nodes}, Leases renewed every ${renewSeconds} s (${(nodes / renewSeconds).toFixed(0)} Lease writes/s by the driver), one NodeRemedier selecting all`,
      `controller over ${windowSeconds} s, from ${quietS.toFixed(0)} s after its requests stood still: ${(((r1 - r0) * 60) / windowSeconds).toFixed(1)} REST requests/min (${byVerb || 'none'}; watches not counted), CPU ${(c1.cpuSeconds - c0.cpuSeconds).toFixed(1)} s (${((100 * (c1.cpuSeconds - c0.cpuSeconds)) / windowSeconds).toFixed(1)}% of a core), RSS ${c1.rssMiB.toFixed(0)} MiB (peak ${peak.toFixed(0)} MiB)`,
      `Lease stale → first step, less unreachableFor ${GRACE_S} s, ${victims.length} nodes: ${sorted.map((d) => d.toFixed(1)).join(', ')} s (${delays.length} of ${victims.length} acted on); load average ${l1?.toFixed(2)} ${l5?.toFixed(2)} ${l15?.toFixed(2)}`,
      '',
    ].join('\n'),
  );
  stop = true;
  await renewals;
  child.kill('SIGTERM');
} finally {
  await cluster.stop();
}
