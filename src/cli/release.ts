// `kubenode-agent release …` (also `kubectl kubenode release …`): what a person types about a
// Release going through a pipeline. status reads, approve writes the stage's ReleaseApproval (not
// the Release: RBAC may grant approving alone), pause, resume and stop set spec.state (Pause, Run,
// Stop) with who and why.
import { userInfo } from 'node:os';
import { Command } from 'commander';
import type { ReleaseStatus } from '../api/release.ts';
import { UsageError } from '../errors.ts';
import type { KubeClient } from '../kube/client.ts';
import { connectWithConfig } from './rollout.ts';

/** Exit codes of `release status`. */
export const RELEASE_EXIT = { succeeded: 0, failed: 1, stopped: 2, timeout: 3, approval: 4, progressing: 5, paused: 6 } as const;
type Outcome = keyof typeof RELEASE_EXIT;

const API = '/apis/kubenode.io/v1alpha1';

interface ReleaseView {
  metadata: { name: string; uid: string; generation?: number; resourceVersion?: string };
  spec: { pipeline: string; componentSet: string; state: string; template: { spec: { version: string } } };
  status?: ReleaseStatus;
}

interface ApprovalView {
  metadata: { name: string };
  spec: { release: string; releaseUID: string; stage: string; approved: boolean; approvedBy?: string };
}

interface CommonFlags { kubeconfig?: string }

const addCommon = (cmd: Command): Command => cmd.option('--kubeconfig <file>', "the management cluster's kubeconfig (default: $KUBECONFIG, else ~/.kube/config)");

async function getRelease(client: KubeClient, name: string): Promise<ReleaseView> {
  const { classifyKubeError } = await import('../kube/client.ts');
  try {
    return await client.get<ReleaseView>(`${API}/releases/${encodeURIComponent(name)}`);
  } catch (err) {
    if (classifyKubeError(err) === 'not-found') throw new UsageError(`release ${JSON.stringify(name)} not found`);
    throw err;
  }
}

/** The stage whose Approval task waits now, if any. */
function waitingApproval(s: ReleaseStatus | undefined): { stage: string; approval: string | undefined } | undefined {
  for (const st of s?.stages ?? []) {
    const task = st.tasks.find((t) => t.type === 'Approval' && t.state === 'Waiting');
    if (st.state === 'Waiting' && task !== undefined) return { stage: st.name, approval: task.approval };
  }
  return undefined;
}

function outcomeOf(r: ReleaseView): Outcome {
  const phase = r.status?.phase;
  if (phase === 'Succeeded') return 'succeeded';
  if (phase === 'Failed') return 'failed';
  if (phase === 'Stopped') return 'stopped';
  if (phase === 'Paused') return 'paused';
  return waitingApproval(r.status) === undefined ? 'progressing' : 'approval';
}

/** One line for the release, one per stage, one per cluster and task of the stages that started. */
export function describeRelease(r: ReleaseView): string {
  const s = r.status;
  const lines = [`release ${r.metadata.name}: ${r.spec.componentSet} ${r.spec.template.spec.version} through ${r.spec.pipeline}: ${s?.phase ?? 'Pending'}${s?.currentStage === undefined ? '' : ` (stage ${s.currentStage})`}${s?.message ? ` — ${s.message}` : ''}`];
  const hold = s?.hold;
  if (hold !== undefined) lines.push(`  ${hold.state === 'Pause' ? 'paused' : 'stopped'} since ${hold.since}${hold.by === undefined ? '' : ` by ${hold.by}`}${hold.reason === undefined ? '' : ` — ${hold.reason}`}`);
  for (const st of s?.stages ?? []) {
    const finished = st.clusters.filter((c) => c.state === 'Finished').length;
    lines.push(`  stage ${st.name}: ${st.state}, ${finished}/${st.clusters.length} finished, ${st.failed} failed${st.message === '' ? '' : ` — ${st.message}`}`);
    if (st.state === 'Pending') continue;
    for (const c of st.clusters) lines.push(`    cluster ${c.name}: ${c.state}${c.reachable === 'False' ? ' (unreachable)' : ''}${c.memberPaused === true ? ' (paused in the cluster)' : ''}${c.batch === undefined ? '' : `, batch ${c.batch}`}${c.message === '' ? '' : ` — ${c.message}`}`);
    for (const t of st.tasks) {
      const detail = t.type === 'TimedWait' ? (t.readyAt === undefined ? '' : ` until ${t.readyAt}`) : t.approvedBy !== undefined ? ` by ${t.approvedBy}` : t.approval === undefined ? '' : ` (ReleaseApproval ${t.approval})`;
      lines.push(`    ${t.type}: ${t.state}${detail}`);
    }
  }
  const waiting = waitingApproval(s);
  if (waiting !== undefined) lines.push(`approve with: release approve ${r.metadata.name} --stage ${waiting.stage}`);
  return lines.join('\n');
}

