import type { Condition, ConditionStatus, ProblemEvent } from '../../types.ts';
import type { DetectorContext, Mode } from './types.ts';
import { Debounce } from './window.ts';

/** One condition type a detector owns, with what it says while healthy. */
export interface ConditionSpec {
  type: string;
  okReason: string;
  okMessage: string;
  /** Reason while the signal cannot be read (update() only); default `<type>Unknown`. */
  unknownReason?: string;
}

/** One problem seen by one probe. `key` tells apart findings of one reason (a mount, a unit). */
export interface Finding {
  type: string;
  reason: string;
  message: string;
  key?: string;
}

export interface ProbeUpdate {
  findings: readonly Finding[];
  /** Condition types that could not be read this probe, with why: they go Unknown (never True). */
  unknown?: ReadonlyMap<string, string>;
}

export interface Damping {
  /** Consecutive probes with a finding before it turns its condition True (use tripAfter()). */
  failuresToTrip: number;
  /** Consecutive probes without it before the condition clears. */
  successesToClear: number;
}

/**
 * A detector's conditions across probes: the full list of its condition types, each with a
 * transitionTime that only moves when status or reason change, seeded from ctx.previous so that a
 * restart keeps the times (and a condition already True stays tripped).
 *
 * A type is decided either by update() from this probe's findings (per-finding flap damping, an
 * event on every status change), or directly by set()/ok() for detectors that damp and rank
 * their problems themselves.
 *
 * Reasons in ctx.silenced (detection.silencedReasons) never turn a condition True: they are
 * dropped before the condition's reason is chosen, so another reason of the same type can still
 * surface. The engine's silence() remains the safety net for detectors that don't use this.
 */
export class Conditions {
  readonly #specs = new Map<string, ConditionSpec>();
  readonly #now: () => number;
  readonly #silenced: ReadonlySet<string>;
  readonly #damping: Damping;
  readonly #conditions = new Map<string, Condition>();
  readonly #debounce = new Map<string, Debounce>();

  constructor(specs: readonly ConditionSpec[], ctx: Pick<DetectorContext, 'host' | 'previous' | 'silenced'>, damping: Damping = { failuresToTrip: 1, successesToClear: 1 }) {
    this.#now = () => ctx.host.clock.now();
    this.#silenced = ctx.silenced;
    this.#damping = damping;
    const at = this.#now();
    for (const spec of specs) {
      this.#specs.set(spec.type, spec);
      const prev = ctx.previous.find((c) => c.type === spec.type);
      this.#conditions.set(
        spec.type,
        prev === undefined ? { type: spec.type, status: 'False', reason: spec.okReason, message: spec.okMessage, transitionTime: at } : { ...prev },
      );
    }
  }

  /** Whether `reason` may turn a condition True (not silenced by the operator). */
  surfaces(reason: string): boolean {
    return !this.#silenced.has(reason);
  }

  /** Decides every type from this probe's findings, debounced per finding; an event on each status change. */
  update(update: ProbeUpdate): { conditions: Condition[]; events: ProblemEvent[] } {
    const now = this.#now();
    const active = new Map<string, Finding[]>();
    const seen = new Set<string>();
    for (const finding of update.findings) {
      if (!this.surfaces(finding.reason)) continue;
      const id = `${finding.type}\u0000${finding.reason}\u0000${finding.key ?? ''}`;
      seen.add(id);
      let debounce = this.#debounce.get(id);
      if (debounce === undefined) {
        const prev = this.#conditions.get(finding.type);
        // A condition already True for this reason (persisted before a restart) stays tripped.
        const tripped = prev?.status === 'True' && prev.reason === finding.reason;
        debounce = new Debounce(this.#damping.failuresToTrip, this.#damping.successesToClear, tripped);
        this.#debounce.set(id, debounce);
      }
      if (debounce.observe(true)) {
        const list = active.get(finding.type) ?? [];
        list.push(finding);
        active.set(finding.type, list);
      }
    }
    for (const [id, debounce] of this.#debounce) {
      if (seen.has(id)) continue;
      const type = id.slice(0, id.indexOf('\u0000'));
      // An unreadable signal is neither a failure nor a success.
      if (update.unknown?.has(type) === true) continue;
      if (!debounce.observe(false)) this.#debounce.delete(id);
      else {
        // Still held by successesToClear: keep the condition True with its last finding.
        const prev = this.#conditions.get(type);
        if (prev?.status === 'True') {
          const reason = id.split('\u0000')[1] as string;
          const list = active.get(type) ?? [];
          if (!list.some((f) => f.reason === reason)) list.push({ type, reason, message: prev.message });
          active.set(type, list);
        }
      }
    }

    const events: ProblemEvent[] = [];
    for (const spec of this.#specs.values()) {
      const found = active.get(spec.type);
      const unknown = update.unknown?.get(spec.type);
      let next: Pick<Condition, 'status' | 'reason' | 'message'>;
      if (found !== undefined && found.length > 0) {
        const first = found[0] as Finding;
        const same = found.filter((f) => f.reason === first.reason).map((f) => f.message);
        const others = found.filter((f) => f.reason !== first.reason).map((f) => `${f.reason}: ${f.message}`);
        next = { status: 'True', reason: first.reason, message: [...same, ...others].join('; ') };
      } else if (unknown !== undefined) {
        next = { status: 'Unknown', reason: spec.unknownReason ?? `${spec.type}Unknown`, message: unknown };
      } else {
        next = { status: 'False', reason: spec.okReason, message: spec.okMessage };
      }
      const changed = this.#put(spec.type, next.status, next.reason, next.message, now);
      if (changed && next.status !== 'Unknown') {
        events.push({ severity: next.status === 'True' ? 'warn' : 'info', reason: next.reason, message: next.message, timestamp: now });
      }
    }
    return { conditions: this.list(), events };
  }

  /** Sets one type directly; a True with a silenced reason publishes the type's ok state instead. */
  set(type: string, status: ConditionStatus, reason: string, message: string): void {
    const spec = this.#spec(type);
    if (status === 'True' && !this.surfaces(reason)) this.#put(type, 'False', spec.okReason, spec.okMessage, this.#now());
    else this.#put(type, status, reason, message, this.#now());
  }

  /** Sets one type False with its ok reason, and `message` or the spec's ok message. */
  ok(type: string, message?: string): void {
    const spec = this.#spec(type);
    this.#put(type, 'False', spec.okReason, message ?? spec.okMessage, this.#now());
  }

  get(type: string): Condition | undefined {
    const c = this.#conditions.get(type);
    return c === undefined ? undefined : { ...c };
  }

  list(): Condition[] {
    return [...this.#conditions.values()].map((c) => ({ ...c }));
  }

  #spec(type: string): ConditionSpec {
    const spec = this.#specs.get(type);
    if (spec === undefined) throw new Error(`condition type ${type} is not declared`);
    return spec;
  }

  /** Stores the type's state; its transitionTime moves only when status or reason change. Returns whether they did. */
  #put(type: string, status: ConditionStatus, reason: string, message: string, now: number): boolean {
    const prev = this.#conditions.get(type);
    const changed = prev === undefined || prev.status !== status || prev.reason !== reason;
    this.#conditions.set(type, { type, status, reason, message, transitionTime: changed ? now : prev.transitionTime });
    return changed;
  }
}

/** failuresToTrip for this mode: `check` takes one look, so one finding decides. */
export function tripAfter(mode: Mode, configured: number): number {
  return mode === 'check' ? 1 : Math.max(1, configured);
}
