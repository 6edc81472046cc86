// The node-local half of the risk gate: at most `maxDisruptive` disruptive actions per sliding
// window on this node, whoever asks (the daemon's remedies and installers, `remedy` and `apply`
// by hand), counted across restarts in one state file. Taking a grant is serialised in the
// process and across processes (a lock file next to the budget), so two callers can never both
// take the last slot.
import { Type, type Static } from '@sinclair/typebox';
import type { Logger } from 'pino';
import type { Host } from '../host/host.ts';
import { acquireLock } from '../host/lock.ts';
import { readStateFile } from '../host/state-file.ts';
import { errorMessage } from '../errors.ts';

const Grant = Type.Object({ at: Type.Number(), action: Type.String(), operation: Type.String() });
type Grant = Static<typeof Grant>;
const BudgetFile = Type.Object({ version: Type.Literal(1), grants: Type.Array(Grant, { maxItems: 100_000 }) });

/** What earlier releases kept, read once when the budget file does not exist yet. */
const LEGACY = [
  { file: 'remedies/budget.json', schema: Type.Array(Type.Object({ at: Type.Number(), action: Type.Optional(Type.String()), operation: Type.Optional(Type.String()) })) },
  { file: 'installers/risk-grants.json', schema: Type.Array(Type.Object({ at: Type.Number(), component: Type.Optional(Type.String()), step: Type.Optional(Type.String()) })) },
] as const;

export interface BudgetVerdict {
  allowed: boolean;
  reason: string;
}

export interface LocalBudgetOptions {
  maxDisruptive: number;
  windowMs: number;
  /** How long a caller waits for another process taking a grant; default 10 s. */
  lockTimeoutMs?: number;
}

export class LocalBudget {
  readonly #host: Host;
  readonly #stateDir: string;
  readonly #file: string;
  readonly #max: number;
  readonly #windowMs: number;
  readonly #lockTimeoutMs: number;
  readonly #log: Logger;
  #chain: Promise<unknown> = Promise.resolve();

  constructor(host: Host, stateDir: string, options: LocalBudgetOptions, log: Logger) {
    this.#host = host;
    this.#stateDir = stateDir.replace(/\/+$/, '');
    this.#file = `${this.#stateDir}/risk/budget.json`;
    this.#max = options.maxDisruptive;
    this.#windowMs = options.windowMs;
    this.#lockTimeoutMs = options.lockTimeoutMs ?? 10_000;
    this.#log = log;
  }

