import type { Clock } from '../../host/clock.ts';

/**
 * Counts occurrences inside a sliding time window: "at least N in W" thresholds,
 * so that one transient blip does not turn a condition.
 */
export class CountWindow {
  readonly #windowMs: number;
  #times: number[] = [];

  constructor(windowMs: number) {
    this.#windowMs = windowMs;
  }

  add(at: number): number {
    this.#times.push(at);
    return this.count(at);
  }

  count(now: number): number {
    const from = now - this.#windowMs;
    if (this.#times.length > 0 && (this.#times[0] as number) < from) this.#times = this.#times.filter((t) => t >= from);
    return this.#times.length;
  }
}

/**
 * Consecutive failures before a condition turns True, and consecutive successes before it
 * turns back: flap damping for probed signals.
 */
export class Debounce {
  readonly #failuresToTrip: number;
  readonly #successesToClear: number;
  #failures = 0;
  #successes = 0;
  #tripped: boolean;

  constructor(failuresToTrip: number, successesToClear = 1, tripped = false) {
    this.#failuresToTrip = failuresToTrip;
    this.#successesToClear = successesToClear;
    this.#tripped = tripped;
  }

  /** Records one observation; returns whether the signal is now considered bad. */
  observe(bad: boolean): boolean {
    if (bad) {
      this.#failures += 1;
      this.#successes = 0;
      if (this.#failures >= this.#failuresToTrip) this.#tripped = true;
    } else {
      this.#successes += 1;
      this.#failures = 0;
      if (this.#successes >= this.#successesToClear) this.#tripped = false;
    }
    return this.#tripped;
  }

  get failures(): number {
    return this.#failures;
  }
}

/**
 * Waits until a followed log may have more (`wait`), or until `expiry` (epoch ms on the clock)
 * when a True condition expires then: a quiet log must still let it clear on time. Without an
 * expiry only the log wakes the follower, so an idle log costs no timer.
 */
export async function waitOrExpire(clock: Clock, wait: (signal: AbortSignal) => Promise<void>, expiry: number | undefined, signal: AbortSignal): Promise<void> {
  if (expiry === undefined) return wait(signal);
  const done = new AbortController();
  const either = AbortSignal.any([signal, done.signal]);
  try {
    await Promise.race([wait(either), clock.sleep(Math.max(0, expiry - clock.now()), either).catch(() => undefined)]);
  } finally {
    done.abort();
  }
}
