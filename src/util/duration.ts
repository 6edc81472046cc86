// Durations are written as Go writes them (NPD's configs use "5m", "86400s", "1h30m"): one grammar
// for agent.yaml, NPD monitor files, manifests and custom resources.
const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const TERM = /^(\d+(?:\.\d+)?)(ns|us|\u00b5s|ms|s|m|h)/;

/** The grammar as a regular expression, for schemas (RE2-compatible, so the apiserver can check it too). */
export const DURATION_PATTERN = '^(0|([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$';

/** Node arms a timer with at most 2^31-1 ms; a longer one fires at once, every time. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Parses a Go duration string into milliseconds; returns undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  let rest = text.trim();
  if (rest === '0') return 0;
  if (rest === '' || rest.length > 64) return undefined;
  let total = 0;
  while (rest !== '') {
    const m = TERM.exec(rest);
    if (m === null) return undefined;
    total += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
    rest = rest.slice(m[0].length);
  }
  return total;
}

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0 && ms !== 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms !== 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** The shortest and longest value a duration setting accepts, written as durations. */
export interface DurationBounds {
  min: string;
  max: string;
}

/** Intervals, timeouts and backoffs: never a busy loop, never past what a Node timer can hold (MAX_TIMER_MS). */
export const TIMER_BOUNDS: DurationBounds = { min: '1s', max: '24h' };

function boundMs(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) throw new TypeError(`duration bound ${JSON.stringify(text)} is not a duration`);
  return ms;
}

/** What a setting with these bounds expects, in words: "a duration like 30s, 5m, 1h30m, between 1s and 24h". */
export function expectedDuration(bounds: DurationBounds): string {
  const range = boundMs(bounds.min) === 0 ? `from 0 (off) up to ${bounds.max}` : `between ${bounds.min} and ${bounds.max}`;
  return `a duration like 30s, 5m, 1h30m, ${range}`;
}

/** Milliseconds of a duration inside its bounds, or undefined. A bare number 0 (YAML's `lookback: 0`) is "0". */
export function durationWithin(text: unknown, bounds: DurationBounds): number | undefined {
  if (text !== 0 && typeof text !== 'string') return undefined;
  const ms = parseDuration(String(text));
  if (ms === undefined || ms < boundMs(bounds.min) || ms > boundMs(bounds.max)) return undefined;
  return ms;
}

/**
 * Milliseconds of a duration that a schema has already checked (a custom resource the apiserver
 * validated, a decoded setting); a value that is not one is a bug, not bad input.
 */
export function durationMs(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) throw new TypeError(`not a duration: ${JSON.stringify(text)}`);
  return ms;
}
