// Release pipelines across four real apiservers: a management cluster running the pipeline
// controller (the real CLI process, `controller --pipelines`), and three members — test, staging,
// production — each with its own in-cluster controller and agents played by the test. Member
// clusters are kubeconfig Secrets in the management cluster, each for a ServiceAccount bound in
// the member to deploy/'s kubenode:pipeline-member role. Every member's apiserver writes an audit
// log, so what the pipeline controller sent a member is counted on that member itself.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ReleaseStatus } from '../../src/api/release.ts';
import { Controller } from '../../src/controller/index.ts';
import { createLogger } from '../../src/log.ts';
import { startCluster, type Cluster } from '../harness/cluster.ts';
import { kubectl } from '../harness/kubectl.ts';
import { installCrds } from '../helpers/kube-objects.ts';
import { addMachine, ensureNamespace, MCS_PATH, must, SimulatedAgents, until } from '../controller/helpers.ts';
import { AUDIT_POLICY, memberKubeconfig, pipelineRequests } from './helpers.ts';

const NS = 'kubenode-system';
const CLI = path.resolve(import.meta.dirname, '../../dist/kubenode-agent.cjs');
const API = '/apis/kubenode.io/v1alpha1';
const SHA = 'a'.repeat(64);
const log = createLogger('silent');
const MEMBERS = ['test', 'staging', 'production'] as const;
type MemberName = (typeof MEMBERS)[number];

interface Member { name: MemberName; cluster: Cluster; agents: SimulatedAgents; controller: Controller }

const template = (component: string, version: string) => ({ spec: { component, version, source: { type: 'binary', url: `https://example.com/${component}-${version}`, sha256: SHA } } });

