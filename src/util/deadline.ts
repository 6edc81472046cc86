import { AgentError } from '../errors.ts';
import type { Clock } from '../host/clock.ts';

/** Why a host call was abandoned: it did not answer within its deadline. */
export class DeadlineExceeded extends AgentError {
  constructor(what: string, ms: number) {
    super('TIMEOUT', `${what} did not answer within ${ms}ms`);
  }
}

/**
 * Races a host call that cannot be cancelled (statfs on a dead disk, fsync on a stalled one)
 * against a deadline on the host clock; the call is left behind, never awaited again.
 */
export async function withDeadline<T>(work: Promise<T>, ms: number, clock: Clock, what: string, signal?: AbortSignal): Promise<T> {
  const stop = new AbortController();
  const onAbort = (): void => stop.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const timer = clock.sleep(ms, stop.signal).then(
    () => Promise.reject(new DeadlineExceeded(what, ms)),
    (err: unknown) => Promise.reject(err instanceof Error ? err : new Error(String(err))),
  );
  timer.catch(() => undefined);
  try {
    return await Promise.race([work, timer]);
  } finally {
    stop.abort();
    signal?.removeEventListener('abort', onAbort);
  }
}
