import type { Logger } from 'pino';
import type { Clock } from '../../host/clock.ts';
import { errorMessage } from '../../errors.ts';
import { classifyKubeError } from '../../kube/client.ts';
import { backoffDelay } from '../../util/backoff.ts';

/** Counts of one writer's apiserver writes; cheap enough to keep always. */
export interface WriteStats {
  attempts: number;
  failures: number;
  /** Successful writes. */
  writes: number;
}

/** Hook for metrics: one call per write attempt. */
export type WriteObserver = (writer: string, ok: boolean) => void;

export interface LatestWriterOptions<T> {
  name: string;
  clock: Clock;
  log: Logger;
  write: (state: T) => Promise<void>;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  random?: () => number;
  observe?: WriteObserver;
}

/**
 * Holds only the latest desired state and writes it: while the apiserver is
 * away, any number of updates coalesce into the one write made when it is back.
 * Never throws to callers; `set()` never waits.
 */
export class LatestWriter<T> {
  readonly stats: WriteStats = { attempts: 0, failures: 0, writes: 0 };
  readonly #o: LatestWriterOptions<T>;
  readonly #abort = new AbortController();
  #pending: { state: T } | undefined;
  #loop: Promise<void> | undefined;

  constructor(options: LatestWriterOptions<T>) {
    this.#o = options;
  }

  set(state: T): void {
    if (this.#abort.signal.aborted) return;
    this.#pending = { state };
    this.#loop ??= this.#run().finally(() => (this.#loop = undefined));
  }

  /** Whether a state is waiting to be written (or being retried). */
  get pending(): boolean {
    return this.#pending !== undefined || this.#loop !== undefined;
  }

  /** Resolves once nothing is pending: every state set so far is written (or the writer stopped). */
  async settled(): Promise<void> {
    while (this.#loop !== undefined) await this.#loop;
  }

  async stop(): Promise<void> {
    this.#abort.abort(new Error('writer stopped'));
    await this.#loop;
  }

  async #run(): Promise<void> {
    let failuresInRow = 0;
    while (this.#pending !== undefined && !this.#abort.signal.aborted) {
      const { state } = this.#pending;
      this.#pending = undefined;
      this.stats.attempts++;
      try {
        await this.#o.write(state);
        this.stats.writes++;
        this.#o.observe?.(this.#o.name, true);
        if (failuresInRow > 0) this.#o.log.info({ writer: this.#o.name, failures: failuresInRow }, 'Apiserver write succeeded again');
        failuresInRow = 0;
      } catch (err) {
        this.stats.failures++;
        this.#o.observe?.(this.#o.name, false);
        // A newer state set meanwhile supersedes this one.
        this.#pending ??= { state };
        const delayMs = backoffDelay(failuresInRow, this.#o.backoffBaseMs ?? 500, this.#o.backoffMaxMs ?? 30_000, this.#o.random);
        failuresInRow++;
        // One line per outage, then quiet: an agent cut off for hours must not flood journald.
        const level = failuresInRow === 1 || failuresInRow % 20 === 0 ? 'warn' : 'debug';
        this.#o.log[level]({ writer: this.#o.name, err: errorMessage(err), kind: classifyKubeError(err), retryInMs: delayMs, failures: failuresInRow }, 'Apiserver write failed; will retry');
        try {
          await this.#o.clock.sleep(delayMs, this.#abort.signal);
        } catch {
          return;
        }
      }
    }
  }
}
