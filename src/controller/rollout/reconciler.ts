// MachineComponentSet reconcile: one pass reads the set, its ControllerRevisions, its
// MachineComponents, the Machines, Nodes and agent Leases from the informers' caches and takes the
// next step of the rollout. Everything it knows is in the API — batch membership and revisions
// in labels, update times in annotations, batch clocks, gate measurements and the failure token
// in status — so a pass after a crash or failover continues with the same clocks.
//
// The order of writes is what makes a kill -9 safe: a batch's status entry (its startTime) is
// written before any of its MachineComponents, and each MachineComponent's spec, revision label
// and update time go in one write preconditioned on the resourceVersion last seen, so no spec is
// ever written twice for one revision.
import type { BatchStatus, GateResult, MachineComponentSet, MachineComponentSetStatus, RolloutFailure } from '../../api/machine-component-set.ts';
import { labelValueOf, machineOf, MACHINE_LABEL, type Condition } from '../../api/common.ts';
import { AgentError, errorMessage } from '../../errors.ts';
import type { Clock } from '../../host/clock.ts';
import { classifyKubeError, type KubeClient } from '../../kube/client.ts';
import type { Logger } from '../../log.ts';
import { durationMs } from '../../util/duration.ts';
import type { Informer, KubeObject } from '../../watch/informer.ts';
import type { EventRecorder } from '../events.ts';
import { callWebhook, measurePrometheus, renderQuery, type GateOutcome } from './gates.ts';
import { leaseFresh } from './lease-clock.ts';
import { agentLeaseOf } from '../../report/kube/lease.ts';
import { eachBounded } from '../../util/parallel.ts';
import { ROLLOUT_HOLDER_PREFIX, type ClaimResult, type RolloutCoordination } from '../remedy/coordination.ts';
import { componentHealth, componentName, matchesSelector, planBatches, resolveIntOrPercent, revisionName, selectionOrder, templateHash, type BatchPlan, type ComponentHealth } from './plan.ts';

/** On a set's MachineComponents and ControllerRevisions: labelValueOf(set name); setOf reads the name back. */
export const LABEL_SET = 'kubenode.io/component-set';
export const LABEL_REVISION = 'kubenode.io/revision';
export const LABEL_BATCH = 'kubenode.io/batch';
export const ANNOTATION_UPDATED_AT = 'kubenode.io/updated-at';
/** On a ControllerRevision whose rollout failed a gate: never a quick rollback target. */
export const ANNOTATION_FAILED = 'kubenode.io/failed';
/** On a ControllerRevision whose template the apiserver refused as a MachineComponent. */
export const ANNOTATION_INVALID = 'kubenode.io/invalid';

const MCS_PATH = '/apis/kubenode.io/v1alpha1/machinecomponentsets';
const MC_PATH = '/apis/kubenode.io/v1alpha1/machinecomponents';
const MAX_BATCH_ENTRIES = 16;
const WRITE_PARALLELISM = 16;

export interface McObject extends KubeObject {
  metadata: KubeObject['metadata'] & { uid?: string; annotations?: Record<string, string>; ownerReferences?: OwnerReference[]; deletionTimestamp?: string };
  spec?: { component?: string; version?: string; [k: string]: unknown };
  status?: { phase?: string; observedGeneration?: number; attemptedGeneration?: number; updatedAt?: string; lastError?: string; conditions?: { type: string; status: string; reason?: string; message?: string; lastTransitionTime?: string }[] };
}
export interface SetObject extends KubeObject {
  metadata: KubeObject['metadata'] & { uid: string; creationTimestamp?: string; deletionTimestamp?: string };
  spec: MachineComponentSet['spec'];
  status?: MachineComponentSetStatus;
}
export interface RevisionObject extends KubeObject {
  metadata: KubeObject['metadata'] & { uid?: string; annotations?: Record<string, string> };
  revision: number;
  data: { template: MachineComponentSet['spec']['template'] };
}
interface OwnerReference { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean; blockOwnerDeletion?: boolean }
export interface MachineObject extends KubeObject {
  metadata: KubeObject['metadata'] & { deletionTimestamp?: string };
}
export interface NodeObject extends KubeObject {
  status?: { conditions?: { type: string; status: string; reason?: string; lastTransitionTime?: string }[] };
}
export interface LeaseObject extends KubeObject {
  spec?: { holderIdentity?: string; renewTime?: string; leaseDurationSeconds?: number };
}

export interface RolloutCaches {
  sets: Informer<SetObject>;
  components: Informer<McObject>;
  revisions: Informer<RevisionObject>;
  machines: Informer<MachineObject>;
  nodes: Informer<NodeObject>;
  leases: Informer<LeaseObject>;
}

export interface RolloutReconcilerOptions {
  client: KubeClient;
  caches: RolloutCaches;
  /** Namespace of the ControllerRevisions (the controller's own). */
  namespace: string;
  events: EventRecorder;
  clock: Clock;
  log: Logger;
  /** Checked before every write: a replica that lost its lease must not write. */
  mayWrite: () => boolean;
  /** Per-node Leases: a batch claims its machines; a machine a remedy holds is deferred. */
  coordinator?: RolloutCoordination;
}

/** The holder identity of a set's batches on the per-node coordination Leases. */
export function rolloutHolder(set: string): string {
  return `${ROLLOUT_HOLDER_PREFIX}${set}`;
}

/**
 * An object we wrote, used instead of the cache while the cache still holds the version it held
 * when the write was sent. Taken before the request, not after: the watch may deliver our write
 * and the next writer's (an agent's status) before the response is read, and a version taken
 * then would hide that newer object behind ours until some other event came.
 */
interface Written<T> { fromRv: string | undefined; obj: T }

class NotLeaderError extends AgentError {
  constructor(message: string) {
    super('KUBE', message);
  }
}

interface MachineView {
  name: string;
  labels: Record<string, string>;
  mc: McObject | undefined;
  revisionHash: string | undefined;
  updated: boolean;
  health: ComponentHealth | undefined;
  healthMessage: string;
  acked: boolean;
  deferred: string | undefined;
}

const iso = (ms: number): string => new Date(ms).toISOString();

export class RolloutReconciler {
  readonly #o: RolloutReconcilerOptions;
  readonly #writtenSets = new Map<string, Written<SetObject>>();
  readonly #writtenMcs = new Map<string, Written<McObject>>();
  readonly #writtenRevisions = new Map<string, Written<RevisionObject>>();
  /** Per set: the machines whose node Leases it keeps (read by a release while it runs). */
  readonly #keep = new Map<string, Set<string>>();
  readonly #releasing = new Map<string, { again: boolean }>();

  constructor(options: RolloutReconcilerOptions) {
    this.#o = options;
  }

