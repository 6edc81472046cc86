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
  /** Everything the source holds now, one bounded batch at a time. */
  const catchUp = async (source: LogSource, signal: AbortSignal, final: boolean): Promise<ProblemEvent[]> => {
    const events: ProblemEvent[] = [];
    for (let batch = await source.read(signal, final); batch !== undefined; batch = await source.read(signal, final)) events.push(...engine.process(batch));
    return events;
  };

  return {
    async probe(signal) {
      // One pass over what the log holds now, within the lookback window.
      const source = await openLogSource(host, monitor);
      try {
        const events = await catchUp(source, signal, true);
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
        emit(result(await catchUp(opened, signal, false)));
        while (!signal.aborted) {
          await waitOrExpire(host.clock, (s) => opened.wait(s), engine.nextExpiry(), signal);
          if (signal.aborted) break;
          const events = [...(await catchUp(opened, signal, false)), ...engine.expire(host.clock.now())];
          if (events.length > 0) emit(result(events));
        }
      } finally {
        await source?.close();
      }
    },
  };
}
