import type { DetectorResult, ProblemEvent } from '../../types.ts';
import type { Detector, DetectorContext } from '../engine/types.ts';
import { waitOrExpire } from '../engine/window.ts';
import type { ParsedLogMonitor } from './config.ts';
import { LogRuleEngine, type Recovery } from './log-rules.ts';
import { openLogSource, type LogSource } from './log-sources.ts';

/** An NPD system-log-monitor (kmsg, filelog or journald) as a detector. */
export function createSystemLogMonitor(monitor: ParsedLogMonitor, recovery: Recovery, ctx: DetectorContext): Detector {
  const { host } = ctx;
  const engine = new LogRuleEngine(monitor, recovery, ctx.previous, host.clock.now());
  const result = (events: ProblemEvent[]): DetectorResult => ({ conditions: engine.conditions, events });
  /** Everything the source holds now, one bounded batch at a time; each batch's events go to `take`, so a long backlog is never held. */
  const catchUp = async (source: LogSource, signal: AbortSignal, final: boolean, take: (events: ProblemEvent[]) => void): Promise<void> => {
    for (let batch = await source.read(signal, final); batch !== undefined; batch = await source.read(signal, final)) take(engine.process(batch));
  };

  return {
    async probe(signal) {
      // One pass over what the log holds now, within the lookback window.
      const source = await openLogSource(host, monitor);
      try {
        const events: ProblemEvent[] = [];
        await catchUp(source, signal, true, (batch) => events.push(...batch));
        return result([...events, ...engine.expire(host.clock.now())]);
      } finally {
        await source.close();
      }
    },

    async watch(emit, signal) {
      let source: LogSource | undefined;
      try {
        const opened = await openLogSource(host, monitor);
        source = opened;
        const emitEvents = (events: ProblemEvent[]): void => {
          if (events.length > 0) emit(result(events));
        };
        let reported = false;
        await catchUp(opened, signal, false, (events) => {
          reported ||= events.length > 0;
          emitEvents(events);
        });
        // The first report after start carries the conditions even when the backlog raised nothing.
        if (!reported) emit(result([]));
        while (!signal.aborted) {
          await waitOrExpire(host.clock, (s) => opened.wait(s), engine.nextExpiry(), signal);
          if (signal.aborted) break;
          await catchUp(opened, signal, false, emitEvents);
          emitEvents(engine.expire(host.clock.now()));
        }
      } finally {
        await source?.close();
      }
    },
  };
}
