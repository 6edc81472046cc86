import type { Logger } from 'pino';
import { errorMessage } from '../../errors.ts';
import type { Clock } from '../../host/clock.ts';
import { probeWithDeadline, Semaphore, type ProbeOutcome } from './run.ts';
import type { DetectorContext, DetectorInstance } from './types.ts';

export interface SchedulerOptions {
  maxConcurrent: number;
  clock: Clock;
  log: Logger;
  context: (instance: DetectorInstance) => DetectorContext;
  /**
   * `fromStart`: the result is the first of a pass that read its source from the start of its
   * window (every probe; a watch's first report, after a start or restart), so its events may
   * repeat what an earlier pass reported.
   */
  onOutcome: (detector: string, outcome: ProbeOutcome, durationMs: number, fromStart: boolean) => void;
}

const WATCH_BACKOFF_MIN_MS = 1_000;
const WATCH_BACKOFF_MAX_MS = 60_000;

/**
 * The daemon's detector loop: probe detectors run on their interval with a deadline, at most
 * maxConcurrent at once; stream detectors (log monitors) follow their source and are restarted
 * with backoff when they fail. Nothing a detector does can stop the others.
 */
export class Scheduler {
  readonly #options: SchedulerOptions;
  readonly #controller = new AbortController();
  readonly #loops: Promise<void>[] = [];

  constructor(options: SchedulerOptions) {
    this.#options = options;
  }

  start(instances: readonly DetectorInstance[]): void {
    const gate = new Semaphore(this.#options.maxConcurrent);
    for (const instance of instances) {
      this.#loops.push(this.#loop(instance, gate).catch((err: unknown) => {
        this.#options.log.error({ detector: instance.name, err: errorMessage(err) }, 'Detector loop ended');
      }));
    }
  }

  async stop(): Promise<void> {
    this.#controller.abort(new Error('stopping'));
    await Promise.all(this.#loops);
  }

  async #loop(instance: DetectorInstance, gate: Semaphore): Promise<void> {
    const { clock, onOutcome } = this.#options;
    const signal = this.#controller.signal;
    const detector = instance.create(this.#options.context(instance));
    const sleep = (ms: number): Promise<void> => clock.sleep(ms, signal).catch(() => undefined);
    if (detector.watch !== undefined) {
      let backoff = WATCH_BACKOFF_MIN_MS;
      while (!signal.aborted) {
        const started = performance.now();
        let fromStart = true;
        try {
          await detector.watch((result) => {
            backoff = WATCH_BACKOFF_MIN_MS;
            onOutcome(instance.name, { ok: true, result }, performance.now() - started, fromStart);
            fromStart = false;
          }, signal);
        } catch (err) {
          if (signal.aborted) break;
          onOutcome(instance.name, { ok: false, error: errorMessage(err) }, performance.now() - started, fromStart);
        }
        await sleep(backoff);
        backoff = Math.min(backoff * 2, WATCH_BACKOFF_MAX_MS);
      }
      return;
    }
    // Spread the first probes so that detectors with one interval do not all fire together.
    await sleep(Math.floor(Math.random() * Math.min(instance.settings.intervalMs, 5_000)));
    while (!signal.aborted) {
      const release = await gate.acquire();
      const started = performance.now();
      let outcome: ProbeOutcome;
      try {
        outcome = await probeWithDeadline(detector, instance.settings.timeoutMs, signal);
      } finally {
        release();
      }
      if (signal.aborted) break;
      onOutcome(instance.name, outcome, performance.now() - started, true);
      await sleep(instance.settings.intervalMs);
    }
  }
}
