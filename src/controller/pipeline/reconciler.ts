// Release reconcile: one pass reads the Release, its pipeline, its approvals and the member
// Secrets from the informers' caches, reads the current stage's member sets from their watches
// (a member's health from its last answer, or /readyz when that is a probe interval old), and
// takes the next step. Every clock (stage start and deadline,
// when a stage finished, when a timed wait is over) and every cluster's state is in the Release's
// status, so a pass after a crash or failover goes on from where the last one wrote; writes into
// member clusters are server-side applies of the same object, so repeating one changes nothing.
//
// The rules (issue 13, central-anchors R3):
// - a cluster is finished only when its set observed the latest generation, reports the pinned
//   revision as both update and current revision, has completed, and its last observation
//   window (the last batch's bake time) has ended;
// - a stage is promoted only when every cluster is finished or failed, failures ≤ maxFailures,
//   and its after-stage tasks are done; the next stage starts in the same pass;
// - an unreachable cluster is Unknown (not finished, not failed) until the stage deadline, then
//   failed; one failure past the tolerance fails the release before the next stage, and nothing
//   is rolled back anywhere (a rollback is a new Release of the old template);
// - one active release per component set: a later one waits in Pending;
// - Pause and Stop start no further cluster and put spec.paused (this controller's field manager)
//   into the member sets whose rollout is in flight: in-flight installs finish, no new batch
//   starts, nothing is rolled back — the member controller's own pause. Pause is undone by Run
//   (the pause lifted, stage deadlines moved on by the time paused); Stop is final, and the
//   next release's write of the set lifts the pause, since it does not carry the field.
import { labelValueOf, type Condition, type LabelSelector } from '../../api/common.ts';
import { RELEASE_LABEL, RELEASE_ANNOTATION, type PipelineStage, type ReleasePipelineSpec, type RolloutOverride } from '../../api/release-pipeline.ts';
import type { ClusterStatus, ReleasePhase, ReleaseSpec, ReleaseStatus, StageStatus } from '../../api/release.ts';
import { approvalName, type ReleaseApprovalSpec } from '../../api/release-approval.ts';
import { AgentError, errorMessage } from '../../errors.ts';
import type { Clock } from '../../host/clock.ts';
import { classifyKubeError, type KubeClient } from '../../kube/client.ts';
import type { Logger } from '../../log.ts';
import { durationMs } from '../../util/duration.ts';
import type { Informer, KubeObject } from '../../watch/informer.ts';
import type { EventRecorder } from '../events.ts';
import { matchesSelector, resolveIntOrPercent, templateHash } from '../rollout/plan.ts';
import { MemberConfigError, type MemberClusters, type MemberSet } from './members.ts';

const API = '/apis/kubenode.io/v1alpha1';
const MCS_PATH = `${API}/machinecomponentsets`;
export const FIELD_MANAGER = 'kubenode-pipeline';
/** How often a release waiting for another one, a missing pipeline or a missing Secret looks again (their events also wake it). */
const BLOCKED_RECHECK_MS = 30_000;
const LAST_SEEN_STEP_MS = 60_000;

export interface ReleaseObject extends KubeObject {
  metadata: KubeObject['metadata'] & { uid: string; creationTimestamp?: string; deletionTimestamp?: string };
  spec: ReleaseSpec;
  status?: ReleaseStatus;
}
export interface PipelineObject extends KubeObject {
  metadata: KubeObject['metadata'] & { uid: string };
  spec: ReleasePipelineSpec;
}
export interface ApprovalObject extends KubeObject {
  spec: ReleaseApprovalSpec;
}

export interface PipelineCaches {
  releases: Informer<ReleaseObject>;
  pipelines: Informer<PipelineObject>;
  approvals: Informer<ApprovalObject>;
}

export interface ReleaseReconcilerOptions {
  client: KubeClient;
  caches: PipelineCaches;
  members: MemberClusters;
  events: EventRecorder;
  clock: Clock;
  log: Logger;
  mayWrite: () => boolean;
}

class NotLeaderError extends AgentError {
  constructor() {
    super('KUBE', 'not the leader: no writes');
  }
}

const TERMINAL: readonly ReleasePhase[] = ['Succeeded', 'Failed', 'Stopped'];
const iso = (ms: number): string => new Date(ms).toISOString();
const ms = (t: string | undefined): number => (t === undefined ? Number.NaN : Date.parse(t));

export function isActive(r: ReleaseObject): boolean {
  return r.metadata.deletionTimestamp === undefined && !TERMINAL.includes(r.status?.phase ?? 'Pending') && r.spec.state !== 'Stop';
}

/** The release's rollout with the stage's override on top: what the member set's spec.rollout gets. */
export function stageRollout(base: RolloutOverride, override: RolloutOverride | undefined): RolloutOverride {
  return { ...base, ...(override ?? {}) };
}

