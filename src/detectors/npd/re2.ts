import { setFlagsFromString } from 'node:v8';

// NPD's patterns are Go RE2 syntax, matched in linear time. We translate them to
// JavaScript and compile them for V8's linear-time engine (the `l` flag), so a
// pathological pattern from a config file cannot stall the agent with backtracking.
let linearEngineEnabled = false;
function enableLinearEngine(): void {
  if (linearEngineEnabled) return;
  setFlagsFromString('--enable-experimental-regexp-engine');
  linearEngineEnabled = true;
}

export class PatternError extends Error {}

const POSIX_CLASSES: Record<string, string> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  ascii: '\\x00-\\x7F',
  blank: '\\t ',
  cntrl: '\\x00-\\x1F\\x7F',
  digit: '0-9',
  graph: '!-~',
  lower: 'a-z',
  print: ' -~',
  punct: '!-/:-@[-`{-~',
  space: '\\t\\n\\v\\f\\r ',
  upper: 'A-Z',
  word: '0-9A-Za-z_',
  xdigit: '0-9A-Fa-f',
};

interface Flags {
  i: boolean;
  s: boolean;
}

function caseFold(ch: string): string {
  const lower = ch.toLowerCase();
  const upper = ch.toUpperCase();
  if (lower === upper || ch.length !== 1) return ch;
  return `[${lower}${upper}]`;
}

function foldRange(from: string, to: string): string {
  // Only ASCII letter ranges need their mirror; others are left as written.
  const mirror = (c: string): string => (c >= 'a' && c <= 'z' ? c.toUpperCase() : c >= 'A' && c <= 'Z' ? c.toLowerCase() : c);
  const letters = (c: string): boolean => /[A-Za-z]/.test(c);
  if (letters(from) && letters(to) && mirror(from) !== from) return `${from}-${to}${mirror(from)}-${mirror(to)}`;
  return `${from}-${to}`;
}

/** Translates an RE2 pattern into an equivalent JavaScript pattern without inline modifiers. */
export function translateRe2(pattern: string): string {
  let out = '';
  const stack: Flags[] = [{ i: false, s: false }];
  const flags = (): Flags => stack[stack.length - 1] as Flags;
  let pos = 0;
  const fail = (what: string): never => {
    throw new PatternError(`${what} at offset ${pos} of ${JSON.stringify(pattern)}`);
  };

  const readEscape = (inClass: boolean): string => {
    const next = pattern[pos + 1];
    if (next === undefined) return fail('trailing backslash');
    pos += 2;
    switch (next) {
      case 'z':
        if (inClass) fail('\\z inside a character class');
        return '$';
      case 'A':
        if (inClass) fail('\\A inside a character class');
        return '^';
      case 'p':
      case 'P':
        return fail('Unicode classes (\\p) are not supported: the linear-time engine cannot run them');
      case 'x':
        if (pattern[pos] === '{') {
          const end = pattern.indexOf('}', pos);
          if (end < 0) fail('unterminated \\x{');
          const hex = pattern.slice(pos + 1, end);
          pos = end + 1;
          if (!/^[0-9a-fA-F]{1,4}$/.test(hex)) fail('\\x{…} beyond U+FFFF is not supported');
          return `\\u${hex.padStart(4, '0')}`;
        }
        pos += 2;
        return `\\x${pattern.slice(pos - 2, pos)}`;
      case 'C':
        return fail('\\C (any byte) is not supported');
      default:
        if (/[1-9]/.test(next)) fail('backreferences are not RE2 syntax');
        if (/[A-Za-z]/.test(next)) return `\\${next}`;
        // An escaped punctuation character is a literal; only syntax characters keep their backslash.
        return /[\\^$.|?*+()[\]{}/-]/.test(next) ? `\\${next}` : next;
    }
  };

  const readClass = (): string => {
    const ci = flags().i;
    let body = '';
    pos += 1;
    if (pattern[pos] === '^') {
      body += '^';
      pos += 1;
    }
    let first = true;
    while (pos < pattern.length) {
      const ch = pattern[pos] as string;
      if (ch === ']' && !first) {
        pos += 1;
        return `[${body}]`;
      }
      first = false;
      if (ch === '[' && pattern[pos + 1] === ':') {
        const end = pattern.indexOf(':]', pos + 2);
        if (end < 0) fail('unterminated POSIX class');
        let name = pattern.slice(pos + 2, end);
        const negated = name.startsWith('^');
        if (negated) name = name.slice(1);
        const expansion = POSIX_CLASSES[name] ?? fail(`unknown POSIX class [:${name}:]`);
        if (negated) fail('negated POSIX classes are not supported');
        body += expansion;
        pos = end + 2;
        continue;
      }
      let atom: string;
      if (ch === '\\') {
        atom = readEscape(true);
      } else {
        atom = ch === '[' || ch === '/' ? `\\${ch}` : ch;
        pos += 1;
      }
      if (pattern[pos] === '-' && pattern[pos + 1] !== ']' && pattern[pos + 1] !== undefined) {
        pos += 1;
        const to = pattern[pos] === '\\' ? readEscape(true) : (pattern[pos++] as string);
        body += ci ? foldRange(atom, to) : `${atom}-${to}`;
        continue;
      }
      body += ci && atom.length === 1 && /[A-Za-z]/.test(atom) ? `${atom.toLowerCase()}${atom.toUpperCase()}` : atom;
    }
    return fail('unterminated character class');
  };

  const applyFlags = (spec: string, target: Flags): void => {
    let on = true;
    for (const f of spec) {
      if (f === '-') on = false;
      else if (f === 'i') target.i = on;
      else if (f === 's') target.s = on;
      else if (f === 'm') fail('multi-line mode (?m) is not supported');
      else if (f === 'U') fail('ungreedy mode (?U) is not supported');
      else fail(`unknown flag ${f}`);
    }
  };

  while (pos < pattern.length) {
    const ch = pattern[pos] as string;
    if (ch === '\\') {
      if (pattern[pos + 1] === 'Q') {
        const end = pattern.indexOf('\\E', pos + 2);
        const literal = pattern.slice(pos + 2, end < 0 ? undefined : end);
        pos = end < 0 ? pattern.length : end + 2;
        for (const c of literal) out += flags().i ? caseFold(c) : c.replace(/[\\^$.|?*+()[\]{}/]/, '\\$&');
        continue;
      }
      out += readEscape(false);
      continue;
    }
    if (ch === '[') {
      out += readClass();
      continue;
    }
    if (ch === '(') {
      if (pattern[pos + 1] === '?') {
        const rest = pattern.slice(pos + 2);
        const named = /^P?<([A-Za-z_][A-Za-z0-9_]*)>/.exec(rest);
        if (named !== null) {
          stack.push({ ...flags() });
          out += `(?<${named[1]}>`;
          pos += 2 + named[0].length;
          continue;
        }
        const flagGroup = /^([a-zA-Z-]*)(\)|:)/.exec(rest);
        if (flagGroup === null) fail('lookaround and other (?…) groups are not RE2 syntax');
        const [whole, spec, end] = flagGroup as RegExpExecArray;
        pos += 2 + whole.length;
        if (end === ')') {
          applyFlags(spec as string, flags());
        } else {
          const inner = { ...flags() };
          applyFlags(spec as string, inner);
          stack.push(inner);
          out += '(?:';
        }
        continue;
      }
      stack.push({ ...flags() });
      out += '(';
      pos += 1;
      continue;
    }
    if (ch === ')') {
      if (stack.length === 1) fail('unbalanced )');
      stack.pop();
      out += ')';
      pos += 1;
      continue;
    }
    if (ch === '.') {
      out += flags().s ? '[\\s\\S]' : '.';
      pos += 1;
      continue;
    }
    if (ch === '/') {
      out += '\\/';
      pos += 1;
      continue;
    }
    out += flags().i ? caseFold(ch) : ch;
    pos += 1;
  }
  if (stack.length !== 1) fail('unbalanced (');
  return out;
}

