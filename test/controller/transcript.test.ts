// What the README's controller transcript shows, run for real: `kubectl apply -k deploy/` on a
// bare test apiserver, Machines with their Nodes and agent Leases, a controller process (the
// built CLI; the test cluster has no kubelet to run the Deployment's pods), agents played by the
// test, and the real kubectl with the kubectl-kubenode plugin: a set rolled out in batches
// 1/5/10/…, a new version, `rollout undo --to-revision 1` through batches and the health gate,
// and the revision history before and after. The transcript is written to a temp file (its path
// is printed); the README's block must be a faithful excerpt of it (compared after the parts that
// change run to run are normalised).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCluster, type Cluster } from '../harness/cluster.ts';
import { kubectl } from '../harness/kubectl.ts';
import { addMachine, listMcs, MCS_PATH, must, SimulatedAgents, until } from './helpers.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'dist/kubenode-agent.cjs');
const NS = 'kubenode-system';
const MACHINES = Array.from({ length: 20 }, (_, i) => `node-${String(i).padStart(2, '0')}`);
const SHA = 'd'.repeat(64);

const setYaml = (version: string): string => `apiVersion: kubenode.io/v1alpha1
kind: MachineComponentSet
metadata:
  name: node-exporter
spec:
  selector: {}
  template:
    spec:
      component: node-exporter
      version: ${version}
      source:
        type: binary
        url: https://artifacts.example.com/node-exporter-${version}
        sha256: ${SHA}
  rollout:
    batches: [1, 5, 10]
    maxUnavailable: 10
    bakeTime: 1s
`;

interface SetStatus {
  phase?: string;
  currentRevision?: string;
  updateRevision?: string;
  batches: { index: number; size: number; state: string; startTime?: string; observationEndTime?: string; endTime?: string }[];
}

/** Lines of a transcript that differ run to run, made comparable: revision hashes, and progress lines (how many depends on timing). */
function normalise(lines: readonly string[]): string[] {
  const out: string[] = [];
  for (const raw of lines) {
    let line = raw.replace(/node-exporter-[0-9a-f]{10}\b/g, 'node-exporter-HASH').replace(/\s+/g, ' ').trimEnd();
    const progress = /^(\S+): \d+ of \d+ updated to (\S+), \d+ ready, \d+ failed, batch \d+/.exec(line);
    if (progress !== null) line = `${progress[1]}: … updated to ${progress[2]} …`;
    if (out.at(-1) !== line) out.push(line);
  }
  return out;
}

/** Is `want` a subsequence of `have`? Returns the first line of `want` that is not found, in order. */
function missingFrom(have: readonly string[], want: readonly string[]): string | undefined {
  let i = 0;
  for (const w of want) {
    while (i < have.length && have[i] !== w) i++;
    if (i === have.length) return w;
    i++;
  }
  return undefined;
}

