import { performance } from 'node:perf_hooks';
import { MAX_TIMER_MS } from '../util/duration.ts';

export interface Clock {
  /** Wall time, epoch milliseconds. */
  now(): number;
  /** Resolves after ms, or rejects with the signal's reason when it aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted === true) {
        reject(signal.reason);
        return;
      }
      // A Node timer set past MAX_TIMER_MS fires at once, so a longer sleep is taken in parts,
      // counted on the monotonic clock: a wall clock stepped meanwhile neither stretches nor cuts it.
      const end = performance.now() + ms;
      let timer: NodeJS.Timeout;
      const arm = (): void => {
        const left = end - performance.now();
        if (left <= 0) {
          signal?.removeEventListener('abort', onAbort);
          resolve();
          return;
        }
        timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
      };
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      timer = setTimeout(arm, Math.min(ms, MAX_TIMER_MS));
    }),
};
