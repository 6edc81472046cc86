import { Debounce } from '../detectors/engine/window.ts';
import type { Condition, ProblemEvent } from '../types.ts';

/** One condition type a probed detector owns, with what it says while healthy. */
export interface ConditionSpec {
  type: string;
  okReason: string;
  okMessage: string;
  /** Reason while the signal cannot be read; default `<type>Unknown`. */
  unknownReason?: string;
}

/** One problem seen by one probe. `key` tells apart findings of one reason (a mount, a unit). */
export interface Finding {
  type: string;
  reason: string;
  message: string;
  key?: string;
}

export interface TrackerOptions {
  specs: readonly ConditionSpec[];
  now: () => number;
  /** Conditions persisted before a restart: a True one stays tripped, its transitionTime is kept. */
  previous: readonly Condition[];
  /** Reasons an operator silenced in config: such findings never turn a condition. */
  disabledReasons: readonly string[];
  /** Consecutive probes with a finding before it turns its condition True (1 in `check`: one look is all there is). */
  failuresToTrip: number;
  /** Consecutive probes without it before the condition clears. */
  successesToClear: number;
}

export interface ProbeUpdate {
  findings: readonly Finding[];
  /** Condition types that could not be read this probe, with why: they go Unknown (never True). */
  unknown?: ReadonlyMap<string, string>;
}

/**
 * The shared bookkeeping of a probed detector: per-finding flap damping (Debounce), the
 * per-reason kill switch, stable transition times, and an event on every status change.
 */
export class ConditionTracker {
  readonly #options: TrackerOptions;
  readonly #conditions = new Map<string, Condition>();
  readonly #debounce = new Map<string, Debounce>();
  readonly #disabled: Set<string>;

  constructor(options: TrackerOptions) {
    this.#options = options;
    this.#disabled = new Set(options.disabledReasons);
    const at = options.now();
    for (const spec of options.specs) {
      const prev = options.previous.find((c) => c.type === spec.type);
      this.#conditions.set(
        spec.type,
        prev === undefined ? { type: spec.type, status: 'False', reason: spec.okReason, message: spec.okMessage, transitionTime: at } : { ...prev },
      );
    }
  }

  update(update: ProbeUpdate): { conditions: Condition[]; events: ProblemEvent[] } {
    const now = this.#options.now();
    const active = new Map<string, Finding[]>();
    const seen = new Set<string>();
    for (const finding of update.findings) {
      if (this.#disabled.has(finding.reason)) continue;
      const id = `${finding.type}\u0000${finding.reason}\u0000${finding.key ?? ''}`;
      seen.add(id);
      let debounce = this.#debounce.get(id);
      if (debounce === undefined) {
        const prev = this.#conditions.get(finding.type);
        // A condition already True for this reason (persisted before a restart) stays tripped.
        const tripped = prev?.status === 'True' && prev.reason === finding.reason;
        debounce = new Debounce(this.#options.failuresToTrip, this.#options.successesToClear, tripped);
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
    for (const spec of this.#options.specs) {
      const current = this.#conditions.get(spec.type) as Condition;
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
      const changed = next.status !== current.status || next.reason !== current.reason;
      this.#conditions.set(spec.type, {
        type: spec.type,
        ...next,
        transitionTime: changed ? now : current.transitionTime,
      });
      if (changed && next.status !== 'Unknown') {
        events.push({ severity: next.status === 'True' ? 'warn' : 'info', reason: next.reason, message: next.message, timestamp: now });
      }
    }
    return { conditions: [...this.#conditions.values()].map((c) => ({ ...c })), events };
  }
}

/** failuresToTrip for this mode: `check` takes one look, so one finding decides. */
export function tripAfter(mode: 'check' | 'run', configured: number): number {
  return mode === 'check' ? 1 : Math.max(1, configured);
}
