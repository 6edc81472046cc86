// The central remedy operator: repairs nodes whose agent cannot act, with the escalation ladder
// of the NodeRemedier selecting them (spec.central), and keeps each NodeRemedier's status: its
// counts and its storm breaker.
//
// One reconcile per node (queue key node/<name>) and per NodeRemedier (remedier/<name>). A node's
// ladder lives in the API: one RemedyOperation per step, named after the node, the step and the
// episode (when both unreachability signals first held), so the next leader finds them.
// Before a step starts: the node Lease is claimed (a rollout batch holding it defers the remedy),
// the Lease and Node are read live (a controller cut off from the apiserver sees every Lease go
// stale in its cache: it must act on nothing), and the risk gate asks the RiskPolicies and the
// storm breaker. Every write checks leadership first.
import { Buffer } from 'node:buffer';
import type { CentralRemedy, CentralStep } from '../../api/node-remedier.ts';
import { REPLACEMENT_CONDITION, type Bmc } from '../../api/machine.ts';
import { fitName, labelValueOf, NODE_LABEL, type Condition, type LabelSelector } from '../../api/common.ts';
import { AgentError, errorMessage } from '../../errors.ts';
import type { Clock } from '../../host/clock.ts';
import type { Host } from '../../host/host.ts';
import { classifyKubeError, type KubeClient } from '../../kube/client.ts';
import type { Logger } from '../../log.ts';
import { agentLeaseName, agentLeaseNode, agentLeaseOf, LEASE_NAMESPACE } from '../../report/kube/lease.ts';
import { kubeTime } from '../../report/kube/node-conditions.ts';
import { addTaint, AGENT_ID, cordon, CORDONED_BY, uncordon } from '../../remedies/node-ops.ts';
import type { RiskGate } from '../../risk/gate.ts';
import { gateStatus } from '../../remedies/record.ts';
import { selectorMatches } from '../../risk/policy.ts';
import { durationMs } from '../../util/duration.ts';
import { eachBounded } from '../../util/parallel.ts';
import type { Informer, InformerEvent, KubeObject } from '../../watch/informer.ts';
import type { EventRecorder, EventTarget } from '../events.ts';
import type { NodeCoordinator } from './coordination.ts';
import { centralRemedierFor, unreachable, type Unreachable } from './detect.ts';
import { powerCycle } from './ipmi.ts';
import { stormVerdict } from './storm.ts';

const OPS = '/apis/kubenode.io/v1alpha1/remedyoperations';
const REMEDIERS = '/apis/kubenode.io/v1alpha1/noderemediers';
const MACHINES = '/apis/kubenode.io/v1alpha1/machines';
export const LABEL_ACTOR = 'kubenode.io/actor';
export const LABEL_REMEDIER = 'kubenode.io/remedier';
export const LABEL_EPISODE = 'kubenode.io/episode';
const ANN_CYCLED_AT = 'kubenode.io/power-cycled-at';
const ANN_BOOT_BEFORE = 'kubenode.io/boot-id-before';
/** On a Machine the ladder gave up on: for Cluster API's remediation, an inventory system or a person. */
export const ANNOTATION_REPLACE = 'kubenode.io/replace';
export const ANNOTATION_REPLACE_AT = 'kubenode.io/replace-requested-at';
export const STORM_CONDITION = 'StormBreakerTripped';
/** Server-side apply manager of the Machine condition this writes, apart from the lifecycle's. */
export const REMEDY_FIELD_MANAGER = 'kubenode-controller-remedy';
const FINISHED = new Set(['Succeeded', 'Failed', 'Skipped', 'Denied']);
const MERGE = 'application/merge-patch+json';

/**
 * The RemedyOperation of a node's central step in an episode: the node name, shortened by fitName
 * where it and the suffix would pass 253 characters (a cut of a long one could end in '.' or '-',
 * and two nodes sharing its first characters had one name, so one node's step was taken for the
 * other's).
 */
export function centralOperationName(node: string, index: number, episode: string): string {
  const suffix = `-central-${index}-${episode}`;
  return `${fitName(node, 253 - suffix.length)}${suffix}`;
}

export interface RemedierObject extends KubeObject {
  metadata: KubeObject['metadata'] & { uid?: string; generation?: number };
  spec: { nodeSelector?: LabelSelector; paused?: boolean; dryRun?: boolean; central?: CentralRemedy; stormBreaker?: { maxShare: number; window: string } };
  status?: { stormBreaker?: { state?: 'Open' | 'Closed'; trippedAt?: string; reason?: string; resetBy?: string; resetAt?: string }; conditions?: Condition[] } & Partial<RemedierCounts>;
}
export interface OperationObject extends KubeObject {
  metadata: KubeObject['metadata'] & { creationTimestamp?: string; annotations?: Record<string, string> };
  spec: { node: string; actor?: string; action: string; remedier?: string; rule?: string; step: number; dryRun?: boolean; params?: Record<string, string> };
  status?: { phase?: string; startTime?: string; endTime?: string; result?: string; message?: string; attempts?: number; gate?: unknown };
}
interface NodeObj extends KubeObject {
  metadata: KubeObject['metadata'] & { uid?: string; annotations?: Record<string, string> };
  spec?: { unschedulable?: boolean; taints?: { key: string; effect: string; value?: string }[] };
  status?: { conditions?: { type: string; status: string; lastTransitionTime?: string }[] };
}
interface LeaseObj extends KubeObject {
  spec?: { holderIdentity?: string; renewTime?: string; leaseDurationSeconds?: number };
}
interface MachineObj extends KubeObject {
  metadata: KubeObject['metadata'] & { annotations?: Record<string, string> };
  spec?: { bmc?: Bmc };
  status?: { node?: { bootId?: string }; conditions?: Condition[] };
}

