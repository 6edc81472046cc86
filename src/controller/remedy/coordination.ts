// The per-node coordination Lease (medik8s's pattern): coordination.k8s.io/v1 Lease
// kubenode-node-<node> in the controller's namespace, held by whichever acts on the node — a
// central remedy (holder remedy/<NodeRemedier>) or rollout batches (holder rollout/<set>). Taken
// with a create or a resourceVersion-guarded update, so of two claimants one gets 409 and loses.
// A claim has a duration and is never taken over before it ran out (Kured's lesson: a lock
// without one stops the fleet for ever when its holder dies).
//
// Several rollouts may hold one node at once (two sets updating different components of it are
// each held by their own budget and gates); a remedy holds it alone. Every holder and when its
// claim runs out are in the annotation kubenode.io/holders, and the Lease's own holderIdentity and
// duration cover them all, so a node is handed back only when its last holder lets go: one set's
// batch ending must not lift the remedy protection of another set's batch still on the node.
//
// With the controller's informer on these Leases, a claim or release is one write against the
// cached resourceVersion (a POST when there is no Lease yet); only a conflict costs a read.
import { createHash } from 'node:crypto';
import { labelValueOf, NODE_LABEL } from '../../api/common.ts';
import { errorMessage } from '../../errors.ts';
import type { Clock } from '../../host/clock.ts';
import { classifyKubeError, type KubeClient } from '../../kube/client.ts';
import type { Logger } from '../../log.ts';
import { microTime } from '../../report/kube/lease.ts';
import { eachBounded } from '../../util/parallel.ts';
import type { InformerEvent } from '../../watch/informer.ts';

export const NODE_LEASE_PREFIX = 'kubenode-node-';
/** A rollout batch's holder identity: this prefix and the set's name. */
export const ROLLOUT_HOLDER_PREFIX = 'rollout/';
/** The label selecting the coordination Leases (what the controller's informer on them watches). */
export const COORDINATION_SELECTOR = 'kubenode.io/coordination=node';
const LABEL = 'kubenode.io/coordination';
/** The node's full name (the label holds a hash of a name past 63 characters). */
const NODE_ANNOTATION = 'kubenode.io/node';
/** JSON: holder → when its claim runs out (RFC 3339). */
export const HOLDERS_ANNOTATION = 'kubenode.io/holders';

export interface CoordinationLease {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string>; annotations?: Record<string, string>; [key: string]: unknown };
  spec?: { holderIdentity?: string; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string; leaseTransitions?: number };
  [key: string]: unknown;
}

/** What the coordinator reads instead of a GET: the controller's informer on the coordination Leases. */
export interface CoordinationCache {
  get(key: string): CoordinationLease | undefined;
  snapshot(): ReadonlyMap<string, CoordinationLease>;
  on(handler: (event: InformerEvent<CoordinationLease>) => void): unknown;
}

export type ClaimResult = { ok: true } | { ok: false; holder: string; until: string };

/** What a rollout uses: claim a batch's machines one by one, hand back all but the active batch's. */
export interface RolloutCoordination {
  /** Takes or renews the machine for holder; refused while a remedy's claim on it runs. */
  claim(machine: string, holder: string, ttlMs: number): Promise<ClaimResult>;
  /** Hands back every machine holder has except those in keep (its active batch), which is read at each release. */
  releaseExcept(holder: string, keep: ReadonlySet<string>): Promise<void>;
}

/** The Lease's name: the prefix and the node name, or a hash of it past the 253 characters a name may have. */
export function nodeLeaseName(node: string): string {
  const name = `${NODE_LEASE_PREFIX}${node}`;
  return name.length <= 253 ? name : `${NODE_LEASE_PREFIX}${createHash('sha256').update(node).digest('hex').slice(0, 32)}`;
}

export const isRolloutHolder = (holder: string): boolean => holder.startsWith(ROLLOUT_HOLDER_PREFIX);

/** An object we wrote, read instead of the cache while the cache still has the version it replaced. */
interface Written { fromRv: string | undefined; obj: CoordinationLease }

const ATTEMPTS = 3;

export class NodeCoordinator implements RolloutCoordination {
  readonly #client: KubeClient;
  readonly #path: string;
  readonly #namespace: string;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #cache: CoordinationCache | undefined;
  readonly #written = new Map<string, Written>();
  readonly #released = new Set<(node: string, holder: string) => void>();

