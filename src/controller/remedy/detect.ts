// Is a node's agent unable to act? Two independent signals must agree: the agent's own heartbeat
// Lease has run out, and the Node's Ready condition (the kubelet's, through the node lifecycle
// controller) is Unknown or False. Either alone is not enough: a dead agent on a healthy kubelet
// is not a reason to power a machine off, and a NotReady kubelet under a live agent is the
// agent's own remedies' job.
import { selectorMatches } from '../../risk/policy.ts';
import type { LabelSelector } from '../../api/common.ts';

export interface LeaseLike {
  spec?: { renewTime?: string; leaseDurationSeconds?: number };
}
export interface NodeLike {
  metadata: { name: string; labels?: Record<string, string> };
  status?: { conditions?: { type: string; status: string; lastTransitionTime?: string }[] };
}

export interface Unreachable {
  /** When both signals first held: the later of the Lease's expiry and Ready's transition. */
  since: number;
  leaseExpiredAt: number;
  ready: string;
}

/** When the agent's Lease stops counting as renewed; undefined without a readable renewTime. */
export function leaseExpiry(lease: LeaseLike | undefined): number | undefined {
  const renewed = Date.parse(lease?.spec?.renewTime ?? '');
  if (!Number.isFinite(renewed)) return undefined;
  return renewed + (lease?.spec?.leaseDurationSeconds ?? 40) * 1000;
}

/**
 * The node's unreachability at `now`, or undefined while either signal says it is alive. A node
 * without an agent Lease has never had an agent to lose: nothing to say about it.
 */
export function unreachable(node: NodeLike | undefined, lease: LeaseLike | undefined, now: number): Unreachable | undefined {
  const expiry = leaseExpiry(lease);
  if (node === undefined || expiry === undefined || expiry > now) return undefined;
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
  if (ready === undefined || ready.status === 'True') return undefined;
  const transition = Date.parse(ready.lastTransitionTime ?? '');
  return { since: Math.max(expiry, Number.isFinite(transition) ? transition : now), leaseExpiredAt: expiry, ready: ready.status };
}

export interface RemedierLike {
  metadata: { name: string };
  spec: { nodeSelector?: LabelSelector; paused?: boolean; central?: unknown };
}

/** The NodeRemedier whose central ladder a node gets: the first by name that selects it. */
export function centralRemedierFor<R extends RemedierLike>(remediers: Iterable<R>, labels: Record<string, string>): R | undefined {
  let best: R | undefined;
  for (const r of remediers) {
    if (r.spec.central === undefined || r.spec.paused === true || !selectorMatches(r.spec.nodeSelector, labels)) continue;
    if (best === undefined || r.metadata.name < best.metadata.name) best = r;
  }
  return best;
}
