// The release pipeline controller against 1 management + N member apiservers (real, on
// 127.0.0.1): each member has 3 Machines, agents played by the bench and its own in-cluster
// controller (in this process); the pipeline controller is the built CLI (`controller --pipelines`)
// in a process of its own, measured alone. One Release goes through two stages: canary (the first
// member) then rest (all the others at once). It prints the pipeline controller's peak RSS, CPU
// seconds over the release, its requests to the management cluster and to the members (from its
// /metrics), and the time from the canary stage finishing to the rest stage's first member update.
// Then the steady state: a second Release whose one stage holds every member in a 10-minute bake;
// over 60 s of it, the requests per minute each member's apiserver recorded (its audit log, by
// the pipeline's own identity, so watches count too) and those to the management cluster.
// Run: npm run build && node bench/pipeline.ts [members=4]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createLogger } from '../src/log.ts';
import { Controller } from '../src/controller/index.ts';
import { startCluster, type Cluster } from '../test/harness/cluster.ts';
import { installCrds } from '../test/helpers/kube-objects.ts';
import { addMachine, ensureNamespace, must, SimulatedAgents, until } from '../test/controller/helpers.ts';
import { procStats } from './helpers.ts';
import { AUDIT_POLICY, memberKubeconfig, pipelineRequests } from '../test/pipeline/helpers.ts';
import { KUBENODE_API } from '../test/helpers/kube-api.ts';

const N = Number(process.argv[2] ?? 4);
const NS = 'kubenode-system';
const log = createLogger('silent');
const PORT = 20000 + Math.floor(Math.random() * 20000);

