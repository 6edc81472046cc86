// End to end: 100 Machines, each with a real agent (the project's installer on the agent's own
// identity and its own sandbox root; all in this process), the real controller process, the real
// apiserver. A tarball component goes v1 → v2 in batches 1/5/10/50/rest; v2's health check fails on
// one node chosen for batch 3, the rollout pauses, and nothing outside batches 1–3 was touched —
// counted from the apiserver's objects and from the sandbox roots. Acknowledge + a fixed v3
// completes; `rollout undo` goes back to v1 (not v2, which failed its gate).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { validateConfig } from '../../src/config/load.ts';
import { selectionOrder, templateHash } from '../../src/controller/rollout/plan.ts';
import { createHost } from '../../src/host/host.ts';
import { createInstallContext } from '../../src/installers/context.ts';
import { startKubeInstaller } from '../../src/installers/kube-source.ts';
import type { InstallReconciler } from '../../src/installers/reconciler.ts';
import { createLogger } from '../../src/log.ts';
import { allowAll } from '../../src/risk/gate.ts';
import { startCluster, type Cluster } from '../harness/cluster.ts';
import { grantAgentRbac, installCrds } from '../helpers/kube-objects.ts';
import { makeSandbox, makeTar, sha256, startArtifactServer, type ArtifactServer } from '../installers/helpers.ts';
import { agentKube } from '../watch/helpers.ts';
import { addMachine, ensureNamespace, listMcs, MCS_PATH, must, patchSet, until } from './helpers.ts';
import { MERGE_PATCH } from '../helpers/kube-api.ts';

const N = 100;
const NS = 'kubenode-system';
const CLI = path.resolve(import.meta.dirname, '../../dist/kubenode-agent.cjs');
const log = createLogger('silent');

/** demo VERSION; with `breakable`, its health check fails where the node's root has etc/kubenode-broken. */
function release(version: string, breakable: boolean): Buffer {
  const health = breakable
    ? 'd="$(dirname "$0")"; for i in 1 2 3 4 5 6 7; do if [ -e "$d/etc/kubenode-broken" ]; then echo "demo broken here" >&2; exit 1; fi; d="$d/.."; done; exit 0'
    : 'exit 0';
  return makeTar([
    { path: `demo-${version}/`, type: 'Directory' },
    { path: `demo-${version}/bin/`, type: 'Directory' },
    { path: `demo-${version}/bin/demo`, mode: 0o755, content: `#!/bin/sh\nif [ "$1" = --health ]; then ${health}; fi\nexit 0\n` },
  ]);
}