  /** Which sets an object change concerns. */
  setsForMachine(machine: string): string[] {
    const m = this.#o.caches.machines.get(machine);
    const out: string[] = [];
    for (const s of this.#o.caches.sets.snapshot().values()) {
      if (m === undefined || matchesSelector(s.spec.selector, m.metadata.labels)) out.push(s.metadata.name);
      else if ([...this.#o.caches.components.snapshot().values()].some((mc) => mc.metadata.labels?.[LABEL_SET] === labelValueOf(s.metadata.name) && machineOf(mc) === machine)) out.push(s.metadata.name);
    }
    return out;
  }

  #overlay<T extends KubeObject>(map: Map<string, Written<T>>, key: string, cached: T | undefined): T | undefined {
    const w = map.get(key);
    if (w === undefined) return cached;
    if (cached?.metadata.resourceVersion === w.fromRv) return w.obj;
    map.delete(key);
    return cached;
  }

  #set(name: string): SetObject | undefined {
    return this.#overlay(this.#writtenSets, name, this.#o.caches.sets.get(name));
  }

  #components(): Map<string, McObject> {
    const out = new Map<string, McObject>();
    for (const [k, v] of this.#o.caches.components.snapshot()) out.set(k, v);
    for (const [k, w] of this.#writtenMcs) {
      const cached = this.#o.caches.components.get(k);
      if (cached?.metadata.resourceVersion === w.fromRv) out.set(k, w.obj);
      else if (cached !== undefined || w.fromRv !== undefined) this.#writtenMcs.delete(k);
    }
    return out;
  }

  #revisions(set: string): RevisionObject[] {
    const out: RevisionObject[] = [];
    const label = labelValueOf(set);
    for (const [k, v] of this.#o.caches.revisions.snapshot()) {
      const r = this.#overlay(this.#writtenRevisions, k, v);
      if (r !== undefined && r.metadata.labels?.[LABEL_SET] === label) out.push(r);
    }
    for (const [k, w] of this.#writtenRevisions) if (!this.#o.caches.revisions.snapshot().has(k) && w.fromRv === undefined && w.obj.metadata.labels?.[LABEL_SET] === label) out.push(w.obj);
    return out.sort((a, b) => a.revision - b.revision);
  }

  #guard(): void {
    if (!this.#o.mayWrite()) throw new NotLeaderError('not the leader: refusing to write');
  }

  /** One pass for one set. Returns when to look again (ms), if a clock needs watching. */
  async reconcile(name: string, signal: AbortSignal): Promise<number | undefined> {
    const set = this.#set(name);
    if (set === undefined || set.metadata.deletionTimestamp !== undefined) {
      this.#writtenSets.delete(name);
      // A set that goes hands back what its batch held (nothing, most passes: read from the cache).
      if (this.#o.mayWrite()) this.releaseNodes(name, new Set());
      return undefined;
    }
    const pass = new Pass(this, this.#o, set, signal);
    return pass.run();
  }

  // Writers used by Pass; each checks leadership first and remembers what it wrote.

  /** Claims a machine's node Lease for the set's active batch. */
  async claimNode(set: string, machine: string, ttlMs: number): Promise<ClaimResult> {
    this.#guard();
    if (this.#o.coordinator === undefined) return { ok: true };
    // Kept before it is claimed: a release still running for this set must not take it back.
    this.#kept(set).add(machine);
    return this.#o.coordinator.claim(machine, rolloutHolder(set), ttlMs);
  }

  /**
   * Hands back every node Lease the set holds but those of its active batch, in the background: a
   * batch of 500 released 16 at a time held the set's next pass (and so the next batch) back by
   * seconds. One release runs per set; a pass that ends meanwhile has it go round once more. What
   * fails is left to the next pass (the Leases say what is held) or to the claims running out.
   */
  releaseNodes(set: string, keep: ReadonlySet<string>): void {
    this.#guard();
    const coordinator = this.#o.coordinator;
    if (coordinator === undefined) return;
    const kept = this.#kept(set);
    kept.clear();
    for (const m of keep) kept.add(m);
    const running = this.#releasing.get(set);
    if (running !== undefined) {
      running.again = true;
      return;
    }
    const job = { again: false };
    this.#releasing.set(set, job);
    void (async () => {
      do {
        job.again = false;
        if (!this.#o.mayWrite()) break;
        await coordinator.releaseExcept(rolloutHolder(set), kept).catch((err: unknown) => this.#o.log.warn({ set, err: errorMessage(err) }, 'Cannot release node Leases; the next pass tries again'));
      } while (job.again);
      this.#releasing.delete(set);
      if (kept.size === 0) this.#keep.delete(set);
    })();
  }

  #kept(set: string): Set<string> {
    let kept = this.#keep.get(set);
    if (kept === undefined) this.#keep.set(set, (kept = new Set()));
    return kept;
  }

  async writeStatus(set: SetObject, status: MachineComponentSetStatus): Promise<SetObject> {
    this.#guard();
    const body = { apiVersion: set.apiVersion, kind: set.kind, metadata: { name: set.metadata.name, resourceVersion: set.metadata.resourceVersion }, spec: set.spec, status };
    const fromRv = this.#o.caches.sets.get(set.metadata.name)?.metadata.resourceVersion;
    const out = await this.#o.client.request<SetObject>('PUT', `${MCS_PATH}/${encodeURIComponent(set.metadata.name)}/status`, { body });
    this.#writtenSets.set(set.metadata.name, { fromRv, obj: out });
    return out;
  }

  async writeComponent(existing: McObject | undefined, desired: McObject): Promise<McObject> {
    this.#guard();
    const name = desired.metadata.name;
    const fromRv = this.#o.caches.components.get(name)?.metadata.resourceVersion;
    const out =
      existing === undefined
        ? await this.#o.client.request<McObject>('POST', MC_PATH, { body: desired })
        : await this.#o.client.request<McObject>('PUT', `${MC_PATH}/${encodeURIComponent(name)}`, { body: { ...desired, metadata: { ...desired.metadata, resourceVersion: existing.metadata.resourceVersion } } });
    this.#writtenMcs.set(name, { fromRv, obj: out });
    return out;
  }

  async deleteComponent(mc: McObject): Promise<void> {
    this.#guard();
    try {
      await this.#o.client.request('DELETE', `${MC_PATH}/${encodeURIComponent(mc.metadata.name)}`, { body: { kind: 'DeleteOptions', apiVersion: 'v1', preconditions: { uid: mc.metadata.uid, resourceVersion: mc.metadata.resourceVersion } } });
    } catch (err) {
      if (classifyKubeError(err) !== 'not-found') throw err;
    }
    this.#writtenMcs.delete(mc.metadata.name);
  }

  async dryRunComponent(desired: McObject): Promise<string | undefined> {
    try {
      await this.#o.client.request('POST', MC_PATH, { body: desired, query: { dryRun: 'All' } });
      return undefined;
    } catch (err) {
      const kind = classifyKubeError(err);
      if (kind === 'invalid') return errorMessage(err);
      if (kind === 'conflict') return undefined; // AlreadyExists: the object is valid as far as the schema goes
      throw err;
    }
  }

  async writeRevision(existing: RevisionObject | undefined, desired: RevisionObject): Promise<RevisionObject> {
    this.#guard();
    const path = `/apis/apps/v1/namespaces/${encodeURIComponent(this.#o.namespace)}/controllerrevisions`;
    const key = `${this.#o.namespace}/${desired.metadata.name}`;
    const fromRv = this.#o.caches.revisions.get(key)?.metadata.resourceVersion;
    const out =
      existing === undefined
        ? await this.#o.client.request<RevisionObject>('POST', path, { body: desired })
        : await this.#o.client.request<RevisionObject>('PUT', `${path}/${encodeURIComponent(desired.metadata.name)}`, { body: { ...desired, metadata: { ...desired.metadata, resourceVersion: existing.metadata.resourceVersion } } });
    this.#writtenRevisions.set(key, { fromRv, obj: out });
    return out;
  }

  async deleteRevision(r: RevisionObject): Promise<void> {
    this.#guard();
    try {
      await this.#o.client.request('DELETE', `/apis/apps/v1/namespaces/${encodeURIComponent(this.#o.namespace)}/controllerrevisions/${encodeURIComponent(r.metadata.name)}`, {
        body: { kind: 'DeleteOptions', apiVersion: 'v1', preconditions: { resourceVersion: r.metadata.resourceVersion } },
      });
    } catch (err) {
      if (classifyKubeError(err) !== 'not-found') throw err;
    }
    this.#writtenRevisions.delete(`${this.#o.namespace}/${r.metadata.name}`);
  }

  components(): Map<string, McObject> {
    return this.#components();
  }

  revisions(set: string): RevisionObject[] {
    return this.#revisions(set);
  }
}

/** One reconcile of one set: the state of the world read once, then at most one step of each kind. */
class Pass {
  readonly #r: RolloutReconciler;
  readonly #o: RolloutReconcilerOptions;
  readonly #signal: AbortSignal;
  #set: SetObject;
  readonly status: MachineComponentSetStatus;
  readonly #now: number;
  #wakeAt: number | undefined;
  /** The machines of the set as the step left them (none when it stopped before reading them). */
  #views: MachineView[] = [];

  constructor(r: RolloutReconciler, o: RolloutReconcilerOptions, set: SetObject, signal: AbortSignal) {
    this.#r = r;
    this.#o = o;
    this.#set = set;
    this.#signal = signal;
    this.#now = o.clock.now();
    this.status = structuredClone(
      set.status ?? { phase: 'Pending', matched: 0, updated: 0, ready: 0, failed: 0, unavailable: 0, deferred: 0, deferredMachines: [], conflicts: [], currentBatch: 0, batches: [], acknowledgedFailures: [], conditions: [] },
    );
    this.status.batches ??= [];
    this.status.conditions ??= [];
    this.status.acknowledgedFailures ??= [];
    this.status.deferredMachines ??= [];
    this.status.conflicts ??= [];
  }

  get #name(): string {
    return this.#set.metadata.name;
  }

  /** The set's kubenode.io/component-set label value. */
  get #label(): string {
    return labelValueOf(this.#set.metadata.name);
  }

  #wake(inMs: number): void {
    const at = this.#now + Math.max(0, inMs);
    if (this.#wakeAt === undefined || at < this.#wakeAt) this.#wakeAt = at;
  }

  #condition(type: string, status: 'True' | 'False', reason: string, message: string): void {
    const list = this.status.conditions as Condition[];
    const old = list.find((c) => c.type === type);
    const next: Condition = {
      type,
      status,
      reason,
      message: message.slice(0, 2000),
      observedGeneration: this.#set.metadata.generation ?? 0,
      lastTransitionTime: old !== undefined && old.status === status ? old.lastTransitionTime : iso(this.#now),
    };
    if (old === undefined) list.push(next);
    else Object.assign(old, next);
  }

  #dropCondition(type: string): void {
    this.status.conditions = (this.status.conditions as Condition[]).filter((c) => c.type !== type);
  }