/** A stage's clusters in update order: the list as written, or the selected Secrets by sortingLabelKey then name. */
export function stageClusters(stage: PipelineStage, members: ReadonlyMap<string, { labels: Readonly<Record<string, string>> }>): string[] {
  if (stage.clusters !== undefined) return [...stage.clusters];
  const selector = stage.clusterSelector as LabelSelector;
  const key = stage.sortingLabelKey;
  const order = (labels: Readonly<Record<string, string>>): number => {
    const raw = key === undefined ? undefined : labels[key];
    return raw !== undefined && /^-?\d+$/.test(raw) ? Number(raw) : Number.POSITIVE_INFINITY;
  };
  return [...members]
    .filter(([, m]) => matchesSelector(selector, m.labels))
    .sort(([a, ma], [b, mb]) => order(ma.labels) - order(mb.labels) || (a < b ? -1 : a > b ? 1 : 0))
    .map(([name]) => name);
}

export class ReleaseReconciler {
  readonly #o: ReleaseReconcilerOptions;
  /** A status we wrote, used instead of the cache until the cache moves past the version it was written on. */
  readonly #written = new Map<string, { fromRv: string | undefined; obj: ReleaseObject }>();

  constructor(options: ReleaseReconcilerOptions) {
    this.#o = options;
  }

