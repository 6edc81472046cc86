// Controller figures for BENCHMARKS.md, against the real test apiserver with the real controller
// process (the built CLI) and simulated agents: a driver that answers every MachineComponent spec
// change with the status an agent writes (Installed, Ready=True) after a short delay.
//   1. Reconcile latency per event, p50/p99 (from the controller's own histogram).
//   2. Controller RSS and CPU seconds over the rollout (from /proc/PID).
//   3. The controller's REST requests by verb during the rollout, and per minute at steady state
//      (after the rollout, nothing changing), from its own counter (watches are long-lived and not
//      counted).
//   4. Batch-to-batch delay: the last agent status write of batch k + bakeTime → the first
//      MachineComponent write of batch k+1, p50/p99 over the batches, both timed by the apiserver
//      (its audit log), and the controller's requests inside that window by verb and resource: the
//      work on the critical path between batches, which, unlike the time, does not move with load.
// Run: npm run bench:controller (5,000 then 1,000 machines), or after npm run build:
//   node bench/controller.ts [machines=5000] [steadySeconds=60] [bakeMs=1000]
// Run it twice (e.g. 1000 and 5000) to see how the overhead grows with machines.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createKubeClient, loadKubeConfig } from '../src/kube/client.ts';
import { createLogger } from '../src/log.ts';
import { Informer, type KubeObject } from '../src/watch/informer.ts';
import { startCluster } from '../test/harness/cluster.ts';
import { installCrds } from '../test/helpers/kube-objects.ts';
import { ensureNamespace, must } from '../test/controller/helpers.ts';
import { eachBounded } from '../src/util/parallel.ts';
import { counter, pct, procStats as proc, startController, untilRequestsQuiet } from './helpers.ts';

const machines = Number(process.argv[2] ?? 5000);
const steadySeconds = Number(process.argv[3] ?? 60);
const bakeMs = Number(process.argv[4] ?? 1000);
const NS = 'kubenode-system';
const log = createLogger('silent');

/** A quantile from a Prometheus histogram's cumulative buckets (upper bound of the bucket it falls in). */
function histogramQuantile(text: string, name: string, q: number): number {
  const buckets: [number, number][] = [];
  for (const line of text.split('\n')) {
    const m = new RegExp(`^${name}_bucket\\{[^}]*le="([^"]+)"[^}]*\\} (\\S+)$`).exec(line);
    if (m === null) continue;
    const le = m[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[1]);
    const existing = buckets.find((b) => b[0] === le);
    if (existing) existing[1] += Number(m[2]);
    else buckets.push([le, Number(m[2])]);
  }
  buckets.sort((a, b) => a[0] - b[0]);
  const total = buckets.at(-1)?.[1] ?? 0;
  return buckets.find((b) => b[1] >= q * total)?.[0] ?? NaN;
}

// Every request at Metadata level, once complete: who (user agent), what, and the apiserver's times.
const auditDir = mkdtempSync(join(tmpdir(), 'bench-audit-'));
const auditLog = join(auditDir, 'audit.log');
writeFileSync(join(auditDir, 'policy.yaml'), 'apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n');
const DRIVER_AGENT = 'kubenode-bench-driver';
interface AuditEvent { verb: string; userAgent?: string; objectRef?: { resource?: string; subresource?: string; name?: string }; requestReceivedTimestamp: string; stageTimestamp: string }