export interface RemedyCaches {
  remediers: Informer<RemedierObject>;
  operations: Informer<OperationObject>;
  nodes: Informer<NodeObj>;
  leases: Informer<LeaseObj>;
  machines: Informer<MachineObj>;
}

export interface CentralRemedyOptions {
  client: KubeClient;
  caches: RemedyCaches;
  /** The command runner ipmitool goes through. */
  host: Host;
  gate: RiskGate;
  coordinator: NodeCoordinator;
  events: EventRecorder;
  clock: Clock;
  log: Logger;
  mayWrite: () => boolean;
  /** Deadline of one ipmitool run. */
  ipmiTimeoutMs?: number;
  /** How soon a step refused by the gate or deferred by a rollout is asked again. */
  retryMs?: number;
  /** The least time between two writes of one NodeRemedier's counts. */
  statusEveryMs?: number;
  /** How long after it ended a finished RemedyOperation is deleted (default 14 days). */
  retentionMs?: number;
}

/** Longer than any window that counts operations (the storm breaker's and RiskPolicy budgets' 168h at most). */
export const MIN_OPERATION_RETENTION_MS = 168 * 3_600_000;
const DEFAULT_OPERATION_RETENTION_MS = 14 * 24 * 3_600_000;
/** Finished operations are looked over for deletion this often, and at most this many go in one look. */
const PRUNE_EVERY_MS = 10 * 60_000;
const PRUNE_BATCH = 500;

class NotLeader extends AgentError {
  constructor() {
    super('KUBE', 'not the leader');
  }
}

const iso = (ms: number): string => new Date(ms).toISOString();

export class CentralRemedies {
  readonly #o: CentralRemedyOptions;
  /** Objects we wrote, used until the cache moves past the version they were written on. */
  readonly #written = new Map<string, { fromRv: string | undefined; obj: OperationObject }>();
  readonly #remediersWritten = new Map<string, { fromRv: string | undefined; obj: RemedierObject }>();
  /** When each NodeRemedier's status was last written. */
  readonly #statusAt = new Map<string, number>();
  #swept = false;
  #prunedAt = Number.NEGATIVE_INFINITY;
  /** Nodes with a ladder in progress: an agent Lease renewal there is worth a look at once. */
  readonly active = new Set<string>();
  readonly stats = { steps: 0, powerCycles: 0, deferred: 0, denied: 0, partitioned: 0 };

  constructor(options: CentralRemedyOptions) {
    this.#o = options;
  }

  /** Queue keys of the nodes worth a reconcile now: candidates by the cache, and ladders in progress. */
  sweep(): string[] {
    const now = this.#o.clock.now();
    const keys: string[] = [];
    const { nodes, leases, remediers } = this.#o.caches;
    // The first sweep also looks at every NodeRemedier: what happened while nobody led (agents'
    // operations ending, nodes coming and going) is not in its status yet.
    if (!this.#swept) {
      this.#swept = true;
      for (const r of remediers.snapshot().values()) keys.push(`remedier/${r.metadata.name}`);
    }
    const withCentral = [...remediers.snapshot().values()].filter((r) => r.spec.central !== undefined);
    if (withCentral.length === 0) return [...keys, ...[...this.active].map((n) => `node/${n}`)];
    const taints = new Set(withCentral.map((r) => taintId(r.spec.central?.taint)));
    for (const node of nodes.snapshot().values()) {
      const name = node.metadata.name;
      if (
        this.active.has(name) ||
        unreachable(node, agentLeaseOf(leases, name), now) !== undefined ||
        // Ours to hand back: a node left with our taint once its ladder ran out, or a replacement request withdrawn.
        (node.spec?.taints ?? []).some((t) => taints.has(taintId(t))) ||
        this.#withdrawnRequest(name) !== undefined
      )
        keys.push(`node/${name}`);
    }
    return keys;
  }