  /** Active releases on this pipeline, or all of them (a member Secret changed). */
  releasesOn(pipeline: string | undefined): string[] {
    return [...this.#o.caches.releases.snapshot().values()].filter((r) => isActive(r) && (pipeline === undefined || r.spec.pipeline === pipeline)).map((r) => r.metadata.name);
  }

  /** Releases of this component set that may wait for the one that changed. */
  releasesOfSet(componentSet: string): string[] {
    return [...this.#o.caches.releases.snapshot().values()].filter((r) => isActive(r) && r.spec.componentSet === componentSet).map((r) => r.metadata.name);
  }

  async reconcile(name: string): Promise<number | undefined> {
    let current = this.#o.caches.releases.get(name);
    const w = this.#written.get(name);
    if (w !== undefined) {
      if (current !== undefined && current.metadata.resourceVersion === w.fromRv) current = w.obj;
      else this.#written.delete(name);
    }
    if (current === undefined || current.metadata.deletionTimestamp !== undefined) {
      this.#o.members.want(name, []);
      return undefined;
    }
    const pass = new Pass(this.#o, structuredClone(current), (obj) => this.#written.set(name, { fromRv: current.metadata.resourceVersion, obj }));
    return pass.run();
  }
}

class Pass {
  readonly #o: ReleaseReconcilerOptions;
  readonly #r: ReleaseObject;
  readonly #before: string;
  readonly #onWritten: (obj: ReleaseObject) => void;
  readonly status: ReleaseStatus;
  #now: number;
  #wake = Number.POSITIVE_INFINITY;

  constructor(options: ReleaseReconcilerOptions, release: ReleaseObject, onWritten: (obj: ReleaseObject) => void) {
    this.#o = options;
    this.#r = release;
    this.#onWritten = onWritten;
    this.#before = JSON.stringify(release.status ?? null);
    this.status = release.status ?? { phase: 'Pending', stages: [], unassignedClusters: [], message: '', conditions: [] };
    this.status.stages ??= [];
    this.status.conditions ??= [];
    this.status.unassignedClusters ??= [];
    this.#now = options.clock.now();
  }

  #event(type: 'Normal' | 'Warning', reason: string, message: string, key: string): void {
    const m = this.#r.metadata;
    this.#o.events.record({ name: m.name, uid: m.uid, apiVersion: 'kubenode.io/v1alpha1', kind: 'Release' }, type, reason, message, key);
  }

  #condition(type: string, status: 'True' | 'False' | 'Unknown', reason: string, message: string): void {
    const list = this.status.conditions as Condition[];
    const old = list.find((c) => c.type === type);
    const c: Condition = { type, status, reason, message, observedGeneration: this.#r.metadata.generation ?? 0, lastTransitionTime: old?.status === status ? old.lastTransitionTime : iso(this.#now) };
    if (old === undefined) list.push(c);
    else Object.assign(old, c);
  }

  #after(at: number): void {
    if (Number.isFinite(at)) this.#wake = Math.min(this.#wake, at);
  }

  async run(): Promise<number | undefined> {
    const status = this.status;
    const state = this.#r.spec.state;
    status.observedGeneration = this.#r.metadata.generation ?? 0;
    if (TERMINAL.includes(status.phase) && status.phase !== 'Stopped') {
      this.#o.members.want(this.#r.metadata.name, []);
      return undefined;
    }
    const retry = status.phase === 'Stopped';
    if (!retry) {
      if (state === 'Stop') this.#stop();
      else if (state === 'Pause') await this.#pause();
      else {
        if (status.hold !== undefined) this.#resume();
        if (status.pipelineSnapshot === undefined && !(await this.#start())) this.#after(this.#now + BLOCKED_RECHECK_MS);
        if (status.pipelineSnapshot !== undefined && !TERMINAL.includes(status.phase)) await this.#progress();
      }
    }
    // A stopped release keeps trying to pause the members it could not reach when it stopped.
    if (state !== 'Run') await this.#pauseMembers(retry);
    await this.#write();
    this.#o.members.want(this.#r.metadata.name, this.#followed());
    return Number.isFinite(this.#wake) ? Math.max(0, this.#wake - this.#o.clock.now()) : undefined;
  }

  /** The member sets this release reads while it runs or is paused: its started, unfinished clusters. */
  #followed(): [string, string][] {
    if (TERMINAL.includes(this.status.phase)) return [];
    const set = this.#r.spec.componentSet;
    return this.status.stages.flatMap((st) => st.clusters.filter((c) => c.state === 'Progressing' || c.state === 'Unknown').map((c): [string, string] => [c.name, set]));
  }

  /** "by alice: reason", for messages and events. */
  #who(): string {
    const { stateBy, stateReason } = this.#r.spec;
    return `${stateBy === undefined ? '' : ` by ${stateBy}`}${stateReason === undefined ? '' : `: ${stateReason}`}`;
  }

  #hold(state: 'Pause' | 'Stop'): void {
    const { stateBy, stateReason } = this.#r.spec;
    this.status.hold = { state, ...(stateBy === undefined ? {} : { by: stateBy }), ...(stateReason === undefined ? {} : { reason: stateReason }), since: this.status.hold?.since ?? iso(this.#now) };
  }

  #stop(): void {
    const status = this.status;
    this.#hold('Stop');
    for (const s of status.stages) {
      if (s.state === 'Running' || s.state === 'Waiting') {
        s.state = 'Stopped';
        s.endTime = iso(this.#now);
        s.message = 'release stopped: no further cluster starts; sets in flight are paused in their clusters, nothing is rolled back';
      }
    }
    this.#finish('Stopped', 'Stopped', `stopped${this.#who()}: no further cluster starts; rollouts in flight are paused in their clusters (spec.paused), nothing is rolled back`);
    this.#event('Normal', 'Stopped', `release stopped${this.#who()}`, 'stopped');
  }

  async #pause(): Promise<void> {
    const status = this.status;
    if (status.hold?.state !== 'Pause') {
      this.#hold('Pause');
      this.#event('Normal', 'Paused', `release paused${this.#who()}`, `paused/${status.hold?.since ?? ''}`);
    }
    status.phase = 'Paused';
    status.message = `paused${this.#who()}: no cluster starts, rollouts in flight are paused in their clusters (spec.paused) and stage deadlines do not count; resume with: release resume ${this.#r.metadata.name}`;
    this.#condition('Progressing', 'False', 'Paused', status.message);
    // While paused the members' in-flight batches still finish: show them from the watches, without asking.
    const set = this.#r.spec.componentSet;
    await Promise.all(
      status.stages.flatMap((st) =>
        st.clusters
          .filter((c) => c.state === 'Progressing' || c.state === 'Unknown')
          .map(async (c) => {
            const view = await this.#o.members.watchedSet(c.name, set).catch(() => undefined);
            if (view?.synced === true && view.set !== undefined) this.#read(c, view.set);
          }),
      ),
    );
  }

  /** Run after Pause: stage deadlines move on by the time paused; the members' pause is lifted as each is next looked at. */
  #resume(): void {
    const status = this.status;
    const hold = status.hold as NonNullable<ReleaseStatus['hold']>;
    const paused = Math.max(0, this.#now - ms(hold.since));
    for (const st of status.stages) if (st.state === 'Running' && st.deadline !== undefined) st.deadline = iso(ms(st.deadline) + paused);
    delete status.hold;
    const current = status.stages.find((st) => st.state !== 'Succeeded');
    status.phase = status.pipelineSnapshot === undefined ? 'Pending' : current?.state === 'Waiting' ? 'Waiting' : 'Progressing';
    status.message = '';
    this.#condition('Progressing', 'True', 'Resumed', `resumed${this.#who()} after ${Math.round(paused / 1000)} s paused`);
    this.#event('Normal', 'Resumed', `release resumed${this.#who()} after ${Math.round(paused / 1000)} s paused`, `resumed/${hold.since}`);
  }

  /** A later release of the same set has started: the member sets are its now. */
  #superseded(): boolean {
    const mine = this.#r;
    const started = this.status.startTime ?? '';
    return [...this.#o.caches.releases.snapshot().values()].some((r) => r.metadata.name !== mine.metadata.name && r.spec.componentSet === mine.spec.componentSet && (r.status?.startTime ?? '') > started);
  }

  /**
   * Puts spec.paused into every member set this release has in flight and has not paused yet.
   * A stopped release retrying a member it could not reach pauses the set only while it is still
   * its own: a later release may have written it since (or it is gone), and that is left alone.
   */
  async #pauseMembers(retry: boolean): Promise<void> {
    const snapshot = this.status.pipelineSnapshot;
    // A release stopped by a controller from before pauses existed left its members running.
    if (snapshot === undefined || this.status.hold === undefined) return;
    if (retry && this.#superseded()) return;
    const name = this.#r.spec.componentSet;
    await Promise.all(
      this.status.stages.flatMap((st, i) =>
        st.clusters
          .filter((c) => (c.state === 'Progressing' || c.state === 'Unknown') && c.memberPaused === undefined)
          .map(async (c) => {
            try {
              if (retry) {
                const current = await this.#o.members.call(c.name, (client) => client.get<MemberSet>(`${MCS_PATH}/${encodeURIComponent(name)}`)).catch((err: unknown) => {
                  if (classifyKubeError(err) === 'not-found') return undefined;
                  throw err;
                });
                const owner = current?.metadata.annotations?.[RELEASE_ANNOTATION];
                if (owner !== this.#r.metadata.name) {
                  c.memberPaused = false;
                  c.message = current === undefined ? `${name} is gone from the cluster: nothing to pause` : `${name} was written by release ${owner ?? '(none)'} since: left alone`;
                  return;
                }
              }
              this.#read(c, await this.#applySet(c, snapshot.stages[i] as PipelineStage, true));
              c.memberPaused = true;
              c.message = `paused in the cluster (spec.paused): in-flight installs finish, no new batch starts; ${c.updated ?? 0}/${c.matched ?? 0} updated`;
              this.#event('Normal', 'ClusterPaused', `stage ${st.name}, cluster ${c.name}: ${this.#r.spec.componentSet} paused`, `cluster-paused/${st.name}/${c.name}/${this.status.hold?.since ?? ''}`);
            } catch (err) {
              if (err instanceof NotLeaderError) throw err;
              const health = this.#o.members.health(c.name);
              c.reachable = health.reachable;
              c.message = `pause not delivered yet: ${errorMessage(err)}`;
              this.#after(this.#o.members.nextProbe(c.name));
            }
          }),
      ),
    );
  }

