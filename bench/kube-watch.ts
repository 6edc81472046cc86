// Watch figures for BENCHMARKS.md, against the real test apiserver:
//  1. MachineComponent spec change → the agent's informer has it: p50/p99 ms over N changes
//     (from sending the PATCH to the informer's update event).
//  2. Requests per agent per minute at steady state with A agents (one informer each, own
//     identity and client) against one apiserver: counted in each agent's client (list pages +
//     watch connections) and, independently, from the apiserver's apiserver_request_total.
// Run: node bench/kube-watch.ts [changes=200] [agents=100] [steadySeconds=60]
import { performance } from 'node:perf_hooks';
import { createLogger } from '../src/log.ts';
import { Informer, type KubeObject } from '../src/watch/informer.ts';
import { startCluster, type Cluster } from '../test/harness/cluster.ts';
import { agentKube, createMc, grantAgents, installCrd, patchMc } from '../test/watch/helpers.ts';
import { pct } from './helpers.ts';

const changes = Number(process.argv[2] ?? 200);
const agents = Number(process.argv[3] ?? 100);
const steadySeconds = Number(process.argv[4] ?? 60);
const log = createLogger('silent');
const resource = { group: 'kubenode.io', version: 'v1alpha1', plural: 'machinecomponents' };

async function informer(cluster: Cluster, i: number, onRequest: () => void): Promise<Informer<KubeObject>> {
  const { kc, client } = await agentKube(cluster, i, { observe: onRequest });
  const inf = new Informer<KubeObject>({ client, kubeConfig: kc, resource, labelSelector: `kubenode.io/machine=node-${i}`, log });
  inf.start();
  await inf.waitForSync();
  return inf;
}

/** Sum of apiserver_request_total for MachineComponents, by verb. */
async function requestTotals(cluster: Cluster): Promise<Map<string, number>> {
  const text = (await cluster.request('GET', '/metrics', { headers: { accept: 'text/plain' } })).body;
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('apiserver_request_total{') || !line.includes('resource="machinecomponents"')) continue;
    const verb = /verb="([A-Z]+)"/.exec(line)?.[1] ?? '?';
    out.set(verb, (out.get(verb) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return out;
}

const cluster = await startCluster({ agents: Math.max(agents, 1) });
try {
  await installCrd(cluster);
  await grantAgents(cluster);

  // 1. Latency of a spec change.
  await createMc(cluster, { name: 'lat', node: 'node-0', version: '1.0.0' });
  const inf = await informer(cluster, 0, () => {});
  const waiting = new Map<number, (t: number) => void>();
  inf.on((e) => {
    if (e.type === 'update') waiting.get(e.object.metadata.generation ?? -1)?.(performance.now());
  });
  const latencies: number[] = [];
  for (let i = 0; i < changes; i++) {
    const t0 = performance.now();
    let seen: Promise<number> | undefined;
    // The generation is known only from the response, which may come after the event: wait on both.
    const events = new Map<number, number>();
    const off = inf.on((e) => {
      if (e.type === 'update') events.set(e.object.metadata.generation ?? -1, performance.now());
    });
    const r = await patchMc(cluster, 'lat', { version: `1.0.${i + 1}` });
    const gen = r.metadata.generation;
    seen = events.has(gen) ? Promise.resolve(events.get(gen) as number) : new Promise((resolve) => waiting.set(gen, resolve));
    const t1 = await seen;
    waiting.delete(gen);
    off();
    latencies.push(t1 - t0);
  }
  await inf.stop();
  process.stdout.write(`spec change → informer event, ${changes} changes: p50 ${pct(latencies, 0.5).toFixed(1)} ms, p99 ${pct(latencies, 0.99).toFixed(1)} ms, max ${Math.max(...latencies).toFixed(1)} ms\n`);

  // 2. Steady state with many agents.
  for (let i = 0; i < agents; i++) await createMc(cluster, { name: `steady-${i}`, node: `node-${i}`, version: '1.0.0' });
  const counts = new Array<number>(agents).fill(0);
  const informers: Informer<KubeObject>[] = [];
  for (let i = 0; i < agents; i++) informers.push(await informer(cluster, i, () => (counts[i] = (counts[i] ?? 0) + 1)));
  // Let the initial watches settle before counting.
  await new Promise((r) => setTimeout(r, 5000));
  const clientBefore = informers.map((x) => x.stats.requests);
  const serverBefore = await requestTotals(cluster);
  const start = performance.now();
  await new Promise((r) => setTimeout(r, steadySeconds * 1000));
  const minutes = (performance.now() - start) / 60_000;
  const clientAfter = informers.map((x) => x.stats.requests);
  const serverAfter = await requestTotals(cluster);
  const perAgent = clientAfter.map((a, i) => (a - (clientBefore[i] ?? 0)) / minutes);
  const serverDelta = [...serverAfter].map(([verb, n]) => [verb, n - (serverBefore.get(verb) ?? 0)] as const).filter(([, n]) => n > 0);
  const serverTotal = serverDelta.reduce((s, [, n]) => s + n, 0);
  const bookmarks = informers.reduce((s, x) => s + x.stats.bookmarks, 0);
  process.stdout.write(
    `steady state, ${agents} agents over ${(minutes * 60).toFixed(0)} s: client-counted requests/agent/min mean ${(perAgent.reduce((a, b) => a + b, 0) / agents).toFixed(3)}, max ${Math.max(...perAgent).toFixed(3)}; ` +
      `apiserver_request_total delta for machinecomponents ${serverTotal} (${serverDelta.map(([v, n]) => `${v}=${n}`).join(' ') || 'none'}) = ${(serverTotal / agents / minutes).toFixed(3)}/agent/min; ` +
      `writes 0 (informers only read; status writes happen only on change, see test/installers/kube-source.test.ts); bookmarks received ${bookmarks}; ` +
      `each agent also re-lists every 10 min (resync) = 0.1 list/agent/min\n`,
  );
  await Promise.all(informers.map((x) => x.stop()));
} finally {
  await cluster.stop();
}