describe('a rollout across 100 real agents', () => {
  let cluster: Cluster;
  let artifacts: ArtifactServer;
  let controller: ChildProcess;
  const roots: string[] = [];
  const reconcilers: InstallReconciler[] = [];
  const machine = (i: number): string => `node-${i}`;
  const template = (version: string) => ({
    spec: {
      component: 'demo',
      version,
      source: { type: 'tarball', url: artifacts.url(`demo-${version}.tar.gz`), sha256: sha256(release(version, version === '2.0.0')), stripComponents: 1 },
      install: { links: [{ path: '/usr/local/bin/demo', target: 'bin/demo' }] },
      healthCheck: { exec: { argv: ['/usr/local/bin/demo', '--health'] }, retries: 0, intervalSeconds: 0 },
    },
  });
  const current = (i: number): string | undefined => {
    try {
      return path.basename(readlinkSync(path.join(roots[i] as string, 'opt/kubenode/demo/current')));
    } catch {
      return undefined;
    }
  };
  const statusOf = async () => (await must<{ status?: { phase?: string; pausedReason?: string; failure?: { token: string; machines: string[]; batch: number } } }>(cluster, 'GET', `${MCS_PATH}/demo`)).status ?? {};

  before(async () => {
    cluster = await startCluster({ agents: N });
    await installCrds(cluster);
    await grantAgentRbac(cluster);
    await ensureNamespace(cluster, NS);
    artifacts = await startArtifactServer();
    for (const v of ['1.0.0', '2.0.0', '3.0.0']) artifacts.put(`demo-${v}.tar.gz`, release(v, v === '2.0.0'));
    for (let i = 0; i < N; i++) {
      await addMachine(cluster, machine(i), { pool: 'e2e' });
      const root = makeSandbox();
      roots.push(root);
      const config = validateConfig('test', { nodeName: machine(i), installers: { downloadBackoff: '20ms', lockTimeout: '2s' } });
      const ctx = createInstallContext(createHost({ root }), { installers: config.installers, stateDir: config.stateDir, nodeName: machine(i) }, log, { risk: allowAll });
      const { kc, client } = await agentKube(cluster, i);
      reconcilers.push(startKubeInstaller(ctx, { client, kubeConfig: kc, intervalMs: 600_000 }).reconciler);
    }
    controller = spawn(process.execPath, [CLI, 'controller', '--kubeconfig', cluster.adminKubeconfig, '--listen', '127.0.0.1:0', '--leader-elect', 'false', '--log-level', 'warn'], { stdio: 'ignore' });
  });
  after(async () => {
    controller?.kill('SIGKILL');
    await Promise.all(reconcilers.map((r) => r.stop()));
    await artifacts?.close();
    await cluster?.stop();
  });

  it('v1 everywhere, v2 pauses in batch 3 touching nothing outside batches 1–3, v3 completes, undo returns to v1', async () => {
    const rollout = { batches: [1, 5, 10, 50], maxUnavailable: 10, bakeTime: '1s', progressDeadline: '5m' };
    await must(cluster, 'POST', MCS_PATH, { apiVersion: 'kubenode.io/v1alpha1', kind: 'MachineComponentSet', metadata: { name: 'demo' }, spec: { selector: { matchLabels: { pool: 'e2e' } }, template: template('1.0.0'), rollout } });
    await until('v1 completes', async () => (await statusOf()).phase === 'Completed', 300_000);
    for (let i = 0; i < N; i++) assert.equal(current(i), '1.0.0', `${machine(i)} on 1.0.0`);
    const gen1 = new Map((await listMcs(cluster)).map((mc) => [mc.metadata.name, mc.metadata.generation]));

    // The order the controller will use for v2, from the revision name the defaulted template hashes to.
    const dry = await cluster.request('PATCH', `${MCS_PATH}/demo?dryRun=All`, { body: { spec: { template: template('2.0.0') } }, headers: MERGE_PATCH });
    assert.equal(dry.status, 200, dry.body);
    const revision = `demo-${templateHash((JSON.parse(dry.body) as { spec: { template: unknown } }).spec.template)}`;
    const order = selectionOrder(Array.from({ length: N }, (_, i) => ({ name: machine(i), labels: { pool: 'e2e' }, abandoned: false })), revision).map((c) => c.name);
    const victim = order[6] as string; // the first machine of batch 3 (after 1 + 5)
    writeFileSync(path.join(roots[Number(victim.split('-')[1])] as string, 'etc/kubenode-broken'), '');
    await patchSet(cluster, 'demo', { spec: { template: template('2.0.0') } });
    await until('paused on the failure', async () => (await statusOf()).pausedReason === 'HealthGateFailed', 300_000);
    const failed = await statusOf();
    assert.deepEqual(failed.failure?.machines, [victim]);
    assert.equal(failed.failure?.batch, 2);
    // Let in-flight installs of batch 3 finish; nothing new starts.
    await new Promise((r) => setTimeout(r, 3000));

    const batches123 = new Set(order.slice(0, 16));
    const mcs = await listMcs(cluster);
    for (const mc of mcs) {
      const m = mc.metadata.labels['kubenode.io/machine'] as string;
      if (batches123.has(m)) continue;
      assert.equal(mc.spec.version, '1.0.0', `${m} (outside batches 1–3) keeps its spec`);
      assert.equal(mc.metadata.generation, gen1.get(mc.metadata.name), `${m} spec untouched`);
    }
    const touched = mcs.filter((mc) => mc.spec.version === '2.0.0').map((mc) => mc.metadata.labels['kubenode.io/machine'] as string);
    assert.ok(touched.length <= 16 && touched.every((m) => batches123.has(m)), `v2 only in batches 1–3: ${touched.join(', ')}`);
    for (let i = 0; i < N; i++) {
      const m = machine(i);
      const v2dir = existsSync(path.join(roots[i] as string, 'opt/kubenode/demo/2.0.0'));
      if (!batches123.has(m)) {
        assert.equal(v2dir, false, `${m}'s root has no 2.0.0`);
        assert.equal(current(i), '1.0.0');
      } else if (m === victim) assert.equal(current(i), '1.0.0', 'the victim rolled itself back');
    }

    await patchSet(cluster, 'demo', { spec: { template: template('3.0.0'), rollout: { acknowledgeFailure: failed.failure?.token } } });
    await until('v3 completes', async () => (await statusOf()).phase === 'Completed', 300_000);
    for (let i = 0; i < N; i++) assert.equal(current(i), '3.0.0', `${machine(i)} on 3.0.0`);

    const undo = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const c = spawn(process.execPath, [CLI, 'rollout', 'undo', 'demo', '--kubeconfig', cluster.adminKubeconfig], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      c.stdout.on('data', (d: Buffer) => (out += d.toString()));
      c.stderr.on('data', (d: Buffer) => (out += d.toString()));
      c.on('close', (code) => resolve({ code, out }));
    });
    assert.equal(undo.code, 0, undo.out);
    assert.match(undo.out, /rolled back to revision \d+ \(1\.0\.0\)/);
    await until('back on v1', async () => (await statusOf()).phase === 'Completed' && (await listMcs(cluster)).every((mc) => mc.spec.version === '1.0.0'), 300_000);
    await until('every root on 1.0.0', () => Array.from({ length: N }, (_, i) => current(i)).every((v) => v === '1.0.0'), 120_000);
  });
});