const auditDir = mkdtempSync(path.join(tmpdir(), 'kubenode-bench-audit-'));
writeFileSync(path.join(auditDir, 'policy.yaml'), AUDIT_POLICY);
const auditLog = (i: number): string => path.join(auditDir, `m${i}.log`);
const clusters = await Promise.all(
  Array.from({ length: N + 1 }, (_, i) => startCluster({ agents: 1, ...(i === 0 ? {} : { apiserverArgs: [`--audit-policy-file=${path.join(auditDir, 'policy.yaml')}`, `--audit-log-path=${auditLog(i - 1)}`] }) })),
);
const mgmt = clusters[0] as Cluster;
const members = clusters.slice(1);
const agents: SimulatedAgents[] = [];
const controllers: Controller[] = [];
const clusterRss = (c: Cluster): number => procStats(c.pid as number).rssMiB * 2 ** 20;
try {
  await installCrds(mgmt);
  await ensureNamespace(mgmt, NS);
  for (const [i, c] of members.entries()) {
    await installCrds(c);
    await ensureNamespace(c, NS);
    for (let m = 0; m < 3; m++) await addMachine(c, `m${i}-node-${m}`, { pool: 'bench' });
    const a = new SimulatedAgents(c);
    a.start();
    agents.push(a);
    const ctl = new Controller({ kubeconfig: c.adminKubeconfig, leaderElect: false, namespace: NS, listen: '127.0.0.1:0' }, log);
    await ctl.start();
    controllers.push(ctl);
    await must(mgmt, 'POST', `/api/v1/namespaces/${NS}/secrets`, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: `cluster-m${i}`, labels: { 'kubenode.io/member-cluster': `m${i}`, stage: i === 0 ? 'canary' : 'rest' } },
      data: { kubeconfig: Buffer.from(await memberKubeconfig(c)).toString('base64') },
    });
  }
  await must(mgmt, 'POST', `${KUBENODE_API}/releasepipelines`, {
    apiVersion: 'kubenode.io/v1alpha1',
    kind: 'ReleasePipeline',
    metadata: { name: 'bench' },
    spec: { stages: [{ name: 'canary', clusters: ['m0'] }, { name: 'rest', clusterSelector: { matchLabels: { stage: 'rest' } }, maxConcurrency: '100%' }] },
  });
  const pc = spawn(process.execPath, ['dist/kubenode-agent.cjs', 'controller', '--kubeconfig', mgmt.adminKubeconfig, '--listen', `127.0.0.1:${PORT}`, '--leader-elect', 'false', '--pipelines', '--log-level', 'warn'], { stdio: 'inherit' });
  const stat = (): { cpu: number; hwm: number; rss: number } => {
    const p = procStats(pc.pid as number);
    return { cpu: p.cpuSeconds, hwm: p.hwmMiB * 2 ** 20, rss: p.rssMiB * 2 ** 20 };
  };
  const metrics = async (): Promise<{ mgmt: number; member: number }> => {
    const text = await (await fetch(`http://127.0.0.1:${PORT}/metrics`)).text();
    const sum = (name: string): number => text.split('\n').filter((l) => l.startsWith(name)).reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
    return { mgmt: sum('kubenode_controller_api_requests_total'), member: sum('kubenode_controller_member_requests_total') };
  };
  await until('pipeline controller up', async () => (await fetch(`http://127.0.0.1:${PORT}/readyz`).catch(() => undefined))?.ok === true, 60_000);
  await new Promise((r) => setTimeout(r, 2000));
  const idle = { ...stat(), ...(await metrics()) };
  const started = Date.now();
  await must(mgmt, 'POST', `${KUBENODE_API}/releases`, {
    apiVersion: 'kubenode.io/v1alpha1',
    kind: 'Release',
    metadata: { name: 'bench-1' },
    spec: {
      pipeline: 'bench',
      componentSet: 'demo',
      selector: { matchLabels: { pool: 'bench' } },
      template: { spec: { component: 'demo', version: '1.0.0', source: { type: 'binary', url: 'https://example.com/demo-1.0.0', sha256: 'a'.repeat(64) } } },
      rollout: { batches: [1, '100%'], bakeTime: '1s', maxUnavailable: 3 },
    },
  });
  type St = { phase: string; stages: { name: string; finishedTime?: string; clusters: { startTime?: string; endTime?: string }[] }[] };
  let status: St | undefined;
  await until('release succeeds', async () => {
    status = (await must<{ status?: St }>(mgmt, 'GET', `${KUBENODE_API}/releases/bench-1`)).status;
    return status?.phase === 'Succeeded';
  }, 600_000);
  const took = (Date.now() - started) / 1000;
  const done = { ...stat(), ...(await metrics()) };
  const canary = status?.stages[0];
  const rest = status?.stages[1];
  const firstRest = Math.min(...(rest?.clusters ?? []).map((c) => Date.parse(c.startTime as string)));
  // When the member's own status said finished: its last batch's observation window end (the member controller's clock).
  const m0 = await must<{ status: { batches: { observationEndTime?: string; endTime?: string }[] } }>(members[0] as Cluster, 'GET', `${KUBENODE_API}/machinecomponentsets/demo`);
  const memberDone = Math.max(...m0.status.batches.map((b) => Date.parse(b.endTime ?? b.observationEndTime ?? '')).filter((t) => !Number.isNaN(t)));

  // Steady state: every member in a long bake, nothing to do but notice when it ends.
  await must(mgmt, 'POST', `${KUBENODE_API}/releasepipelines`, {
    apiVersion: 'kubenode.io/v1alpha1',
    kind: 'ReleasePipeline',
    metadata: { name: 'steady' },
    spec: { stages: [{ name: 'all', clusterSelector: {}, maxConcurrency: '100%' }] },
  });
  await must(mgmt, 'POST', `${KUBENODE_API}/releases`, {
    apiVersion: 'kubenode.io/v1alpha1',
    kind: 'Release',
    metadata: { name: 'bench-steady' },
    spec: {
      pipeline: 'steady',
      componentSet: 'steady',
      selector: { matchLabels: { pool: 'bench' } },
      template: { spec: { component: 'steady', version: '1.0.0', source: { type: 'binary', url: 'https://example.com/steady-1.0.0', sha256: 'a'.repeat(64) } } },
      rollout: { batches: ['100%'], bakeTime: '10m', maxUnavailable: 3 },
    },
  });
  type Steady = { stages: { clusters: { state: string; updated?: number; matched?: number }[] }[] };
  await until('every member baking', async () => {
    const s = (await must<{ status?: Steady }>(mgmt, 'GET', `${KUBENODE_API}/releases/bench-steady`)).status;
    const cs = s?.stages[0]?.clusters ?? [];
    return cs.length === N && cs.every((c) => c.state === 'Progressing' && c.updated === 3 && c.matched === 3);
  }, 300_000);
  await new Promise((r) => setTimeout(r, 5000));
  const memberCount = (): number => members.reduce((n, _c, i) => n + pipelineRequests(auditLog(i)).length, 0);
  const verbs = (from: number[]): Record<string, number> => {
    const out: Record<string, number> = {};
    members.forEach((_c, i) => {
      for (const e of pipelineRequests(auditLog(i)).slice(from[i])) out[e.verb] = (out[e.verb] ?? 0) + 1;
    });
    return out;
  };
  const steadyFrom = members.map((_c, i) => pipelineRequests(auditLog(i)).length);
  const steadyBefore = { ...stat(), ...(await metrics()), members: memberCount() };
  await new Promise((r) => setTimeout(r, 60_000));
  const steadyAfter = { ...stat(), ...(await metrics()), members: memberCount() };
  const steadyVerbs = verbs(steadyFrom);
  pc.kill('SIGTERM');
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const testclusterRss = members.map(clusterRss).reduce((a, b) => a + b, 0) / members.length;
  console.log(`## Pipeline controller, 1 management + ${N} member apiservers (load average ${load}; machine shared)`);
  console.log(`release through canary (1) → rest (${N - 1}): ${took.toFixed(1)} s wall-clock`);
  console.log(`pipeline controller RSS: ${(idle.rss / 2 ** 20).toFixed(0)} MiB idle, peak ${(done.hwm / 2 ** 20).toFixed(0)} MiB`);
  console.log(`pipeline controller CPU: ${(done.cpu - idle.cpu).toFixed(2)} s over the release (${(idle.cpu).toFixed(2)} s to start and sync)`);
  console.log(`requests during the release: ${done.mgmt - idle.mgmt} to the management cluster, ${done.member - idle.member} to members (${((done.member - idle.member) / N).toFixed(1)} per member)`);
  console.log(`canary finished (controller saw it) → first rest member update: ${firstRest - Date.parse(canary?.finishedTime as string)} ms`);
  console.log(`canary member's last batch ended (member clock) → first rest member update: ${firstRest - memberDone} ms`);
  console.log(`member test apiserver (apiserver + etcd) RSS: ${(testclusterRss / 2 ** 20).toFixed(0)} MiB each`);
  console.log(
    `steady state (${N} members baking, 60 s): ${((steadyAfter.members - steadyBefore.members) / N).toFixed(1)} requests/min per member on its audit log (${Object.entries(steadyVerbs).map(([v, n]) => `${v} ${n}`).join(', ')}), ${steadyAfter.mgmt - steadyBefore.mgmt} to the management cluster, ${(steadyAfter.cpu - steadyBefore.cpu).toFixed(2)} s CPU`,
  );
} catch (err) {
  // The clusters' stop below may throw too; the first error is the one to see.
  console.error(err);
  process.exitCode = 1;
} finally {
  await Promise.all(agents.map((a) => a.stop()));
  await Promise.all(controllers.map((c) => c.stop()));
  await Promise.all(clusters.map((c) => c.stop()));
  rmSync(auditDir, { recursive: true, force: true });
}