const cluster = await startCluster({
  agents: 1,
  apiserverArgs: ['--max-requests-inflight=2000', '--max-mutating-requests-inflight=1000', `--audit-policy-file=${join(auditDir, 'policy.yaml')}`, `--audit-log-path=${auditLog}`, '--audit-log-format=json'],
});
try {
  await installCrds(cluster);
  await ensureNamespace(cluster, NS);
  const t0 = Date.now();
  const names = Array.from({ length: machines }, (_, i) => `b-${String(i).padStart(5, '0')}`);
  const now = new Date().toISOString().replace('Z', '000Z');
  await eachBounded(names, 32, async (name) => {
    await must(cluster, 'POST', '/apis/kubenode.io/v1alpha1/machines', { apiVersion: 'kubenode.io/v1alpha1', kind: 'Machine', metadata: { name, labels: { pool: 'bench' } }, spec: {} });
    const node = await must<Record<string, unknown>>(cluster, 'POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name } });
    await must(cluster, 'PUT', `/api/v1/nodes/${name}/status`, { ...node, status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: '', lastHeartbeatTime: now.slice(0, 19) + 'Z', lastTransitionTime: now.slice(0, 19) + 'Z' }] } });
    await must(cluster, 'POST', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases', { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: `kubenode-agent-${name}` }, spec: { holderIdentity: name, leaseDurationSeconds: 86400, renewTime: now } });
  });
  process.stdout.write(`# ${machines} machines, nodes, leases created in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);

  // The driver: an informer on MachineComponents; each spec change gets an Installed status after 50 ms.
  const kc = await loadKubeConfig({ kubeconfig: cluster.adminKubeconfig });
  const driverClient = createKubeClient(kc, { userAgent: DRIVER_AGENT });
  const mcs = new Informer<KubeObject & { spec: { version: string }; status?: { observedGeneration?: number } }>({ client: createKubeClient(kc), kubeConfig: kc, resource: { group: 'kubenode.io', version: 'v1alpha1', plural: 'machinecomponents' }, log });
  let driverWrites = 0;
  mcs.on((e) => {
    if (e.type !== 'add' && e.type !== 'update') return;
    const mc = e.object;
    if (mc.status?.observedGeneration === mc.metadata.generation) return;
    setTimeout(() => {
      const at = new Date().toISOString();
      const status = { phase: 'Installed', installedVersion: mc.spec.version, observedGeneration: mc.metadata.generation, attemptedGeneration: mc.metadata.generation, updatedAt: at, history: [], conditions: [{ type: 'Ready', status: 'True', reason: 'Installed', message: '', lastTransitionTime: at }] };
      driverClient.request('PUT', `/apis/kubenode.io/v1alpha1/machinecomponents/${mc.metadata.name}/status`, { body: { ...mc, status } }).then(
        () => {
          driverWrites += 1;
        },
        () => {},
      );
    }, 50);
  });
  mcs.start();
  await mcs.waitForSync();

  const { child, metrics } = await startController(cluster.adminKubeconfig);
  const cpu0 = proc(child.pid as number);
  const m0 = await metrics();
  const start = Date.now();
  const template = { spec: { component: 'bench', version: '2.0.0', source: { type: 'binary', url: 'https://example.com/bench-2.0.0', sha256: 'f'.repeat(64) } } };
  await must(cluster, 'POST', '/apis/kubenode.io/v1alpha1/machinecomponentsets', {
    apiVersion: 'kubenode.io/v1alpha1',
    kind: 'MachineComponentSet',
    metadata: { name: 'bench' },
    spec: { selector: { matchLabels: { pool: 'bench' } }, template, rollout: { batches: [1, 5, 10, 50, 100, '10%'], maxUnavailable: '10%', bakeTime: `${bakeMs}ms`, progressDeadline: '30m' } },
  });
  let peakRss = 0;
  for (;;) {
    peakRss = Math.max(peakRss, proc(child.pid as number).rssMiB);
    const s = (await must<{ status?: { phase?: string } }>(cluster, 'GET', '/apis/kubenode.io/v1alpha1/machinecomponentsets/bench')).status;
    if (s?.phase === 'Completed') break;
    await sleep(1000);
  }
  const rolloutS = (Date.now() - start) / 1000;
  const cpu1 = proc(child.pid as number);
  const m1 = await metrics();
  // Batch-to-batch delay from the audit log: the apiserver's completion of the last agent status
  // write of batch k, + bake, to its receipt of the controller's first write of a batch k+1
  // MachineComponent; and the controller's requests received in between.
  const batchOf = new Map<string, number>();
  for (const mc of mcs.snapshot().values()) batchOf.set(mc.metadata.name, Number(mc.metadata.labels?.['kubenode.io/batch']));
  const audit = readFileSync(auditLog, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as AuditEvent);
  const lastAgent = new Map<number, number>();
  const firstWrite = new Map<number, number>();
  const controllerRequests: { at: number; key: string }[] = [];
  for (const e of audit) {
    const r = e.objectRef ?? {};
    const k = batchOf.get(r.name ?? '');
    if (e.userAgent === DRIVER_AGENT && k !== undefined) lastAgent.set(k, Math.max(lastAgent.get(k) ?? 0, Date.parse(e.stageTimestamp)));
    if (!e.userAgent?.startsWith('kubenode-agent/') || e.verb === 'watch') continue;
    const at = Date.parse(e.requestReceivedTimestamp);
    controllerRequests.push({ at, key: `${e.verb} ${r.resource ?? e.verb}${r.subresource === undefined ? '' : `/${r.subresource}`}` });
    if (r.resource === 'machinecomponents' && r.subresource === undefined && (e.verb === 'create' || e.verb === 'update') && k !== undefined) firstWrite.set(k, Math.min(firstWrite.get(k) ?? Number.POSITIVE_INFINITY, at));
  }
  const delays: number[] = [];
  const onPath: Map<string, number>[] = [];
  for (let k = 0; firstWrite.has(k + 1) && lastAgent.has(k); k++) {
    const from = (lastAgent.get(k) as number) + bakeMs;
    const to = firstWrite.get(k + 1) as number;
    delays.push(to - from);
    const counts = new Map<string, number>();
    for (const r of controllerRequests) if (r.at >= from && r.at < to) counts.set(r.key, (counts.get(r.key) ?? 0) + 1);
    onPath.push(counts);
  }
  const transitions = onPath.map((c, k) => `  ${k}→${k + 1} (${delays[k]} ms): ${[...c.entries()].sort().map(([key, n]) => `${key} ${n}`).join(', ') || 'none'}`);

  // Steady state: nothing changes; count requests. The Machine lifecycle's writes (conditions,
  // the importing taint, Events for 'machines' machines) may still be draining: wait until the
  // controller's request count stands still for 15 s.
  const quietS = await untilRequestsQuiet(metrics, 15 * 60_000, m1);
  const before = { ctl: counter(await metrics(), 'kubenode_controller_api_requests_total'), driver: driverWrites };
  await sleep(steadySeconds * 1000);
  const m2 = await metrics();
  const steady = ((counter(m2, 'kubenode_controller_api_requests_total') - before.ctl) * 60) / steadySeconds;
  const byVerb = ['GET', 'LIST', 'POST', 'PUT', 'PATCH', 'DELETE']
    .map((verb) => [verb, counter(m1, 'kubenode_controller_api_requests_total', (l) => l.includes(`verb="${verb}"`)) - counter(m0, 'kubenode_controller_api_requests_total', (l) => l.includes(`verb="${verb}"`))] as const)
    .filter(([, n]) => n > 0)
    .map(([verb, n]) => `${verb} ${n}`)
    .join(', ');
  const rss = proc(child.pid as number).rssMiB;
  process.stdout.write(
    [
      `machines: ${machines}, batches 1/5/10/50/100/10%, maxUnavailable 10%, bake ${bakeMs} ms`,
      `rollout: ${rolloutS.toFixed(1)} s, ${delays.length + 1} batches`,
      `reconcile latency: p50 ≤ ${histogramQuantile(m1, 'kubenode_controller_reconcile_duration_seconds', 0.5) * 1000} ms, p99 ≤ ${histogramQuantile(m1, 'kubenode_controller_reconcile_duration_seconds', 0.99) * 1000} ms (histogram bucket bounds)`,
      `controller CPU during the rollout: ${(cpu1.cpuSeconds - cpu0.cpuSeconds).toFixed(1)} s; RSS peak ${peakRss.toFixed(0)} MiB, at steady state ${rss.toFixed(0)} MiB`,
      `controller REST requests during the rollout: ${byVerb}; driver status writes ${driverWrites}`,
      `controller REST requests per minute at steady state: ${steady.toFixed(1)} over ${steadySeconds} s, from ${quietS.toFixed(0)} s after completion (leader election off; watches not counted)`,
      `batch-to-batch delay (last machine healthy + bake → next batch's first write, apiserver times): p50 ${pct(delays, 0.5)} ms, p99 ${pct(delays, 0.99)} ms`,
      'controller requests inside each batch-to-batch window, by verb and resource:',
      ...transitions,
      '',
    ].join('\n'),
  );
  child.kill('SIGTERM');
  await mcs.stop();
} finally {
  await cluster.stop();
  rmSync(auditDir, { recursive: true, force: true });
}
