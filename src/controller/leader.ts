// Leader election on a coordination.k8s.io/v1 Lease, the protocol client-go's leaderelection
// package speaks, so a kubenode controller and any Go tool reading the Lease agree on who leads:
//  - the record is holderIdentity, leaseDurationSeconds, acquireTime, renewTime, leaseTransitions;
//  - every write is a PUT carrying the resourceVersion last read (a 409 means someone else wrote);
//  - a candidate takes the Lease only when its holder is empty or the record has not changed for
//    leaseDuration as measured on the candidate's own clock since it last saw a change (client-go's
//    observedTime: no trust in the other replica's clock);
//  - the leader renews every retryPeriod; if no renewal succeeded for renewDeadline it stops
//    leading. renewDeadline < leaseDuration, so it stops before anyone else may take over.
import { errorMessage } from '../errors.ts';
import { systemClock, type Clock } from '../host/clock.ts';
import { classifyKubeError, type KubeClient } from '../kube/client.ts';
import type { Logger } from '../log.ts';
import { microTime } from '../report/kube/lease.ts';

export interface LeaderElectionOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  /** This replica's identity: host name plus a random suffix, as client-go's callers make it. */
  identity: string;
  log: Logger;
  /** Defaults: client-go's 15 s / 10 s / 2 s. */
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  clock?: Clock;
}

interface LeaseRecord {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string; [k: string]: unknown };
  spec: LeaseRecord & Record<string, unknown>;
}

export interface LeaderStats {
  acquired: number;
  renewals: number;
  conflicts: number;
  failures: number;
}

export const LEADER_DEFAULTS = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 } as const;

export class LeaderElector {
  readonly stats: LeaderStats = { acquired: 0, renewals: 0, conflicts: 0, failures: 0 };
  readonly #o: Required<LeaderElectionOptions>;
  readonly #path: string;
  readonly #stop = new AbortController();
  #latest: Lease | undefined;
  /** The record as last seen, and when (our clock) it last changed. */
  #observedRecord = '';
  #observedAt = 0;
  /** Our clock when our last renewal succeeded; leading only while now < this + renewDeadline. */
  #renewedAt: number | undefined;

  constructor(options: LeaderElectionOptions) {
    this.#o = { ...LEADER_DEFAULTS, clock: systemClock, ...options };
    const { leaseDurationMs, renewDeadlineMs, retryPeriodMs } = this.#o;
    if (!(renewDeadlineMs < leaseDurationMs)) throw new RangeError(`renewDeadline (${renewDeadlineMs} ms) must be shorter than leaseDuration (${leaseDurationMs} ms)`);
    if (!(retryPeriodMs > 0 && retryPeriodMs < renewDeadlineMs)) throw new RangeError(`retryPeriod (${retryPeriodMs} ms) must be positive and shorter than renewDeadline (${renewDeadlineMs} ms)`);
    this.#path = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(options.namespace)}/leases`;
  }

  get identity(): string {
    return this.#o.identity;
  }

  /** True only while a renewal succeeded within renewDeadline: writers check this before each write. */
  isLeader(): boolean {
    return this.#renewedAt !== undefined && this.#o.clock.now() < this.#renewedAt + this.#o.renewDeadlineMs;
  }