describe('release pipelines across a management and three member apiservers', () => {
  let mgmt: Cluster;
  const members = new Map<MemberName, Member>();
  let pipelineController: ChildProcess | undefined;
  const auditDir = mkdtempSync(path.join(tmpdir(), 'kubenode-audit-'));
  const auditLog = (n: MemberName): string => path.join(auditDir, `${n}.log`);

  let pluginDir: string;
  const member = (n: MemberName): Member => members.get(n) as Member;
  /** `kubectl kubenode …` through the plugin as the packages install it, against the management cluster. */
  const kk = (args: string[]) => kubectl(['kubenode', ...args], { env: { PATH: `${pluginDir}:${process.env.PATH ?? ''}`, KUBECONFIG: mgmt.adminKubeconfig }, timeoutMs: 60_000 });
  const cli = (args: string[]): Promise<{ code: number | null; out: string }> =>
    new Promise((resolve) => {
      const c = spawn(process.execPath, [CLI, ...args, '--kubeconfig', mgmt.adminKubeconfig], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      c.stdout.on('data', (d: Buffer) => (out += d.toString()));
      c.stderr.on('data', (d: Buffer) => (out += d.toString()));
      c.on('close', (code) => resolve({ code, out }));
    });
  const startPipelineController = (): ChildProcess =>
    spawn(process.execPath, [CLI, 'controller', '--kubeconfig', mgmt.adminKubeconfig, '--listen', '127.0.0.1:0', '--leader-elect', 'false', '--pipelines', '--pipeline-probe-interval', '2s', '--log-level', 'warn'], { stdio: 'ignore' });
  const release = async (name: string): Promise<{ metadata: { uid: string }; status?: ReleaseStatus }> => must(mgmt, 'GET', `${API}/releases/${name}`);
  const statusOf = async (name: string): Promise<ReleaseStatus> => (await release(name)).status ?? ({ phase: 'Pending', stages: [] } as unknown as ReleaseStatus);
  const stage = (s: ReleaseStatus, name: string) => s.stages.find((x) => x.name === name);
  const memberSet = async (n: MemberName, set: string) => {
    const r = await member(n).cluster.request('GET', `${MCS_PATH}/${set}`);
    return r.status === 404
      ? undefined
      : (JSON.parse(r.body) as { metadata: { generation: number }; spec: { paused?: boolean; template: { spec: { version: string } } }; status?: { phase?: string; updated?: number } });
  };
  /** Audit entries production recorded for requests sent by the pipeline controller. */
  const pipelineRequestsOnProduction = (): { verb: string; uri: string }[] => pipelineRequests(auditLog('production')).map((e) => ({ verb: e.verb, uri: e.requestURI }));
  const WRITES = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);
  const createRelease = (name: string, pipeline: string, set: string, version: string, rollout: Record<string, unknown> = { batches: [1, '100%'], bakeTime: '1s', maxUnavailable: 3 }) =>
    must(mgmt, 'POST', `${API}/releases`, { apiVersion: 'kubenode.io/v1alpha1', kind: 'Release', metadata: { name }, spec: { pipeline, componentSet: set, selector: { matchLabels: { pool: 'e2e' } }, template: template(set, version), rollout } });

  before(async () => {
    pluginDir = mkdtempSync(path.join(tmpdir(), 'kubenode-plugin-'));
    writeFileSync(path.join(pluginDir, 'kubectl-kubenode'), `#!/bin/bash\nexec -a kubectl-kubenode ${process.execPath} ${CLI} "$@"\n`, { mode: 0o755 });
    writeFileSync(path.join(auditDir, 'policy.yaml'), AUDIT_POLICY);
    const started = await Promise.all([
      startCluster({ agents: 1 }),
      // test's apiserver ends every watch after 4–8 s (the flag's floor and twice it), as a real one does after 30–60 min.
      ...MEMBERS.map((n) =>
        startCluster({ agents: 1, apiserverArgs: [`--audit-policy-file=${path.join(auditDir, 'policy.yaml')}`, `--audit-log-path=${auditLog(n)}`, ...(n === 'test' ? ['--min-request-timeout=4'] : [])] }),
      ),
    ]);
    mgmt = started[0] as Cluster;
    await installCrds(mgmt);
    await ensureNamespace(mgmt, NS);
    for (const [i, n] of MEMBERS.entries()) {
      const cluster = started[i + 1] as Cluster;
      await installCrds(cluster);
      await ensureNamespace(cluster, NS);
      for (let m = 0; m < 3; m++) await addMachine(cluster, `${n}-node-${m}`, { pool: 'e2e' });
      const agents = new SimulatedAgents(cluster);
      agents.start();
      const controller = new Controller({ kubeconfig: cluster.adminKubeconfig, leaderElect: false, namespace: NS, listen: '127.0.0.1:0' }, log);
      await controller.start();
      members.set(n, { name: n, cluster, agents, controller });
      await must(mgmt, 'POST', `/api/v1/namespaces/${NS}/secrets`, {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: `cluster-${n}`, labels: { 'kubenode.io/member-cluster': n, env: n } },
        data: { kubeconfig: Buffer.from(await memberKubeconfig(cluster)).toString('base64') },
      });
    }
    pipelineController = startPipelineController();
  });

  after(async () => {
    pipelineController?.kill('SIGKILL');
    for (const m of members.values()) {
      if (m.cluster.pid !== undefined) process.kill(m.cluster.pid, 'SIGCONT');
      await m.agents.stop();
      await m.controller.stop();
      await m.cluster.stop();
    }
    await mgmt?.stop();
    rmSync(auditDir, { recursive: true, force: true });
    if (pluginDir !== undefined) rmSync(pluginDir, { recursive: true, force: true });
  });

  it('runs test → staging → production in order, waits out the timed wait, stops at the approval, survives a kill -9 of the pipeline controller, completes', async () => {
    await must(mgmt, 'POST', `${API}/releasepipelines`, {
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'ReleasePipeline',
      metadata: { name: 'standard' },
      spec: {
        stages: [
          { name: 'test', clusters: ['test'], afterStage: [{ type: 'TimedWait', duration: '4s' }] },
          { name: 'staging', clusterSelector: { matchLabels: { env: 'staging' } }, afterStage: [{ type: 'Approval' }] },
          { name: 'production', clusters: ['production'], rolloutOverride: { batches: [1, 1, '100%'] } },
        ],
      },
    });
    await createRelease('r1', 'standard', 'demo', '1.0.0');

    await until('test stage waits', async () => stage(await statusOf('r1'), 'test')?.state === 'Waiting', 120_000);
    const waiting = await statusOf('r1');
    const readyAt = stage(waiting, 'test')?.tasks[0]?.readyAt as string;
    assert.ok(readyAt !== undefined, 'the timed wait has its end in status');
    assert.equal(await memberSet('staging', 'demo'), undefined, 'staging untouched while test waits');
    // kill -9 in the middle of the wait; a new process goes on from status with the same clock.
    pipelineController?.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    pipelineController = startPipelineController();

    await until('staging waits for approval', async () => {
      const s = stage(await statusOf('r1'), 'staging');
      return s?.state === 'Waiting' && s.tasks[0]?.state === 'Waiting';
    }, 120_000);
    const atApproval = await statusOf('r1');
    assert.equal(stage(atApproval, 'test')?.tasks[0]?.readyAt, readyAt, 'the restart kept the timed wait');
    assert.equal(atApproval.phase, 'Waiting');
    const stagingStart = Date.parse(stage(atApproval, 'staging')?.startTime as string);
    assert.ok(stagingStart >= Date.parse(readyAt), `staging started (${stage(atApproval, 'staging')?.startTime}) after the wait (${readyAt})`);
    assert.ok(Date.parse(stage(atApproval, 'test')?.clusters[0]?.endTime as string) <= stagingStart, 'test finished before staging started');
    assert.equal(stage(atApproval, 'test')?.clusters[0]?.state, 'Finished');
    assert.equal((await memberSet('staging', 'demo'))?.status?.phase, 'Completed');
    // It stays at the approval.
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal(stage(await statusOf('r1'), 'staging')?.state, 'Waiting');
    assert.equal(await memberSet('production', 'demo'), undefined, 'production untouched before the approval');
    assert.deepEqual(pipelineRequestsOnProduction(), [], 'no request reached production before its stage');

    const approval = await must<{ spec: { releaseUID: string; stage: string; approved: boolean } }>(mgmt, 'GET', `${API}/releaseapprovals/r1-staging`);
    assert.equal(approval.spec.releaseUID, (await release('r1')).metadata.uid);
    assert.equal(approval.spec.approved, false);
    const shown = await kk(['release', 'status', 'r1']);
    assert.equal(shown.code, 4, `exit 4 while waiting for an approval: ${shown.stdout}${shown.stderr}`);
    assert.match(shown.stdout, /release r1: demo 1\.0\.0 through standard: Waiting \(stage staging\)/);
    assert.match(shown.stdout, /stage test: Succeeded, 1\/1 finished, 0 failed/);
    assert.match(shown.stdout, /cluster staging: Finished, batch 2\/2, 3\/3 updated/);
    assert.match(shown.stdout, /Approval: Waiting \(ReleaseApproval r1-staging\)/);
    assert.match(shown.stdout, /approve with: release approve r1 --stage staging/);
    const wrongStage = await cli(['release', 'approve', 'r1', '--stage', 'test']);
    assert.equal(wrongStage.code === 0, false, wrongStage.out);
    assert.match(wrongStage.out, /stage test of release r1 has no Approval task/);
    const approved = await cli(['release', 'approve', 'r1', '--by', 'alice', '--comment', 'staging looks good']);
    assert.equal(approved.code, 0, approved.out);
    assert.match(approved.out, /releaseapproval\/r1-staging approved by alice/);

    const followed = await kk(['release', 'status', 'r1', '--watch', '--timeout', '2m']);
    assert.equal(followed.code, 0, `${followed.stdout}${followed.stderr}`);
    assert.match(followed.stdout, /through standard: Succeeded/);
    const done = await statusOf('r1');
    assert.deepEqual(done.stages.map((s) => s.state), ['Succeeded', 'Succeeded', 'Succeeded']);
    assert.equal(stage(done, 'staging')?.tasks[0]?.approvedBy, 'alice');
    assert.ok(Date.parse(stage(done, 'production')?.startTime as string) >= Date.parse(stage(done, 'staging')?.tasks[0]?.endTime as string), 'production after the approval');
    assert.deepEqual(done.pipelineSnapshot?.stages.map((s) => s.name), ['test', 'staging', 'production']);
    // The pass that starts a stage writes its first cluster (the first request to a member is its /readyz probe, then the apply).
    assert.equal(stage(done, 'production')?.clusters[0]?.startTime, stage(done, 'production')?.startTime, 'production written in the pass that promoted');
    assert.equal(stage(done, 'test')?.clusters[0]?.startTime, stage(done, 'test')?.startTime, 'test written in the pass that started the release');
    for (const n of MEMBERS) {
      const set = await memberSet(n, 'demo');
      assert.equal(set?.spec.template.spec.version, '1.0.0', n);
      assert.equal(set?.status?.phase, 'Completed', n);
    }
    const events = await must<{ items: { reason: string; involvedObject: { name: string; kind: string } }[] }>(mgmt, 'GET', '/api/v1/namespaces/default/events');
    const reasons = new Set(events.items.filter((e) => e.involvedObject.kind === 'Release' && e.involvedObject.name === 'r1').map((e) => e.reason));
    for (const r of ['Started', 'StageStarted', 'ClusterStarted', 'ClusterFinished', 'Waiting', 'ApprovalRequested', 'Approved', 'StagePromoted', 'ReleaseSucceeded']) assert.ok(reasons.has(r), `Event ${r} (have ${[...reasons].join(', ')})`);
  });

  it('a failure in staging fails the release before production, whose objects are never touched; a second release of the set waits, then stops', async () => {
    await must(mgmt, 'POST', `${API}/releasepipelines`, {
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'ReleasePipeline',
      metadata: { name: 'quick' },
      spec: { stages: [{ name: 'test', clusters: ['test'] }, { name: 'staging', clusters: ['staging'] }, { name: 'production', clusters: ['production'] }] },
    });
    const prodBefore = await memberSet('production', 'demo');
    const auditBefore = pipelineRequestsOnProduction().length;
    member('staging').agents.fail = (_m, v) => v === '2.0.0';
    await createRelease('r2', 'quick', 'demo', '2.0.0');
    await createRelease('r2-next', 'quick', 'demo', '3.0.0');
    await until('r2-next waits for r2', async () => ((await statusOf('r2-next')).conditions ?? []).some((c) => c.type === 'Initialized' && c.reason === 'AnotherReleaseActive'), 60_000);
    assert.equal((await statusOf('r2-next')).stages.length, 0, 'a waiting release has not started');
    // Stopped while it waits: it never starts, even once r2 ends.
    const stop = await kk(['release', 'stop', 'r2-next']);
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stdout, /release\/r2-next stopped/);
    await until('r2-next stopped', async () => (await statusOf('r2-next')).phase === 'Stopped', 60_000);
    assert.equal((await kk(['release', 'status', 'r2-next'])).code, 2, 'exit 2 for a stopped release');

    await until('r2 fails', async () => (await statusOf('r2')).phase === 'Failed', 120_000);
    const shownFailed = await cli(['release', 'status', 'r2']);
    assert.equal(shownFailed.code, 1, shownFailed.out);
    assert.match(shownFailed.out, /cluster staging: Failed.*HealthGateFailed/);
    const failed = await statusOf('r2');
    assert.equal(stage(failed, 'staging')?.state, 'Failed');
    assert.equal(stage(failed, 'staging')?.clusters[0]?.state, 'Failed');
    assert.match(stage(failed, 'staging')?.clusters[0]?.message ?? '', /rollout failed in batch 0: HealthGateFailed/);
    assert.equal(stage(failed, 'production')?.state, 'Pending');
    assert.equal(stage(failed, 'test')?.state, 'Succeeded');
    assert.equal((await memberSet('test', 'demo'))?.spec.template.spec.version, '2.0.0', 'nothing rolled back in test');
    await new Promise((r) => setTimeout(r, 2000));

    const prodAfter = await memberSet('production', 'demo');
    assert.equal(prodAfter?.spec.template.spec.version, '1.0.0');
    assert.equal(prodAfter?.metadata.generation, prodBefore?.metadata.generation, "production's set was not written");
    assert.deepEqual(pipelineRequestsOnProduction().slice(auditBefore), [], 'the pipeline controller sent production nothing during r2');
    assert.ok(auditBefore > 0, 'the audit log does record the pipeline controller (r1 wrote production)');
    member('staging').agents.fail = () => false;
  });

  it('pause mid-stage pauses the member sets in flight and writes nothing more until resume, across a kill -9; stop pauses them for good; a new release lifts the pause', async () => {
    await must(mgmt, 'POST', `${API}/releasepipelines`, {
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'ReleasePipeline',
      metadata: { name: 'hold' },
      spec: { stages: [{ name: 'both', clusters: ['test', 'staging'], maxConcurrency: 2, rolloutOverride: { batches: [1, 1, '100%'], bakeTime: '8s' } }, { name: 'last', clusters: ['production'] }] },
    });
    const pair = ['test', 'staging'] as const;
    /** The pipeline controller's requests on each of the stage's members from audit entry `from` on. */
    const sent = (from: Record<string, number>) => Object.fromEntries(pair.map((n) => [n, pipelineRequests(auditLog(n)).slice(from[n]).map((e) => e.verb)]));
    const mark = (): Record<string, number> => Object.fromEntries(pair.map((n) => [n, pipelineRequests(auditLog(n)).length]));
    const prodBefore = pipelineRequestsOnProduction().length;
    await createRelease('r4', 'hold', 'demo4', '1.0.0', { batches: [1, '100%'], bakeTime: '1s', maxUnavailable: 3 });
    await until('both members mid-rollout', async () => {
      const st = stage(await statusOf('r4'), 'both');
      return st?.clusters.every((c) => c.state === 'Progressing' && (c.updated ?? 0) >= 1) === true;
    }, 60_000);

    // Pause, through the kubectl plugin.
    const beforePause = mark();
    const deadlineBefore = stage(await statusOf('r4'), 'both')?.deadline as string;
    const pause = await kk(['release', 'pause', 'r4', '--by', 'bob', '--reason', 'checking alerts']);
    assert.equal(pause.code, 0, pause.stderr);
    assert.match(pause.stdout, /release\/r4 paused/);
    await until('r4 paused in both members', async () => {
      const s = await statusOf('r4');
      return s.phase === 'Paused' && stage(s, 'both')?.clusters.every((c) => c.memberPaused === true) === true;
    }, 60_000);
    const paused = await statusOf('r4');
    assert.equal(paused.hold?.state, 'Pause');
    assert.equal(paused.hold?.by, 'bob');
    assert.equal(paused.hold?.reason, 'checking alerts');
    assert.ok(paused.hold?.since !== undefined);
    for (const n of pair) assert.equal((await memberSet(n, 'demo4'))?.spec.paused, true, `${n}'s set carries spec.paused`);
    const shownPaused = await kk(['release', 'status', 'r4']);
    assert.equal(shownPaused.code, 6, `exit 6 while paused: ${shownPaused.stdout}${shownPaused.stderr}`);
    assert.match(shownPaused.stdout, /through hold: Paused/);
    assert.match(shownPaused.stdout, /paused since \S+ by bob — checking alerts/);
    assert.match(shownPaused.stdout, /cluster test: Progressing \(paused in the cluster\)/);
    await until('the member rollouts stand still', async () => (await memberSet('test', 'demo4'))?.status?.phase === 'Paused' && (await memberSet('staging', 'demo4'))?.status?.phase === 'Paused', 60_000);
    // The pause itself is one write per member; then nothing is written while paused.
    const writesAtPause = sent(beforePause);
    for (const n of pair) assert.deepEqual(writesAtPause[n]?.filter((v) => WRITES.has(v)), ['patch'], `${n}: the pause is one apply (${writesAtPause[n]?.join(', ')})`);
    const whilePaused = mark();
    // kill -9 while paused: the new process reads the pause from status and writes nothing either.
    pipelineController?.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    pipelineController = startPipelineController();
    await new Promise((r) => setTimeout(r, 6000));
    for (const n of pair) assert.deepEqual(sent(whilePaused)[n]?.filter((v) => WRITES.has(v)), [], `${n}: no write while paused, across a restart`);
    assert.equal((await statusOf('r4')).hold?.since, paused.hold?.since, 'the restart kept the pause');
    assert.equal(stage(await statusOf('r4'), 'both')?.state, 'Running', 'the stage is neither failed nor promoted while paused');

    // Resume: the pause is lifted in each member, the deadline moves on by the time paused.
    const resume = await cli(['release', 'resume', 'r4', '--by', 'bob']);
    assert.equal(resume.code, 0, resume.out);
    await until('r4 resumed', async () => {
      const s = await statusOf('r4');
      return s.phase === 'Progressing' && stage(s, 'both')?.clusters.every((c) => c.memberPaused === undefined) === true;
    }, 60_000);
    const resumed = await statusOf('r4');
    assert.equal(resumed.hold, undefined);
    assert.ok(Date.parse(stage(resumed, 'both')?.deadline as string) - Date.parse(deadlineBefore) >= 5000, `deadline ${deadlineBefore} moved on by the pause: ${stage(resumed, 'both')?.deadline}`);
    for (const n of pair) assert.notEqual((await memberSet(n, 'demo4'))?.spec.paused, true, `${n}: pause lifted`);

    // Stop before the members finish: paused for good, then no request at all reaches them.
    const beforeStop = mark();
    const stop = await cli(['release', 'stop', 'r4', '--by', 'carol', '--reason', 'error budget burnt']);
    assert.equal(stop.code, 0, stop.out);
    await until('r4 stopped with both members paused', async () => {
      const s = await statusOf('r4');
      return s.phase === 'Stopped' && stage(s, 'both')?.clusters.every((c) => c.memberPaused === true) === true;
    }, 60_000);
    const stopped = await statusOf('r4');
    assert.equal(stopped.hold?.state, 'Stop');
    assert.equal(stopped.hold?.by, 'carol');
    assert.equal(stopped.hold?.reason, 'error budget burnt');
    assert.equal(stage(stopped, 'both')?.state, 'Stopped');
    assert.equal(stage(stopped, 'last')?.state, 'Pending');
    assert.match(stopped.message, /stopped by carol: error budget burnt/);
    for (const n of pair) {
      const set = await memberSet(n, 'demo4');
      assert.equal(set?.spec.paused, true, `${n} paused`);
      assert.ok((set?.status?.updated ?? 0) < 3, `${n} did not finish: nothing rolled back, nothing more rolled out (${set?.status?.updated} updated)`);
      assert.deepEqual(sent(beforeStop)[n]?.filter((v) => WRITES.has(v)), ['patch'], `${n}: the stop is one apply`);
    }
    const afterStop = mark();
    await new Promise((r) => setTimeout(r, 5000));
    assert.deepEqual(sent(afterStop), { test: [], staging: [] }, 'a stopped release sends its members nothing');
    assert.equal(pipelineRequestsOnProduction().length, prodBefore, 'production never reached');
    const shownStopped = await kk(['release', 'status', 'r4']);
    assert.equal(shownStopped.code, 2, shownStopped.stdout);
    assert.match(shownStopped.stdout, /stopped since \S+ by carol — error budget burnt/);
    const again = await cli(['release', 'resume', 'r4']);
    assert.notEqual(again.code, 0, again.out);
    assert.match(again.out, /stopped, which is final: create a new Release/);
    const events = await must<{ items: { reason: string; involvedObject: { name: string } }[] }>(mgmt, 'GET', '/api/v1/namespaces/default/events');
    const reasons = new Set(events.items.filter((e) => e.involvedObject.name === 'r4').map((e) => e.reason));
    for (const r of ['Paused', 'ClusterPaused', 'Resumed', 'ClusterResumed', 'Stopped']) assert.ok(reasons.has(r), `Event ${r} (have ${[...reasons].join(', ')})`);

    // The next release of the set takes over, and its write lifts the stopped one's pause.
    await createRelease('r5', 'hold', 'demo4', '1.0.1', { batches: [1, '100%'], bakeTime: '1s', maxUnavailable: 3 });
    await until("r5's write lifts the pause in test", async () => {
      const set = await memberSet('test', 'demo4');
      return set?.spec.template.spec.version === '1.0.1' && set.spec.paused !== true;
    }, 60_000);
    await cli(['release', 'stop', 'r5']);
  });

  it("a member apiserver that ends watches every few seconds: the set's watch reconnects each time and the release finishes", async () => {
    await must(mgmt, 'POST', `${API}/releasepipelines`, {
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'ReleasePipeline',
      metadata: { name: 'bounce' },
      spec: { stages: [{ name: 'only', clusters: ['test'], rolloutOverride: { batches: [1, '100%'], bakeTime: '10s' } }] },
    });
    const from = pipelineRequests(auditLog('test')).length;
    await createRelease('r6', 'bounce', 'demo6', '1.0.0');
    await until('r6 succeeds', async () => (await statusOf('r6')).phase === 'Succeeded', 120_000);
    const watches = pipelineRequests(auditLog('test')).slice(from).filter((e) => e.verb === 'watch' && e.requestURI.includes('metadata.name%3Ddemo6'));
    assert.ok(watches.length >= 3, `the watch of the set was opened again after the apiserver ended it (${watches.length} watches)`);
    assert.equal((await memberSet('test', 'demo6'))?.status?.phase, 'Completed');
  });

  it('a member that stops answering for a while is Unknown, then, answering again, is Progressing and finishes', async () => {
    await must(mgmt, 'POST', `${API}/releasepipelines`, {
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'ReleasePipeline',
      metadata: { name: 'blip' },
      spec: { stages: [{ name: 'only', clusters: ['staging'], deadline: '10m', rolloutOverride: { batches: [1, '100%'], bakeTime: '3s' } }] },
    });
    await createRelease('r8', 'blip', 'demo8', '1.0.0');
    await until('staging progressing', async () => stage(await statusOf('r8'), 'only')?.clusters[0]?.state === 'Progressing', 60_000);
    const pid = member('staging').cluster.pid as number;
    process.kill(pid, 'SIGSTOP');
    try {
      await until('staging Unknown', async () => stage(await statusOf('r8'), 'only')?.clusters[0]?.state === 'Unknown', 30_000);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await until('r8 succeeds', async () => (await statusOf('r8')).phase === 'Succeeded', 120_000);
    assert.equal(stage(await statusOf('r8'), 'only')?.clusters[0]?.reachable, 'True');
    const events = await must<{ items: { reason: string; involvedObject: { name: string } }[] }>(mgmt, 'GET', '/api/v1/namespaces/default/events');
    const reasons = new Set(events.items.filter((e) => e.involvedObject.name === 'r8').map((e) => e.reason));
    for (const r of ['ClusterUnreachable', 'ClusterReachable', 'ClusterFinished']) assert.ok(reasons.has(r), `Event ${r} (have ${[...reasons].join(', ')})`);
  });

  it('a release stopped while a member does not answer pauses that member once it answers again', async () => {
    await must(mgmt, 'POST', `${API}/releasepipelines`, {
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'ReleasePipeline',
      metadata: { name: 'late-stop' },
      spec: { stages: [{ name: 'only', clusters: ['staging'], rolloutOverride: { batches: [1, '100%'], bakeTime: '30s' } }] },
    });
    await createRelease('r7', 'late-stop', 'demo7', '1.0.0');
    await until('staging progressing', async () => stage(await statusOf('r7'), 'only')?.clusters[0]?.state === 'Progressing', 60_000);
    const pid = member('staging').cluster.pid as number;
    process.kill(pid, 'SIGSTOP');
    try {
      const stop = await cli(['release', 'stop', 'r7', '--by', 'dave']);
      assert.equal(stop.code, 0, stop.out);
      await until('stopped, pause not delivered', async () => /pause not delivered yet/.test(stage(await statusOf('r7'), 'only')?.clusters[0]?.message ?? ''), 60_000);
      const s = await statusOf('r7');
      assert.equal(s.phase, 'Stopped');
      assert.equal(stage(s, 'only')?.clusters[0]?.memberPaused, undefined);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await until('paused once staging answers', async () => stage(await statusOf('r7'), 'only')?.clusters[0]?.memberPaused === true, 60_000);
    assert.equal((await memberSet('staging', 'demo7'))?.spec.paused, true);
  });

  it('a member apiserver stopped mid-release is Unknown, the stage waits, then fails past its deadline', async () => {
    await must(mgmt, 'POST', `${API}/releasepipelines`, {
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'ReleasePipeline',
      metadata: { name: 'edge' },
      spec: { stages: [{ name: 'edge', clusters: ['staging'], deadline: '15s', rolloutOverride: { bakeTime: '30s' } }] },
    });
    await createRelease('r3', 'edge', 'demo3', '1.0.0');
    await until('staging progressing', async () => stage(await statusOf('r3'), 'edge')?.clusters[0]?.state === 'Progressing', 60_000);
    const pid = member('staging').cluster.pid as number;
    process.kill(pid, 'SIGSTOP');
    try {
      await until('staging Unknown', async () => stage(await statusOf('r3'), 'edge')?.clusters[0]?.state === 'Unknown', 30_000);
      const unknown = await statusOf('r3');
      assert.equal(stage(unknown, 'edge')?.clusters[0]?.reachable, 'False');
      assert.equal(stage(unknown, 'edge')?.state, 'Running', 'the stage waits for an unreachable cluster');
      assert.equal(unknown.phase, 'Progressing');
      await until('r3 fails past the deadline', async () => (await statusOf('r3')).phase === 'Failed', 60_000);
      const failed = await statusOf('r3');
      const c = stage(failed, 'edge')?.clusters[0];
      assert.equal(c?.state, 'Failed');
      assert.match(c?.message ?? '', /stage deadline 15s passed: unreachable/);
      assert.ok(Date.parse(failed.endTime as string) >= Date.parse(stage(failed, 'edge')?.deadline as string), 'not before the deadline');
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  });
});
