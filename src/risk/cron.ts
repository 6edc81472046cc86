// 5-field cron (minute hour day-of-month month day-of-week) evaluated in an IANA time zone,
// for RiskPolicy blackout windows. Vixie semantics: when both day fields are restricted, a day
// matches if either does.
import { AgentError } from '../errors.ts';

export interface CronSchedule {
  minutes: ReadonlySet<number>;
  hours: ReadonlySet<number>;
  days: ReadonlySet<number>;
  months: ReadonlySet<number>;
  weekdays: ReadonlySet<number>;
  dayRestricted: boolean;
  weekdayRestricted: boolean;
}

const MACROS: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@hourly': '0 * * * *',
};
const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

export class CronError extends AgentError {
  constructor(message: string) {
    super('INVALID', message);
  }
}

function parseField(text: string, field: string, min: number, max: number, names?: string[]): Set<number> {
  const out = new Set<number>();
  const value = (v: string): number => {
    const byName = names?.indexOf(v.toLowerCase()) ?? -1;
    const n = byName >= 0 ? byName + min : /^\d+$/.test(v) ? Number(v) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) throw new CronError(`${field}: ${JSON.stringify(v)} is not in ${min}-${max}`);
    return n;
  };
  for (const part of text.split(',')) {
    const m = /^([^/]+)(?:\/(\d+))?$/.exec(part);
    if (m === null) throw new CronError(`${field}: cannot read ${JSON.stringify(part)}`);
    const [, range = '', stepText] = m;
    const step = stepText === undefined ? 1 : Number(stepText);
    if (step < 1) throw new CronError(`${field}: step must be at least 1`);
    let lo: number;
    let hi: number;
    if (range === '*' || range === '?') [lo, hi] = [min, max];
    else if (range.includes('-')) {
      const [a = '', b = ''] = range.split('-');
      [lo, hi] = [value(a), value(b)];
      if (lo > hi) throw new CronError(`${field}: range ${range} runs backwards`);
    } else {
      lo = value(range);
      hi = stepText === undefined ? lo : max;
    }
    for (let v = lo; v <= hi; v += step) out.add(v);
  }
  return out;
}

export function parseCron(expression: string): CronSchedule {
  const text = MACROS[expression.trim().toLowerCase()] ?? expression.trim();
  const fields = text.split(/\s+/);
  if (fields.length !== 5) throw new CronError(`expected 5 fields (minute hour day-of-month month day-of-week), got ${fields.length}`);
  const [mi = '', h = '', dom = '', mon = '', dow = ''] = fields;
  if (/[LW#]/i.test(dom.replace(/[a-z]{3}/gi, '')) || /[LW#]/i.test(dow.replace(/[a-z]{3}/gi, ''))) {
    throw new CronError('L, W and # are not supported; use plain day numbers');
  }
  const weekdays = parseField(dow, 'day-of-week', 0, 7, [...WEEKDAYS, 'sun']);
  if (weekdays.has(7)) {
    weekdays.delete(7);
    weekdays.add(0);
  }
  return {
    minutes: parseField(mi, 'minute', 0, 59),
    hours: parseField(h, 'hour', 0, 23),
    days: parseField(dom, 'day-of-month', 1, 31),
    months: parseField(mon, 'month', 1, 12, MONTHS),
    weekdays,
    dayRestricted: !(dom === '*' || dom === '?'),
    weekdayRestricted: !(dow === '*' || dow === '?'),
  };
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** Throws RangeError for a zone the runtime does not know. */
export function zoneFormatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric' });
    formatters.set(timeZone, f);
  }
  return f;
}

/** Offset of the zone from UTC at instant t, in ms (whole minutes in every zone in use). */
function offsetAt(t: number, timeZone: string): number {
  const parts = Object.fromEntries(zoneFormatter(timeZone).formatToParts(new Date(t)).map((p) => [p.type, p.value]));
  const wall = Date.UTC(Number(parts.year), Number(parts.month) - 1, Number(parts.day), Number(parts.hour), Number(parts.minute));
  return wall - Math.floor(t / 60_000) * 60_000;
}

function matchesWall(s: CronSchedule, wall: Date): boolean {
  if (!s.minutes.has(wall.getUTCMinutes()) || !s.hours.has(wall.getUTCHours()) || !s.months.has(wall.getUTCMonth() + 1)) return false;
  const dom = s.days.has(wall.getUTCDate());
  const dow = s.weekdays.has(wall.getUTCDay());
  if (s.dayRestricted && s.weekdayRestricted) return dom || dow;
  return dom && dow;
}

/**
 * The start of the window containing `now` (a firing minute within the last durationMs), or
 * undefined when now is outside every window.
 */
export function windowStartContaining(s: CronSchedule, durationMs: number, timeZone: string, now: number): number | undefined {
  const first = Math.floor(now / 60_000) * 60_000;
  const offsets = new Map<number, number>();
  for (let t = first; t > now - durationMs; t -= 60_000) {
    const hour = Math.floor(t / 3_600_000);
    let off = offsets.get(hour);
    if (off === undefined) {
      off = offsetAt(t, timeZone);
      offsets.set(hour, off);
    }
    if (matchesWall(s, new Date(t + off))) return t;
  }
  return undefined;
}
