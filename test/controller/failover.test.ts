// Real controller processes (the built CLI) against a real apiserver, agents played by the test:
// SIGKILL at random moments during rollouts (≥ 20 times) and two replicas with a handover. The
// invariants are read from the apiserver: never more than maxUnavailable machines updated and
// not ready, no MachineComponent's spec written twice for one revision, batch clocks that do not
// move when the leader changes, and every rollout completing.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LEADER_LEASE_NAME } from '../../src/controller/index.ts';
import type { Cluster } from '../harness/cluster.ts';
import { listMcs, MCS_PATH, must, patchSet, rolloutCluster, type SimulatedAgents, until } from './helpers.ts';

const CLI = resolve(import.meta.dirname, '../../dist/kubenode-agent.cjs');
const NS = 'kubenode-system';
const SHA = 'd'.repeat(64);
const MAX_UNAVAILABLE = 3;

interface Proc { child: ChildProcess; address: Promise<string>; exited: Promise<void>; out: string[] }

/** Lease timings: the kill trials use short ones to keep the suite's time down, the handover client-go's proportions. */
const FAST = ['--leader-elect-lease-duration', '1s', '--leader-elect-renew-deadline', '700ms', '--leader-elect-retry-period', '150ms'];
const HANDOVER = ['--leader-elect-lease-duration', '2s', '--leader-elect-renew-deadline', '1500ms', '--leader-elect-retry-period', '250ms'];

function startController(cluster: Cluster, timing: string[]): Proc {
  const child = spawn(process.execPath, [CLI, 'controller', '--kubeconfig', cluster.adminKubeconfig, '--listen', '127.0.0.1:0', ...timing, '--log-level', 'info'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: string[] = [];
  let text = '';
  const address = new Promise<string>((resolveAddr) => {
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      text += d;
      for (;;) {
        const nl = text.indexOf('\n');
        if (nl < 0) break;
        const line = text.slice(0, nl);
        text = text.slice(nl + 1);
        out.push(line);
        const m = /"listen":"([^"]+)"/.exec(line);
        if (m !== null) resolveAddr(m[1] as string);
      }
    });
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => out.push(d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return { child, address, exited, out };
}

async function kill(p: Proc): Promise<void> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await p.exited;
}

const template = (version: string) => ({ spec: { component: 'kx', version, source: { type: 'binary', url: `https://example.com/kx-${version}`, sha256: SHA } } });

interface Watcher { stop: () => Promise<void>; violations: string[]; maxUnavailable: number }

