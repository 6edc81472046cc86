// Remedy and risk-gate figures for BENCHMARKS.md: blackout-window evaluation cost, and RiskPolicy
// permit acquire/release under contention against the real test apiserver (N agents racing for
// maxInFlight slots). Run: node bench/remedies.ts   (starts one test cluster; ~30 s)
import { pino } from 'pino';
import { systemClock } from '../src/host/clock.ts';
import { parseCron, windowStartContaining } from '../src/risk/cron.ts';
import { RiskPolicyClient } from '../src/risk/policy.ts';
import { createKubeApi } from '../src/remedies/kube-api.ts';
import { startCluster } from '../test/harness/cluster.ts';
import { createNode, must } from '../test/remedies/cluster-fixture.ts';
import { grantAgentRbac, installCrds } from '../test/helpers/kube-objects.ts';
import { pct } from './helpers.ts';

const fmt = (n: number): string => n.toFixed(1);

console.log('## Blackout window evaluation (one window, a time outside it: the whole duration is scanned)');
console.log('| window | µs per decision |');
console.log('| --- | ---: |');
for (const [label, cron, hours] of [['8h nightly, Europe/Berlin', '0 22 * * *', 8], ['7 days, America/New_York', '0 0 1 1 *', 168]] as const) {
  const s = parseCron(cron);
  const at = Date.parse('2026-06-15T12:00:00Z');
  const n = hours > 24 ? 20 : 200;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) windowStartContaining(s, hours * 3_600_000, label.includes('Berlin') ? 'Europe/Berlin' : 'America/New_York', at + i * 60_000);
  console.log(`| ${label} | ${fmt(((performance.now() - t0) * 1000) / n)} |`);
}

const AGENTS = Number(process.env.BENCH_AGENTS ?? 20);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const cluster = await startCluster({ agents: AGENTS });
try {
  await installCrds(cluster);
  await grantAgentRbac(cluster);
  await Promise.all(Array.from({ length: AGENTS }, (_, i) => createNode(cluster, `node-${i}`, { pool: 'bench' })));
  await must(cluster, 'POST', '/apis/kubenode.io/v1alpha1/riskpolicies', { apiVersion: 'kubenode.io/v1alpha1', kind: 'RiskPolicy', metadata: { name: 'bench' }, spec: { maxInFlight: 2, minHealthyShare: 0 } });
  const log = pino({ level: 'silent' });
  const gates = await Promise.all(Array.from({ length: AGENTS }, async (_, i) => new RiskPolicyClient(await createKubeApi({ kubeconfig: cluster.agentKubeconfig(i) }), systemClock, log)));
  const acquireMs: number[] = [];
  const releaseMs: number[] = [];
  let denials = 0;
  const t0 = performance.now();
  for (let round = 0; round < ROUNDS; round++) {
    // Every agent asks at once; winners hold briefly and release; losers retry until served.
    await Promise.all(
      gates.map(async (gate, i) => {
        const op = `bench-${round}-${i}`;
        for (;;) {
          const a = performance.now();
          const d = await gate.acquire({ node: `node-${i}`, action: 'reboot', risk: 'disruptive', operation: op });
          acquireMs.push(performance.now() - a);
          if (d.allowed) break;
          denials += 1;
          await new Promise((r) => setTimeout(r, 20 + Math.random() * 30));
        }
        await new Promise((r) => setTimeout(r, 10));
        const b = performance.now();
        await gate.release(op);
        releaseMs.push(performance.now() - b);
      }),
    );
  }
  const seconds = (performance.now() - t0) / 1000;
  console.log(`\n## RiskPolicy permits: ${AGENTS} agents racing for maxInFlight=2, ${ROUNDS} rounds (test apiserver on 127.0.0.1)`);
  console.log('| figure | value |');
  console.log('| --- | ---: |');
  console.log(`| permits granted | ${AGENTS * ROUNDS} in ${fmt(seconds)} s (${fmt((AGENTS * ROUNDS) / seconds)}/s) |`);
  console.log(`| acquire decision p50 / p99 ms (incl. 409 re-reads) | ${fmt(pct(acquireMs, 0.5))} / ${fmt(pct(acquireMs, 0.99))} |`);
  console.log(`| release p50 / p99 ms | ${fmt(pct(releaseMs, 0.5))} / ${fmt(pct(releaseMs, 0.99))} |`);
  console.log(`| denials (slot taken) before a grant, total | ${denials} |`);
} finally {
  await cluster.stop();
}
