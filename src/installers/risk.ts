import type { Host } from '../host/host.ts';
import { parseDuration } from '../util/duration.ts';

export interface RiskRequest {
  component: string;
  step: string;
  /** What the step does, for the record. */
  action: string;
}

export interface RiskDecision {
  allowed: boolean;
  reason: string;
  /** Hands a permit back once the disruptive step is over; gates that hold nothing leave it out. */
  release?: () => Promise<void>;
}

/** Asked before any disruptive step. The cluster RiskPolicy client implements the same interface. */
export interface RiskGate {
  ask(request: RiskRequest): Promise<RiskDecision>;
}

/**
 * Local gate: at most `max` disruptive steps per sliding window on this node, counted across
 * agent restarts (the grants are kept in the state dir).
 */
export class LocalBudgetGate implements RiskGate {
  readonly #host: Host;
  readonly #file: string;
  readonly #max: number;
  readonly #windowMs: number;

  constructor(host: Host, stateDir: string, options: { maxDisruptive: number; window: string }) {
    this.#host = host;
    this.#file = `${stateDir}/installers/risk-grants.json`;
    this.#max = options.maxDisruptive;
    this.#windowMs = parseDuration(options.window) ?? 3_600_000;
  }

  async ask(request: RiskRequest): Promise<RiskDecision> {
    const now = this.#host.clock.now();
    let grants: { at: number; component: string; step: string }[] = [];
    try {
      const parsed = JSON.parse((await this.#host.tryReadText(this.#file)) ?? '[]') as unknown;
      if (Array.isArray(parsed)) grants = parsed as typeof grants;
    } catch {
      grants = [];
    }
    grants = grants.filter((g) => typeof g.at === 'number' && now - g.at < this.#windowMs);
    if (grants.length >= this.#max) {
      return { allowed: false, reason: `local budget spent: ${grants.length} of ${this.#max} disruptive steps in the last ${Math.round(this.#windowMs / 60_000)}m` };
    }
    grants.push({ at: now, component: request.component, step: request.step });
    await this.#host.writeFileAtomic(this.#file, JSON.stringify(grants));
    return { allowed: true, reason: `local budget: ${grants.length} of ${this.#max} in the window` };
  }
}

/** Allows everything (tests, or an operator's explicit --no-risk-gate). */
export const allowAll: RiskGate = { ask: async () => ({ allowed: true, reason: 'risk gate disabled' }) };
