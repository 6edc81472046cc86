import type { Condition, ConditionStatus, ProblemEvent } from '../types.ts';

export interface ConditionSpec {
  type: string;
  /** Reason and message while the condition is False (healthy). */
  okReason: string;
  okMessage: string;
}

/**
 * A detector's own condition set across probes: the full list of its condition types, each
 * with a transitionTime that only moves when status or reason change. Seeded from
 * ctx.previous so that a restart keeps the times. Reasons listed as disabled (the per-reason
 * kill switch in config) never turn a condition True and never raise a warning event.
 */
export class ConditionBook {
  readonly #specs: Map<string, ConditionSpec>;
  readonly #conditions = new Map<string, Condition>();
  readonly #disabled: ReadonlySet<string>;

  constructor(specs: readonly ConditionSpec[], now: number, previous: readonly Condition[], disabledReasons: readonly string[] = []) {
    this.#specs = new Map(specs.map((s) => [s.type, s]));
    this.#disabled = new Set(disabledReasons);
    for (const s of specs) {
      this.#conditions.set(s.type, { type: s.type, status: 'False', reason: s.okReason, message: s.okMessage, transitionTime: now });
    }
    for (const p of previous) if (this.#specs.has(p.type)) this.#conditions.set(p.type, { ...p });
  }

  isDisabled(reason: string): boolean {
    return this.#disabled.has(reason);
  }

  set(type: string, status: ConditionStatus, reason: string, message: string, now: number): void {
    const spec = this.#specs.get(type);
    if (spec === undefined) throw new Error(`condition type ${type} is not declared`);
    if (status === 'True' && this.#disabled.has(reason)) {
      this.ok(type, now);
      return;
    }
    const prev = this.#conditions.get(type);
    const transitionTime = prev !== undefined && prev.status === status && prev.reason === reason ? prev.transitionTime : now;
    this.#conditions.set(type, { type, status, reason, message, transitionTime });
  }

  ok(type: string, now: number, message?: string): void {
    const spec = this.#specs.get(type);
    if (spec === undefined) throw new Error(`condition type ${type} is not declared`);
    this.set(type, 'False', spec.okReason, message ?? spec.okMessage, now);
  }

  get(type: string): Condition | undefined {
    const c = this.#conditions.get(type);
    return c === undefined ? undefined : { ...c };
  }

  list(): Condition[] {
    return [...this.#conditions.values()].map((c) => ({ ...c }));
  }

  /** Drops warning events whose reason is disabled. */
  filterEvents(events: readonly ProblemEvent[]): ProblemEvent[] {
    return events.filter((e) => e.severity !== 'warn' || !this.#disabled.has(e.reason));
  }
}