  /**
   * Waits until this replica holds the Lease, then keeps renewing it. Resolves `lost` when
   * renewals failed for renewDeadline (the caller must stop acting at once), `stopped` after
   * stop(). `onLeading` runs once the Lease is held, with a signal that aborts when leadership ends.
   */
  async run(onLeading: (signal: AbortSignal) => void): Promise<'lost' | 'stopped'> {
    const { retryPeriodMs, renewDeadlineMs, log } = this.#o;
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      if (await this.tryAcquireOrRenew()) break;
      if (!(await this.#sleep(retryPeriodMs))) return 'stopped';
    }
    if (signal.aborted) return 'stopped';
    this.stats.acquired += 1;
    log.info({ lease: `${this.#o.namespace}/${this.#o.name}`, identity: this.#o.identity }, 'Became leader');
    const leading = new AbortController();
    onLeading(leading.signal);
    try {
      while (!signal.aborted) {
        if (!(await this.#sleep(retryPeriodMs))) break;
        const renewed = await this.tryAcquireOrRenew();
        if (!renewed && !this.isLeader()) {
          log.error({ lease: `${this.#o.namespace}/${this.#o.name}`, renewDeadlineMs }, 'Leader election lost: could not renew the lease in time');
          leading.abort(new Error('leader election lost'));
          return 'lost';
        }
      }
    } finally {
      if (!leading.signal.aborted) leading.abort(new Error('stopped'));
    }
    return 'stopped';
  }

  /** One attempt, as client-go's tryAcquireOrRenew. Never throws; true when we hold the Lease now. */
  async tryAcquireOrRenew(): Promise<boolean> {
    const { client, clock, identity, leaseDurationMs, log } = this.#o;
    const now = clock.now();
    try {
      let current = this.#latest;
      if (current === undefined) {
        try {
          current = await client.get<Lease>(`${this.#path}/${encodeURIComponent(this.#o.name)}`, { timeoutMs: this.#o.renewDeadlineMs });
        } catch (err) {
          if (classifyKubeError(err) !== 'not-found') throw err;
          const created = await client.request<Lease>('POST', this.#path, {
            body: {
              apiVersion: 'coordination.k8s.io/v1',
              kind: 'Lease',
              metadata: { name: this.#o.name, namespace: this.#o.namespace },
              spec: this.#record(now, undefined),
            },
            timeoutMs: this.#o.renewDeadlineMs,
          });
          this.#observe(created, now);
          this.#renewedAt = now;
          return true;
        }
        this.#observe(current, now);
      }
      const held = current.spec.holderIdentity ?? '';
      if (held !== '' && held !== identity) {
        // Someone else's record: wait until it has been still for its whole duration on our clock.
        const duration = (current.spec.leaseDurationSeconds ?? leaseDurationMs / 1000) * 1000;
        if (this.#observedAt + duration > now) {
          this.#latest = undefined;
          return false;
        }
      }
      const body: Lease = { ...current, spec: { ...current.spec, ...this.#record(now, current.spec) } };
      const updated = await client.request<Lease>('PUT', `${this.#path}/${encodeURIComponent(this.#o.name)}`, { body, timeoutMs: this.#o.renewDeadlineMs });
      this.#observe(updated, now);
      if (held === identity) this.stats.renewals += 1;
      this.#renewedAt = now;
      return true;
    } catch (err) {
      // A stale copy (409) or any failure: read afresh next time.
      this.#latest = undefined;
      if (classifyKubeError(err) === 'conflict') this.stats.conflicts += 1;
      else {
        this.stats.failures += 1;
        log.warn({ lease: `${this.#o.namespace}/${this.#o.name}`, err: errorMessage(err) }, 'Leader lease write failed');
      }
      return false;
    }
  }

  /** Hands the Lease back on a clean shutdown (client-go's ReleaseOnCancel), so the next replica need not wait. */
  async release(): Promise<void> {
    const { client, clock, identity } = this.#o;
    if (this.#renewedAt === undefined) return;
    this.#renewedAt = undefined;
    try {
      const current = this.#latest ?? (await client.get<Lease>(`${this.#path}/${encodeURIComponent(this.#o.name)}`, { timeoutMs: 5000 }));
      if (current.spec.holderIdentity !== identity) return;
      const now = microTime(clock.now());
      await client.request('PUT', `${this.#path}/${encodeURIComponent(this.#o.name)}`, {
        body: { ...current, spec: { ...current.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: now, acquireTime: now } },
        timeoutMs: 5000,
      });
    } catch (err) {
      this.#o.log.warn({ err: errorMessage(err) }, 'Could not release the leader lease; the next leader waits for it to expire');
    }
    this.#latest = undefined;
  }

  stop(): void {
    this.#stop.abort(new Error('stopped'));
  }

  #record(now: number, previous: LeaseRecord | undefined): LeaseRecord {
    const ours = previous?.holderIdentity === this.#o.identity;
    return {
      holderIdentity: this.#o.identity,
      leaseDurationSeconds: Math.ceil(this.#o.leaseDurationMs / 1000),
      acquireTime: ours && previous?.acquireTime !== undefined ? previous.acquireTime : microTime(now),
      renewTime: microTime(now),
      leaseTransitions: previous === undefined ? 0 : (previous.leaseTransitions ?? 0) + (ours ? 0 : 1),
    };
  }

  #observe(lease: Lease, now: number): void {
    this.#latest = lease;
    const record = JSON.stringify([lease.spec.holderIdentity, lease.spec.renewTime, lease.spec.acquireTime, lease.spec.leaseTransitions, lease.spec.leaseDurationSeconds]);
    if (record !== this.#observedRecord) {
      this.#observedRecord = record;
      this.#observedAt = now;
    }
  }

  async #sleep(ms: number): Promise<boolean> {
    try {
      await this.#o.clock.sleep(ms, this.#stop.signal);
      return true;
    } catch {
      return false;
    }
  }
}
