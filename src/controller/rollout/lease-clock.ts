// Agent liveness for the rollouts, from the agents' Leases in kube-node-lease (src/report/kube/lease.ts).
// A renewal that keeps a Lease fresh changes nothing a rollout reads, and 10,000 agents renew every
// 10 s, so renewals never queue a set. What does: a Lease that appears, goes, comes back fresh, or goes
// stale. Going stale has no watch event; one timer stands at the earliest moment a fresh Lease
// expires (a min-heap keyed by expiry, one entry per Lease), and fires only then. A renewal of the
// earliest Lease does not move the timer: when it fires early it finds nothing expired and re-arms
// at the new earliest, so the whole fleet costs at most one idle wakeup per lease duration, never
// one per node.
import type { Clock } from '../../host/clock.ts';
import { agentLeaseNode, LEASE_NAMESPACE } from '../../report/kube/lease.ts';
import type { InformerEvent } from '../../watch/informer.ts';
import type { LeaseObject } from './reconciler.ts';

/** What the agent writes; a Lease without leaseDurationSeconds is read with it. */
const DEFAULT_DURATION_S = 40;

/** When the Lease stops vouching for its agent (epoch ms), or undefined when it never did (no renewTime). */
export function leaseExpiry(lease: LeaseObject): number | undefined {
  const renewed = Date.parse(lease.spec?.renewTime ?? '');
  if (!Number.isFinite(renewed)) return undefined;
  return renewed + (lease.spec?.leaseDurationSeconds ?? DEFAULT_DURATION_S) * 1000;
}

/** Fresh at `now`: renewed, and not past its duration (stale strictly after the expiry, as the reconciler reads it). */
export function leaseFresh(lease: LeaseObject | undefined, now: number): boolean {
  const at = lease === undefined ? undefined : leaseExpiry(lease);
  return at !== undefined && at >= now;
}

export interface LeaseClockOptions {
  clock: Clock;
  /** A machine's agent turned fresh or stale (or its Lease came or went). */
  changed: (machine: string) => void;
}

interface Entry {
  machine: string;
  at: number;
}

export class LeaseClock {
  readonly #o: LeaseClockOptions;
  readonly #heap: Entry[] = [];
  readonly #index = new Map<string, number>();
  #timer: { at: number; abort: AbortController } | undefined;
  #stopped = false;
  /** Timer firings (tests and the bench count idle wakeups with it). */
  wakeups = 0;

  constructor(options: LeaseClockOptions) {
    this.#o = options;
  }

  /** Feed every event of the kube-node-lease informer. */
  observe(e: InformerEvent<LeaseObject>): void {
    if (e.type === 'synced' || this.#stopped) return;
    if (e.object.metadata.namespace !== LEASE_NAMESPACE) return;
    // The machine comes from the name, or for a shortened name from holderIdentity.
    const machine = agentLeaseNode(e.object);
    if (e.type === 'update' && agentLeaseNode(e.old) !== machine) {
      // Its holder changed what it says: the Lease went for the machine it named and came for this one.
      this.observe({ type: 'delete', object: e.old });
      this.observe({ type: 'add', object: e.object });
      return;
    }
    if (machine === undefined) return;
    const now = this.#o.clock.now();
    const next = e.type === 'delete' ? undefined : e.object;
    const before = e.type === 'update' ? leaseFresh(e.old, now) : e.type === 'delete' ? leaseFresh(e.object, now) : false;
    const after = leaseFresh(next, now);
    if (after) this.#put(machine, leaseExpiry(next as LeaseObject) as number);
    else this.#remove(machine);
    if (before !== after) this.#o.changed(machine);
    this.#arm();
  }

  /** How many Leases the timer watches (fresh ones). */
  get watching(): number {
    return this.#heap.length;
  }

  stop(): void {
    this.#stopped = true;
    this.#timer?.abort.abort();
    this.#timer = undefined;
  }

  #arm(): void {
    const top = this.#heap[0];
    if (top === undefined || this.#stopped) return;
    // Stale strictly after the expiry: wake one millisecond past it.
    const at = top.at + 1;
    if (this.#timer !== undefined && this.#timer.at <= at) return;
    this.#timer?.abort.abort();
    const abort = new AbortController();
    this.#timer = { at, abort };
    this.#o.clock.sleep(Math.max(0, at - this.#o.clock.now()), abort.signal).then(
      () => {
        if (this.#timer?.abort !== abort) return;
        this.#timer = undefined;
        this.#fire();
      },
      () => undefined,
    );
  }

  #fire(): void {
    this.wakeups += 1;
    const now = this.#o.clock.now();
    const expired: string[] = [];
    while (this.#heap.length > 0 && (this.#heap[0] as Entry).at < now) {
      const top = this.#heap[0] as Entry;
      this.#remove(top.machine);
      expired.push(top.machine);
    }
    for (const m of expired) this.#o.changed(m);
    this.#arm();
  }

  #put(machine: string, at: number): void {
    const i = this.#index.get(machine);
    if (i === undefined) {
      this.#heap.push({ machine, at });
      this.#index.set(machine, this.#heap.length - 1);
      this.#up(this.#heap.length - 1);
      return;
    }
    const entry = this.#heap[i] as Entry;
    const old = entry.at;
    entry.at = at;
    if (at < old) this.#up(i);
    else this.#down(i);
  }

  #remove(machine: string): void {
    const i = this.#index.get(machine);
    if (i === undefined) return;
    this.#index.delete(machine);
    const last = this.#heap.pop() as Entry;
    if (i === this.#heap.length) return;
    this.#heap[i] = last;
    this.#index.set(last.machine, i);
    this.#up(i);
    this.#down(this.#index.get(last.machine) as number);
  }

  #swap(a: number, b: number): void {
    const x = this.#heap[a] as Entry;
    const y = this.#heap[b] as Entry;
    this.#heap[a] = y;
    this.#heap[b] = x;
    this.#index.set(y.machine, a);
    this.#index.set(x.machine, b);
  }

  #up(i: number): void {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if ((this.#heap[p] as Entry).at <= (this.#heap[i] as Entry).at) return;
      this.#swap(i, p);
      i = p;
    }
  }

  #down(i: number): void {
    const n = this.#heap.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && (this.#heap[l] as Entry).at < (this.#heap[m] as Entry).at) m = l;
      if (r < n && (this.#heap[r] as Entry).at < (this.#heap[m] as Entry).at) m = r;
      if (m === i) return;
      this.#swap(i, m);
      i = m;
    }
  }
}
