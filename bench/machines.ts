// Machine import figures for BENCHMARKS.md, on the real test apiserver (and, for join, the real
// kube-controller-manager signing) with the real controller process (the built CLI).
//   join:          `kubenode-agent join` (the built CLI, a bootstrap token) → Machine Running with
//                  two components: the agent is the project's installer on the identity join wrote,
//                  installing two tarballs served from 127.0.0.1 (already in memory: no download
//                  from outside); the kubelet's part (Node registered and Ready) is played at once.
//                  Prints each phase's wall time.
//   import N:      N Machines created at once against N Ready Nodes, each with a label to put on its
//                  Node: time from creation to lifecycle Running per machine (p50/p99, wall clock),
//                  the controller's REST requests by verb (its own counter), its peak RSS and CPU
//                  seconds (/proc).
//   delete N:      N deleting Machines, each with a Node holding one pod a PodDisruptionBudget keeps
//                  there (the real kube-controller-manager keeps the budget's status): the pod lists
//                  (GET /api/v1/pods, counted by the client) of one deletion pass per Machine while
//                  the drain is blocked, then of one pass once Drained is recorded (waiting for the
//                  agent to uninstall), and how soon each pass asks to look again. No timings.
// Run (after npm run build): node bench/machines.ts join | node bench/machines.ts import 1000 | node bench/machines.ts delete 100
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { validateConfig } from '../src/config/load.ts';
import { createHost } from '../src/host/host.ts';
import { createInstallContext } from '../src/installers/context.ts';
import { startKubeInstaller } from '../src/installers/kube-source.ts';
import { MACHINE_LABEL, UNINSTALL_FINALIZER } from '../src/api/common.ts';
import { MACHINE_FINALIZER, MachineDeletion } from '../src/controller/machines/deletion.ts';
import type { ComponentObject, MachineObject, NodeObject } from '../src/controller/machines/lifecycle.ts';
import { createKubeClient, loadKubeConfig } from '../src/kube/client.ts';
import { createLogger } from '../src/log.ts';
import { allowAll } from '../src/risk/gate.ts';
import { BOOTSTRAP_APISERVER_ARGS, BOOTSTRAP_CONTROLLERS, caCertHash, createBootstrapToken, publishClusterInfo, startCluster, waitForClusterInfoSignature, type Cluster } from '../test/harness/index.ts';
import { runAgent } from '../test/helpers/cli.ts';
import { TempRoot } from '../test/helpers/host-root.ts';
import { grantAgentRbac, installCrds } from '../test/helpers/kube-objects.ts';
import { makeSandbox, makeTar, sha256, startArtifactServer } from '../test/installers/helpers.ts';
import { ensureNamespace, must, setNodeReady } from '../test/controller/helpers.ts';
import { eachBounded } from '../src/util/parallel.ts';
import { pct, procStats as proc, startController } from './helpers.ts';
import { KUBENODE_API, MACHINES_PATH } from '../test/helpers/kube-api.ts';

const NS = 'kubenode-system';
const log = createLogger('silent');
const mode = process.argv[2] ?? 'join';

async function lifecycle(cluster: Cluster, name: string): Promise<string | undefined> {
  return (await must<{ status?: { lifecycle?: string } }>(cluster, 'GET', `${MACHINES_PATH}/${name}`)).status?.lifecycle;
}

