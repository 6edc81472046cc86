import { errorMessage } from '../../errors.ts';
import type { Clock } from '../../host/clock.ts';
import { resultStatus, type CheckStatus, type Condition, type DetectorResult, type ProblemEvent } from '../../types.ts';
import { silence } from './filters.ts';
import type { Detector, DetectorContext, DetectorInstance } from './types.ts';

/** Admits at most `limit` holders at once, first come first served. */
export class Semaphore {
  #free: number;
  readonly #waiting: (() => void)[] = [];
  constructor(limit: number) {
    this.#free = limit;
  }
  async acquire(): Promise<() => void> {
    if (this.#free > 0) this.#free -= 1;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.shift();
      if (next === undefined) this.#free += 1;
      else next();
    };
  }
}

export type ProbeOutcome = { ok: true; result: DetectorResult } | { ok: false; error: string };

/**
 * One probe with a deadline. A detector that throws or overruns is reported, never rethrown:
 * one broken detector must not take the others, or the agent, down with it.
 */
export async function probeWithDeadline(detector: Detector, timeoutMs: number, outer?: AbortSignal): Promise<ProbeOutcome> {
  const controller = new AbortController();
  const onOuter = (): void => controller.abort(outer?.reason);
  outer?.addEventListener('abort', onOuter, { once: true });
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<ProbeOutcome>((resolve) => {
    timer = setTimeout(() => {
      controller.abort(new Error('deadline'));
      resolve({ ok: false, error: `timed out after ${(timeoutMs / 1000).toFixed(1)}s` });
    }, timeoutMs);
  });
  try {
    const probe = detector.probe(controller.signal).then(
      (result): ProbeOutcome => ({ ok: true, result }),
      (err: unknown): ProbeOutcome => ({ ok: false, error: errorMessage(err) }),
    );
    return await Promise.race([probe, deadline]);
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener('abort', onOuter);
  }
}

export interface CheckEntry {
  detector: string;
  status: CheckStatus;
  conditions: Condition[];
  events: ProblemEvent[];
  durationMs: number;
  error?: string;
}

export interface RunOnceOptions {
  maxConcurrent: number;
  /** The whole run ends by then (epoch ms on `clock`); detectors still running are reported unknown. */
  deadline: number;
  clock: Clock;
  context: (instance: DetectorInstance) => DetectorContext;
  /** Reasons the operator silenced (detection.silencedReasons). */
  silenced: ReadonlySet<string>;
}

/** Every detector once, at most maxConcurrent at a time: what `check` does. */
export async function runOnce(instances: readonly DetectorInstance[], options: RunOnceOptions): Promise<CheckEntry[]> {
  const gate = new Semaphore(options.maxConcurrent);
  return Promise.all(
    instances.map(async (instance): Promise<CheckEntry> => {
      const release = await gate.acquire();
      const started = performance.now();
      try {
        const remaining = options.deadline - options.clock.now();
        if (remaining <= 0) {
          return { detector: instance.name, status: 'unknown', conditions: [], events: [], durationMs: 0, error: 'not started: the check deadline had passed' };
        }
        let outcome: ProbeOutcome;
        try {
          const detector = instance.create(options.context(instance));
          outcome = await probeWithDeadline(detector, Math.min(instance.settings.timeoutMs, remaining));
        } catch (err) {
          outcome = { ok: false, error: errorMessage(err) };
        }
        const durationMs = Math.round(performance.now() - started);
        if (!outcome.ok) {
          return { detector: instance.name, status: 'unknown', conditions: [], events: [], durationMs, error: outcome.error };
        }
        const result = silence(outcome.result, options.silenced);
        return {
          detector: instance.name,
          status: resultStatus(result),
          conditions: result.conditions,
          events: result.events,
          durationMs,
          ...(result.unknown === undefined ? {} : { error: result.unknown }),
        };
      } finally {
        release();
      }
    }),
  );
}
