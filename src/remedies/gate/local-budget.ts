import type { Host } from '../../host/host.ts';

interface Grant {
  at: number;
  action: string;
  operation: string;
}

/**
 * At most `max` disruptive actions per sliding window on this node — remedies and installer
 * restarts together — counted across agent restarts (kept in the state dir).
 */
export class LocalBudget {
  readonly #host: Host;
  readonly #file: string;
  readonly #max: number;
  readonly #windowMs: number;
  #chain: Promise<unknown> = Promise.resolve();

  constructor(host: Host, stateDir: string, options: { maxDisruptive: number; windowMs: number }) {
    this.#host = host;
    this.#file = `${stateDir.replace(/\/+$/, '')}/remedies/budget.json`;
    this.#max = options.maxDisruptive;
    this.#windowMs = options.windowMs;
  }

  async #grants(now: number): Promise<Grant[]> {
    let grants: Grant[] = [];
    try {
      const parsed = JSON.parse((await this.#host.tryReadText(this.#file)) ?? '[]') as unknown;
      if (Array.isArray(parsed)) grants = parsed as Grant[];
    } catch {
      // A corrupt budget file must not block repairs forever; the window refills it.
      grants = [];
    }
    return grants.filter((g) => typeof g.at === 'number' && now - g.at < this.#windowMs && g.at <= now);
  }

  async check(now: number): Promise<{ allowed: boolean; reason: string }> {
    const grants = await this.#grants(now);
    const mins = Math.round(this.#windowMs / 60_000);
    return grants.length >= this.#max
      ? { allowed: false, reason: `local budget spent: ${grants.length} of ${this.#max} disruptive actions in the last ${mins}m` }
      : { allowed: true, reason: `local budget: ${grants.length} of ${this.#max} used in the last ${mins}m` };
  }

  /** Check and take in one step (serialised in this process, so two callers cannot both take the last slot). */
  take(now: number, action: string, operation: string): Promise<{ allowed: boolean; reason: string }> {
    const next = this.#chain.then(async () => {
      const grants = await this.#grants(now);
      const verdict = await this.check(now);
      if (!verdict.allowed) return verdict;
      grants.push({ at: now, action, operation });
      await this.#host.writeFileAtomic(this.#file, JSON.stringify(grants), 0o600);
      return { allowed: true, reason: `local budget: ${grants.length} of ${this.#max} used in the window` };
    });
    this.#chain = next.catch(() => undefined);
    return next;
  }
}
