// A work queue in client-go's shape: a key is queued at most once, and while a worker holds it a
// new add marks it dirty instead of running it twice at once; at most `workers` keys run in
// parallel; a failed key comes back after a per-key exponential backoff (jittered), a key that
// succeeds forgets its failures; addAfter wakes a key at a time (a batch's bake end, a deadline)
// with one timer per key, the earliest wins.
import { errorMessage } from '../errors.ts';
import { backoffDelay } from '../util/backoff.ts';
import { MAX_TIMER_MS } from '../util/duration.ts';
import type { Logger } from '../log.ts';

export interface WorkQueueOptions {
  workers: number;
  /** Runs one key; a throw requeues it with backoff. May return a delay after which to look again. */
  handle: (key: string, signal: AbortSignal) => Promise<number | undefined>;
  log: Logger;
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Observes each run (metrics). */
  observe?: (key: string, durationMs: number, failed: boolean) => void;
}

export class WorkQueue {
  readonly #o: Required<Omit<WorkQueueOptions, 'observe'>> & Pick<WorkQueueOptions, 'observe'>;
  readonly #queue: string[] = [];
  readonly #queued = new Set<string>();
  readonly #active = new Set<string>();
  readonly #dirty = new Set<string>();
  readonly #failures = new Map<string, number>();
  readonly #timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  readonly #stop = new AbortController();
  #running = 0;
  #idleWaiters: (() => void)[] = [];

  constructor(options: WorkQueueOptions) {
    this.#o = { backoffMs: 500, maxBackoffMs: 5 * 60_000, ...options };
  }

  get depth(): number {
    return this.#queue.length;
  }

  add(key: string): void {
    if (this.#stop.signal.aborted) return;
    if (this.#active.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#queued.has(key)) return;
    this.#queued.add(key);
    this.#queue.push(key);
    this.#pump();
  }

  /**
   * Queues the key after ms; an earlier wake-up already set for it stands. A Node timer fires at
   * once past MAX_TIMER_MS (~24.8 days), so a later wake-up comes at that bound instead: the
   * handler looks again and asks for the rest.
   */
  addAfter(key: string, ms: number): void {
    if (this.#stop.signal.aborted) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const at = Date.now() + ms;
    const existing = this.#timers.get(key);
    if (existing !== undefined && existing.at <= at) return;
    if (existing !== undefined) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.#timers.delete(key);
      this.add(key);
    }, Math.min(ms, MAX_TIMER_MS));
    timer.unref();
    this.#timers.set(key, { at, timer });
  }

  /** Forgets a key (its object was deleted). */
  forget(key: string): void {
    this.#failures.delete(key);
    const t = this.#timers.get(key);
    if (t !== undefined) clearTimeout(t.timer);
    this.#timers.delete(key);
  }

  /** Stops taking keys; resolves when running handlers have returned. */
  async stop(): Promise<void> {
    this.#stop.abort(new Error('queue stopped'));
    for (const { timer } of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    this.#queue.length = 0;
    this.#queued.clear();
    if (this.#running > 0) await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
  }

  #pump(): void {
    while (this.#running < this.#o.workers && this.#queue.length > 0 && !this.#stop.signal.aborted) {
      const key = this.#queue.shift() as string;
      this.#queued.delete(key);
      this.#active.add(key);
      this.#running += 1;
      void this.#work(key);
    }
  }

  async #work(key: string): Promise<void> {
    const started = performance.now();
    let again: number | undefined;
    let failed = false;
    try {
      again = await this.#o.handle(key, this.#stop.signal);
      this.#failures.delete(key);
    } catch (err) {
      failed = true;
      const n = (this.#failures.get(key) ?? 0) + 1;
      this.#failures.set(key, n);
      again = backoffDelay(n - 1, this.#o.backoffMs, this.#o.maxBackoffMs);
      if (!this.#stop.signal.aborted) this.#o.log.warn({ key, err: errorMessage(err), failures: n, retryInMs: again }, 'Reconcile failed; requeued with backoff');
    }
    this.#o.observe?.(key, performance.now() - started, failed);
    this.#active.delete(key);
    this.#running -= 1;
    // Changed while running: look again now, unless a failure already set the backoff.
    if (this.#dirty.delete(key) && !failed) this.add(key);
    if (again !== undefined) this.addAfter(key, again);
    if (this.#running === 0 && this.#stop.signal.aborted) for (const w of this.#idleWaiters.splice(0)) w();
    this.#pump();
  }
}
