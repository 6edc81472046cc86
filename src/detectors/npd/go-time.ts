// Go reference-time layouts ("Jan _2 15:04:05", "2006-01-02T15:04:05.999999999-07:00"),
// which NPD's filelog plugin uses for timestampFormat.

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const LONG_MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

type Field = 'year' | 'year2' | 'month' | 'monthName' | 'day' | 'hour' | 'hour12' | 'minute' | 'second' | 'fraction' | 'ampm' | 'zone' | 'zoneName' | 'skip';

// Longest tokens first, so "2006" wins over "2" and "January" over "Jan".
const TOKENS: [string, Field, string][] = [
  ['January', 'monthName', '([A-Za-z]+)'],
  ['Monday', 'skip', '[A-Za-z]+'],
  ['Z07:00', 'zone', '(Z|[+-]\\d{2}:\\d{2})'],
  ['-07:00', 'zone', '([+-]\\d{2}:\\d{2})'],
  ['-0700', 'zone', '([+-]\\d{4})'],
  ['Z0700', 'zone', '(Z|[+-]\\d{4})'],
  ['2006', 'year', '(\\d{4})'],
  ['-07', 'zone', '([+-]\\d{2})'],
  ['Jan', 'monthName', '([A-Za-z]{3})'],
  ['Mon', 'skip', '[A-Za-z]{3}'],
  ['MST', 'zoneName', '([A-Z]{2,5}|[+-]\\d{2,4})'],
  ['_2', 'day', ' ?(\\d{1,2})'],
  ['01', 'month', '(\\d{2})'],
  ['02', 'day', '(\\d{2})'],
  ['03', 'hour12', '(\\d{2})'],
  ['04', 'minute', '(\\d{2})'],
  ['05', 'second', '(\\d{2})'],
  ['06', 'year2', '(\\d{2})'],
  ['15', 'hour', '(\\d{2})'],
  ['PM', 'ampm', '(AM|PM)'],
  ['pm', 'ampm', '(am|pm)'],
  ['1', 'month', '(\\d{1,2})'],
  ['2', 'day', '(\\d{1,2})'],
  ['3', 'hour12', '(\\d{1,2})'],
  ['4', 'minute', '(\\d{1,2})'],
  ['5', 'second', '(\\d{1,2})'],
];

export interface GoLayout {
  regex: RegExp;
  fields: Field[];
}

export function compileGoLayout(layout: string): GoLayout {
  let source = '^';
  const fields: Field[] = [];
  let pos = 0;
  outer: while (pos < layout.length) {
    // Fractional seconds: ".000" requires that many digits, ".999" allows fewer; both may be absent in ",999".
    const frac = /^[.,](0+|9+)/.exec(layout.slice(pos));
    if (frac !== null && /\d/.test(layout[pos - 1] ?? '')) {
      source += frac[1]?.startsWith('9') === true ? '(?:[.,](\\d+))?' : `[.,](\\d{${frac[1]?.length}})`;
      fields.push('fraction');
      pos += frac[0].length;
      continue;
    }
    for (const [token, field, pattern] of TOKENS) {
      if (layout.startsWith(token, pos)) {
        source += pattern;
        if (field !== 'skip') fields.push(field);
        pos += token.length;
        continue outer;
      }
    }
    source += (layout[pos] as string).replace(/[\\^$.|?*+()[\]{}]/, '\\$&');
    pos += 1;
  }
  return { regex: new RegExp(source), fields };
}

/**
 * Parses text with a compiled layout. Without a zone the local zone applies, and
 * without a year the current one (what NPD's filelog plugin does for syslog stamps).
 */
export function parseGoTime(layout: GoLayout, text: string, now: number): number | undefined {
  const m = layout.regex.exec(text);
  if (m === null) return undefined;
  const nowDate = new Date(now);
  let year = nowDate.getFullYear();
  let month = 0;
  let day = 1;
  let hour = 0;
  let minute = 0;
  let second = 0;
  let ms = 0;
  let pm: boolean | undefined;
  let offsetMin: number | undefined;
  layout.fields.forEach((field, index) => {
    const value = m[index + 1];
    if (value === undefined) return;
    switch (field) {
      case 'year': year = Number(value); break;
      case 'year2': year = 2000 + Number(value); break;
      case 'month': month = Number(value) - 1; break;
      case 'monthName': {
        const short = value.slice(0, 3);
        month = MONTHS.indexOf(short) >= 0 ? MONTHS.indexOf(short) : LONG_MONTHS.indexOf(value);
        break;
      }
      case 'day': day = Number(value); break;
      case 'hour': case 'hour12': hour = Number(value); break;
      case 'minute': minute = Number(value); break;
      case 'second': second = Number(value); break;
      case 'fraction': ms = Number(`0.${value}`) * 1000; break;
      case 'ampm': pm = value.toUpperCase() === 'PM'; break;
      case 'zone': {
        if (value === 'Z') { offsetMin = 0; break; }
        const digits = value.replace(':', '');
        const sign = digits.startsWith('-') ? -1 : 1;
        offsetMin = sign * (Number(digits.slice(1, 3)) * 60 + Number(digits.slice(3, 5) || '0'));
        break;
      }
      case 'zoneName': if (value === 'UTC' || value === 'GMT') offsetMin = 0; break;
      case 'skip': break;
    }
  });
  if (month < 0) return undefined;
  if (pm !== undefined) hour = (hour % 12) + (pm ? 12 : 0);
  if (offsetMin === undefined) return new Date(year, month, day, hour, minute, second, ms).getTime();
  return Date.UTC(year, month, day, hour, minute, second, ms) - offsetMin * 60_000;
}