  /**
   * The grants that count now. Grants from the future (the clock was stepped back since they were
   * written) are discarded: kept, they would hold the budget spent for as long as the clock was
   * wrong. A corrupt file is set aside and the budget counted as spent for one window from now:
   * what was spent is unknown, and the safe reading is "all of it".
   */
  async #load(now: number): Promise<{ grants: Grant[]; changed: boolean; note?: string }> {
    const read = await readStateFile(this.#host, this.#file, BudgetFile);
    let grants: Grant[];
    let changed = false;
    let note: string | undefined;
    if (read.state === 'ok') {
      grants = read.value.grants;
    } else if (read.state === 'absent') {
      grants = await this.#legacy();
      changed = grants.length > 0;
    } else {
      note = `state file ${this.#host.path(this.#file)} was unreadable (${read.reason})${read.setAsideAs === undefined ? '' : `; set aside as ${this.#host.path(read.setAsideAs)}`}; counted as spent until ${new Date(now + this.#windowMs).toISOString()}`;
      this.#log.error({ file: this.#host.path(this.#file), err: read.reason }, 'Risk budget state is corrupt; set aside and counted as spent for one window');
      grants = Array.from({ length: this.#max }, (_, i) => ({ at: now, action: 'unknown', operation: `corrupt-state-${now}-${i}` }));
      changed = true;
    }
    const future = grants.filter((g) => g.at > now);
    if (future.length > 0) {
      const ahead = Math.max(...future.map((g) => g.at)) - now;
      this.#log.warn({ file: this.#host.path(this.#file), discarded: future.length, aheadMs: ahead }, 'Risk budget grants from the future discarded: the clock went back');
      changed = true;
    }
    const live = grants.filter((g) => g.at <= now && now - g.at < this.#windowMs);
    if (live.length !== grants.length) changed = true;
    return { grants: live, changed, ...(note === undefined ? {} : { note }) };
  }

  async #legacy(): Promise<Grant[]> {
    const out: Grant[] = [];
    for (const l of LEGACY) {
      const file = `${this.#stateDir}/${l.file}`;
      const read = await readStateFile(this.#host, file, l.schema);
      if (read.state === 'corrupt') this.#log.warn({ file: this.#host.path(file), err: read.reason }, 'Earlier risk budget file unreadable; not merged');
      if (read.state !== 'ok') continue;
      for (const [i, g] of (read.value as { at: number; action?: string; operation?: string; component?: string; step?: string }[]).entries()) {
        const action = g.action ?? (g.component === undefined ? 'unknown' : `restart ${g.component}`);
        const operation = g.operation ?? (g.component === undefined ? `${l.file}-${i}` : `install-${g.component}-${g.step ?? '?'}-${g.at.toString(36)}`);
        out.push({ at: g.at, action, operation });
      }
      this.#log.info({ file: this.#host.path(file), grants: read.value.length, into: this.#host.path(this.#file) }, 'Merged an earlier risk budget file');
    }
    return out.sort((a, b) => a.at - b.at);
  }

  #verdict(grants: readonly Grant[], note?: string): BudgetVerdict {
    const mins = Math.round(this.#windowMs / 60_000);
    const suffix = note === undefined ? '' : ` (${note})`;
    return grants.length >= this.#max
      ? { allowed: false, reason: `local budget spent: ${grants.length} of ${this.#max} disruptive actions in the last ${mins}m${suffix}` }
      : { allowed: true, reason: `local budget: ${grants.length} of ${this.#max} used in the last ${mins}m${suffix}` };
  }

  /** Asks without spending (a dry run, or the first look before the other gates). */
  check(): Promise<BudgetVerdict> {
    return this.#locked('check', (_grants, verdict) => ({ verdict, save: false }));
  }

  /** Check and take in one step. */
  take(action: string, operation: string): Promise<BudgetVerdict> {
    return this.#locked(action, (grants, verdict, now) => {
      if (!verdict.allowed) return { verdict, save: false };
      grants.push({ at: now, action, operation });
      return { verdict: { allowed: true, reason: `local budget: ${grants.length} of ${this.#max} used in the window` }, save: true };
    });
  }

  /** Under the lock: load (setting aside, merging and pruning as needed), decide, write back what changed. */
  #locked(purpose: string, decide: (grants: Grant[], verdict: BudgetVerdict, now: number) => { verdict: BudgetVerdict; save: boolean }): Promise<BudgetVerdict> {
    return this.#serial(async () => {
      let lock;
      try {
        lock = await acquireLock(this.#host, `${this.#file}.lock`, { timeoutMs: this.#lockTimeoutMs, purpose: `risk budget: ${purpose}` });
      } catch (err) {
        return { allowed: false, reason: `local budget busy: ${errorMessage(err)}` };
      }
      try {
        // Read the clock inside the lock: a grant another process just wrote is never "from the future".
        const now = this.#host.clock.now();
        const { grants, changed, note } = await this.#load(now);
        const { verdict, save } = decide(grants, this.#verdict(grants, note), now);
        if (save || changed) await this.#save(grants);
        return verdict;
      } finally {
        await lock.release();
      }
    });
  }

  async #save(grants: readonly Grant[]): Promise<void> {
    await this.#host.writeFileAtomic(this.#file, JSON.stringify({ version: 1, grants }), 0o600);
  }

  #serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.#chain.then(work);
    this.#chain = next.catch(() => undefined);
    return next;
  }
}