/**
 * Compiles an RE2 pattern for the linear-time engine. `anchorEnd` appends RE2's \z
 * the way NPD's log buffer does (expr + `\z`, so it binds to the last alternative).
 */
export function compileRe2(pattern: string, options: { anchorEnd?: boolean } = {}): RegExp {
  enableLinearEngine();
  const source = translateRe2(pattern);
  try {
    return new RegExp(options.anchorEnd === true ? `${source}$` : source, 'l');
  } catch (err) {
    throw new PatternError(`invalid pattern ${JSON.stringify(pattern)}: ${(err as Error).message}`);
  }
}

/**
 * The longest literal every match must contain, or undefined when there is none worth
 * testing. Lines without it cannot match, so the regex is skipped for them.
 */
export function requiredLiteral(pattern: string): string | undefined {
  if (/\(\?[a-zA-Z-]*[i]/.test(pattern)) return undefined;
  const runs: string[] = [];
  let run = '';
  let depth = 0;
  let pos = 0;
  const endRun = (): void => {
    if (run !== '') runs.push(run);
    run = '';
  };
  while (pos < pattern.length) {
    const ch = pattern[pos] as string;
    let literal: string | undefined;
    let width = 1;
    if (ch === '\\') {
      const next = pattern[pos + 1] ?? '';
      width = 2;
      if (/[A-Za-z0-9]/.test(next)) {
        if (next === 'Q') return undefined;
        if (next === 'p' || next === 'P' || next === 'x') return undefined;
      } else {
        literal = next;
      }
    } else if (ch === '[') {
      const end = pattern.indexOf(']', pos + 2);
      if (end < 0) return undefined;
      width = end - pos + 1;
    } else if (ch === '(') {
      depth += 1;
    } else if (ch === ')') {
      depth -= 1;
    } else if (ch === '|') {
      if (depth === 0) return undefined;
    } else if (!'.^$*+?{}'.includes(ch)) {
      literal = ch;
    }
    pos += width;
    const quant = pattern[pos];
    const optional = quant === '*' || quant === '?' || (quant === '{' && pattern[pos + 1] === '0');
    if (depth > 0 || literal === undefined || optional) {
      endRun();
      continue;
    }
    run += literal;
    if (quant === '+' || quant === '{') endRun();
  }
  endRun();
  const best = runs.reduce((a, b) => (b.length > a.length ? b : a), '');
  return best.length >= 3 ? best : undefined;
}