  /**
   * Deletes finished operations, agents' and ours, that ended more than the retention ago: nothing
   * else does, and etcd, every cache of them and every count over them would grow for ever. A
   * node with a ladder in progress, or unreachable now, keeps its own: they are where its ladder
   * stands. Returns how many went.
   */
  async prune(): Promise<number> {
    const now = this.#o.clock.now();
    if (!this.#o.mayWrite() || now - this.#prunedAt < PRUNE_EVERY_MS) return 0;
    this.#prunedAt = now;
    const before = now - Math.max(this.#o.retentionMs ?? DEFAULT_OPERATION_RETENTION_MS, MIN_OPERATION_RETENTION_MS);
    const doomed = [...this.#o.caches.operations.snapshot().values()]
      .filter((o) => FINISHED.has(o.status?.phase ?? 'Pending') && Date.parse(o.status?.endTime ?? '') < before && !this.#ladderMayNeed(o.spec.node, now))
      .slice(0, PRUNE_BATCH);
    let deleted = 0;
    await eachBounded(doomed, 8, async (o) => {
      this.#guard();
      try {
        // Only the version looked at: one that changed since is not old news any more.
        await this.#o.client.request('DELETE', `${OPS}/${encodeURIComponent(o.metadata.name)}`, { body: { kind: 'DeleteOptions', apiVersion: 'v1', preconditions: { resourceVersion: o.metadata.resourceVersion } } });
        deleted++;
      } catch (err) {
        const kind = classifyKubeError(err);
        if (kind !== 'not-found' && kind !== 'conflict') this.#o.log.warn({ operation: o.metadata.name, err: errorMessage(err) }, 'Cannot delete an old RemedyOperation');
      }
    });
    if (deleted > 0) this.#o.log.info({ deleted, endedBefore: iso(before) }, 'Deleted finished RemedyOperations past their retention');
    return deleted;
  }

  #ladderMayNeed(node: string, now: number): boolean {
    if (this.active.has(node)) return true;
    const n = this.#o.caches.nodes.get(node);
    return n !== undefined && unreachable(n, agentLeaseOf(this.#o.caches.leases, node), now) !== undefined;
  }

  async reconcile(key: string): Promise<number | undefined> {
    try {
      if (key.startsWith('remedier/')) return await this.#remedier(key.slice('remedier/'.length));
      return await this.#node(key.slice('node/'.length));
    } catch (err) {
      if (err instanceof NotLeader) return undefined;
      throw err;
    }
  }

  #guard(): void {
    if (!this.#o.mayWrite()) throw new NotLeader();
  }

  #op(name: string): OperationObject | undefined {
    const cached = this.#o.caches.operations.get(name);
    const w = this.#written.get(name);
    if (w === undefined) return cached;
    if (cached?.metadata.resourceVersion === w.fromRv) return w.obj;
    this.#written.delete(name);
    return cached;
  }

  #episodeOps(node: string, remedier: string, episode: string): OperationObject[] {
    const out = new Map<string, OperationObject>();
    const consider = (o: OperationObject): void => {
      const l = o.metadata.labels ?? {};
      if (o.spec.node === node && l[LABEL_ACTOR] === 'controller' && o.spec.remedier === remedier && l[LABEL_EPISODE] === episode) out.set(o.metadata.name, this.#op(o.metadata.name) ?? o);
    };
    for (const o of this.#o.caches.operations.snapshot().values()) consider(o);
    for (const w of this.#written.values()) consider(w.obj);
    return [...out.values()].sort((a, b) => a.spec.step - b.spec.step);
  }

  /** Unfinished central operations on a node, whatever their episode: a node that came back finishes them. */
  #unfinished(node: string): OperationObject[] {
    const out = new Map<string, OperationObject>();
    for (const o of [...this.#o.caches.operations.snapshot().values(), ...[...this.#written.values()].map((w) => w.obj)]) {
      const l = o.metadata.labels ?? {};
      if (o.spec.node !== node || l[LABEL_ACTOR] !== 'controller') continue;
      const cur = this.#op(o.metadata.name) ?? o;
      if (!FINISHED.has(cur.status?.phase ?? 'Pending')) out.set(cur.metadata.name, cur);
    }
    return [...out.values()];
  }

  async #node(name: string): Promise<number | undefined> {
    const { caches, clock } = this.#o;
    const now = clock.now();
    const node = caches.nodes.get(name);
    const lease = agentLeaseOf(caches.leases, name);
    const remedier = centralRemedierFor(caches.remediers.snapshot().values(), node?.metadata.labels ?? {});
    const down = unreachable(node, lease, now);
    const open = this.#unfinished(name);
    await this.#withdraw(name);
    if (down === undefined || remedier === undefined || remedier.spec.central === undefined) {
      if (open.length > 0) await this.#recovered(name, open, remedier);
      else {
        // Back after a ladder that ran out (or a withdrawn replacement): our cordon and taint go.
        const c = remedier?.spec.central;
        if (down === undefined && c !== undefined && remedier !== undefined && (node?.spec?.taints ?? []).some((t) => taintId(t) === taintId(c.taint)) && !this.#marked(name)) await this.#restore(name, remedier, c);
        this.active.delete(name);
      }
      return undefined;
    }
    const central = remedier.spec.central;
    const graceMs = durationMs(central.unreachableFor);
    const due = down.since + graceMs;
    if (now < due && open.length === 0) return due - now;
    this.active.add(name);
    const episode = String(Math.floor(down.since / 1000));
    const ops = this.#episodeOps(name, remedier.metadata.name, episode);
    // Anything left from an earlier episode is over: the node came back in between.
    for (const o of open) if (o.metadata.labels?.[LABEL_EPISODE] !== episode) await this.#finish(o, 'Skipped', 'NotNeeded', 'the node came back in between; a new episode began');
    const latest = ops.at(-1);
    if (latest !== undefined && !FINISHED.has(latest.status?.phase ?? 'Pending')) return this.#drive(latest, remedier, central, down);
    if (this.#storming(remedier)) return this.#retryMs();
    const next = latest === undefined ? 0 : latest.spec.step + 1;
    const step = central.steps[next];
    if (step === undefined) {
      this.#event({ apiVersion: 'v1', kind: 'Node', name, uid: node?.metadata.uid ?? name }, 'Warning', 'CentralRemedyExhausted', `every central step of NodeRemedier ${remedier.metadata.name} was tried; the node stays unreachable; a person must look`, `exhausted/${episode}`);
      await this.#o.coordinator.release(name, holderOf(remedier));
      this.active.delete(name);
      return undefined;
    }
    if (!(await this.#confirm(name, down))) return this.#retryMs();
    const op = await this.#create(name, remedier, step, next, episode, down);
    return this.#drive(op, remedier, central, down);
  }

  /**
   * Reads the node and its agent's Lease from the apiserver, not the cache: a controller cut off
   * from the apiserver sees every Lease stale there, and must act on nothing. False while the
   * cache is behind (the node is back, or in a new episode, as the apiserver has it).
   */
  async #confirm(node: string, down: Unreachable): Promise<boolean> {
    let live: Unreachable | undefined;
    try {
      const [n, l] = await Promise.all([
        this.#o.client.get<NodeObj>(`/api/v1/nodes/${encodeURIComponent(node)}`),
        this.#o.client.get<LeaseObj>(`/apis/coordination.k8s.io/v1/namespaces/${LEASE_NAMESPACE}/leases/${encodeURIComponent(agentLeaseName(node))}`),
      ]);
      // A Lease of that name that is another node's (agentLeaseOf) vouches for nothing here.
      live = unreachable(n, agentLeaseNode(l) === node ? l : undefined, this.#o.clock.now());
    } catch (err) {
      this.stats.partitioned += 1;
      throw new Error(`cannot confirm ${node} unreachable with a live read; acting on nothing: ${errorMessage(err)}`, { cause: err });
    }
    return live !== undefined && Math.floor(live.since / 1000) === Math.floor(down.since / 1000);
  }

  #retryMs(): number {
    return this.#o.retryMs ?? 15_000;
  }

  #storming(r: RemedierObject): boolean {
    return r.status?.stormBreaker?.state === 'Open';
  }

  async #create(node: string, r: RemedierObject, step: CentralStep, index: number, episode: string, down: Unreachable): Promise<OperationObject> {
    this.#guard();
    const name = centralOperationName(node, index, episode);
    const existing = this.#op(name);
    if (existing !== undefined) return existing;
    const body = {
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'RemedyOperation',
      metadata: { name, labels: { [NODE_LABEL]: labelValueOf(node), [LABEL_ACTOR]: 'controller', [LABEL_REMEDIER]: labelValueOf(r.metadata.name), [LABEL_EPISODE]: episode } },
      spec: {
        node,
        actor: 'controller',
        problem: {
          conditionType: 'AgentUnreachable',
          reason: down.ready === 'Unknown' ? 'NodeStatusUnknown' : 'NodeNotReady',
          message: `agent Lease expired at ${iso(down.leaseExpiredAt)} and Node Ready=${down.ready}`,
          since: iso(down.since),
        },
        action: step.action,
        risk: 'disruptive',
        remedier: r.metadata.name,
        rule: 'central',
        step: index,
        dryRun: r.spec.dryRun === true,
      },
    };
    try {
      const created = await this.#o.client.request<OperationObject>('POST', OPS, { body });
      this.#remember(created);
      return created;
    } catch (err) {
      if (classifyKubeError(err) !== 'conflict') throw err;
      const got = await this.#o.client.get<OperationObject>(`${OPS}/${encodeURIComponent(name)}`);
      this.#remember(got);
      return got;
    }
  }

  #remember(obj: OperationObject): void {
    this.#written.set(obj.metadata.name, { fromRv: this.#o.caches.operations.get(obj.metadata.name)?.metadata.resourceVersion, obj });
  }

  async #status(op: OperationObject, status: Record<string, unknown>): Promise<OperationObject> {
    this.#guard();
    const out = await this.#o.client.request<OperationObject>('PATCH', `${OPS}/${encodeURIComponent(op.metadata.name)}/status`, { contentType: MERGE, body: { status } });
    this.#remember(out);
    return out;
  }

  async #annotate(op: OperationObject, annotations: Record<string, string>): Promise<OperationObject> {
    this.#guard();
    const out = await this.#o.client.request<OperationObject>('PATCH', `${OPS}/${encodeURIComponent(op.metadata.name)}`, { contentType: MERGE, body: { metadata: { annotations } } });
    this.#remember(out);
    return out;
  }

  async #finish(op: OperationObject, phase: 'Succeeded' | 'Failed' | 'Skipped', result: string | undefined, message: string): Promise<void> {
    await this.#status(op, { phase, endTime: iso(this.#o.clock.now()), ...(result === undefined ? {} : { result }), message: message.slice(0, 32768) });
    await this.#o.gate.release(op.metadata.name).catch((err: unknown) => this.#o.log.warn({ operation: op.metadata.name, err: errorMessage(err) }, 'Cannot release permit; it expires'));
  }

  #nodeTarget(name: string): EventTarget {
    return { apiVersion: 'v1', kind: 'Node', name, uid: this.#o.caches.nodes.get(name)?.metadata.uid ?? name };
  }

  #event(target: EventTarget, type: 'Normal' | 'Warning', reason: string, message: string, key: string): void {
    this.#o.events.record(target, type, reason, message, key);
  }

  /** One step of one operation: start it (claim, live check, gate, act) or verify it. */
  async #drive(op: OperationObject, r: RemedierObject, central: CentralRemedy, down: Unreachable): Promise<number | undefined> {
    const node = op.spec.node;
    const step = central.steps[op.spec.step];
    if (step === undefined) {
      await this.#finish(op, 'Failed', 'Error', `step ${op.spec.step} is no longer in NodeRemedier ${r.metadata.name}`);
      return 0;
    }
    const timeoutMs = durationMs(step.timeout);
    const phase = op.status?.phase ?? 'Pending';
    if (phase === 'Running' || phase === 'Verifying') return this.#verify(op, r, central, step, timeoutMs);
    if (this.#storming(r)) return this.#retryMs();

    // Live reads: the cache of a controller cut off from the apiserver shows every Lease stale.
    if (!(await this.#confirm(node, down))) return this.#retryMs();
    // Then the node Lease, so a rollout batch that holds the node defers us.
    const claim = await this.#o.coordinator.claim(node, holderOf(r), timeoutMs + 60_000);
    if (!claim.ok) {
      this.stats.deferred += 1;
      const message = `deferred: node Lease held by ${claim.holder} until ${claim.until}`;
      if (op.status?.message !== message) await this.#status(op, { phase: 'Pending', message });
      this.#event(this.#nodeTarget(node), 'Normal', 'CentralRemedyDeferred', `${op.spec.action} deferred: the node is held by ${claim.holder}`, `deferred/${op.metadata.name}/${claim.holder}`);
      return this.#retryMs();
    }
    if (op.spec.dryRun === true) {
      await this.#finish(op, 'Skipped', 'DryRun', `dry run: would ${describe(op.spec.action, central)}`);
      return 0;
    }
    const decision = await this.#o.gate.decide({ node, action: op.spec.action, risk: 'disruptive', reason: `agent unreachable: ${op.spec.action}`, operation: op.metadata.name, remedier: r.metadata.name });
    if (!decision.allowed) {
      this.stats.denied += 1;
      const why = decision.path.filter((s) => !s.allowed).map((s) => s.reason).join('; ');
      const message = `waiting for the risk gate: ${why}`;
      if (op.status?.message !== message) await this.#status(op, { phase: 'Pending', gate: gateStatus(decision), message });
      return this.#retryMs();
    }
    this.stats.steps += 1;
    const started = this.#o.clock.now();
    op = await this.#status(op, { phase: 'Running', gate: gateStatus(decision), startTime: iso(started), attempts: (op.status?.attempts ?? 0) + 1, message: `${op.spec.action} started` });
    try {
      switch (op.spec.action) {
        case 'cordon': {
          const c = await cordon(this.#o.client, node, this.#o.clock);
          const t = await addTaint(this.#o.client, node, { key: central.taint.key, effect: central.taint.effect }, this.#o.clock);
          await this.#finish(op, 'Succeeded', undefined, `cordon: ${c}; taint ${central.taint.key}:${central.taint.effect}: ${t}; workloads move while the node is repaired`);
          this.#event(this.#nodeTarget(node), 'Warning', 'CentralCordon', `agent unreachable: cordoned and tainted ${central.taint.key}:${central.taint.effect} (NodeRemedier ${r.metadata.name})`, `cordon/${op.metadata.name}`);
          return 0;
        }
        case 'power-cycle':
          return await this.#powerCycle(op, node);
        case 'replace': {
          this.#guard();
          await this.#o.client.request('PATCH', `${MACHINES}/${encodeURIComponent(node)}`, {
            contentType: MERGE,
            body: { metadata: { annotations: { [ANNOTATION_REPLACE]: `NodeRemedier ${r.metadata.name}: agent unreachable since ${iso(down.since)}; earlier steps did not bring it back`.slice(0, 1024), [ANNOTATION_REPLACE_AT]: iso(this.#o.clock.now()) } } },
          });
          await this.#replacement(node, 'True', 'AgentUnreachable', `agent unreachable since ${iso(down.since)}; NodeRemedier ${r.metadata.name} tried every central step before this; remove annotation ${ANNOTATION_REPLACE} to withdraw`);
          await this.#finish(op, 'Succeeded', 'NotFixed', `Machine ${node} marked for replacement (annotation ${ANNOTATION_REPLACE}, condition ${REPLACEMENT_CONDITION}=True)`);
          this.#event({ apiVersion: 'kubenode.io/v1alpha1', kind: 'Machine', name: node, uid: String(this.#o.caches.machines.get(node)?.metadata.uid ?? node) }, 'Warning', 'ReplacementRequested', `agent unreachable since ${iso(down.since)}; central remedies exhausted`, `replace/${op.metadata.name}`);
          return 0;
        }
        default:
          await this.#finish(op, 'Failed', 'Error', `unknown central action ${op.spec.action}`);
          return 0;
      }
    } catch (err) {
      if (err instanceof NotLeader) throw err;
      await this.#finish(op, 'Failed', 'Error', `${op.spec.action} failed: ${errorMessage(err)}`);
      this.#event(this.#nodeTarget(node), 'Warning', 'CentralRemedyFailed', `${op.spec.action} failed: ${errorMessage(err)}; escalating`, `failed/${op.metadata.name}`);
      return 0;
    }
  }

  async #powerCycle(op: OperationObject, node: string): Promise<number> {
    const machine = this.#o.caches.machines.get(node);
    const bmc = machine?.spec?.bmc;
    if (bmc === undefined) throw new Error(`Machine ${node} has no spec.bmc: no out-of-band way to power cycle it`);
    const ref = bmc.credentialsSecret;
    let secret: { data?: Record<string, string> };
    try {
      secret = await this.#o.client.get(`/api/v1/namespaces/${encodeURIComponent(ref.namespace)}/secrets/${encodeURIComponent(ref.name)}`);
    } catch (err) {
      throw new Error(`cannot read the BMC credentials Secret ${ref.namespace}/${ref.name} (${classifyKubeError(err)}): ${errorMessage(err)}`, { cause: err });
    }
    const field = (k: string): string => {
      const v = secret.data?.[k];
      if (v === undefined || v === '') throw new Error(`Secret ${ref.namespace}/${ref.name} has no ${k} key`);
      return Buffer.from(v, 'base64').toString('utf8');
    };
    const credentials = { username: field('username'), password: field('password') };
    const before = machine?.status?.node?.bootId ?? '';
    // Written before the cycle: a leader taking over mid-way verifies instead of cycling again.
    op = await this.#annotate(op, { [ANN_CYCLED_AT]: iso(this.#o.clock.now()), [ANN_BOOT_BEFORE]: before });
    this.stats.powerCycles += 1;
    const said = await powerCycle(this.#o.host, bmc, credentials, { timeoutMs: this.#o.ipmiTimeoutMs ?? 60_000 });
    await this.#status(op, { phase: 'Verifying', message: `power cycled through BMC ${bmc.address} (${said}); waiting for the agent to come back with a new boot ID` });
    this.#event(this.#nodeTarget(node), 'Warning', 'PowerCycled', `agent unreachable: power cycled through BMC ${bmc.address}`, `cycle/${op.metadata.name}`);
    return 1000;
  }

  async #verify(op: OperationObject, r: RemedierObject, central: CentralRemedy, step: CentralStep, timeoutMs: number): Promise<number | undefined> {
    const node = op.spec.node;
    const now = this.#o.clock.now();
    const started = Date.parse(op.status?.startTime ?? '') || now;
    if (op.spec.action === 'power-cycle') {
      const back = this.#rebooted(op);
      if (back !== undefined) {
        await this.#finish(op, 'Succeeded', 'Fixed', back);
        await this.#restore(node, r, central);
        this.#event(this.#nodeTarget(node), 'Normal', 'CentralRemedySucceeded', `the agent came back after the power cycle (new boot ID); uncordoned`, `ok/${op.metadata.name}`);
        return undefined;
      }
    }
    if (now - started >= timeoutMs) {
      await this.#finish(op, 'Failed', 'NotFixed', `${op.spec.action}: the agent did not come back with a new boot ID within ${step.timeout}; escalating`);
      return 0;
    }
    await this.#o.gate.renew(op.metadata.name).catch(() => undefined);
    return Math.min(5000, timeoutMs - (now - started));
  }

  /** The verification of a power cycle: the agent's Lease renewed since, with a new boot ID on its Machine. */
  #rebooted(op: OperationObject): string | undefined {
    const node = op.spec.node;
    const cycledAt = Date.parse(op.metadata.annotations?.[ANN_CYCLED_AT] ?? op.status?.startTime ?? '');
    const before = op.metadata.annotations?.[ANN_BOOT_BEFORE] ?? '';
    const renewed = Date.parse(agentLeaseOf(this.#o.caches.leases, node)?.spec?.renewTime ?? '');
    const boot = this.#o.caches.machines.get(node)?.status?.node?.bootId ?? '';
    if (!(renewed > cycledAt) || boot === '' || boot === before) return undefined;
    return `the agent is back: Lease renewed ${iso(renewed)}, boot ID ${boot.slice(0, 8)} (was ${before === '' ? 'unknown' : before.slice(0, 8)})`;
  }

  /** The node came back (its agent renews again): finish what is open, undo our cordon and taint, hand the node back. */
  async #recovered(node: string, open: OperationObject[], r: RemedierObject | undefined): Promise<void> {
    for (const op of open) {
      const fixed = op.status?.phase === 'Running' || op.status?.phase === 'Verifying';
      const back = op.spec.action === 'power-cycle' ? this.#rebooted(op) : undefined;
      await this.#finish(op, fixed ? 'Succeeded' : 'Skipped', fixed ? 'Fixed' : 'NotNeeded', back ?? (op.spec.action === 'power-cycle' && fixed ? 'the node is reachable again, with the same boot ID (it did not reboot)' : 'the node is reachable again'));
    }
    const remedier = r ?? this.#o.caches.remediers.get(open[0]?.spec.remedier ?? '');
    const machine = this.#o.caches.machines.get(node);
    if (remedier?.spec.central !== undefined && machine?.metadata.annotations?.[ANNOTATION_REPLACE] === undefined) await this.#restore(node, remedier, remedier.spec.central);
    this.active.delete(node);
  }

  #marked(node: string): boolean {
    return this.#o.caches.machines.get(node)?.metadata.annotations?.[ANNOTATION_REPLACE] !== undefined;
  }

  /** The ReplacementRequested=True condition of a Machine whose annotation a person removed. */
  #withdrawnRequest(node: string): Condition | undefined {
    const m = this.#o.caches.machines.get(node);
    const c = m?.status?.conditions?.find((x) => x.type === REPLACEMENT_CONDITION);
    return c?.status === 'True' && m?.metadata.annotations?.[ANNOTATION_REPLACE] === undefined ? c : undefined;
  }

  async #withdraw(node: string): Promise<void> {
    if (this.#withdrawnRequest(node) === undefined) return;
    await this.#replacement(node, 'False', 'ReplacementWithdrawn', `annotation ${ANNOTATION_REPLACE} was removed: the Machine is no longer marked for replacement`);
    this.#event({ apiVersion: 'kubenode.io/v1alpha1', kind: 'Machine', name: node, uid: String(this.#o.caches.machines.get(node)?.metadata.uid ?? node) }, 'Normal', 'ReplacementWithdrawn', `annotation ${ANNOTATION_REPLACE} removed; the Machine is no longer marked for replacement`, `withdrawn/${this.#o.clock.now()}`);
  }

  /** The Machine's ReplacementRequested condition, by server-side apply under our own manager (the lifecycle's conditions stay the lifecycle's). */
  async #replacement(node: string, status: 'True' | 'False', reason: string, message: string): Promise<void> {
    this.#guard();
    const prior = this.#o.caches.machines.get(node)?.status?.conditions?.find((c) => c.type === REPLACEMENT_CONDITION);
    const lastTransitionTime = prior !== undefined && prior.status === status ? prior.lastTransitionTime : kubeTime(this.#o.clock.now());
    const body = { apiVersion: 'kubenode.io/v1alpha1', kind: 'Machine', metadata: { name: node }, status: { conditions: [{ type: REPLACEMENT_CONDITION, status, reason, message: message.slice(0, 32768), lastTransitionTime }] } };
    await this.#o.client.patch(`${MACHINES}/${encodeURIComponent(node)}/status`, body, 'apply', { query: { fieldManager: REMEDY_FIELD_MANAGER, force: 'true' } });
  }

  /** Uncordons (only our own cordon) and removes our taint; hands the node Lease back. */
  async #restore(node: string, r: RemedierObject, central: CentralRemedy): Promise<void> {
    this.#guard();
    // The kubelet (or whoever) writes the Node too: a 409 means read again and recompute.
    for (let attempt = 1; ; attempt++) {
      const n = await this.#o.client.get<NodeObj>(`/api/v1/nodes/${encodeURIComponent(node)}`);
      const taints = n.spec?.taints ?? [];
      const kept = taints.filter((t) => !(t.key === central.taint.key && t.effect === central.taint.effect));
      if (kept.length === taints.length) break;
      try {
        await this.#o.client.request('PATCH', `/api/v1/nodes/${encodeURIComponent(node)}`, { contentType: MERGE, body: { metadata: { resourceVersion: n.metadata.resourceVersion }, spec: { taints: kept } } });
        break;
      } catch (err) {
        if (classifyKubeError(err) !== 'conflict' || attempt >= 8) throw err;
      }
    }
    const n = await this.#o.client.get<NodeObj>(`/api/v1/nodes/${encodeURIComponent(node)}`);
    if (n.metadata.annotations?.[CORDONED_BY] === AGENT_ID) await uncordon(this.#o.client, node);
    await this.#o.coordinator.release(node, holderOf(r));
  }

  /**
   * One NodeRemedier's status: its counts (derived from the nodes and the RemedyOperations in the
   * API, so a new leader computes the same) and its storm breaker, in one write. A change of the
   * counts alone waits until statusEveryMs after the last write: a burst of operations is one write.
   */
  async #remedier(name: string): Promise<number | undefined> {
    const r = this.#remedierView(name);
    if (r === undefined) {
      this.#remediersWritten.delete(name);
      this.#statusAt.delete(name);
      return undefined;
    }
    const now = this.#o.clock.now();
    const counts = this.#counts(r);
    const storm = this.#stormChange(r, counts.matchedNodes, now);
    const changed = !sameCounts(r, counts);
    if (storm.write === undefined && !changed) return storm.wake;
    if (storm.write === undefined) {
      const wait = (this.#statusAt.get(name) ?? -Infinity) + this.#statusEveryMs() - now;
      if (wait > 0) return Math.min(wait, storm.wake ?? wait);
    }
    await this.#remedierStatus(r, { ...counts, ...(storm.write?.status ?? {}) }, storm.write?.conditions ?? r.status?.conditions ?? []);
    this.#statusAt.set(name, now);
    storm.write?.after();
    return storm.wake;
  }

  #statusEveryMs(): number {
    return this.#o.statusEveryMs ?? 2000;
  }

  /** The NodeRemedier as last written by us, until the cache moves past it. */
  #remedierView(name: string): RemedierObject | undefined {
    const cached = this.#o.caches.remediers.get(name);
    const w = this.#remediersWritten.get(name);
    if (w === undefined || cached === undefined) return cached;
    if (cached.metadata.resourceVersion === w.fromRv) return w.obj;
    this.#remediersWritten.delete(name);
    return cached;
  }

  /** Every RemedyOperation as we know it: the cache, and what we wrote that it does not show yet. */
  *#operations(): Iterable<OperationObject> {
    for (const o of this.#o.caches.operations.snapshot().values()) if (!this.#written.has(o.metadata.name)) yield o;
    for (const name of [...this.#written.keys()]) {
      const o = this.#op(name);
      if (o !== undefined) yield o;
    }
  }

  #counts(r: RemedierObject): RemedierCounts {
    let matchedNodes = 0;
    for (const n of this.#o.caches.nodes.snapshot().values()) if (selectorMatches(r.spec.nodeSelector, n.metadata.labels ?? {})) matchedNodes += 1;
    let activeOperations = 0;
    let succeeded = 0;
    let failed = 0;
    for (const o of this.#operations()) {
      if (o.spec.remedier !== r.metadata.name) continue;
      const phase = o.status?.phase ?? 'Pending';
      if (!FINISHED.has(phase)) activeOperations += 1;
      else if (phase === 'Failed' || (phase === 'Succeeded' && o.status?.result === 'NotFixed')) failed += 1;
      else if (phase === 'Succeeded') succeeded += 1;
    }
    return { ...(r.metadata.generation === undefined ? {} : { observedGeneration: r.metadata.generation }), matchedNodes, activeOperations, succeeded, failed };
  }

  /** NodeRemedier keys whose status a change of this RemedyOperation may move. */
  keysForOperation(e: InformerEvent<OperationObject>): string[] {
    if (e.type === 'synced') return [];
    const names = new Set<string>();
    const add = (o: OperationObject): void => {
      if (o.spec.remedier !== undefined) names.add(o.spec.remedier);
    };
    if (e.type === 'update') {
      if (e.old.status?.phase === e.object.status?.phase && e.old.status?.result === e.object.status?.result && e.old.spec.remedier === e.object.spec.remedier) return [];
      add(e.old);
    }
    add(e.object);
    return [...names].map((n) => `remedier/${n}`);
  }

  /** NodeRemedier keys whose matchedNodes a change of this Node may move: only a new, gone or relabelled Node does. */
  keysForNode(e: InformerEvent<NodeObj>): string[] {
    if (e.type === 'synced') return [];
    const labels = e.object.metadata.labels ?? {};
    const old = e.type === 'update' ? (e.old.metadata.labels ?? {}) : undefined;
    if (old !== undefined && sameLabels(old, labels)) return [];
    const keys: string[] = [];
    for (const r of this.#o.caches.remediers.snapshot().values()) {
      if (selectorMatches(r.spec.nodeSelector, labels) || (old !== undefined && selectorMatches(r.spec.nodeSelector, old))) keys.push(`remedier/${r.metadata.name}`);
    }
    return keys;
  }

  /** The storm breaker of one NodeRemedier: opened by the count, closed only by a person. */
  #stormChange(r: RemedierObject, selected: number, now: number): StormChange {
    if (r.spec.stormBreaker === undefined) return {};
    const name = r.metadata.name;
    const b = r.status?.stormBreaker ?? {};
    const trippedAt = Date.parse(b.trippedAt ?? '');
    let resetAt = Date.parse(b.resetAt ?? '');
    if (b.state !== 'Open' && Number.isFinite(trippedAt) && !(resetAt >= trippedAt)) {
      // A person closed it without saying when: from now on, the operations before do not count.
      resetAt = now;
      return {
        write: {
          status: { stormBreaker: { ...b, state: 'Closed', resetAt: iso(now), resetBy: b.resetBy ?? 'unknown' } },
          conditions: condition(r, 'False', 'Reset', `closed ${iso(now)} by ${b.resetBy ?? 'a person'}`, now),
          after: () => this.#event(remedierTarget(r), 'Normal', 'StormBreakerReset', `storm breaker closed by ${b.resetBy ?? 'a person'}; operations resume`, `reset/${iso(now)}`),
        },
      };
    }
    if (b.state === 'Open') return {};
    const v = stormVerdict(name, r.spec.stormBreaker, this.#operations(), selected, now, Number.isFinite(resetAt) ? resetAt : undefined);
    if (!v.trip) return { wake: durationMs(r.spec.stormBreaker.window) };
    return {
      write: {
        status: { stormBreaker: { state: 'Open', trippedAt: iso(now), reason: v.reason.slice(0, 1024), ...(b.resetAt === undefined ? {} : { resetAt: b.resetAt }), ...(b.resetBy === undefined ? {} : { resetBy: b.resetBy }) } },
        conditions: condition(r, 'True', 'TooManyOperations', v.reason, now),
        after: () => {
          this.#event(remedierTarget(r), 'Warning', STORM_CONDITION, `storm breaker open: ${v.reason}; agents and the controller start no operation of this NodeRemedier until a person sets status.stormBreaker.state=Closed`, `trip/${iso(now)}`);
          this.#o.log.warn({ remedier: name, nodes: v.nodes.length, selected }, 'Storm breaker tripped');
        },
      },
    };
  }

  async #remedierStatus(r: RemedierObject, status: Record<string, unknown>, conditions: Condition[]): Promise<void> {
    this.#guard();
    const out = await this.#o.client.request<RemedierObject>('PUT', `${REMEDIERS}/${encodeURIComponent(r.metadata.name)}/status`, {
      body: { ...r, status: { ...(r.status ?? {}), ...status, conditions } },
    });
    this.#remediersWritten.set(r.metadata.name, { fromRv: this.#o.caches.remediers.get(r.metadata.name)?.metadata.resourceVersion, obj: out });
  }
}

