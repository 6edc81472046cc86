// The per-node coordination Lease (medik8s's pattern): coordination.k8s.io/v1 Lease
// kubenode-node-<node> in the controller's namespace, held by whichever acts on the node — a
// central remedy (holder remedy/<NodeRemedier>) or a rollout batch (holder rollout/<set>). Taken
// with a create or a resourceVersion-guarded update, so of two claimants one gets 409 and loses.
// A claim has a duration and is never taken over before it ran out (Kured's lesson: a lock
// without one stops the fleet for ever when its holder dies).
import { createHash } from 'node:crypto';
import { errorMessage } from '../../errors.ts';
import type { Clock } from '../../host/clock.ts';
import { classifyKubeError, type KubeClient } from '../../kube/client.ts';
import type { Logger } from '../../log.ts';
import { microTime } from '../../report/kube/lease.ts';
import { eachBounded } from '../../util/parallel.ts';

export const NODE_LEASE_PREFIX = 'kubenode-node-';
/** A rollout batch's holder identity: this prefix and the set's name. */
export const ROLLOUT_HOLDER_PREFIX = 'rollout/';
const LABEL = 'kubenode.io/coordination';
const NODE_LABEL = 'kubenode.io/node';

interface CoordinationLease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: { holderIdentity?: string; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string; leaseTransitions?: number };
}

export type ClaimResult = { ok: true } | { ok: false; holder: string; until: string };

/** What a rollout uses: claim the machines of a batch, hand them back when the batch is over. */
export interface RolloutCoordination {
  /** Claims each machine for holder; returns those another holder has (machine → holder). */
  claimAll(machines: readonly string[], holder: string, ttlMs: number): Promise<Map<string, string>>;
  releaseAll(holder: string): Promise<void>;
}

/** The Lease's name: the prefix and the node name, or a hash of it past the 253 characters a name may have. */
export function nodeLeaseName(node: string): string {
  const name = `${NODE_LEASE_PREFIX}${node}`;
  return name.length <= 253 ? name : `${NODE_LEASE_PREFIX}${createHash('sha256').update(node).digest('hex').slice(0, 32)}`;
}

export class NodeCoordinator implements RolloutCoordination {
  readonly #client: KubeClient;
  readonly #path: string;
  readonly #namespace: string;
  readonly #clock: Clock;
  readonly #log: Logger;

  constructor(client: KubeClient, namespace: string, clock: Clock, log: Logger) {
    this.#client = client;
    this.#namespace = namespace;
    this.#path = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases`;
    this.#clock = clock;
    this.#log = log;
  }