  constructor(client: KubeClient, namespace: string, clock: Clock, log: Logger, cache?: CoordinationCache) {
    this.#client = client;
    this.#namespace = namespace;
    this.#path = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases`;
    this.#clock = clock;
    this.#log = log;
    this.#cache = cache;
    cache?.on((e) => this.#observe(e));
  }

  /**
   * Calls fn when a holder lets go of a node or its Lease goes (from the informer; a claim that
   * runs out has no event, and whoever was refused knows until when it runs).
   */
  onRelease(fn: (node: string, holder: string) => void): void {
    this.#released.add(fn);
  }

  /** Takes or renews the node's Lease for holder; refused while another holder's claim runs (another rollout's excepted, for a rollout). */
  async claim(node: string, holder: string, ttlMs: number): Promise<ClaimResult> {
    const name = nodeLeaseName(node);
    for (let attempt = 1; ; attempt++) {
      const now = this.#clock.now();
      const current = attempt === 1 && this.#cache !== undefined ? this.#cached(name) : await this.#read(name);
      const holders = current === undefined ? new Map<string, number>() : liveHolders(current, now);
      for (const [other, until] of holders) {
        if (other !== holder && !(isRolloutHolder(holder) && isRolloutHolder(other))) return { ok: false, holder: other, until: new Date(until).toISOString() };
      }
      holders.set(holder, Math.max(holders.get(holder) ?? 0, now + Math.max(1000, ttlMs)));
      try {
        await this.#write(node, name, current, holders, now);
        return { ok: true };
      } catch (err) {
        // A conflict, or a Lease deleted under a version we still had: read it and decide again.
        const kind = classifyKubeError(err);
        if ((kind !== 'conflict' && kind !== 'not-found') || attempt >= ATTEMPTS) throw err;
      }
    }
  }

  /** Hands the node back if holder has it: the holder struck off, and the Lease emptied when it was the last. */
  async release(node: string, holder: string): Promise<void> {
    await this.#release(node, holder, new Set());
  }

  /** keep is asked before every write: a claim made for it meanwhile is not undone by a retry. */
  async #release(node: string, holder: string, keep: ReadonlySet<string>): Promise<void> {
    const name = nodeLeaseName(node);
    for (let attempt = 1; ; attempt++) {
      if (keep.has(node)) return;
      const now = this.#clock.now();
      const current = attempt === 1 && this.#cache !== undefined ? this.#cached(name) : await this.#read(name);
      if (current === undefined) return;
      const holders = liveHolders(current, now);
      if (!holders.delete(holder)) return;
      try {
        await this.#write(node, name, current, holders, now);
        return;
      } catch (err) {
        const kind = classifyKubeError(err);
        if (kind === 'not-found') return;
        // Another holder wrote it since: strike this one off that version.
        if (kind !== 'conflict' || attempt >= ATTEMPTS) throw err;
      }
    }
  }

  /** The holder named on a node's Lease, when its claim runs now. */
  async holderOf(node: string): Promise<{ holder: string; until: string } | undefined> {
    const name = nodeLeaseName(node);
    const current = this.#cache !== undefined ? this.#cached(name) : await this.#read(name);
    const identity = current?.spec?.holderIdentity ?? '';
    const until = current === undefined ? undefined : liveHolders(current, this.#clock.now()).get(identity);
    return until === undefined ? undefined : { holder: identity, until: new Date(until).toISOString() };
  }

  /** keep is read at each release, so the caller may add to it while this runs. */
  async releaseExcept(holder: string, keep: ReadonlySet<string>): Promise<void> {
    const now = this.#clock.now();
    const mine = (await this.#all()).filter((l) => mentions(l, holder) && liveHolders(l, now).has(holder)).map(nodeOf).filter((n) => !keep.has(n));
    await eachBounded(mine, CLAIMS_IN_FLIGHT, async (node) => {
      try {
        await this.#release(node, holder, keep);
      } catch (err) {
        // It runs out on its own, and the next pass tries again.
        this.#log.warn({ node, holder, err: errorMessage(err) }, 'Cannot release a node Lease');
      }
    });
  }

  async #all(): Promise<CoordinationLease[]> {
    if (this.#cache === undefined) return (await this.#client.get<{ items: CoordinationLease[] }>(this.#path, { query: { labelSelector: COORDINATION_SELECTOR } })).items;
    const out: CoordinationLease[] = [];
    for (const l of this.#cache.snapshot().values()) out.push(this.#cached(l.metadata.name) ?? l);
    for (const [name, w] of this.#written) if (w.fromRv === undefined && this.#cache.get(this.#key(name)) === undefined) out.push(w.obj);
    return out;
  }

  #key(name: string): string {
    return `${this.#namespace}/${name}`;
  }

  #cached(name: string): CoordinationLease | undefined {
    const cached = this.#cache?.get(this.#key(name));
    const w = this.#written.get(name);
    if (w === undefined) return cached;
    if (cached?.metadata.resourceVersion === w.fromRv) return w.obj;
    this.#written.delete(name);
    return cached;
  }

  async #read(name: string): Promise<CoordinationLease | undefined> {
    try {
      return await this.#client.get<CoordinationLease>(`${this.#path}/${encodeURIComponent(name)}`);
    } catch (err) {
      if (classifyKubeError(err) === 'not-found') return undefined;
      throw err;
    }
  }

  /** Writes holders (none: the Lease emptied) over current, or creates the Lease. */
  async #write(node: string, name: string, current: CoordinationLease | undefined, holders: Map<string, number>, now: number): Promise<void> {
    const renewTime = microTime(now);
    const was = current?.spec?.holderIdentity ?? '';
    const latest = Math.max(now, ...holders.values());
    // The holder named on the Lease stays named while it holds, so a reader's view of who acts is stable.
    const identity = holders.size === 0 ? '' : holders.has(was) ? was : ([...holders.keys()].sort()[0] as string);
    const annotations: Record<string, string> = { ...(current?.metadata.annotations ?? {}), [NODE_ANNOTATION]: node };
    if (holders.size > 0) annotations[HOLDERS_ANNOTATION] = JSON.stringify(Object.fromEntries([...holders].sort(([a], [b]) => (a < b ? -1 : 1)).map(([h, until]) => [h, new Date(until).toISOString()])));
    else delete annotations[HOLDERS_ANNOTATION];
    const spec = {
      ...(current?.spec ?? {}),
      holderIdentity: identity,
      leaseDurationSeconds: holders.size === 0 ? 1 : Math.max(1, Math.ceil((latest - now) / 1000)),
      renewTime,
      acquireTime: identity !== '' && identity === was ? (current?.spec?.acquireTime ?? renewTime) : renewTime,
      leaseTransitions: (current?.spec?.leaseTransitions ?? 0) + (identity !== '' && identity !== was ? 1 : 0),
    };
    const fromRv = this.#cache?.get(this.#key(name))?.metadata.resourceVersion;
    let out: CoordinationLease;
    try {
      out =
        current === undefined
          ? await this.#client.request<CoordinationLease>('POST', this.#path, {
              body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace: this.#namespace, labels: { [LABEL]: 'node', [NODE_LABEL]: labelValueOf(node) }, annotations }, spec: { ...spec, leaseTransitions: 0 } },
            })
          : await this.#client.request<CoordinationLease>('PUT', `${this.#path}/${encodeURIComponent(name)}`, { body: { ...current, metadata: { ...current.metadata, annotations }, spec } });
    } catch (err) {
      this.#written.delete(name);
      throw err;
    }
    if (this.#cache !== undefined) this.#written.set(name, { fromRv, obj: out });
  }

  #observe(e: InformerEvent<CoordinationLease>): void {
    if (e.type === 'synced' || e.type === 'add') return;
    const before = recordedHolders(e.type === 'update' ? e.old : e.object);
    const after = e.type === 'update' ? liveHolders(e.object, this.#clock.now()) : new Map<string, number>();
    const node = nodeOf(e.object);
    for (const h of before) if (!after.has(h)) for (const fn of this.#released) fn(node, h);
  }
}

