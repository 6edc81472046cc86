// `kubectl kubenode rollout …` through the real kubectl (the plugin found on PATH as
// kubectl-kubenode, a link to the built CLI) against a real apiserver and an in-process controller
// with agents played by the test: status exit codes, pause, resume with acknowledgement, history,
// undo to the last good revision (never to one that failed its gate).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Controller } from '../../src/controller/index.ts';
import { createLogger } from '../../src/log.ts';
import type { Cluster } from '../harness/cluster.ts';
import { kubectl } from '../harness/kubectl.ts';
import { listMcs, MCS_PATH, must, rolloutCluster, type SimulatedAgents, until } from './helpers.ts';

const log = createLogger('silent');
const NS = 'kubenode-system';
const CLI = resolve(import.meta.dirname, '../../dist/kubenode-agent.cjs');
const SHA = 'c'.repeat(64);

const manifest = (version: string): string =>
  JSON.stringify({
    apiVersion: 'kubenode.io/v1alpha1',
    kind: 'MachineComponentSet',
    metadata: { name: 'agent-x' },
    spec: {
      selector: {},
      template: { spec: { component: 'agent-x', version, source: { type: 'binary', url: `https://example.com/x-${version}`, sha256: SHA } } },
      rollout: { batches: [1, 2], maxUnavailable: 2, bakeTime: '500ms', progressDeadline: '1m' },
    },
  });

describe('kubectl kubenode rollout with the real kubectl', () => {
  let cluster: Cluster;
  let controller: Controller;
  let agents: SimulatedAgents;
  let pluginDir: string;

  before(async () => {
    ({ cluster, agents } = await rolloutCluster(Array.from({ length: 5 }, (_, i) => `c-${i}`), NS));
    controller = new Controller({ kubeconfig: cluster.adminKubeconfig, leaderElect: false, namespace: NS, listen: '127.0.0.1:0' }, log);
    await controller.start();
    pluginDir = mkdtempSync(join(tmpdir(), 'kubenode-plugin-'));
    // What the packages install: an executable named kubectl-kubenode on PATH. exec -a keeps the name in argv0.
    writeFileSync(join(pluginDir, 'kubectl-kubenode'), `#!/bin/bash\nexec -a kubectl-kubenode ${process.execPath} ${CLI} "$@"\n`, { mode: 0o755 });
  });
  after(async () => {
    await controller?.stop();
    await agents?.stop();
    await cluster?.stop();
    if (pluginDir !== undefined) rmSync(pluginDir, { recursive: true, force: true });
  });

  const kk = (args: string[], input?: string) =>
    kubectl(args, { env: { PATH: `${pluginDir}:${process.env.PATH ?? ''}`, KUBECONFIG: cluster.adminKubeconfig }, timeoutMs: 120_000, ...(input === undefined ? {} : { input }) });

  it('status follows to completion, a failure exits 1, resume acknowledges, undo skips the failed revision', async () => {
    const applied = await kk(['apply', '-f', '-'], manifest('1.0.0'));
    assert.equal(applied.code, 0, applied.stderr);
    const done = await kk(['kubenode', 'rollout', 'status', 'agent-x', '--timeout', '2m']);
    assert.equal(done.code, 0, done.stdout + done.stderr);
    assert.match(done.stdout, /rollout of agent-x to 1\.0\.0 complete/);

    agents.fail = (_m, v) => v === '2.0.0';
    assert.equal((await kk(['apply', '-f', '-'], manifest('2.0.0'))).code, 0);
    const failed = await kk(['kubenode', 'rollout', 'status', 'agent-x', '--timeout', '2m']);
    assert.equal(failed.code, 1, failed.stdout + failed.stderr);
    assert.match(failed.stdout, /failed: components: 1 machine\(s\) failed/);
    assert.equal((await listMcs(cluster)).filter((mc) => mc.spec.version === '2.0.0').length, 1, 'only batch 0 touched');

    const history = await kk(['kubenode', 'rollout', 'history', 'agent-x']);
    assert.equal(history.code, 0, history.stderr);
    assert.match(history.stdout, /^1\s+1\.0\.0\s+\S+\s+current$/m);
    assert.match(history.stdout, /^2\s+2\.0\.0\s+\S+\s+.*failed: HealthGateFailed/m);
    const refused = await kk(['kubenode', 'rollout', 'undo', 'agent-x', '--to-revision', '2']);
    assert.equal(refused.code, 64);
    assert.match(refused.stderr, /failed its rollout/);

    // Acknowledged, the fixed agents let 2.0.0 complete.
    agents.fail = () => false;
    const resumed = await kk(['kubenode', 'rollout', 'resume', 'agent-x']);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stdout, /acknowledged/);
    const acked = await kk(['kubenode', 'rollout', 'status', 'agent-x', '--timeout', '2m']);
    assert.equal(acked.code, 0, acked.stdout + acked.stderr);

    // Paused by the user, a new template starts no batch; status says paused (2).
    assert.equal((await kk(['kubenode', 'rollout', 'pause', 'agent-x'])).code, 0);
    assert.equal((await kk(['apply', '-f', '-'], manifest('3.0.0'))).code, 0);
    await until('paused', async () => (await must<{ status: { pausedReason?: string; updated?: number } }>(cluster, 'GET', `${MCS_PATH}/agent-x`)).status.pausedReason === 'Paused', 30_000);
    const paused = await kk(['kubenode', 'rollout', 'status', 'agent-x', '--watch', 'false']);
    assert.equal(paused.code, 2, paused.stdout + paused.stderr);
    assert.ok((await listMcs(cluster)).every((mc) => mc.spec.version === '2.0.0'), 'nothing moved to 3.0.0 while paused');

    // Undo from 3.0.0 skips 2.0.0 (it failed its gate once) and goes to 1.0.0.
    const undo = await kk(['kubenode', 'rollout', 'undo', 'agent-x']);
    assert.equal(undo.code, 0, undo.stderr);
    assert.match(undo.stdout, /rolled back to revision 1 \(1\.0\.0\)/);
    await kk(['kubenode', 'rollout', 'resume', 'agent-x']);
    const back = await kk(['kubenode', 'rollout', 'status', 'agent-x', '--timeout', '2m']);
    assert.equal(back.code, 0, back.stdout + back.stderr);
    assert.ok((await listMcs(cluster)).every((mc) => mc.spec.version === '1.0.0'));
    const after = await kk(['kubenode', 'rollout', 'history', 'agent-x']);
    assert.match(after.stdout, /^4\s+1\.0\.0\s+\S+\s+current$/m, 'the reused template became the newest revision');

    const help = await kk(['kubenode', 'rollout', '--help']);
    assert.match(help.stdout, /Usage: kubectl kubenode rollout/);
    const missing = await kk(['kubenode', 'rollout', 'status', 'no-such-set']);
    assert.equal(missing.code, 64);
    assert.match(missing.stderr, /not found/);
  });

  it('the printer columns make kubectl get useful', async () => {
    const r = await cluster.kubectl(['get', 'machinecomponentsets']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.split('\n')[0] as string, /NAME\s+COMPONENT\s+VERSION\s+REVISION\s+UPDATED\s+READY\s+MATCHED\s+BATCH\s+PHASE\s+AGE/);
  });
});