  /** Takes or renews the node's Lease for holder; refused while another holder's claim runs. */
  async claim(node: string, holder: string, ttlMs: number): Promise<ClaimResult> {
    const name = nodeLeaseName(node);
    for (let attempt = 1; ; attempt++) {
      const now = this.#clock.now();
      const spec = { holderIdentity: holder, leaseDurationSeconds: Math.max(1, Math.ceil(ttlMs / 1000)), renewTime: microTime(now) };
      let current: CoordinationLease;
      try {
        current = await this.#client.get<CoordinationLease>(`${this.#path}/${encodeURIComponent(name)}`);
      } catch (err) {
        if (classifyKubeError(err) !== 'not-found') throw err;
        try {
          await this.#client.request('POST', this.#path, {
            body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace: this.#namespace, labels: { [LABEL]: 'node', [NODE_LABEL]: labelValue(node) } }, spec: { ...spec, acquireTime: spec.renewTime, leaseTransitions: 0 } },
          });
          return { ok: true };
        } catch (e) {
          if (classifyKubeError(e) !== 'conflict' || attempt >= 3) throw e;
          continue;
        }
      }
      const other = heldBy(current, now);
      if (other !== undefined && other.holder !== holder) return { ok: false, holder: other.holder, until: other.until };
      const mine = current.spec.holderIdentity === holder;
      const body: CoordinationLease = {
        ...current,
        spec: { ...current.spec, ...spec, acquireTime: mine ? (current.spec.acquireTime ?? spec.renewTime) : spec.renewTime, leaseTransitions: (current.spec.leaseTransitions ?? 0) + (mine ? 0 : 1) },
      };
      try {
        await this.#client.request('PUT', `${this.#path}/${encodeURIComponent(name)}`, { body });
        return { ok: true };
      } catch (err) {
        if (classifyKubeError(err) !== 'conflict' || attempt >= 3) throw err;
      }
    }
  }

  /** Hands the node back if holder has it: the holder emptied, so the next claimant need not wait. */
  async release(node: string, holder: string): Promise<void> {
    const name = nodeLeaseName(node);
    let current: CoordinationLease;
    try {
      current = await this.#client.get<CoordinationLease>(`${this.#path}/${encodeURIComponent(name)}`);
    } catch (err) {
      if (classifyKubeError(err) === 'not-found') return;
      throw err;
    }
    if (current.spec.holderIdentity !== holder) return;
    await this.#empty(current);
  }

  /** The holder of a node's claim, when one runs now. */
  async holderOf(node: string): Promise<{ holder: string; until: string } | undefined> {
    try {
      return heldBy(await this.#client.get<CoordinationLease>(`${this.#path}/${encodeURIComponent(nodeLeaseName(node))}`), this.#clock.now());
    } catch (err) {
      if (classifyKubeError(err) === 'not-found') return undefined;
      throw err;
    }
  }

  /**
   * A machine another rollout holds is not refused: the claim is there to keep remedies and
   * rollouts apart, while two sets updating different components of one node are each held by
   * their own budget and gates, and deferring one for the other would serialise every set.
   */
  async claimAll(machines: readonly string[], holder: string, ttlMs: number): Promise<Map<string, string>> {
    const refused = new Map<string, string>();
    await eachBounded(machines, CLAIMS_IN_FLIGHT, async (m) => {
      const r = await this.claim(m, holder, ttlMs);
      if (!r.ok && !(isRollout(holder) && isRollout(r.holder))) refused.set(m, r.holder);
    });
    return refused;
  }

  async releaseAll(holder: string): Promise<void> {
    const list = await this.#client.get<{ items: CoordinationLease[] }>(this.#path, { query: { labelSelector: `${LABEL}=node` } });
    await eachBounded(
      list.items.filter((l) => l.spec.holderIdentity === holder),
      CLAIMS_IN_FLIGHT,
      async (l) => {
        try {
          await this.#empty(l);
        } catch (err) {
          // It runs out on its own.
          this.#log.warn({ lease: l.metadata.name, holder, err: errorMessage(err) }, 'Cannot release a node Lease');
        }
      },
    );
  }

  async #empty(current: CoordinationLease): Promise<void> {
    try {
      await this.#client.request('PUT', `${this.#path}/${encodeURIComponent(current.metadata.name)}`, {
        body: { ...current, spec: { ...current.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(this.#clock.now()) } },
      });
    } catch (err) {
      // Someone else wrote it since: theirs now.
      if (classifyKubeError(err) !== 'conflict' && classifyKubeError(err) !== 'not-found') throw err;
    }
  }
}

// A batch of 10 % of 5,000 machines claimed one Lease at a time held the next batch back by
// seconds; a few requests in flight keep that short without flooding the apiserver.
const CLAIMS_IN_FLIGHT = 16;

const isRollout = (holder: string): boolean => holder.startsWith(ROLLOUT_HOLDER_PREFIX);

function heldBy(lease: CoordinationLease, now: number): { holder: string; until: string } | undefined {
  const holder = lease.spec.holderIdentity ?? '';
  if (holder === '') return undefined;
  const renewed = Date.parse(lease.spec.renewTime ?? '');
  const until = renewed + (lease.spec.leaseDurationSeconds ?? 0) * 1000;
  if (!Number.isFinite(until) || until <= now) return undefined;
  return { holder, until: new Date(until).toISOString() };
}

/** A node name as a label value: itself when it fits (63 characters), else a hash. */
function labelValue(node: string): string {
  return node.length <= 63 ? node : createHash('sha256').update(node).digest('hex').slice(0, 63);
}
