import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/**
 * Synchronous JSON lines, for journald: pino transports run in worker threads,
 * which do not survive bundling into the single executable.
 */
export function createLogger(level: LevelWithSilent, fd: 1 | 2 = 1): Logger {
  return pino(
    { level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } },
    pino.destination({ dest: fd, sync: true }),
  );
}
