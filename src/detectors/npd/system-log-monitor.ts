import type { DetectorResult, ProblemEvent } from '../../types.ts';
import type { Detector, DetectorContext } from '../engine/types.ts';
import type { ParsedLogMonitor } from './config.ts';
import { LogRuleEngine, type Recovery } from './log-rules.ts';
import { openLogSource, type LogSource } from './log-sources.ts';

/** An NPD system-log-monitor (kmsg, filelog or journald) as a detector. */
export function createSystemLogMonitor(monitor: ParsedLogMonitor, recovery: Recovery, ctx: DetectorContext): Detector {
  const { host } = ctx;
  const engine = new LogRuleEngine(monitor, recovery, ctx.previous, host.clock.now());
  const result = (events: ProblemEvent[]): DetectorResult => ({ conditions: engine.conditions, events });

  return {
    async probe(signal) {
      // One pass over what the log holds now, within the lookback window.
      const source = await openLogSource(host, monitor);
      try {
        const events = engine.process(await source.read(signal, true));
        return result([...events, ...engine.expire(host.clock.now())]);
      } finally {
        await source.close();
      }
    },

    async watch(emit, signal) {
      let source: LogSource | undefined;
      try {
        source = await openLogSource(host, monitor);
        emit(result(engine.process(await source.read(signal))));
        while (!signal.aborted) {
          await host.clock.sleep(source.pollMs, signal).catch(() => undefined);
          if (signal.aborted) break;
          const events = [...engine.process(await source.read(signal)), ...engine.expire(host.clock.now())];
          if (events.length > 0) emit(result(events));
        }
      } finally {
        await source?.close();
      }
    },
  };
}