export function releaseCommand(exitWith: (code: number) => never): Command {
  const release = new Command('release').description('follow and steer Releases going through pipelines (in the management cluster)');

  addCommon(
    release
      .command('status <name>')
      .description(
        `print the release, its stages and clusters; exit ${RELEASE_EXIT.succeeded} succeeded, ${RELEASE_EXIT.failed} failed, ${RELEASE_EXIT.stopped} stopped, ${RELEASE_EXIT.approval} waiting for an approval, ${RELEASE_EXIT.paused} paused, ${RELEASE_EXIT.progressing} in progress, ${RELEASE_EXIT.timeout} on --timeout`,
      )
      .option('-w, --watch', 'keep following until it ends, is paused or waits for an approval')
      .option('--timeout <d>', 'with --watch: give up after this long (0: never)', '0'),
  ).action(async (name: string, flags: CommonFlags & { watch?: boolean; timeout: string }) => {
    const [{ decodeFlag }, { Duration }] = await Promise.all([import('../config/decode.ts'), import('../util/duration-schema.ts')]);
    const timeoutMs = decodeFlag('--timeout', Duration({ min: '0', max: '720h' }), flags.timeout);
    const { client } = await connectWithConfig(flags);
    const deadline = timeoutMs === 0 ? Number.POSITIVE_INFINITY : Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      const r = await getRelease(client, name);
      const text = describeRelease(r);
      if (text !== last) process.stdout.write(`${text}\n`);
      last = text;
      const outcome = outcomeOf(r);
      if (flags.watch !== true || outcome !== 'progressing') {
        client.close();
        exitWith(RELEASE_EXIT[outcome]);
      }
      if (Date.now() > deadline) {
        process.stderr.write(`timed out waiting for release ${name}\n`);
        client.close();
        exitWith(RELEASE_EXIT.timeout);
      }
      // A release moves in minutes to days: a poll every 2 s is cheaper than a watch to set up.
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  });

  addCommon(
    release
      .command('approve <name>')
      .description("approve a stage's Approval task by writing its ReleaseApproval; a later stage may be approved ahead")
      .option('--stage <stage>', 'the stage (default: the one waiting for approval now)')
      .option('--by <who>', 'who approves, for the record', userInfo().username)
      .option('--comment <text>', 'why, for the record'),
  ).action(async (name: string, flags: CommonFlags & { stage?: string; by: string; comment?: string }) => {
    const { client } = await connectWithConfig(flags);
    const [{ classifyKubeError }, { labelValueOf }, { approvalName: approvalNameOf }] = await Promise.all([import('../kube/client.ts'), import('../api/common.ts'), import('../api/release-approval.ts')]);
    const r = await getRelease(client, name);
    const waiting = waitingApproval(r.status);
    const stage = flags.stage ?? waiting?.stage;
    if (stage === undefined) throw new UsageError(`release ${name} waits for no approval now; name a later stage with --stage to approve it ahead`);
    const stages = r.status?.pipelineSnapshot?.stages;
    const def = stages?.find((s) => s.name === stage);
    if (stages !== undefined && def === undefined) throw new UsageError(`release ${name} has no stage ${JSON.stringify(stage)} (stages: ${stages.map((s) => s.name).join(', ')})`);
    if (def !== undefined && !def.afterStage.some((t) => t.type === 'Approval')) throw new UsageError(`stage ${stage} of release ${name} has no Approval task`);
    const approvalName = approvalNameOf(name, stage);
    const grant = { approved: true, approvedBy: flags.by, ...(flags.comment === undefined ? {} : { comment: flags.comment }) };
    let existing: ApprovalView | undefined;
    try {
      existing = await client.get<ApprovalView>(`${API}/releaseapprovals/${encodeURIComponent(approvalName)}`);
    } catch (err) {
      if (classifyKubeError(err) !== 'not-found') throw err;
    }
    if (existing !== undefined && existing.spec.releaseUID !== r.metadata.uid) throw new UsageError(`ReleaseApproval ${approvalName} belongs to an earlier release named ${name}; delete it first`);
    if (existing === undefined) {
      await client.request('POST', `${API}/releaseapprovals`, {
        body: {
          apiVersion: 'kubenode.io/v1alpha1',
          kind: 'ReleaseApproval',
          metadata: { name: approvalName, labels: { 'kubenode.io/release': labelValueOf(name) }, ownerReferences: [{ apiVersion: 'kubenode.io/v1alpha1', kind: 'Release', name, uid: r.metadata.uid }] },
          spec: { release: name, releaseUID: r.metadata.uid, stage, ...grant },
        },
      });
    } else {
      await client.patch(`${API}/releaseapprovals/${encodeURIComponent(approvalName)}`, { spec: grant }, 'merge');
    }
    process.stdout.write(`releaseapproval/${approvalName} approved by ${flags.by}${waiting?.stage === stage ? '' : ' (ahead of the stage)'}\n`);
    client.close();
  });

  const setState = (verb: string, state: 'Run' | 'Pause' | 'Stop', description: string, done: string): void => {
    addCommon(
      release
        .command(`${verb} <name>`)
        .description(description)
        .option('--by <who>', 'who, for the record (status.hold, Events)', userInfo().username)
        .option('--reason <text>', 'why, for the record'),
    ).action(async (name: string, flags: CommonFlags & { by: string; reason?: string }) => {
      const { client } = await connectWithConfig(flags);
      const r = await getRelease(client, name);
      const phase = r.status?.phase;
      if (phase === 'Succeeded' || phase === 'Failed') throw new UsageError(`release ${name} already ${phase.toLowerCase()}`);
      if (r.spec.state === 'Stop') throw new UsageError(`release ${name} is stopped, which is final: create a new Release`);
      if (state === 'Run' && r.spec.state === 'Run') throw new UsageError(`release ${name} is not paused`);
      // The precondition on resourceVersion: a state changed by someone else meanwhile is not overwritten unseen.
      const body = { metadata: { resourceVersion: r.metadata.resourceVersion }, spec: { state, stateBy: flags.by, stateReason: flags.reason ?? null } };
      await client.patch(`${API}/releases/${encodeURIComponent(name)}`, body, 'merge');
      process.stdout.write(`release/${name} ${done}\n`);
      client.close();
    });
  };
  setState('pause', 'Pause', 'set spec.state: Pause — no further cluster starts, rollouts in flight are paused in their clusters (spec.paused), stage deadlines stop counting; resume undoes it', 'paused: no further cluster starts; rollouts in flight are paused in their clusters');
  setState('resume', 'Run', 'set spec.state: Run after pause — the pause is lifted in the member clusters and the release goes on where it stood', 'resumed');
  setState('stop', 'Stop', 'set spec.state: Stop — like pause, but final: nothing is rolled back; a new Release of the set takes over (and lifts the pause as it writes each cluster)', 'stopped: no further cluster starts; rollouts in flight are paused in their clusters');

  for (const sub of release.commands) sub.exitOverride().configureOutput({ outputError: (text, write) => write(text) });
  return release;
}