  #finish(phase: ReleasePhase, reason: string, message: string): void {
    const status = this.status;
    status.phase = phase;
    status.message = message;
    status.endTime = iso(this.#now);
    delete status.currentStage;
    this.#condition('Progressing', 'False', reason, message);
    this.#condition('Succeeded', phase === 'Succeeded' ? 'True' : 'False', reason, message);
  }

  #pending(reason: string, message: string): false {
    this.status.phase = 'Pending';
    this.status.message = message;
    this.#condition('Initialized', 'False', reason, message);
    return false;
  }

  /** Freezes the pipeline's stages into status; false while something keeps the release from starting. */
  async #start(): Promise<boolean> {
    const spec = this.#r.spec;
    const mine = this.#r;
    const rank = (r: ReleaseObject): [boolean, string, string] => [r.status?.pipelineSnapshot === undefined, r.metadata.creationTimestamp ?? '', r.metadata.name];
    const before = (a: ReleaseObject, b: ReleaseObject): boolean => {
      const [x, y] = [rank(a), rank(b)];
      return x[0] !== y[0] ? !x[0] : x[1] !== y[1] ? x[1] < y[1] : x[2] < y[2];
    };
    const blocker = [...this.#o.caches.releases.snapshot().values()].find((r) => r.metadata.name !== mine.metadata.name && r.spec.componentSet === spec.componentSet && isActive(r) && before(r, mine));
    if (blocker !== undefined) return this.#pending('AnotherReleaseActive', `release ${blocker.metadata.name} is active on component set ${spec.componentSet}; this one starts when it ends`);
    const pipeline = this.#o.caches.pipelines.get(spec.pipeline);
    if (pipeline === undefined) return this.#pending('PipelineNotFound', `ReleasePipeline ${spec.pipeline} does not exist`);
    const members = this.#o.members.list();
    const owner = new Map<string, string>();
    const resolved: { stage: PipelineStage; clusters: string[] }[] = [];
    for (const stage of pipeline.spec.stages) {
      const clusters = stageClusters(stage, members);
      if (clusters.length === 0) return this.#pending('StageEmpty', `stage ${stage.name} selects no member cluster`);
      for (const c of clusters) {
        const other = owner.get(c);
        if (other !== undefined) return this.#pending('ClusterInTwoStages', `cluster ${c} is in stages ${other} and ${stage.name}; a cluster may be in one stage only`);
        owner.set(c, stage.name);
        if (!members.has(c)) return this.#pending('ClusterNotFound', `stage ${stage.name}: no Secret labelled kubenode.io/member-cluster=${c}`);
      }
      resolved.push({ stage, clusters });
    }
    const status = this.status;
    status.pipelineSnapshot = { generation: pipeline.metadata.generation ?? 0, stages: structuredClone(pipeline.spec.stages) };
    status.stages = resolved.map(({ stage, clusters }) => ({
      name: stage.name,
      state: 'Pending',
      failed: 0,
      clusters: clusters.map((c) => ({ name: c, state: 'Pending', reachable: 'Unknown', message: '' })),
      tasks: stage.afterStage.map((t) => ({ type: t.type, state: 'Pending' })),
      message: '',
    }));
    status.unassignedClusters = [...members.keys()].filter((c) => !owner.has(c)).sort().slice(0, 200);
    status.startTime = iso(this.#now);
    status.version = spec.template.spec.version;
    status.phase = 'Progressing';
    status.message = '';
    this.#condition('Initialized', 'True', 'Started', `pipeline ${spec.pipeline} generation ${status.pipelineSnapshot.generation}: ${resolved.map((r) => `${r.stage.name} (${r.clusters.length})`).join(' → ')}`);
    this.#condition('Progressing', 'True', 'Started', '');
    this.#event('Normal', 'Started', `${spec.componentSet} ${spec.template.spec.version} through ${spec.pipeline}: ${resolved.map((r) => r.stage.name).join(' → ')}`, 'started');
    if (status.unassignedClusters.length > 0) this.#event('Warning', 'UnassignedClusters', `member clusters in no stage, not updated: ${status.unassignedClusters.join(', ')}`, 'unassigned');
    if (this.#o.mayWrite()) {
      await this.#o.client
        .patch(`${API}/releasepipelines/${encodeURIComponent(spec.pipeline)}/status`, { status: { lastRelease: mine.metadata.name, lastReleaseTime: status.startTime } }, 'merge')
        .catch((err: unknown) => this.#o.log.warn({ pipeline: spec.pipeline, err: errorMessage(err) }, 'Could not note the release on its pipeline'));
    }
    return true;
  }

  async #progress(): Promise<void> {
    const status = this.status;
    const snapshot = status.pipelineSnapshot as NonNullable<ReleaseStatus['pipelineSnapshot']>;
    for (let i = 0; i < status.stages.length; i++) {
      const st = status.stages[i] as StageStatus;
      const def = snapshot.stages[i] as PipelineStage;
      if (st.state === 'Succeeded') continue;
      status.currentStage = st.name;
      if (st.state === 'Pending') {
        st.state = 'Running';
        st.startTime = iso(this.#now);
        st.deadline = iso(this.#now + durationMs(def.deadline));
        status.phase = 'Progressing';
        this.#event('Normal', 'StageStarted', `stage ${st.name}: ${st.clusters.map((c) => c.name).join(', ')}`, `stage/${st.name}`);
      }
      if (st.state === 'Running') await this.#runStage(st, def);
      if (st.state === 'Failed') {
        this.#finish('Failed', 'StageFailed', `stage ${st.name} failed: ${st.message}`);
        this.#event('Warning', 'ReleaseFailed', `stage ${st.name}: ${st.message}; later stages are not started and nothing is rolled back`, 'failed');
        return;
      }
      if (st.state === 'Waiting') await this.#tasks(st);
      // #runStage and #tasks move the state on; TypeScript's narrowing cannot see that.
      if ((st.state as StageStatus['state']) !== 'Succeeded') return;
      const next = status.stages[i + 1];
      this.#event('Normal', 'StagePromoted', next === undefined ? `stage ${st.name} succeeded` : `stage ${st.name} succeeded; promoting to ${next.name}`, `promoted/${st.name}`);
    }
    this.#finish('Succeeded', 'Succeeded', `every stage succeeded: ${status.stages.map((s) => s.name).join(' → ')}`);
    this.#event('Normal', 'ReleaseSucceeded', `${this.#r.spec.componentSet} ${this.#r.spec.template.spec.version} in every stage`, 'succeeded');
  }

  async #runStage(st: StageStatus, def: PipelineStage): Promise<void> {
    const deadline = ms(st.deadline);
    const past = this.#now >= deadline;
    this.#after(deadline);
    // Clusters already started are looked at in parallel: one slow member must not delay the others.
    await Promise.all(st.clusters.filter((c) => c.state === 'Progressing' || c.state === 'Unknown').map((c) => this.#observe(st, c, def)));
    for (const c of st.clusters) {
      if (past && (c.state === 'Progressing' || c.state === 'Unknown' || c.state === 'Pending')) {
        const why = c.state === 'Unknown' ? `unreachable (${c.message})` : c.state === 'Pending' ? 'never started' : `not finished (${c.message})`;
        this.#clusterFailed(st, c, `stage deadline ${def.deadline} passed: ${why}`);
      }
    }
    const failed = st.clusters.filter((c) => c.state === 'Failed').length;
    st.failed = failed;
    if (failed > def.maxFailures) {
      st.state = 'Failed';
      st.endTime = iso(this.#now);
      st.message = `${failed} cluster(s) failed (tolerance ${def.maxFailures}): ${st.clusters.filter((c) => c.state === 'Failed').map((c) => `${c.name}: ${c.message}`).join('; ')}`;
      return;
    }
    const limit = Math.max(1, resolveIntOrPercent(def.maxConcurrency, st.clusters.length));
    let inFlight = st.clusters.filter((c) => c.state === 'Progressing' || c.state === 'Unknown').length;
    for (const c of st.clusters) {
      if (inFlight >= limit) break;
      if (c.state !== 'Pending') continue;
      if (await this.#apply(st, c, def)) inFlight += 1;
      else if (c.state === 'Pending') break;
    }
    if (st.clusters.every((c) => c.state === 'Finished' || c.state === 'Failed')) {
      st.finishedTime = iso(this.#now);
      st.message = failed > 0 ? `${failed} cluster(s) failed, within the tolerance of ${def.maxFailures}` : 'every cluster finished';
      if (st.tasks.length === 0) {
        st.state = 'Succeeded';
        st.endTime = iso(this.#now);
      } else {
        st.state = 'Waiting';
        this.status.phase = 'Waiting';
      }
    } else {
      const counts = (s: ClusterStatus['state']): number => st.clusters.filter((c) => c.state === s).length;
      st.message = `${counts('Finished')}/${st.clusters.length} finished, ${counts('Progressing')} progressing, ${counts('Unknown')} unreachable, ${failed} failed`;
    }
  }

  #clusterFailed(st: StageStatus, c: ClusterStatus, message: string): void {
    c.state = 'Failed';
    c.endTime = iso(this.#now);
    c.message = message;
    this.#event('Warning', 'ClusterFailed', `stage ${st.name}, cluster ${c.name}: ${message}`, `cluster-failed/${st.name}/${c.name}`);
  }

  /**
   * The member set as this stage wants it in the cluster, applied with one field manager: a
   * human's spec.paused stays theirs, and ours goes when a later apply leaves it out.
   */
  #desired(def: PipelineStage, paused: boolean): Record<string, unknown> {
    const spec = this.#r.spec;
    return {
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'MachineComponentSet',
      metadata: { name: spec.componentSet, annotations: { [RELEASE_ANNOTATION]: this.#r.metadata.name } },
      spec: { selector: spec.selector, template: spec.template, rollout: stageRollout(spec.rollout, def.rolloutOverride), ...(paused ? { paused: true } : {}) },
    };
  }

  async #applySet(c: ClusterStatus, def: PipelineStage, paused: boolean): Promise<MemberSet> {
    if (!this.#o.mayWrite()) throw new NotLeaderError();
    const name = this.#r.spec.componentSet;
    // A set whose rollout is to be followed is watched from before the write, so no change after it is missed.
    if (!paused) await this.#o.members.watchedSet(c.name, name);
    const path = `${MCS_PATH}/${encodeURIComponent(name)}`;
    const set = await this.#o.members.call(c.name, (client) => client.patch<MemberSet>(path, this.#desired(def, paused), 'apply', { query: { fieldManager: FIELD_MANAGER, force: 'true' } }));
    this.#o.members.wrote(c.name, set);
    return set;
  }

  /** Starts a cluster: false when it could not be (unreachable, a bad Secret, the apiserver refused). */
  async #apply(st: StageStatus, c: ClusterStatus, def: PipelineStage): Promise<boolean> {
    try {
      const set = await this.#applySet(c, def, false);
      c.state = 'Progressing';
      c.startTime = iso(this.#now);
      c.reachable = 'True';
      c.lastSeen = iso(this.#now);
      c.revision = `${this.#r.spec.componentSet}-${templateHash(set.spec.template)}`;
      c.message = 'set written; waiting for its rollout';
      this.#read(c, set);
      this.#event('Normal', 'ClusterStarted', `stage ${st.name}: ${this.#r.spec.componentSet} written into ${c.name} (revision ${c.revision})`, `cluster/${st.name}/${c.name}`);
      return true;
    } catch (err) {
      if (err instanceof NotLeaderError) throw err;
      this.#unreachableOrRefused(st, c, err);
      this.#after(this.#o.members.nextProbe(c.name));
      return false;
    }
  }

  #unreachableOrRefused(st: StageStatus, c: ClusterStatus, err: unknown): void {
    const health = this.#o.members.health(c.name);
    if (err instanceof MemberConfigError) {
      c.reachable = 'Unknown';
      c.message = err.message;
    } else if (health.reachable === 'False') {
      c.reachable = 'False';
      if (health.lastSeen !== undefined) c.lastSeen = iso(health.lastSeen);
      c.message = `unreachable: ${health.message}`;
      if (c.state !== 'Pending') {
        if (c.state !== 'Unknown') this.#event('Warning', 'ClusterUnreachable', `stage ${st.name}, cluster ${c.name}: ${health.message}`, `unreachable/${st.name}/${c.name}/${c.lastSeen ?? ''}`);
        c.state = 'Unknown';
      }
    } else {
      c.reachable = 'True';
      c.message = `the cluster refused ${this.#r.spec.componentSet}: ${errorMessage(err)}`;
      const kind = classifyKubeError(err);
      // A refusal that no retry fixes (the member lacks the CRD, RBAC forbids, the object is invalid there) fails the cluster now.
      if (kind === 'invalid' || kind === 'forbidden' || kind === 'unauthorized' || kind === 'not-found') this.#clusterFailed(st, c, c.message);
    }
  }

  async #observe(st: StageStatus, c: ClusterStatus, def: PipelineStage): Promise<void> {
    const name = this.#r.spec.componentSet;
    try {
      await this.#o.members.check(c.name);
      const view = await this.#o.members.watchedSet(c.name, name);
      // Its first list wakes this release again.
      if (!view.synced) {
        c.message = `waiting for the watch of ${name} in ${c.name} to list`;
        return;
      }
      let set = view.set;
      const revision = set === undefined ? undefined : `${name}-${templateHash(set.spec.template)}`;
      // Deleted or edited in the member since it was written, or still carrying a lifted pause: write it again (the pin wins).
      if (set === undefined || revision !== c.revision || set.metadata.annotations?.[RELEASE_ANNOTATION] !== this.#r.metadata.name || c.memberPaused === true) {
        set = await this.#applySet(c, def, false);
        c.revision = `${name}-${templateHash(set.spec.template)}`;
        if (c.memberPaused === true) this.#event('Normal', 'ClusterResumed', `stage ${st.name}, cluster ${c.name}: ${name} no longer paused`, `cluster-resumed/${st.name}/${c.name}/${c.lastSeen ?? ''}`);
        delete c.memberPaused;
      }
      if (c.state === 'Unknown') this.#event('Normal', 'ClusterReachable', `stage ${st.name}, cluster ${c.name} answers again`, `reachable/${st.name}/${c.name}/${c.lastSeen ?? ''}`);
      // Kept to the minute while it keeps answering: a probe every few seconds must not rewrite the status each time.
      if (c.state === 'Unknown' || c.lastSeen === undefined || this.#now - ms(c.lastSeen) >= LAST_SEEN_STEP_MS) c.lastSeen = iso(this.#now);
      c.state = 'Progressing';
      c.reachable = 'True';
      this.#read(c, set);
      this.#judge(st, c, set);
    } catch (err) {
      if (err instanceof NotLeaderError) throw err;
      this.#unreachableOrRefused(st, c, err);
    } finally {
      if (c.state === 'Progressing' || c.state === 'Unknown') this.#after(this.#o.members.nextProbe(c.name));
    }
  }

  #read(c: ClusterStatus, set: MemberSet): void {
    const s = set.status ?? {};
    c.generation = set.metadata.generation ?? 0;
    if (s.observedGeneration !== undefined) c.observedGeneration = s.observedGeneration;
    if (s.phase !== undefined) c.phase = s.phase;
    c.updated = s.updated ?? 0;
    c.matched = s.matched ?? 0;
    c.batch = `${(s.currentBatch ?? 0) + 1}/${Math.max(s.batches?.length ?? 0, 1)}, ${c.updated}/${c.matched} updated`;
  }

  #judge(st: StageStatus, c: ClusterStatus, set: MemberSet): void {
    const s = set.status ?? {};
    const observed = s.observedGeneration === set.metadata.generation;
    if (observed && s.failure !== undefined && s.failure.revision === c.revision) {
      this.#clusterFailed(st, c, `rollout failed in batch ${s.failure.batch}: ${s.failure.reason}: ${s.failure.message}`);
      return;
    }
    const completed = (s.conditions ?? []).some((k) => k.type === 'Completed' && k.status === 'True');
    const lastBatch = s.batches?.at(-1);
    const windowEnd = ms(lastBatch?.observationEndTime);
    const windowOver = lastBatch === undefined || Number.isNaN(windowEnd) || windowEnd <= this.#now;
    if (observed && s.updateRevision === c.revision && s.currentRevision === c.revision && s.phase === 'Completed' && completed && windowOver) {
      c.state = 'Finished';
      c.endTime = iso(this.#now);
      c.message = `${c.matched ?? 0} machine(s) on ${c.revision}`;
      this.#event('Normal', 'ClusterFinished', `stage ${st.name}, cluster ${c.name}: ${c.message}`, `finished/${st.name}/${c.name}`);
      return;
    }
    if (!windowOver) this.#after(windowEnd);
    c.message = !observed
      ? 'waiting for the member controller to observe the latest generation'
      : s.updateRevision !== c.revision
        ? `member reports update revision ${s.updateRevision ?? 'none'}, not ${c.revision}`
        : s.phase === 'Paused'
          ? `rollout paused in the cluster: ${s.pausedReason ?? 'spec.paused'}`
          : !windowOver
            ? `last observation window ends ${lastBatch?.observationEndTime}`
            : `rollout ${s.phase ?? 'Pending'}: batch ${c.batch}`;
  }

  async #tasks(st: StageStatus): Promise<void> {
    let since = ms(st.finishedTime);
    const snapshot = (this.status.pipelineSnapshot as NonNullable<ReleaseStatus['pipelineSnapshot']>).stages.find((s) => s.name === st.name) as PipelineStage;
    for (let i = 0; i < st.tasks.length; i++) {
      const task = st.tasks[i] as StageStatus['tasks'][number];
      const def = snapshot.afterStage[i] as PipelineStage['afterStage'][number];
      if (task.state === 'Done') {
        since = ms(task.endTime);
        continue;
      }
      if (task.state === 'Pending') {
        task.state = 'Waiting';
        task.startTime = iso(since);
      }
      if (task.type === 'TimedWait') {
        task.readyAt ??= iso(since + durationMs(def.duration as string));
        const readyAt = ms(task.readyAt);
        if (this.#now < readyAt) {
          this.#event('Normal', 'Waiting', `stage ${st.name}: waiting ${def.duration} until ${task.readyAt}`, `wait/${st.name}/${i}`);
          st.message = `timed wait until ${task.readyAt}`;
          this.#after(readyAt);
          return;
        }
        task.state = 'Done';
        task.endTime = iso(readyAt);
        since = readyAt;
        continue;
      }
      const name = approvalName(this.#r.metadata.name, st.name);
      task.approval = name;
      const approval = this.#o.caches.approvals.get(name);
      if (approval === undefined || approval.spec.releaseUID !== this.#r.metadata.uid) {
        if (approval === undefined) await this.#requestApproval(name, st.name);
        st.message = approval === undefined ? `waiting for ReleaseApproval ${name}` : `ReleaseApproval ${name} belongs to another release of this name (uid ${approval.spec.releaseUID}); delete it`;
        this.#event('Normal', 'ApprovalRequested', `stage ${st.name}: waiting for approval (kubenode-agent release approve ${this.#r.metadata.name} --stage ${st.name})`, `approval/${st.name}`);
        return;
      }
      if (!approval.spec.approved) {
        st.message = `waiting for ReleaseApproval ${name}`;
        return;
      }
      task.state = 'Done';
      task.endTime = iso(this.#now);
      if (approval.spec.approvedBy !== undefined) task.approvedBy = approval.spec.approvedBy;
      since = this.#now;
      this.#event('Normal', 'Approved', `stage ${st.name} approved${approval.spec.approvedBy === undefined ? '' : ` by ${approval.spec.approvedBy}`}`, `approved/${st.name}`);
    }
    st.state = 'Succeeded';
    st.endTime = iso(this.#now);
    this.status.phase = 'Progressing';
  }

  async #requestApproval(name: string, stage: string): Promise<void> {
    if (!this.#o.mayWrite()) throw new NotLeaderError();
    const m = this.#r.metadata;
    const body = {
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'ReleaseApproval',
      metadata: { name, labels: { [RELEASE_LABEL]: labelValueOf(m.name) }, ownerReferences: [{ apiVersion: 'kubenode.io/v1alpha1', kind: 'Release', name: m.name, uid: m.uid }] },
      spec: { release: m.name, releaseUID: m.uid, stage, approved: false },
    };
    try {
      await this.#o.client.request('POST', `${API}/releaseapprovals`, { body });
    } catch (err) {
      if (classifyKubeError(err) !== 'conflict') throw err;
    }
  }

  async #write(): Promise<void> {
    if (JSON.stringify(this.status) === this.#before) return;
    if (!this.#o.mayWrite()) throw new NotLeaderError();
    const m = this.#r.metadata;
    // Preconditioned on the version this pass read: a pass on a stale cache must not undo a newer status.
    this.#onWritten(await this.#o.client.request<ReleaseObject>('PUT', `${API}/releases/${encodeURIComponent(m.name)}/status`, { body: { ...this.#r, status: this.status } }));
  }
}