// Releasing a batch of 10 % of 5,000 machines one Lease at a time took seconds; a few requests in
// flight keep that short without flooding the apiserver.
const CLAIMS_IN_FLIGHT = 16;

/** Whether the Lease names holder at all: a cheap test before parsing, on every Lease of a fleet. */
const mentions = (lease: CoordinationLease, holder: string): boolean => lease.spec?.holderIdentity === holder || (lease.metadata.annotations?.[HOLDERS_ANNOTATION] ?? '').includes(JSON.stringify(holder));

/** Every holder the Lease records, whether or not its claim still runs. */
function recordedHolders(lease: CoordinationLease): Set<string> {
  const out = new Set<string>();
  const identity = lease.spec?.holderIdentity ?? '';
  if (identity === '') return out;
  out.add(identity);
  for (const h of Object.keys(parseHolders(lease))) out.add(h);
  return out;
}

/**
 * The holders whose claims run at now (holder → until, epoch ms). An emptied or run-out Lease has
 * none, whatever its annotation says; a Lease without the annotation has its holderIdentity.
 */
function liveHolders(lease: CoordinationLease, now: number): Map<string, number> {
  const out = new Map<string, number>();
  const identity = lease.spec?.holderIdentity ?? '';
  const leaseUntil = Date.parse(lease.spec?.renewTime ?? '') + (lease.spec?.leaseDurationSeconds ?? 0) * 1000;
  if (identity === '' || !Number.isFinite(leaseUntil) || leaseUntil <= now) return out;
  for (const [h, at] of Object.entries(parseHolders(lease))) {
    const until = Math.min(Date.parse(at), leaseUntil);
    if (Number.isFinite(until) && until > now) out.set(h, until);
  }
  // Named on the Lease but not in the annotation: a writer that knows only holderIdentity took it.
  if (!out.has(identity)) out.set(identity, leaseUntil);
  return out;
}

function parseHolders(lease: CoordinationLease): Record<string, string> {
  const raw = lease.metadata.annotations?.[HOLDERS_ANNOTATION];
  if (raw === undefined) return {};
  try {
    const parsed: unknown = JSON.parse(raw);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return {};
    return Object.fromEntries(Object.entries(parsed).filter((e): e is [string, string] => typeof e[1] === 'string'));
  } catch {
    return {};
  }
}

function nodeOf(lease: CoordinationLease): string {
  return lease.metadata.annotations?.[NODE_ANNOTATION] ?? lease.metadata.name.slice(NODE_LEASE_PREFIX.length);
}