/** Polls the apiserver and records every violation of the invariants it can see. */
function watchInvariants(cluster: Cluster): Watcher {
  const violations: string[] = [];
  const writeTimes = new Map<string, string>();
  const clocks = new Map<string, string>();
  let maxSeen = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const [mcs, set] = await Promise.all([listMcs(cluster), cluster.request('GET', `${MCS_PATH}/kx`)]);
      if (set.status === 200) {
        const s = JSON.parse(set.body) as { status?: { updateRevision?: string; batches?: { index: number; startTime?: string; observationEndTime?: string }[] } };
        const hash = s.status?.updateRevision?.split('-').pop();
        const unavailable = mcs.filter((mc) => mc.metadata.labels['kubenode.io/revision'] === hash && (mc.status?.observedGeneration !== mc.metadata.generation || mc.status?.phase !== 'Installed')).length;
        maxSeen = Math.max(maxSeen, unavailable);
        if (unavailable > MAX_UNAVAILABLE) violations.push(`${unavailable} unavailable at once`);
        for (const b of s.status?.batches ?? []) {
          for (const [what, v] of [['start', b.startTime], ['observationEnd', b.observationEndTime]] as const) {
            if (v === undefined) continue;
            const key = `${s.status?.updateRevision}/${b.index}/${what}`;
            const seen = clocks.get(key);
            if (seen !== undefined && seen !== v) violations.push(`batch clock ${key} moved ${seen} → ${v}`);
            clocks.set(key, v);
          }
        }
      }
      for (const mc of mcs) {
        const key = `${mc.metadata.name}/${mc.metadata.labels['kubenode.io/revision']}`;
        const at = mc.metadata.annotations?.['kubenode.io/updated-at'] ?? '';
        const seen = writeTimes.get(key);
        if (seen !== undefined && seen !== at) violations.push(`${key} written twice (${seen}, ${at})`);
        writeTimes.set(key, at);
      }
      await sleep(60);
    }
  })();
  return {
    violations,
    get maxUnavailable() {
      return maxSeen;
    },
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

describe('controller processes: SIGKILL and handover', () => {
  let cluster: Cluster;
  let agents: SimulatedAgents;
  const machines = Array.from({ length: 24 }, (_, i) => `k-${String(i).padStart(2, '0')}`);
  const procs: Proc[] = [];

  before(async () => {
    ({ cluster, agents } = await rolloutCluster(machines, NS));
  });
  after(async () => {
    for (const p of procs) await kill(p);
    await agents?.stop();
    await cluster?.stop();
  });

  const phaseOf = async (): Promise<{ phase?: string; updateRevision?: string; currentRevision?: string }> => (await must<{ status?: { phase?: string } }>(cluster, 'GET', `${MCS_PATH}/kx`)).status ?? {};

  it('killed at random moments, the next leader finishes every rollout within the invariants', async () => {
    await must(cluster, 'POST', MCS_PATH, {
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'MachineComponentSet',
      metadata: { name: 'kx' },
      spec: { selector: {}, template: template('1.0.0'), rollout: { batches: [1, 2, 5], maxUnavailable: MAX_UNAVAILABLE, bakeTime: '300ms' } },
    });
    const watcher = watchInvariants(cluster);
    const versions = ['1.0.0', '2.0.0', '3.0.0', '4.0.0'];
    let kills = 0;
    let seed = 12345;
    const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (const [i, v] of versions.entries()) {
      if (i > 0) await patchSet(cluster, 'kx', { spec: { template: template(v) } });
      // Kill until this version completes; at least 5 kills per version.
      for (let round = 0; ; round++) {
        const p = startController(cluster, FAST);
        procs.push(p);
        await p.address;
        const s = await phaseOf();
        if (round >= 5 && s.phase === 'Completed' && s.currentRevision === s.updateRevision && (await listMcs(cluster)).every((mc) => mc.spec.version === v)) {
          await kill(p);
          break;
        }
        // Past the lease wait (a killed leader's lease must expire first), then a random moment into its work.
        await sleep(1200 + Math.floor(random() * 1200));
        await kill(p);
        kills += 1;
        if (round > 40) assert.fail(`rollout of ${v} did not complete after ${round} restarts`);
      }
      const all = await listMcs(cluster);
      assert.equal(all.length, machines.length);
      assert.ok(all.every((mc) => mc.spec.version === v && mc.status?.phase === 'Installed'), `every machine on ${v}`);
    }
    await watcher.stop();
    assert.ok(kills >= 20, `${kills} kills`);
    assert.deepEqual(watcher.violations, []);
    assert.ok(watcher.maxUnavailable >= 1, 'the watcher saw updates in flight');
    // One spec change per revision: created at 1.0.0, three updates after.
    for (const mc of await listMcs(cluster)) assert.equal(mc.metadata.generation, versions.length, `${mc.metadata.name} generation`);
  });

  it('SIGTERMs repeated while the leader stops: it hands its Lease back and exits 0', async () => {
    const a = startController(cluster, HANDOVER);
    procs.push(a);
    await a.address;
    await until('a leads', async () => a.out.some((l) => l.includes('Became leader')), 20_000);
    const code = new Promise<number | string | null>((r) => a.child.once('exit', (c, signal) => r(c ?? signal)));
    let exited = false;
    void a.exited.then(() => (exited = true));
    // One signal lands in every phase of the stop, Node's own tear-down at the end included.
    while (!exited && a.child.kill('SIGTERM')) await sleep(3);
    assert.equal(await code, 0, a.out.join('\n'));
    const lease = await must<{ spec: { holderIdentity?: string } }>(cluster, 'GET', `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/${LEADER_LEASE_NAME}`);
    assert.ok(!lease.spec.holderIdentity, `the Lease is handed back, holder ${lease.spec.holderIdentity}`);
  });

  it('of two replicas only the leader writes; killing it hands over within the lease duration', async () => {
    const a = startController(cluster, HANDOVER);
    procs.push(a);
    await a.address;
    await until('a leads', async () => a.out.some((l) => l.includes('Became leader')), 20_000);
    const b = startController(cluster, HANDOVER);
    procs.push(b);
    const bAddr = await b.address;
    await patchSet(cluster, 'kx', { spec: { template: template('5.0.0') } });
    await sleep(1500);
    const metrics = async (addr: string): Promise<string> => (await fetch(`http://${addr}/metrics`)).text();
    const writes = (text: string): number =>
      text
        .split('\n')
        .filter((l) => /^kubenode_controller_api_requests_total\{verb="(PUT|POST|PATCH|DELETE)"/.test(l))
        .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
    assert.equal(writes(await metrics(bAddr)), 0, 'the standby wrote nothing');
    assert.equal((await fetch(`http://${bAddr}/readyz`)).status, 200);
    assert.ok(writes(await metrics(await a.address)) > 0, 'the leader writes');
    await kill(a);
    const killedAt = Date.now();
    await until('b leads', async () => b.out.some((l) => l.includes('Became leader')), 10_000);
    const took = Date.now() - killedAt;
    assert.ok(took <= 2000 + 1000, `handover took ${took} ms (lease 2 s, retry 250 ms)`);
    await until('5.0.0 completes under b', async () => {
      const s = await phaseOf();
      return s.phase === 'Completed' && (await listMcs(cluster)).every((mc) => mc.spec.version === '5.0.0');
    }, 60_000);
    await kill(b);
  });
});
