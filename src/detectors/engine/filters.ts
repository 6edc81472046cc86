import type { Condition, DetectorResult } from '../../types.ts';

export const SILENCED_REASON = 'Silenced';

/**
 * The per-reason kill switch: an operator silences a false-positive reason fleet-wide with one
 * config change. Its events are dropped, and a condition it would turn True is published False.
 */
export function silence(result: DetectorResult, silenced: ReadonlySet<string>): DetectorResult {
  if (silenced.size === 0) return result;
  return {
    ...result,
    events: result.events.filter((e) => !silenced.has(e.reason)),
    conditions: result.conditions.map((c) =>
      c.status === 'True' && silenced.has(c.reason)
        ? { ...c, status: 'False', reason: SILENCED_REASON, message: `reason ${c.reason} is silenced by detection.silencedReasons` }
        : c,
    ),
  };
}

/**
 * Flap damping: a condition turns True at once, but is published False again only after its
 * detector has reported it clear for `holdMs` without interruption, so that a signal hovering at
 * a threshold cannot flip the Node's condition (and the repairs keyed on it) back and forth.
 */
export class RecoveryHold {
  readonly #holdMs: number;
  /** detector/type → when the detector first reported it clear while it was still published True. */
  readonly #clearSince = new Map<string, number>();

  constructor(holdMs: number) {
    this.#holdMs = holdMs;
  }

  apply(detector: string, reported: readonly Condition[], published: readonly Condition[], now: number): Condition[] {
    if (this.#holdMs <= 0) return [...reported];
    const current = new Map(published.map((c) => [c.type, c]));
    return reported.map((next) => {
      const key = `${detector}/${next.type}`;
      const prev = current.get(next.type);
      if (next.status === 'True' || prev?.status !== 'True') {
        this.#clearSince.delete(key);
        return next;
      }
      const since = this.#clearSince.get(key) ?? now;
      this.#clearSince.set(key, since);
      if (now - since >= this.#holdMs) {
        this.#clearSince.delete(key);
        return next;
      }
      return prev;
    });
  }
}