describe('the README rollout transcript, run for real', () => {
  let cluster: Cluster;
  let agents: SimulatedAgents;
  let controller: ChildProcess | undefined;
  let dir: string;
  const transcript: string[] = [];

  before(async () => {
    cluster = await startCluster({ agents: 1 });
    dir = mkdtempSync(join(tmpdir(), 'kubenode-transcript-'));
    // What the packages install: an executable named kubectl-kubenode on PATH.
    writeFileSync(join(dir, 'kubectl-kubenode'), `#!/bin/bash\nexec -a kubectl-kubenode ${process.execPath} ${CLI} "$@"\n`, { mode: 0o755 });
    agents = new SimulatedAgents(cluster);
  });
  after(async () => {
    controller?.kill('SIGTERM');
    await agents?.stop();
    await cluster?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /** Runs what a user types, in the README's form, and records it with its output. */
  const run = async (command: string, args: string[], cwd = dir): Promise<{ code: number | null; stdout: string; stderr: string }> => {
    const r = await kubectl(args, { cwd, env: { PATH: `${dir}:${process.env.PATH ?? ''}`, KUBECONFIG: cluster.adminKubeconfig }, timeoutMs: 180_000 });
    transcript.push(`$ ${command}`, ...r.stdout.trimEnd().split('\n').filter((l) => l !== ''));
    return r;
  };
  const status = async (): Promise<SetStatus> => (await must<{ status?: SetStatus }>(cluster, 'GET', `${MCS_PATH}/node-exporter`)).status ?? { batches: [] };

  it('apply -k deploy/, a set rolled out in batches, a new version, history', async () => {
    const applied = await run('kubectl apply -k deploy/', ['apply', '-k', 'deploy/'], ROOT);
    assert.equal(applied.code, 0, applied.stderr);
    await until('the CRDs are served', async () => (await cluster.request('GET', '/apis/kubenode.io/v1alpha1/machinecomponentsets')).status === 200 && (await cluster.request('GET', '/apis/kubenode.io/v1alpha1/machines')).status === 200, 30_000);
    for (const m of MACHINES) await addMachine(cluster, m, {});
    agents.start();
    controller = spawn(process.execPath, [CLI, 'controller', '--kubeconfig', cluster.adminKubeconfig, '--listen', '127.0.0.1:0', '--leader-election-namespace', NS], { stdio: 'ignore' });

    writeFileSync(join(dir, 'node-exporter-set.yaml'), setYaml('1.8.1'));
    assert.equal((await run('kubectl apply -f node-exporter-set.yaml', ['apply', '-f', 'node-exporter-set.yaml'])).code, 0);
    const first = await run('kubectl kubenode rollout status node-exporter', ['kubenode', 'rollout', 'status', 'node-exporter', '--timeout', '3m']);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    assert.match(first.stdout, /rollout of node-exporter to 1\.8\.1 complete\n$/);
    for (const version of ['1.8.2', '1.8.3']) {
      writeFileSync(join(dir, 'node-exporter-set.yaml'), setYaml(version));
      assert.equal((await run('kubectl apply -f node-exporter-set.yaml', ['apply', '-f', 'node-exporter-set.yaml'])).code, 0);
      const done = await run('kubectl kubenode rollout status node-exporter', ['kubenode', 'rollout', 'status', 'node-exporter', '--timeout', '3m']);
      assert.equal(done.code, 0, done.stdout + done.stderr);
    }
    // 20 machines in batches of 1, 5, 10, then the rest.
    assert.deepEqual((await status()).batches.map((b) => [b.size, b.state]), [[1, 'Succeeded'], [5, 'Succeeded'], [10, 'Succeeded'], [4, 'Succeeded']]);
    const history = await run('kubectl kubenode rollout history node-exporter', ['kubenode', 'rollout', 'history', 'node-exporter']);
    assert.deepEqual(normalise(history.stdout.trimEnd().split('\n')), [
      'REVISION VERSION NAME STATUS',
      '1 1.8.1 node-exporter-HASH superseded',
      '2 1.8.2 node-exporter-HASH superseded',
      '3 1.8.3 node-exporter-HASH current',
    ]);
  });

  it('undo --to-revision 1 brings revision 1 back through batches and the health gate; history after', async () => {
    const revs = async () => (await must<{ items: { metadata: { name: string }; revision: number; data: { template: { spec: { version: string } } } }[] }>(cluster, 'GET', `/apis/apps/v1/namespaces/${NS}/controllerrevisions?labelSelector=kubenode.io/component-set=node-exporter`)).items;
    const rev1 = (await revs()).find((r) => r.revision === 1);
    assert.equal(rev1?.data.template.spec.version, '1.8.1');
    // Agents silent: no machine of revision 1 turns ready, so the gate must hold the first batch.
    for (const m of MACHINES) agents.silent.add(m);
    const undo = await run('kubectl kubenode rollout undo node-exporter --to-revision 1', ['kubenode', 'rollout', 'undo', 'node-exporter', '--to-revision', '1']);
    assert.equal(undo.code, 0, undo.stderr);
    assert.equal(undo.stdout, 'machinecomponentset/node-exporter rolled back to revision 1 (1.8.1)\n');
    const set = await must<{ spec: { template: { spec: { version: string } } } }>(cluster, 'GET', `${MCS_PATH}/node-exporter`);
    assert.equal(set.spec.template.spec.version, '1.8.1', 'spec is the truth: the template was copied back');

    const onRev1 = async () => (await listMcs(cluster)).filter((mc) => mc.spec.version === '1.8.1');
    await until('batch 0 written', async () => (await onRev1()).length > 0, 60_000);
    // The set's status follows its batch's writes: waited for, not assumed after a sleep.
    await until('batch 0 verifying in the status', async () => (await status()).batches.some((b) => b.index === 0 && b.state === 'Verifying'), 30_000);
    // Then passes go on while batch 0 stays unhealthy: another machine written would show by now.
    await new Promise((r) => setTimeout(r, 3000));
    const held = await status();
    assert.equal(held.updateRevision, rev1?.metadata.name, 'the undo reuses revision 1’s ControllerRevision');
    assert.equal((await onRev1()).length, 1, 'while batch 0 is not healthy, no other machine is touched');
    assert.deepEqual(held.batches.map((b) => [b.index, b.size, b.state]), [[0, 1, 'Verifying']]);

    const following = run('kubectl kubenode rollout status node-exporter', ['kubenode', 'rollout', 'status', 'node-exporter', '--timeout', '3m']);
    await new Promise((r) => setTimeout(r, 1000));
    agents.silent.clear();
    const back = await following;
    assert.equal(back.code, 0, back.stdout + back.stderr);
    assert.match(back.stdout, /rollout of node-exporter to 1\.8\.1 complete\n$/);

    const s = await status();
    assert.equal(s.currentRevision, rev1?.metadata.name);
    assert.deepEqual(s.batches.map((b) => [b.index, b.size, b.state]), [[0, 1, 'Succeeded'], [1, 5, 'Succeeded'], [2, 10, 'Succeeded'], [3, 4, 'Succeeded']]);
    for (let k = 1; k < s.batches.length; k++) {
      const prev = s.batches[k - 1] as SetStatus['batches'][number];
      const cur = s.batches[k] as SetStatus['batches'][number];
      assert.ok((cur.startTime ?? '') >= (prev.observationEndTime ?? '~'), `batch ${k} started ${cur.startTime}, before batch ${k - 1}'s bake ended ${prev.observationEndTime}`);
    }
    const mcs = await listMcs(cluster);
    assert.equal(mcs.length, MACHINES.length);
    const hash = rev1?.metadata.name.split('-').pop();
    for (const mc of mcs) {
      assert.equal(mc.spec.version, '1.8.1', mc.metadata.name);
      assert.equal(mc.metadata.labels['kubenode.io/revision'], hash, mc.metadata.name);
      assert.equal(mc.status?.observedGeneration, mc.metadata.generation, mc.metadata.name);
    }

    const history = await run('kubectl kubenode rollout history node-exporter', ['kubenode', 'rollout', 'history', 'node-exporter']);
    assert.deepEqual(normalise(history.stdout.trimEnd().split('\n')), [
      'REVISION VERSION NAME STATUS',
      '2 1.8.2 node-exporter-HASH superseded',
      '3 1.8.3 node-exporter-HASH superseded',
      '4 1.8.1 node-exporter-HASH current',
    ]);
    assert.ok(history.stdout.includes(rev1?.metadata.name as string), 'revision 1 became revision 4 under the same name');
    const again = await kubectl(['kubenode', 'rollout', 'undo', 'node-exporter', '--to-revision', '1'], { env: { PATH: `${dir}:${process.env.PATH ?? ''}`, KUBECONFIG: cluster.adminKubeconfig } });
    assert.equal(again.code, 64);
    assert.match(again.stderr, /has no such revision \(have 2, 3, 4\)/);
  });

  it('the README block is an excerpt of this transcript', () => {
    const file = join(tmpdir(), `kubenode-rollout-transcript-${process.pid}.txt`);
    writeFileSync(file, `${transcript.join('\n')}\n`);
    process.stdout.write(`# transcript written to ${file}\n`);
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const block = /<!-- transcript: test\/controller\/transcript\.test\.ts -->\n```\n([\s\S]*?)```/.exec(readme);
    assert.ok(block !== null, 'README.md has no transcript block marked for this test');
    const want = normalise((block[1] as string).trimEnd().split('\n').filter((l) => l !== '…'));
    const have = normalise(transcript);
    assert.deepEqual(want.filter((l) => l.startsWith('$ ')), have.filter((l) => l.startsWith('$ ')), 'the README shows the commands the test ran, in order');
    assert.equal(missingFrom(have, want), undefined, `a README line that the run did not print (in that order); transcript in ${file}`);
  });
});
