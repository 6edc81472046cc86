// The pure part of a rollout: batch sizes, selection order, label selectors, revision hashes and
// how a MachineComponent's status reads. No I/O, so every rule here is table-tested.
import { createHash } from 'node:crypto';
import { fitName, type LabelSelector } from '../../api/common.ts';

/** A count, or a percentage of `total` rounded up (Kruise, Karpenter: no off-by-one debates). */
export function resolveIntOrPercent(value: number | string, total: number): number {
  if (typeof value === 'number') return value;
  const m = /^(\d+)%$/.exec(value);
  if (m === null) throw new RangeError(`${JSON.stringify(value)} is neither a count nor a percentage`);
  return Math.ceil((Number(m[1]) * total) / 100);
}

export interface BatchPlan {
  /** Size of batch k (the last configured size repeats), never below 1. */
  size(k: number): number;
  /** Machines updated once batches 0..k are done: cumulative, capped at the total. */
  target(k: number): number;
  /** Index of the batch that completes the rollout. */
  lastIndex: number;
}

/** Resolves spec.rollout.batches against the matched machines; throws a message naming the batch that decreases. */
export function planBatches(batches: readonly (number | string)[], total: number): BatchPlan {
  const sizes = batches.map((b) => Math.max(1, resolveIntOrPercent(b, total)));
  for (let i = 1; i < sizes.length; i++) {
    if ((sizes[i] as number) < (sizes[i - 1] as number)) {
      throw new RangeError(`batches[${i}] (${String(batches[i])} = ${sizes[i]} of ${total} machines) is smaller than batches[${i - 1}] (${String(batches[i - 1])} = ${sizes[i - 1]}): sizes must not decrease`);
    }
  }
  const size = (k: number): number => sizes[Math.min(k, sizes.length - 1)] as number;
  const target = (k: number): number => {
    let sum = 0;
    for (let i = 0; i <= k && sum < total; i++) sum += size(i);
    return Math.min(total, sum);
  };
  let lastIndex = 0;
  while (target(lastIndex) < total) lastIndex += 1;
  return { size, target, lastIndex };
}

/** metav1.LabelSelector semantics; an empty selector matches everything. */
export function matchesSelector(selector: LabelSelector, labels: Readonly<Record<string, string>> | undefined): boolean {
  const l = labels ?? {};
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (l[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(l, e.key);
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In':
        if (!has || !values.includes(l[e.key] as string)) return false;
        break;
      case 'NotIn':
        if (has && values.includes(l[e.key] as string)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}

/** JSON with sorted keys: the hash of a template must not depend on key order. */
export function canonicalJson(v: unknown): string {
  const walk = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(walk);
    if (x !== null && typeof x === 'object') return Object.fromEntries(Object.keys(x).sort().map((k) => [k, walk((x as Record<string, unknown>)[k])]));
    return x;
  };
  return JSON.stringify(walk(v));
}

export function templateHash(template: unknown): string {
  return createHash('sha256').update(canonicalJson(template)).digest('hex').slice(0, 10);
}

export interface Candidate {
  name: string;
  labels: Readonly<Record<string, string>>;
  /** On a revision neither current nor the target (a rollout that was abandoned): goes first. */
  abandoned: boolean;
}

/**
 * Stable selection order: machines left on an abandoned revision first, then by the priority
 * label's integer value (lower first, unlabelled last), then by a hash of machine and revision —
 * the same order after any restart, different for each revision so the same machines do not
 * always go first.
 */
export function selectionOrder(candidates: readonly Candidate[], revision: string, priorityLabel?: string): Candidate[] {
  const key = (c: Candidate): [number, number, string] => {
    const raw = priorityLabel === undefined ? undefined : c.labels[priorityLabel];
    const prio = raw !== undefined && /^-?\d+$/.test(raw) ? Number(raw) : Number.POSITIVE_INFINITY;
    return [c.abandoned ? 0 : 1, prio, createHash('sha256').update(`${c.name}/${revision}`).digest('hex')];
  };
  const keyed = candidates.map((c) => ({ c, k: key(c) }));
  keyed.sort((a, b) => a.k[0] - b.k[0] || (a.k[1] === b.k[1] ? 0 : a.k[1] < b.k[1] ? -1 : 1) || (a.k[2] < b.k[2] ? -1 : a.k[2] > b.k[2] ? 1 : 0));
  return keyed.map((x) => x.c);
}

export type ComponentHealth = 'ready' | 'failed' | 'progressing';

interface ComponentView {
  metadata: { generation?: number };
  status?: { phase?: string; observedGeneration?: number; attemptedGeneration?: number; lastError?: string; conditions?: { type: string; status: string; reason?: string; message?: string }[] };
}

/** Ready=False reasons the agent writes for a transient state, not a failure. */
const IN_PROGRESS_REASONS = new Set(['Installing', 'Pending']);

/**
 * What the agent's status says about the spec it was given: ready when it observed (installed)
 * this generation, is Installed and Ready=True; failed when its last run attempted this
 * generation and reports Failed or Ready=False with a failure reason (a rolled-back spec leaves
 * observedGeneration on the last good one, attemptedGeneration on this one); otherwise still
 * progressing. An agent that does not write attemptedGeneration yet is never judged failed: its
 * failures surface as the batch's progressDeadline passing.
 */
export function componentHealth(mc: ComponentView): { health: ComponentHealth; message: string } {
  const s = mc.status;
  if (s === undefined) return { health: 'progressing', message: 'no status yet' };
  const generation = mc.metadata.generation;
  if (generation === undefined) return { health: 'progressing', message: 'no metadata.generation' };
  const ready = s.conditions?.find((c) => c.type === 'Ready');
  if (s.observedGeneration === generation && s.phase === 'Installed' && ready?.status === 'True') return { health: 'ready', message: '' };
  const failedReason = ready?.status === 'False' && ready.reason !== undefined && !IN_PROGRESS_REASONS.has(ready.reason);
  if (s.attemptedGeneration === generation && (s.phase === 'Failed' || failedReason)) {
    return { health: 'failed', message: `${ready?.reason ?? s.phase}: ${(s.lastError ?? ready?.message ?? '').slice(0, 300)}` };
  }
  return { health: 'progressing', message: s.phase ?? '' };
}

/** A MachineComponent name for a set on a machine: the set's name and the machine's, shortened with a hash past 253 characters. */
export function componentName(set: string, machine: string): string {
  return fitName(`${set}-${machine}`, 253);
}

/** A set's ControllerRevision name: the set's name (shortened with a hash past 242 characters) and the template hash. */
export function revisionName(set: string, hash: string): string {
  return `${fitName(set, 242)}-${hash}`;
}