async function benchJoin(): Promise<void> {
  const cluster = await startCluster({ agents: 1, apiserverArgs: BOOTSTRAP_APISERVER_ARGS, controllerManager: { controllers: BOOTSTRAP_CONTROLLERS } });
  const artifacts = await startArtifactServer();
  const root = new TempRoot();
  const { child } = await startController(cluster.adminKubeconfig, ['--workers', '8']);
  try {
    await installCrds(cluster);
    await grantAgentRbac(cluster);
    await ensureNamespace(cluster, NS);
    await publishClusterInfo(cluster);
    const token = await createBootstrapToken(cluster);
    await waitForClusterInfoSignature(cluster, token.id);
    const tar = (c: string): Buffer => makeTar([{ path: `${c}/`, type: 'Directory' }, { path: `${c}/bin/`, type: 'Directory' }, { path: `${c}/bin/${c}`, mode: 0o755, content: '#!/bin/sh\nexit 0\n' }]);
    for (const c of ['alpha', 'beta']) artifacts.put(`${c}.tar.gz`, tar(c));
    const name = 'bench-join';
    await must(cluster, 'POST', MACHINES_PATH, { apiVersion: 'kubenode.io/v1alpha1', kind: 'Machine', metadata: { name }, spec: { components: ['alpha', 'beta'] } });
    for (const c of ['alpha', 'beta']) {
      await must(cluster, 'POST', `${KUBENODE_API}/machinecomponents`, {
        apiVersion: 'kubenode.io/v1alpha1', kind: 'MachineComponent', metadata: { name: `${name}-${c}`, labels: { 'kubenode.io/machine': name } },
        spec: { component: c, version: '1.0.0', source: { type: 'tarball', url: artifacts.url(`${c}.tar.gz`), sha256: sha256(tar(c)), stripComponents: 1 }, install: { links: [{ path: `/usr/local/bin/${c}`, target: `bin/${c}` }] } },
      });
    }
    const t0 = performance.now();
    const joined = await runAgent(['join', '--server', cluster.server, '--token', token.token, '--ca-cert-hash', caCertHash(cluster.ca), '--node-name', name, '--root', root.dir, '--timeout', '60s'], { timeoutMs: 90_000 });
    if (joined.code !== 0) throw new Error(`join: ${joined.stderr}`);
    const tJoin = performance.now();
    // The kubelet's part, at once.
    await must(cluster, 'POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name } });
    await setNodeReady(cluster, name, 'True');
    const tNode = performance.now();
    const sandbox = makeSandbox();
    const config = validateConfig('bench', { nodeName: name, installers: { lockTimeout: '2s' } });
    const ctx = createInstallContext(createHost({ root: sandbox }), { installers: config.installers, stateDir: config.stateDir, nodeName: name }, log, { risk: allowAll });
    const kc = await loadKubeConfig({ kubeconfig: path.join(root.dir, 'etc/kubenode/kubeconfig') });
    const { reconciler } = startKubeInstaller(ctx, { client: createKubeClient(kc), kubeConfig: kc, intervalMs: 600_000 });
    let tRunning = 0;
    for (;;) {
      if ((await lifecycle(cluster, name)) === 'Running') {
        tRunning = performance.now();
        break;
      }
      await sleep(20);
    }
    await reconciler.stop();
    const ms = (a: number, b: number): string => `${(b - a).toFixed(0)} ms`;
    process.stdout.write(`join (CLI process: discovery, CSR approved and signed, kubeconfig written): ${ms(t0, tJoin)}\n`);
    process.stdout.write(`Node registered and Ready (played): ${ms(tJoin, tNode)}\n`);
    process.stdout.write(`agent installs 2 components → controller marks Running: ${ms(tNode, tRunning)}\n`);
    process.stdout.write(`join → Running: ${ms(t0, tRunning)}\n`);
    process.stdout.write(`artifact requests (127.0.0.1, in memory): ${artifacts.requests.length}\n`);
  } finally {
    child.kill('SIGTERM');
    await artifacts.close();
    await cluster.stop();
    root.remove();
  }
}

async function benchImport(n: number): Promise<void> {
  const cluster = await startCluster({ agents: 1, apiserverArgs: ['--max-requests-inflight=2000', '--max-mutating-requests-inflight=1000'] });
  try {
    await installCrds(cluster);
    await ensureNamespace(cluster, NS);
    const names = Array.from({ length: n }, (_, i) => `imp-${String(i).padStart(5, '0')}`);
    await eachBounded(names, 32, async (name) => {
      await must(cluster, 'POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name } });
      await setNodeReady(cluster, name, 'True');
    });
    const { child, metrics } = await startController(cluster.adminKubeconfig, ['--workers', '8']);
    await sleep(3000);
    const before = proc(child.pid as number);
    const created = new Map<string, number>();
    const t0 = performance.now();
    await eachBounded(names, 64, async (name) => {
      created.set(name, performance.now());
      await must(cluster, 'POST', MACHINES_PATH, { apiVersion: 'kubenode.io/v1alpha1', kind: 'Machine', metadata: { name }, spec: { labels: { 'kubenode.io/pool': 'bench' } } });
    });
    const running = new Map<string, number>();
    let peak = 0;
    while (running.size < n) {
      const list = await must<{ items: { metadata: { name: string }; status?: { lifecycle?: string } }[] }>(cluster, 'GET', MACHINES_PATH);
      const now = performance.now();
      for (const m of list.items) if (m.status?.lifecycle === 'Running' && !running.has(m.metadata.name)) running.set(m.metadata.name, now);
      peak = Math.max(peak, proc(child.pid as number).hwmMiB);
      if (now - t0 > 600_000) throw new Error(`only ${running.size} of ${n} Running after 10 min`);
      await sleep(250);
    }
    const after = proc(child.pid as number);
    const lat = names.map((x) => (running.get(x) as number) - (created.get(x) as number));
    const text = await metrics();
    const reqs = text.split('\n').filter((l) => l.startsWith('kubenode_controller_api_requests_total{'));
    const byVerb = new Map<string, number>();
    for (const l of reqs) {
      const verb = /verb="([^"]+)"/.exec(l)?.[1] ?? '?';
      byVerb.set(verb, (byVerb.get(verb) ?? 0) + Number(l.slice(l.lastIndexOf(' ') + 1)));
    }
    const total = [...byVerb.values()].reduce((a, b) => a + b, 0);
    process.stdout.write(`${n} Machines created at once; all Running after ${((performance.now() - t0) / 1000).toFixed(1)} s (polled every 250 ms)\n`);
    process.stdout.write(`creation → Running per machine: p50 ${pct(lat, 0.5).toFixed(0)} ms, p99 ${pct(lat, 0.99).toFixed(0)} ms\n`);
    process.stdout.write(`controller REST requests (whole run, incl. the initial lists): ${total} = ${[...byVerb].map(([v, c]) => `${v} ${c}`).join(', ')}; ${(total / n).toFixed(2)} per machine\n`);
    process.stdout.write(`controller peak RSS (VmHWM): ${after.hwmMiB.toFixed(0)} MiB (before the Machines: ${before.hwmMiB.toFixed(0)} MiB); CPU ${(after.cpuSeconds - before.cpuSeconds).toFixed(1)} s for the import\n`);
    child.kill('SIGTERM');
  } finally {
    await cluster.stop();
  }
}