  #event(type: 'Normal' | 'Warning', reason: string, message: string, key: string): void {
    this.#o.events.record({ name: this.#name, uid: this.#set.metadata.uid }, type, reason, message, key);
  }

  async #save(): Promise<void> {
    const before = JSON.stringify(this.#set.status ?? null);
    this.status.observedGeneration = this.#set.metadata.generation ?? 0;
    if (JSON.stringify(this.status) === before) return;
    this.#set = await this.#r.writeStatus(this.#set, this.status);
  }

  async run(): Promise<number | undefined> {
    try {
      await this.#step();
      // After the step: the revisions it keeps depend on where the pass left current and update.
      await this.#pruneRevisions();
      await this.#save();
      // Last, off the path from one batch to the next: what the set no longer needs goes back. Read
      // from the Leases themselves, so a pass after a crash hands back what the last one held.
      this.#r.releaseNodes(this.#name, this.#activeBatch());
    } catch (err) {
      if (err instanceof NotLeaderError) return undefined;
      throw err;
    }
    return this.#wakeAt === undefined ? undefined : Math.max(0, this.#wakeAt - this.#o.clock.now());
  }

  async #step(): Promise<void> {
    const spec = this.#set.spec;
    const status = this.status;
    status.targetVersion = spec.template.spec.version;

    // 1. Revisions.
    const revision = await this.#ensureRevision();
    if (revision === undefined) return;
    const hash = revisionHashOf(revision);
    if (status.updateRevision !== revision.metadata.name) {
      if (status.updateRevision !== undefined) this.#event('Normal', 'RolloutStarted', `new revision ${revision.metadata.name} (${spec.template.spec.version}, revision ${revision.revision})`, `start/${revision.metadata.name}/${revision.revision}`);
      status.updateRevision = revision.metadata.name;
      status.currentBatch = 0;
      status.batches = [];
      status.acknowledgedFailures = [];
      delete status.failure;
      delete status.pausedReason;
      delete status.batchStartTime;
      this.#dropCondition('RolledBack');
    }
    const invalid = revision.metadata.annotations?.[ANNOTATION_INVALID];
    if (invalid !== undefined) {
      status.phase = 'Failed';
      this.#condition('Progressing', 'False', 'InvalidTemplate', `spec.template is refused as a MachineComponent: ${invalid}`);
      return;
    }

    // 2. Machines: selected, conflicting, classified.
    const components = this.#r.components();
    const ours = new Map<string, McObject>();
    for (const mc of components.values()) {
      const machine = machineOf(mc);
      if (mc.metadata.labels?.[LABEL_SET] === this.#label && machine !== undefined) ours.set(machine, mc);
    }
    const { selected, conflicts } = this.#selectMachines(components, ours);
    status.conflicts = conflicts.slice(0, 20);
    if (conflicts.length > 0) this.#condition('Conflict', 'True', 'ComponentClaimed', `${conflicts.length} machine(s) refused: ${conflicts.slice(0, 5).join('; ')}`);
    else this.#dropCondition('Conflict');

    // Machines gone or no longer selected drop out and free their slot. A Machine being deleted
    // keeps its component: the Machine lifecycle has it uninstalled once the node is drained.
    const removed = [...ours.entries()].filter(([m]) => !selected.has(m));
    if (removed.length > 0) {
      await eachBounded(
        removed.filter(([m]) => this.#o.caches.machines.get(m)?.metadata.deletionTimestamp === undefined),
        WRITE_PARALLELISM,
        ([, mc]) => this.#r.deleteComponent(mc),
      );
      for (const [m] of removed) ours.delete(m);
      this.#event('Normal', 'MachinesRemoved', `${removed.length} machine(s) left the set: ${removed.slice(0, 5).map(([m]) => m).join(', ')}`, `removed/${removed.map(([m]) => m).sort().join(',')}`);
    }

    let plan: BatchPlan;
    try {
      plan = planBatches(spec.rollout.batches, Math.max(1, selected.size));
      this.#dropCondition('InvalidSpec');
    } catch (err) {
      status.phase = 'Failed';
      this.#condition('InvalidSpec', 'True', 'InvalidBatches', `spec.rollout.batches: ${errorMessage(err)}`);
      this.#event('Warning', 'InvalidSpec', `spec.rollout.batches: ${errorMessage(err)}`, `invalid/${this.#set.metadata.generation}`);
      return;
    }

    const views = this.#classify(selected, ours, hash);
    this.#views = views;
    const stableRev = status.currentRevision === undefined ? undefined : this.#r.revisions(this.#name).find((r) => r.metadata.name === status.currentRevision);

    // Machines without a component get the stable revision at once (a new machine is no change to the fleet).
    if (stableRev !== undefined) {
      const fresh = views.filter((v) => v.mc === undefined);
      await eachBounded(fresh, WRITE_PARALLELISM, async (v) => {
        v.mc = await this.#r.writeComponent(undefined, this.#desired(v.name, stableRev, undefined));
        v.revisionHash = revisionHashOf(stableRev);
        v.updated = v.revisionHash === hash;
        if (v.updated) ({ health: v.health, message: v.healthMessage } = { ...componentHealth(v.mc), message: '' });
      });
    }
    this.#count(views, selected.size);
    if (selected.size === 0) {
      status.phase = 'Pending';
      this.#condition('Progressing', 'False', 'NoMachinesMatched', 'the selector matches no Machine');
      this.#event('Warning', 'NoMachinesMatched', 'spec.selector matches no Machine', `nomatch/${this.#set.metadata.generation}/${status.updateRevision}`);
      return;
    }

    // 3. A failure waits for its acknowledgement (or rolls back).
    if (status.failure !== undefined) {
      if (spec.rollout.acknowledgeFailure !== status.failure.token) {
        await this.#whileFailed(views, stableRev, hash);
        return;
      }
      this.#acknowledge(views);
    }

    // 4. Completed?
    const pending = views.filter((v) => !v.updated);
    const unready = views.filter((v) => v.updated && v.health !== 'ready' && !v.acked);
    if (pending.length === 0 && unready.length === 0 && (status.currentRevision === status.updateRevision || this.#lastBatchSucceeded(plan))) {
      this.#complete(revision);
      return;
    }

    await this.#advance(views, plan, revision, hash, false);
  }

  /**
   * The machines of the batch the rollout is not done with: the current one while it runs, or the
   * one that failed while its failure waits (a remedy must not act during a rollback or before
   * someone looked; the claims run out on their own). None once a batch succeeded or all are done.
   */
  #activeBatch(): Set<string> {
    const status = this.status;
    const k = status.failure?.batch ?? status.currentBatch;
    const entry = status.batches.find((b) => b.index === k);
    if (status.phase === 'Completed' || (status.failure === undefined && (entry === undefined || entry.state === 'Succeeded' || entry.state === 'Failed'))) return new Set();
    return new Set(this.#views.filter((v) => v.updated && v.mc?.metadata.labels?.[LABEL_BATCH] === String(k)).map((v) => v.name));
  }

  #lastBatchSucceeded(plan: BatchPlan): boolean {
    const last = this.status.batches.at(-1);
    return last !== undefined && last.state === 'Succeeded' && plan.target(last.index) >= this.status.matched;
  }

  #complete(revision: RevisionObject): void {
    const status = this.status;
    const wasCompleted = status.phase === 'Completed' && status.currentRevision === revision.metadata.name;
    status.currentRevision = revision.metadata.name;
    status.phase = 'Completed';
    delete status.pausedReason;
    this.#condition('Completed', 'True', 'RolloutCompleted', `every machine runs revision ${revision.revision} (${this.#set.spec.template.spec.version})`);
    this.#condition('Progressing', 'False', 'RolloutCompleted', 'nothing left to update');
    this.#condition('Paused', 'False', 'Completed', '');
    if (!wasCompleted) this.#event('Normal', 'RolloutCompleted', `${status.matched} machine(s) on ${revision.metadata.name} (${this.#set.spec.template.spec.version})`, `complete/${revision.metadata.name}/${revision.revision}`);
  }

  async #ensureRevision(): Promise<RevisionObject | undefined> {
    const spec = this.#set.spec;
    const hash = templateHash(spec.template);
    const name = revisionName(this.#name, hash);
    const all = this.#r.revisions(this.#name);
    const max = all.reduce((m, r) => Math.max(m, r.revision), 0);
    let rev = all.find((r) => r.metadata.name === name);
    if (rev === undefined) {
      const desired: RevisionObject = {
        apiVersion: 'apps/v1',
        kind: 'ControllerRevision',
        metadata: { name, namespace: this.#o.namespace, labels: { [LABEL_SET]: this.#label, [LABEL_REVISION]: hash }, ownerReferences: [this.#ownerRef()] } as RevisionObject['metadata'],
        revision: max + 1,
        data: { template: spec.template },
      };
      const refused = await this.#r.dryRunComponent(this.#desiredFrom(componentName(this.#name, 'dry-run'), 'dry-run', spec.template, hash, undefined));
      if (refused !== undefined) {
        desired.metadata.annotations = { [ANNOTATION_INVALID]: refused.slice(0, 2000) };
        this.#event('Warning', 'InvalidTemplate', `spec.template is refused as a MachineComponent: ${refused}`, `invalid/${name}`);
      }
      try {
        rev = await this.#r.writeRevision(undefined, desired);
      } catch (err) {
        if (classifyKubeError(err) === 'conflict') throw new Error(`ControllerRevision ${name} exists but is not in the cache yet`, { cause: err });
        throw err;
      }
    } else if (rev.revision < max && this.status.updateRevision !== name) {
      // A template equal to an earlier one reuses its revision and makes it the newest (as DaemonSets do).
      rev = await this.#r.writeRevision(rev, { ...rev, revision: max + 1 });
    }
    return rev;
  }

  async #pruneRevisions(): Promise<void> {
    const all = this.#r.revisions(this.#name);
    const keep = new Set([this.status.currentRevision, this.status.updateRevision]);
    const inUse = new Set<string>();
    for (const mc of this.#r.components().values()) if (mc.metadata.labels?.[LABEL_SET] === this.#label) inUse.add(mc.metadata.labels[LABEL_REVISION] ?? '');
    const old = all.filter((r) => !keep.has(r.metadata.name) && !inUse.has(revisionHashOf(r)));
    const excess = old.length - this.#set.spec.revisionHistoryLimit;
    for (const r of old.slice(0, Math.max(0, excess))) await this.#r.deleteRevision(r);
  }

  #ownerRef(): OwnerReference {
    return { apiVersion: 'kubenode.io/v1alpha1', kind: 'MachineComponentSet', name: this.#name, uid: this.#set.metadata.uid, controller: true, blockOwnerDeletion: true };
  }

  #desired(machine: string, rev: RevisionObject, batch: number | undefined): McObject {
    return this.#desiredFrom(componentName(this.#name, machine), machine, rev.data.template, revisionHashOf(rev), batch);
  }

  #desiredFrom(name: string, machine: string, template: MachineComponentSet['spec']['template'], hash: string, batch: number | undefined): McObject {
    const machineLabel = labelValueOf(machine);
    const labels: Record<string, string> = { ...(template.metadata?.labels ?? {}), [MACHINE_LABEL]: machineLabel, [LABEL_SET]: this.#label, [LABEL_REVISION]: hash };
    if (batch !== undefined) labels[LABEL_BATCH] = String(batch);
    return {
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'MachineComponent',
      metadata: { name, labels, annotations: { ...(template.metadata?.annotations ?? {}), [ANNOTATION_UPDATED_AT]: iso(this.#now) }, ownerReferences: [this.#ownerRef()] },
      // The label alone names a machine whose name fits it; a longer name goes in spec.machine, for the agent and its admission policy.
      spec: (machineLabel === machine ? template.spec : { ...template.spec, machine }) as McObject['spec'],
    };
  }

  #selectMachines(components: Map<string, McObject>, ours: Map<string, McObject>): { selected: Map<string, MachineObject>; conflicts: string[] } {
    const spec = this.#set.spec;
    const component = spec.template.spec.component;
    const selected = new Map<string, MachineObject>();
    const conflicts: string[] = [];
    const claimedBy = new Map<string, string>();
    for (const mc of components.values()) {
      const m = machineOf(mc);
      if (m === undefined || mc.spec?.component !== component || mc.metadata.labels?.[LABEL_SET] === this.#label) continue;
      const set = setOf(mc);
      claimedBy.set(m, set === undefined ? `MachineComponent/${mc.metadata.name}` : `MachineComponentSet/${set}`);
    }
    const mine = this.#set.metadata;
    const older = [...this.#o.caches.sets.snapshot().values()].filter(
      (s) => s.metadata.name !== this.#name && s.spec.template.spec.component === component && s.metadata.deletionTimestamp === undefined && ((s.metadata.creationTimestamp ?? '') < (mine.creationTimestamp ?? '') || ((s.metadata.creationTimestamp ?? '') === (mine.creationTimestamp ?? '') && s.metadata.name < this.#name)),
    );
    for (const m of this.#o.caches.machines.snapshot().values()) {
      if (m.metadata.deletionTimestamp !== undefined || !matchesSelector(spec.selector, m.metadata.labels)) continue;
      const name = m.metadata.name;
      const other = claimedBy.get(name) ?? (ours.has(name) ? undefined : older.find((s) => matchesSelector(s.spec.selector, m.metadata.labels))?.metadata.name);
      if (other !== undefined) {
        conflicts.push(`${name}: ${component} is declared by ${other.includes('/') ? other : `MachineComponentSet/${other}`}`);
        continue;
      }
      selected.set(name, m);
    }
    return { selected, conflicts };
  }

  #classify(selected: Map<string, MachineObject>, ours: Map<string, McObject>, hash: string): MachineView[] {
    const acked = new Set(this.status.acknowledgedFailures);
    const views: MachineView[] = [];
    for (const [name, m] of selected) {
      const mc = ours.get(name);
      const revisionHash = mc?.metadata.labels?.[LABEL_REVISION];
      const updated = revisionHash === hash;
      const h = updated && mc !== undefined ? componentHealth(mc) : undefined;
      views.push({
        name,
        labels: m.metadata.labels ?? {},
        mc,
        revisionHash,
        updated,
        health: h?.health,
        healthMessage: h?.message ?? '',
        acked: acked.has(name),
        deferred: updated ? undefined : this.#deferral(name),
      });
    }
    return views;
  }

  /** Why a machine is not chosen now: its Node is not Ready, or its agent's Lease is stale. */
  #deferral(machine: string): string | undefined {
    const node = this.#o.caches.nodes.get(machine);
    if (node === undefined) return 'no Node';
    const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
    if (ready?.status !== 'True') return `Node Ready=${ready?.status ?? 'missing'}`;
    const lease = agentLeaseOf(this.#o.caches.leases, machine);
    if (lease === undefined) return 'no agent Lease';
    if (!leaseFresh(lease, this.#now)) return 'agent Lease stale';
    return undefined;
  }

  #count(views: MachineView[], matched: number): void {
    const s = this.status;
    s.matched = matched;
    s.updated = views.filter((v) => v.updated).length;
    s.ready = views.filter((v) => v.updated && v.health === 'ready').length;
    s.failed = views.filter((v) => v.updated && v.health === 'failed' && !v.acked).length;
    s.unavailable = views.filter((v) => v.updated && v.health !== 'ready' && !v.acked).length;
    const deferred = views.filter((v) => v.deferred !== undefined);
    s.deferred = deferred.length;
    s.deferredMachines = deferred.slice(0, 20).map((v) => `${v.name}: ${v.deferred as string}`);
  }

  #acknowledge(views: MachineView[]): void {
    const status = this.status;
    const failure = status.failure as RolloutFailure;
    const failedNow = views.filter((v) => v.updated && v.health === 'failed').map((v) => v.name);
    status.acknowledgedFailures = [...new Set([...status.acknowledgedFailures, ...failure.machines, ...failedNow])].slice(0, 1000);
    for (const v of views) if (status.acknowledgedFailures.includes(v.name)) v.acked = true;
    const rolledBack = (status.conditions as Condition[]).some((c) => c.type === 'RolledBack');
    if (rolledBack) {
      // The rollback put the machines back: acknowledging starts this revision's rollout afresh.
      status.batches = [];
      status.currentBatch = 0;
      this.#dropCondition('RolledBack');
    } else {
      const entry = status.batches.find((b) => b.index === failure.batch);
      if (entry !== undefined && entry.state === 'Failed') {
        entry.state = 'Verifying';
        entry.startTime = iso(this.#now);
        delete entry.endTime;
        delete entry.readyTime;
        delete entry.observationEndTime;
        entry.gates = [];
      }
    }
    delete status.failure;
    delete status.pausedReason;
    this.#event('Normal', 'Resumed', `failure ${failure.token} acknowledged; ${failure.machines.length} failed machine(s) no longer count`, `ack/${failure.token}`);
    this.#count(views, status.matched);
  }

  async #whileFailed(views: MachineView[], stableRev: RevisionObject | undefined, hash: string): Promise<void> {
    const status = this.status;
    const failure = status.failure as RolloutFailure;
    const rollback = this.#set.spec.rollout.failurePolicy === 'Rollback' && failure.reason !== 'GateError' && stableRev !== undefined && revisionHashOf(stableRev) !== hash;
    this.#condition('Paused', 'True', failure.reason, `${failure.message} — acknowledge with spec.rollout.acknowledgeFailure: ${failure.token}`);
    status.pausedReason = failure.reason;
    if (!rollback) {
      status.phase = 'Paused';
      this.#condition('Progressing', 'False', failure.reason, failure.message);
      return;
    }
    const onBad = views.filter((v) => v.updated);
    if (onBad.length === 0) {
      status.phase = 'Failed';
      const done = (status.conditions as Condition[]).find((c) => c.type === 'RolledBack')?.status === 'True';
      this.#condition('RolledBack', 'True', failure.reason, `every updated machine is back on ${stableRev.metadata.name}`);
      this.#condition('Progressing', 'False', 'RolledBack', failure.message);
      if (!done) this.#event('Warning', 'RolledBack', `every updated machine is back on ${stableRev.metadata.name}`, `rolledback/${failure.token}`);
      return;
    }
    status.phase = 'Progressing';
    this.#condition('RolledBack', 'False', 'RollingBack', `${onBad.length} machine(s) still on ${status.updateRevision}`);
    const stableHash = revisionHashOf(stableRev);
    const backUnready = views.filter((v) => v.revisionHash === stableHash && v.mc?.metadata.annotations?.[ANNOTATION_UPDATED_AT] !== undefined && componentHealth(v.mc).health !== 'ready').length;
    const budget = resolveIntOrPercent(this.#set.spec.rollout.maxUnavailable, status.matched) - backUnready;
    const order = [...onBad.filter((v) => v.health === 'failed'), ...onBad.filter((v) => v.health !== 'failed')];
    const chosen = order.slice(0, Math.max(0, budget));
    if (chosen.length > 0) {
      this.#event('Warning', 'RollbackStarted', `rolling ${onBad.length} machine(s) back to ${stableRev.metadata.name}`, `rollback/${failure.token}`);
    }
    await eachBounded(chosen, WRITE_PARALLELISM, async (v) => {
      v.mc = await this.#r.writeComponent(v.mc, this.#desired(v.name, stableRev, undefined));
    });
  }

  #fail(entry: BatchStatus, reason: 'HealthGateFailed' | 'ProgressDeadlineExceeded' | 'GateError', gate: string, message: string, machines: string[]): void {
    const status = this.status;
    const rev = status.updateRevision as string;
    const token = `${revisionHashOf({ metadata: { name: rev } })}-b${entry.index}-${this.#now.toString(36)}`;
    status.failure = { token, revision: rev, batch: entry.index, reason, message: `${gate}: ${message}`.slice(0, 4000), machines: machines.slice(0, 50), time: iso(this.#now) };
    entry.state = 'Failed';
    entry.endTime = iso(this.#now);
    status.pausedReason = reason;
    status.phase = 'Paused';
    this.#condition('Paused', 'True', reason, `${gate}: ${message} — acknowledge with spec.rollout.acknowledgeFailure: ${token}`);
    this.#condition('Progressing', 'False', reason, `${gate}: ${message}`);
    this.#event('Warning', 'BatchFailed', `batch ${entry.index} failed (${reason}) at ${gate}: ${message}`, `fail/${token}`);
    this.#event('Warning', 'Paused', `rollout paused: ${reason}; acknowledge with spec.rollout.acknowledgeFailure: ${token}`, `pause/${token}`);
  }

  async #markRevisionFailed(reason: string): Promise<void> {
    const rev = this.#r.revisions(this.#name).find((r) => r.metadata.name === this.status.updateRevision);
    if (rev === undefined || rev.metadata.annotations?.[ANNOTATION_FAILED] !== undefined) return;
    await this.#r.writeRevision(rev, { ...rev, metadata: { ...rev.metadata, annotations: { ...(rev.metadata.annotations ?? {}), [ANNOTATION_FAILED]: reason } } });
  }

  /** chained: this pass already ended the previous batch (the next one starts in the same pass, once). */
  async #advance(views: MachineView[], plan: BatchPlan, revision: RevisionObject, hash: string, chained: boolean): Promise<void> {
    const status = this.status;
    const spec = this.#set.spec;
    const k = status.currentBatch;
    let entry = status.batches.find((b) => b.index === k);
    const userPaused = spec.paused;

    if (entry === undefined) {
      if (userPaused) return this.#pause('Paused', 'spec.paused is true: no new batch starts');
      if (spec.rollout.partition !== undefined && k >= spec.rollout.partition) return this.#pause('Partition', `spec.rollout.partition is ${spec.rollout.partition}: raise it to release batch ${k}`);
      // The pre-batch hooks (the Kube Defender check) say whether any batch may start now.
      const hooks = spec.rollout.healthGate.webhooks.filter((w) => w.phase === 'PreBatch');
      const nextNames = hooks.length === 0 ? [] : this.#choose(views, plan.target(k) - status.updated, Number.POSITIVE_INFINITY, revision).map((v) => v.name);
      for (const hook of hooks) {
        const r = await callWebhook(hook, this.#review(hook.phase, k, nextNames), this.#signal);
        if (r.outcome === 'failure') {
          // The hook's answer has no watch event: it is asked again after its interval.
          this.#wake(durationMs(hook.interval));
          return this.#pause('PreBatchDenied', `webhook ${hook.name} denied batch ${k}: ${r.message}`);
        }
        if (r.outcome === 'error') {
          const failed: BatchStatus = { index: k, size: plan.size(k), state: 'Failed', startTime: iso(this.#now), gates: [{ name: hook.name, phase: 'Error', message: r.message, successes: 0, failures: 0, consecutiveErrors: 1, lastTime: iso(this.#now) }] };
          this.#pushBatch(failed);
          this.#fail(failed, 'GateError', hook.name, r.message, []);
          return;
        }
      }
      entry = { index: k, size: Math.min(plan.size(k), plan.target(k) - Math.min(status.updated, plan.target(k))), state: 'Upgrading', startTime: iso(this.#now), gates: [] };
      this.#pushBatch(entry);
      status.batchStartTime = entry.startTime;
      this.#event('Normal', 'BatchStarted', `batch ${k}: ${entry.size} machine(s) to ${spec.template.spec.version} (revision ${revision.revision})`, `batch/${revision.metadata.name}/${k}/start/${entry.startTime}`);
      // The clock of the batch is in the API before any machine is touched.
      status.phase = 'Progressing';
      this.#condition('Progressing', 'True', 'BatchStarted', `batch ${k} started`);
      await this.#save();
    }

    const batch = entry;
    if (batch.state === 'Failed' || batch.state === 'Succeeded') {
      // A failed batch without a failure record was acknowledged elsewhere; a succeeded one moves on.
      status.currentBatch = k + 1;
      this.#wake(0);
      return;
    }

    // Upgrading: write the batch's machines, as far as the budget goes.
    if (batch.state === 'Upgrading') {
      const need = plan.target(k) - status.updated;
      if (need > 0 && !userPaused) {
        const maxU = resolveIntOrPercent(spec.rollout.maxUnavailable, status.matched);
        const budget = maxU - status.unavailable - status.deferred;
        const picked = this.#choose(views, need, Math.max(0, budget), revision);
        const insufficient = (): void =>
          this.#pause('InsufficientBudget', `${need} machine(s) still to update in batch ${k} but none can be chosen: maxUnavailable ${maxU}, ${status.deferred} deferred (${status.deferredMachines.slice(0, 3).join('; ')})`);
        if (picked.length === 0 && status.unavailable === 0) return insufficient();
        // Each machine is claimed and then written at once, so the batch's first write waits on one
        // claim, not on all of them.
        const ttlMs = durationMs(spec.rollout.progressDeadline) + durationMs(spec.rollout.bakeTime);
        let written = 0;
        let heldUntil = Number.POSITIVE_INFINITY;
        await eachBounded(picked, WRITE_PARALLELISM, async (v) => {
          const claim = await this.#r.claimNode(this.#name, v.name, ttlMs);
          if (!claim.ok) {
            v.deferred = `under repair (node Lease held by ${claim.holder})`;
            heldUntil = Math.min(heldUntil, Date.parse(claim.until));
            return;
          }
          v.mc = await this.#r.writeComponent(v.mc, this.#desired(v.name, revision, k));
          v.updated = true;
          v.revisionHash = hash;
          v.health = 'progressing';
          v.deferred = undefined;
          written += 1;
        });
        // The holder's release comes as a watch event on the Lease (which queues the set); a claim
        // that only runs out has none, so the set looks again when the earliest refusal ends.
        if (Number.isFinite(heldUntil)) this.#wake(heldUntil - this.#now + 1);
        this.#count(views, status.matched);
        if (written === 0 && status.unavailable === 0) return insufficient();
      }
      if (status.updated >= plan.target(k)) batch.state = 'Verifying';
    }
    status.phase = userPaused ? 'Paused' : 'Progressing';
    if (userPaused) this.#condition('Paused', 'True', 'Paused', 'spec.paused is true: in-flight installs finish, nothing new starts');
    else {
      delete status.pausedReason;
      this.#condition('Paused', 'False', 'Progressing', '');
    }
    this.#condition('Progressing', 'True', `Batch${batch.state}`, `batch ${k} ${batch.state.toLowerCase()}: ${status.ready}/${status.updated} ready of ${status.matched}`);
    if (userPaused) status.pausedReason = 'Paused';

    // The gates, on every machine of this rollout so far.
    const updated = views.filter((v) => v.updated);
    const failedMachines = updated.filter((v) => v.health === 'failed' && !v.acked);
    if (failedMachines.length > spec.rollout.failureThreshold) {
      const msg = failedMachines.slice(0, 3).map((v) => `${v.name}: ${v.healthMessage}`).join('; ');
      this.#gate(batch, 'components', 'Failed', `${failedMachines.length} failed: ${msg}`);
      this.#fail(batch, 'HealthGateFailed', 'components', `${failedMachines.length} machine(s) failed (threshold ${spec.rollout.failureThreshold}): ${msg}`, failedMachines.map((v) => v.name));
      await this.#markRevisionFailed('HealthGateFailed');
      return;
    }
    const nodeProblems = this.#nodeProblems(updated);
    if (nodeProblems.length > 0) {
      this.#gate(batch, 'nodeConditions', 'Failed', nodeProblems.slice(0, 3).join('; '));
      this.#fail(batch, 'HealthGateFailed', 'nodeConditions', nodeProblems.slice(0, 5).join('; '), nodeProblems.map((p) => p.split(':')[0] as string));
      await this.#markRevisionFailed('HealthGateFailed');
      return;
    }
    const allReady = updated.every((v) => v.health === 'ready' || v.acked);
    this.#gate(batch, 'components', allReady ? 'Successful' : 'Running', `${status.ready}/${status.updated} ready`);
    const deadline = Date.parse(batch.startTime ?? iso(this.#now)) + durationMs(spec.rollout.progressDeadline);
    if (!allReady && (batch.state === 'Upgrading' || batch.state === 'Verifying')) {
      if (this.#now > deadline) {
        const late = updated.filter((v) => v.health !== 'ready' && !v.acked);
        this.#fail(batch, 'ProgressDeadlineExceeded', 'components', `${late.length} machine(s) not ready ${spec.rollout.progressDeadline} after batch ${k} started: ${late.slice(0, 5).map((v) => v.name).join(', ')}`, late.map((v) => v.name));
        await this.#markRevisionFailed('ProgressDeadlineExceeded');
        return;
      }
      this.#wake(deadline - this.#now + 1);
    }
    if (batch.state === 'Upgrading') return;

    // Prometheus and observation webhooks, measured at their intervals while verifying and observing.
    const names = updated.map((v) => v.name);
    const outcome = await this.#externalGates(batch, names);
    if (outcome !== undefined) {
      this.#fail(batch, outcome.reason, outcome.gate, outcome.message, []);
      if (outcome.reason === 'HealthGateFailed') await this.#markRevisionFailed('HealthGateFailed');
      return;
    }

    if (batch.state === 'Verifying' && allReady) {
      batch.state = 'Observing';
      batch.readyTime = iso(this.#now);
      batch.observationEndTime = iso(this.#now + durationMs(spec.rollout.bakeTime));
    }
    if (batch.state === 'Observing') {
      const end = Date.parse(batch.observationEndTime as string);
      const countsMet = spec.rollout.healthGate.prometheus.every((g) => (batch.gates.find((r) => r.name === g.name)?.successes ?? 0) >= g.count);
      if (this.#now >= end && allReady && countsMet) {
        batch.state = 'Succeeded';
        batch.endTime = iso(this.#now);
        this.#event('Normal', 'BatchSucceeded', `batch ${k} succeeded: ${status.updated}/${status.matched} machine(s) on ${spec.template.spec.version}`, `batch/${revision.metadata.name}/${k}/ok/${batch.startTime}`);
        if (status.updated >= status.matched) return this.#complete(revision);
        status.currentBatch = k + 1;
        // The next batch starts in this pass: its status write carries this batch's end, and no
        // second pass stands between the bake's end and the next machines.
        if (!chained) return this.#advance(views, plan, revision, hash, true);
        this.#wake(0);
      } else if (this.#now < end) this.#wake(end - this.#now);
    }
  }

  #pause(reason: string, message: string): void {
    const status = this.status;
    const was = status.pausedReason;
    status.phase = 'Paused';
    status.pausedReason = reason;
    this.#condition('Paused', 'True', reason, message);
    this.#condition('Progressing', 'False', reason, message);
    if (was !== reason) this.#event(reason === 'Paused' ? 'Normal' : 'Warning', 'Paused', `rollout paused: ${reason}: ${message}`, `pause/${status.updateRevision}/${status.currentBatch}/${reason}/${this.#now}`);
  }

  #pushBatch(entry: BatchStatus): void {
    this.status.batches = [...this.status.batches.filter((b) => b.index !== entry.index), entry].slice(-MAX_BATCH_ENTRIES);
  }

  #gate(batch: BatchStatus, name: string, phase: GateResult['phase'], message: string): GateResult {
    let g = batch.gates.find((x) => x.name === name);
    if (g === undefined) {
      g = { name, phase, message: message.slice(0, 2000), successes: 0, failures: 0, consecutiveErrors: 0 };
      batch.gates.push(g);
    } else {
      g.phase = phase;
      g.message = message.slice(0, 2000);
    }
    return g;
  }

  #choose(views: MachineView[], need: number, budget: number, revision: RevisionObject): MachineView[] {
    if (need <= 0 || budget <= 0) return [];
    const stable = this.status.currentRevision === undefined ? undefined : revisionHashOf({ metadata: { name: this.status.currentRevision } });
    const candidates = views.filter((v) => !v.updated && v.deferred === undefined);
    const ordered = selectionOrder(
      candidates.map((v) => ({ name: v.name, labels: v.labels, abandoned: v.revisionHash !== undefined && v.revisionHash !== stable })),
      revision.metadata.name,
      this.#set.spec.rollout.priorityLabel,
    );
    const byName = new Map(candidates.map((v) => [v.name, v]));
    return ordered.slice(0, Math.min(need, budget)).map((c) => byName.get(c.name) as MachineView);
  }

  /** Configured Node conditions that turned bad on an updated machine's Node after its update was written. */
  #nodeProblems(updated: MachineView[]): string[] {
    const gates = this.#set.spec.rollout.healthGate.nodeConditions;
    const out: string[] = [];
    for (const v of updated) {
      if (v.acked) continue;
      const since = Date.parse(v.mc?.metadata.annotations?.[ANNOTATION_UPDATED_AT] ?? '');
      if (!Number.isFinite(since)) continue;
      const conditions = this.#o.caches.nodes.get(v.name)?.status?.conditions ?? [];
      for (const g of gates) {
        const c = conditions.find((x) => x.type === g.type);
        const bad = g.badStatus === 'NotTrue' ? c !== undefined && c.status !== 'True' : c?.status === g.badStatus;
        if (!bad || c === undefined) continue;
        // Whole seconds on the Node: a transition within the update's second counts as after it.
        const at = Date.parse(c.lastTransitionTime ?? '');
        if (Number.isFinite(at) && at >= Math.floor(since / 1000) * 1000) out.push(`${v.name}: Node ${c.type}=${c.status} (${c.reason ?? ''}) since ${c.lastTransitionTime}`);
      }
    }
    return out;
  }

  #review(phase: 'PreBatch' | 'Observation', batch: number, machines: string[]): Parameters<typeof callWebhook>[1] {
    return { apiVersion: 'kubenode.io/v1alpha1', kind: 'RolloutGateReview', set: this.#name, revision: this.status.updateRevision ?? '', version: this.#set.spec.template.spec.version, batch, phase, machines };
  }

  async #externalGates(batch: BatchStatus, machines: string[]): Promise<{ reason: 'HealthGateFailed' | 'GateError'; gate: string; message: string } | undefined> {
    const hg = this.#set.spec.rollout.healthGate;
    const jobs: { name: string; intervalMs: number; failureLimit: number; errorLimit: number; run: () => Promise<GateOutcome> }[] = [
      ...hg.prometheus.map((g) => ({
        name: g.name,
        intervalMs: durationMs(g.interval),
        failureLimit: g.failureLimit,
        errorLimit: g.consecutiveErrorLimit,
        run: () => measurePrometheus(g, renderQuery(g.query, { nodes: machines, set: this.#name, batch: batch.index }), this.#signal),
      })),
      ...hg.webhooks
        .filter((w) => w.phase === 'Observation')
        .map((w) => ({ name: w.name, intervalMs: durationMs(w.interval), failureLimit: 0, errorLimit: 0, run: () => callWebhook(w, this.#review('Observation', batch.index, machines), this.#signal) })),
    ];
    for (const job of jobs) {
      const g = this.#gate(batch, job.name, batch.gates.find((x) => x.name === job.name)?.phase ?? 'Running', batch.gates.find((x) => x.name === job.name)?.message ?? '');
      const last = Date.parse(g.lastTime ?? '');
      if (Number.isFinite(last) && last + job.intervalMs > this.#now) {
        this.#wake(last + job.intervalMs - this.#now);
        continue;
      }
      const r = await job.run();
      g.lastTime = iso(this.#now);
      g.message = r.message.slice(0, 2000);
      if (r.outcome === 'success') {
        g.successes += 1;
        g.consecutiveErrors = 0;
        g.phase = 'Successful';
      } else if (r.outcome === 'failure') {
        g.failures += 1;
        g.consecutiveErrors = 0;
        g.phase = g.failures > job.failureLimit ? 'Failed' : 'Running';
      } else {
        g.consecutiveErrors += 1;
        g.phase = g.consecutiveErrors > job.errorLimit ? 'Error' : 'Running';
      }
      this.#wake(job.intervalMs);
      if (g.phase === 'Failed') return { reason: 'HealthGateFailed', gate: job.name, message: r.message };
      if (g.phase === 'Error') return { reason: 'GateError', gate: job.name, message: r.message };
    }
    return undefined;
  }
}

/**
 * The set a MachineComponent or ControllerRevision belongs to: its controlling owner, which names
 * the set in full (the label holds labelValueOf of it), else the label.
 */
export function setOf(obj: { metadata: { labels?: Record<string, string>; ownerReferences?: readonly { kind: string; name: string; controller?: boolean }[] } }): string | undefined {
  const label = obj.metadata.labels?.[LABEL_SET];
  if (label === undefined) return undefined;
  return obj.metadata.ownerReferences?.find((r) => r.kind === 'MachineComponentSet' && r.controller === true && labelValueOf(r.name) === label)?.name ?? label;
}

/** The hash part of a revision's name (what the MachineComponents' revision label holds). */
export function revisionHashOf(rev: { metadata: { name: string; labels?: Record<string, string> } }): string {
  return rev.metadata.labels?.[LABEL_REVISION] ?? rev.metadata.name.slice(rev.metadata.name.lastIndexOf('-') + 1);
}
