// Detector result → Node condition visible to a watcher: p50/p99 ms against the real test
// apiserver. Until the daemon is wired to the cluster reporter this measures from
// NodeConditionsReporter.setDetector (what the daemon calls after ConditionStore.update) to the
// watch event carrying the new condition — the apiserver half of "kmsg fault → Node condition";
// the detector half is in bench/run.ts. Each sample changes the reason, so every one is a real write.
// Run: node bench/kube-condition.ts [samples=200]
import { request } from 'node:https';
import { pino } from 'pino';
import { systemClock } from '../src/host/clock.ts';
import { createKubeClient, loadKubeConfig } from '../src/kube/client.ts';
import { NodeConditionsReporter } from '../src/report/kube/node-conditions.ts';
import { startCluster } from '../test/harness/cluster.ts';
import { createNode } from '../test/report/kube/rbac.ts';
import { grantAgentRbac } from '../test/helpers/kube-objects.ts';
import { waitAllowed } from '../test/report/kube/helpers.ts';

const samples = Number(process.argv[2] ?? 200);
const cluster = await startCluster({ agents: 1 });
try {
  await grantAgentRbac(cluster);
  await createNode(cluster, 'node-0');
  await waitAllowed(cluster, 0, '/api/v1/nodes/node-0');

  // A watch on the Node as an admin observer; each event's KernelDeadlock reason resolves its waiter.
  const waiters = new Map<string, () => void>();
  const url = new URL('/api/v1/nodes?watch=1&fieldSelector=metadata.name%3Dnode-0&allowWatchBookmarks=false', cluster.server);
  const watch = request(url, { ca: cluster.ca, headers: { authorization: `Bearer ${cluster.adminToken}` }, agent: false }, (res) => {
    let buf = '';
    res.setEncoding('utf8');
    res.on('data', (d: string) => {
      buf += d;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const ev = JSON.parse(line) as { object: { status?: { conditions?: { type: string; reason?: string }[] } } };
        const reason = ev.object.status?.conditions?.find((c) => c.type === 'KernelDeadlock')?.reason;
        if (reason !== undefined) waiters.get(reason)?.();
      }
    });
  });
  watch.end();
  await new Promise((r) => setTimeout(r, 500));

  const client = createKubeClient(await loadKubeConfig({ kubeconfig: cluster.agentKubeconfig(0) }));
  const reporter = new NodeConditionsReporter({ client, nodeName: 'node-0', clock: systemClock, log: pino({ level: 'warn' }) });
  const ms: number[] = [];
  for (let i = 0; i < samples + 10; i++) {
    const reason = `Sample${i}`;
    const seen = new Promise<void>((resolve) => waiters.set(reason, resolve));
    const t0 = performance.now();
    reporter.setDetector('kernel', [{ type: 'KernelDeadlock', status: i % 2 === 0 ? 'True' : 'False', reason, message: `sample ${i}`, transitionTime: Date.now() }]);
    await seen;
    waiters.delete(reason);
    if (i >= 10) ms.push(performance.now() - t0); // first ten warm up TLS and caches
  }
  await reporter.stop();
  client.close();
  watch.destroy();
  ms.sort((a, b) => a - b);
  const q = (p: number): string => (ms[Math.min(ms.length - 1, Math.floor(p * ms.length))] as number).toFixed(1);
  console.log(`## Condition change → visible on the Node (watch), ${samples} samples, kube-apiserver ${cluster.version}`);
  console.log(`p50 ${q(0.5)} ms  p99 ${q(0.99)} ms  max ${(ms[ms.length - 1] as number).toFixed(1)} ms  (writes: ${reporter.stats.writes}, failures: ${reporter.stats.failures})`);
} finally {
  await cluster.stop();
}
