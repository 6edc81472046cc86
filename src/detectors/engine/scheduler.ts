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
  /** Where the probe grid starts after start(), in ms (default: random below 5 s and below the shortest interval). */
  phaseMs?: number;
}

const WATCH_BACKOFF_MIN_MS = 1_000;
const WATCH_BACKOFF_MAX_MS = 60_000;

const START_SPREAD_MAX_MS = 5_000;

/**
 * The first probe time at or after `after` on the grid origin + k × interval (k may be negative:
 * a wall clock stepped back keeps the grid and the wait under one interval).
 */
export function nextSlot(origin: number, intervalMs: number, after: number): number {
  return origin + Math.ceil((after - origin) / intervalMs) * intervalMs;
}

/**
 * The daemon's detector loop: probe detectors run on their interval with a deadline, at most
 * maxConcurrent at once; stream detectors (log monitors) follow their source and are restarted
 * with backoff when they fail. Nothing a detector does can stop the others.
 *
 * Every probe time lies on one grid, origin + k × interval, and the probes due at one time wait on
 * one timer. With the built-in intervals (30 s and 60 s) each minute has two ticks instead of one
 * wakeup per probe, and the detectors that list processes at one tick share the scan (procs.ts).
 * The origin is random per start (below 5 s), so a fleet restarted at once does not probe in step.
 */
export class Scheduler {
  readonly #options: SchedulerOptions;
  readonly #controller = new AbortController();
  readonly #loops: Promise<void>[] = [];
  /** One sleep per probe time, shared by every probe due then. */
  readonly #alarms = new Map<number, Promise<void>>();
  #origin = 0;

  constructor(options: SchedulerOptions) {
    this.#options = options;
  }

  start(instances: readonly DetectorInstance[]): void {
    const shortest = Math.min(START_SPREAD_MAX_MS, ...instances.map((i) => i.settings.intervalMs));
    this.#origin = this.#options.clock.now() + (this.#options.phaseMs ?? Math.floor(Math.random() * shortest));
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
    const { intervalMs } = instance.settings;
    let due = this.#origin;
    while (!signal.aborted) {
      await this.#at(due);
      if (signal.aborted) break;
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
      // At least half an interval between the end of one probe and the start of the next: a probe
      // that overran its slot skips a tick rather than run again at once.
      due = nextSlot(this.#origin, intervalMs, clock.now() + intervalMs / 2);
    }
  }

  #at(due: number): Promise<void> {
    const { clock } = this.#options;
    if (due <= clock.now()) return Promise.resolve();
    let alarm = this.#alarms.get(due);
    if (alarm === undefined) {
      alarm = clock
        .sleep(due - clock.now(), this.#controller.signal)
        .catch(() => undefined)
        .finally(() => this.#alarms.delete(due));
      this.#alarms.set(due, alarm);
    }
    return alarm;
  }
}