interface StormChange {
  write?: { status: Record<string, unknown>; conditions: Condition[]; after: () => void };
  /** When to count again. */
  wake?: number;
}

export interface RemedierCounts {
  observedGeneration?: number;
  matchedNodes: number;
  activeOperations: number;
  succeeded: number;
  failed: number;
}

function sameCounts(r: RemedierObject, c: RemedierCounts): boolean {
  const s = r.status ?? {};
  return s.observedGeneration === c.observedGeneration && s.matchedNodes === c.matchedNodes && s.activeOperations === c.activeOperations && s.succeeded === c.succeeded && s.failed === c.failed;
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

function taintId(t: { key: string; effect: string } | undefined): string {
  return t === undefined ? '' : `${t.key}:${t.effect}`;
}

function holderOf(r: RemedierObject): string {
  return `remedy/${r.metadata.name}`;
}

function remedierTarget(r: RemedierObject): EventTarget {
  return { apiVersion: 'kubenode.io/v1alpha1', kind: 'NodeRemedier', name: r.metadata.name, uid: r.metadata.uid ?? r.metadata.name };
}

function condition(r: RemedierObject, status: 'True' | 'False', reason: string, message: string, now: number): Condition[] {
  const list = (r.status?.conditions ?? []).filter((c) => c.type !== STORM_CONDITION);
  const old = r.status?.conditions?.find((c) => c.type === STORM_CONDITION);
  list.push({ type: STORM_CONDITION, status, reason, message: message.slice(0, 2000), lastTransitionTime: old !== undefined && old.status === status ? old.lastTransitionTime : iso(now) });
  return list;
}

function describe(action: string, central: CentralRemedy): string {
  if (action === 'cordon') return `cordon and taint ${central.taint.key}:${central.taint.effect}`;
  if (action === 'power-cycle') return 'power cycle through the BMC';
  return 'mark the Machine for replacement';
}