async function benchDelete(n: number): Promise<void> {
  const cluster = await startCluster({ agents: 1, controllerManager: true, apiserverArgs: ['--max-requests-inflight=2000', '--max-mutating-requests-inflight=1000'] });
  try {
    const apps = 'held';
    await ensureNamespace(cluster, apps);
    const names = Array.from({ length: n }, (_, i) => `del-${String(i).padStart(5, '0')}`);
    await must(cluster, 'POST', `/apis/policy/v1/namespaces/${apps}/poddisruptionbudgets`, { metadata: { name: 'held', namespace: apps }, spec: { minAvailable: n, selector: { matchLabels: { app: 'held' } } } });
    await eachBounded(names, 16, async (name) => {
      await must(cluster, 'POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name } });
      await setNodeReady(cluster, name, 'True');
      await must(cluster, 'POST', `/api/v1/namespaces/${apps}/pods`, { metadata: { name, namespace: apps, labels: { app: 'held' } }, spec: { nodeName: name, containers: [{ name: 'c', image: 'registry.invalid/held:1' }] } });
      const cur = await must<Record<string, unknown>>(cluster, 'GET', `/api/v1/namespaces/${apps}/pods/${name}`);
      await must(cluster, 'PUT', `/api/v1/namespaces/${apps}/pods/${name}/status`, { ...cur, status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') }] } });
    });
    for (;;) {
      const pdb = await must<{ status?: { currentHealthy?: number } }>(cluster, 'GET', `/apis/policy/v1/namespaces/${apps}/poddisruptionbudgets/held`);
      if (pdb.status?.currentHealthy === n) break;
      await sleep(200);
    }
    let lists = 0;
    const client = createKubeClient(await loadKubeConfig({ kubeconfig: cluster.adminKubeconfig }), { observe: (verb, p) => void (verb === 'GET' && p.startsWith('/api/v1/pods') && lists++) });
    const deletion = new MachineDeletion({ client, log, now: () => Date.now() });
    const machine = (name: string, agoMs: number, drained: boolean): MachineObject =>
      ({
        metadata: { name, uid: 'bench', deletionTimestamp: new Date(Date.now() - agoMs).toISOString(), finalizers: [MACHINE_FINALIZER] },
        spec: { deletionTimeout: '2h' },
        ...(drained ? { status: { conditions: [{ type: 'Drained', status: 'True', reason: 'Drained', message: 'drained', lastTransitionTime: new Date().toISOString() }] } } : {}),
      }) as unknown as MachineObject;
    // What the agent has not uninstalled yet: already deleted, held by its finalizer (nothing to write).
    const pending = (name: string): ComponentObject => ({ metadata: { name: `${name}-demo`, labels: { [MACHINE_LABEL]: name }, deletionTimestamp: new Date().toISOString(), finalizers: [UNINSTALL_FINALIZER] } }) as unknown as ComponentObject;
    const nodes = new Map<string, NodeObject>();
    for (const name of names) nodes.set(name, await must<NodeObject>(cluster, 'GET', `/api/v1/nodes/${name}`));
    const passes = async (agoMs: number, drained: boolean): Promise<{ lists: number; wakeIn: number[]; reasons: Set<string> }> => {
      lists = 0;
      const wakeIn: number[] = [];
      const reasons = new Set<string>();
      for (const name of names) {
        const r = await deletion.step(machine(name, agoMs, drained), nodes.get(name), [pending(name)]);
        wakeIn.push(r.wakeIn ?? NaN);
        reasons.add(`${r.drained.reason}/${r.removed.reason}`);
      }
      return { lists, wakeIn, reasons };
    };
    // The first pass cordons: the Nodes as read afterwards, as the informer would have them.
    await passes(1000, false);
    for (const name of names) nodes.set(name, await must<NodeObject>(cluster, 'GET', `/api/v1/nodes/${name}`));
    for (const [what, agoMs, drained] of [['drain blocked by the budget, 10 s into the deletion', 10_000, false], ['drain blocked, 10 min into the deletion', 600_000, false], ['drained, waiting for the agent to uninstall', 10_000, true]] as const) {
      if (drained) await eachBounded(names, 16, async (name) => void (await must(cluster, 'DELETE', `/api/v1/namespaces/${apps}/pods/${name}?gracePeriodSeconds=0`)));
      const r = await passes(agoMs, drained);
      const wake = pct(r.wakeIn, 0.5);
      process.stdout.write(`${what}: ${n} passes, ${r.lists} pod lists (${(r.lists / n).toFixed(2)} per Machine per pass); next pass in ${(wake / 1000).toFixed(0)} s → ${((r.lists / n) * (60_000 / wake)).toFixed(1)} pod lists per Machine per minute [${[...r.reasons].join(', ')}]\n`);
    }
  } finally {
    await cluster.stop();
  }
}

if (mode === 'join') await benchJoin();
else if (mode === 'delete') await benchDelete(Number(process.argv[3] ?? 100));
else if (mode === 'import') await benchImport(Number(process.argv[3] ?? 1000));
else throw new Error(`usage: node bench/machines.ts join | import [N] | delete [N]`);
