import { setFlagsFromString } from 'node:v8';
import { RE2JS } from 're2js';
import { AgentError } from '../errors.ts';

// Every regular expression that comes from configuration or a manifest is RE2 syntax (NPD's, Go's)
// and must run in time linear in its input, so a careless or hostile pattern cannot stall a node.
// compileRe2() is the one door: re2js (a port of RE2) decides what is valid RE2, then the pattern
// runs on the cheapest engine that keeps the guarantee:
// - V8's backtracking engine when the pattern is provably free of backtracking (see isDeterministic);
// - else, when V8's linear-time engine can run it, its backtracking engine bounded: past
//   BACKTRACKS_BEFORE_FALLBACK backtracks in one match V8 runs that match again on the linear
//   engine, so a line costs at most that much above linear time. A usual log pattern
//   (`kernel: \[.*\] (.*)`) backtracks a few dozen times a line and never falls back: on the
//   linear engine alone it was most of the filelog path's CPU;
// - else (counted repetitions over 16, Unicode classes, … which V8's linear engine refuses) re2js.
// The bound holds for every regexp in the process that the linear engine can run.
let flagsSet = false;

/** What one match may backtrack before V8 runs it on its linear engine (V8's default is 50,000). */
const BACKTRACKS_BEFORE_FALLBACK = 1000;

/** The V8 flags behind the bound; the executables start with them (scripts/build-sea.ts). */
export const REGEXP_FLAGS = ['--enable-experimental-regexp-engine', '--enable-experimental-regexp-engine-on-excessive-backtracks', `--regexp-backtracks-before-fallback=${BACKTRACKS_BEFORE_FALLBACK}`] as const;

function setRegexpFlags(): void {
  if (flagsSet) return;
  for (const flag of REGEXP_FLAGS) setFlagsFromString(flag);
  flagsSet = true;
}

export class PatternError extends AgentError {
  constructor(message: string) {
    super('INVALID', message);
  }
}

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

// RE2's (?i) folds by Unicode's simple case folding orbits. Two ASCII letters have a third member
// outside ASCII: k with the Kelvin sign, s with the long s. Every other ASCII letter's orbit is its
// two cases; a cased letter beyond ASCII is left to re2js (toUpperCase is no folding: 'ß' gives
// 'SS', dotless 'ı' gives 'I').
const FOLD_EXTRA: Readonly<Record<string, string>> = { k: '\u212a', s: '\u017f' };

/** The characters (?i) makes an ASCII letter match; other characters as they are. */
function foldSet(ch: string): string {
  if (!/^[A-Za-z]$/.test(ch)) return ch;
  const lower = ch.toLowerCase();
  return `${lower}${ch.toUpperCase()}${FOLD_EXTRA[lower] ?? ''}`;
}

const casedBeyondAscii = (code: number): boolean => {
  const c = String.fromCharCode(code);
  return code > 0x7f && c.toLowerCase() !== c.toUpperCase();
};

const beyondAsciiFold = (what: string): PatternError => new PatternError(`${what}: RE2 case folding beyond ASCII is left to re2js`);

/** The code unit a translated atom stands for (a character, \uXXXX, \xXX), or undefined for anything else (\d, \., a class). */
function codeOf(atom: string): number | undefined {
  if (atom.length === 1) return atom.charCodeAt(0);
  const m = /^\\(?:u([0-9a-fA-F]{4})|x([0-9a-fA-F]{2}))$/.exec(atom);
  return m === null ? undefined : parseInt((m[1] ?? m[2]) as string, 16);
}

/** What a translated atom matches under (?i), as a class body. */
function foldedBody(atom: string): string {
  const code = codeOf(atom);
  if (code === undefined) return atom;
  if (casedBeyondAscii(code)) throw beyondAsciiFold(JSON.stringify(atom));
  const set = foldSet(String.fromCharCode(code));
  return set.length === 1 ? atom : set;
}

function caseFold(atom: string): string {
  const body = foldedBody(atom);
  return body === atom ? atom : `[${body}]`;
}

function foldRange(from: string, to: string): string {
  const [a, b] = [codeOf(from), codeOf(to)];
  if (a === undefined || b === undefined) return `${from}-${to}`;
  let extra = '';
  for (let c = a; c <= b; c++) {
    if (casedBeyondAscii(c)) throw beyondAsciiFold(`range ${from}-${to}`);
    extra += foldSet(String.fromCharCode(c)).slice(1);
  }
  return `${from}-${to}${extra}`;
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
        // RE2's \s is [\t\n\f\r ]; JavaScript's also takes \v and Unicode spaces.
        if (next === 's') return inClass ? '\\t\\n\\f\\r ' : '[\\t\\n\\f\\r ]';
        if (next === 'S' && !inClass) return '[^\\t\\n\\f\\r ]';
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
      body += ci ? foldedBody(atom) : atom;
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
        for (const c of literal) {
          const escaped = c.replace(/[\\^$.|?*+()[\]{}/]/, '\\$&');
          out += flags().i ? caseFold(escaped) : escaped;
        }
        continue;
      }
      const escape = readEscape(false);
      out += flags().i ? caseFold(escape) : escape;
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
      out += flags().s ? '[\\s\\S]' : '[^\\n]';
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

/** backtracking: provably never backtracks; bounded: backtracking, then linear past the bound; re2js: RE2's own. */
export type Re2Engine = 'backtracking' | 'bounded' | 're2js';

/** A compiled configuration pattern: exec() and test() as RegExp's, on the engine chosen for it. */
export interface Re2Regex {
  /** The RE2 pattern as written. */
  readonly pattern: string;
  readonly engine: Re2Engine;
  /**
   * The most newlines a match can contain: 0 for a match inside one line, Infinity when
   * unbounded (a repeated class that takes \n) or not worked out (patterns only re2js runs).
   */
  readonly maxLineBreaks: number;
  /** Whether a match must begin where the text begins (^, \A outside multi-line mode). */
  readonly anchoredStart: boolean;
  /** re2js's compilation of the pattern (with \z under anchorEnd), what decides it is valid RE2; the log rules' reach filter runs its program. */
  readonly re2js: RE2JS;
  exec(text: string): RegExpExecArray | null;
  test(text: string): boolean;
}

/** One token of a translated (JavaScript) pattern. */
interface Token {
  kind: 'atom' | 'quant' | 'open' | 'close' | 'alt' | 'start' | 'end';
  text: string;
}

/** Splits translated JavaScript source into atoms, quantifiers, group brackets and anchors. */
function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let pos = 0;
  while (pos < source.length) {
    const ch = source[pos] as string;
    let m: RegExpExecArray | null;
    if (ch === '\\') {
      m = /^\\(?:u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|.)/s.exec(source.slice(pos));
      tokens.push({ kind: /^\\[bB]$/.test(m?.[0] ?? '') ? 'start' : 'atom', text: m?.[0] ?? ch });
      pos += m?.[0].length ?? 1;
    } else if (ch === '[') {
      let end = pos + 1;
      if (source[end] === '^') end += 1;
      if (source[end] === ']') end += 1;
      while (end < source.length && source[end] !== ']') end += source[end] === '\\' ? 2 : 1;
      tokens.push({ kind: 'atom', text: source.slice(pos, end + 1) });
      pos = end + 1;
    } else if ((m = /^(?:[*+?]|\{\d+(?:,\d*)?\})\??/.exec(source.slice(pos))) !== null) {
      tokens.push({ kind: 'quant', text: m[0] });
      pos += m[0].length;
    } else if (ch === '(') {
      m = /^\((?:\?:|\?<[A-Za-z_][A-Za-z0-9_]*>)?/.exec(source.slice(pos));
      tokens.push({ kind: 'open', text: m?.[0] ?? '(' });
      pos += m?.[0].length ?? 1;
    } else {
      tokens.push({ kind: ch === ')' ? 'close' : ch === '|' ? 'alt' : ch === '^' ? 'start' : ch === '$' ? 'end' : 'atom', text: ch });
      pos += 1;
    }
  }
  return tokens;
}

/** Whether two one-character atoms share a character (checked over the Basic Multilingual Plane). */
function overlap(a: string, b: string): boolean {
  const ra = new RegExp(`^${a}$`);
  const rb = new RegExp(`^${b}$`);
  for (let c = 0; c < 0x10000; c++) {
    const s = String.fromCharCode(c);
    if (ra.test(s) && rb.test(s)) return true;
  }
  return false;
}

/**
 * A pattern on which a backtracking engine never backtracks: anchored at the start (one start
 * position), no alternation, no quantified group, and every variable quantifier applies to one
 * character class and is followed by a character it cannot match (or the end), so each loop has
 * exactly one way to stop. Matching it is then linear on V8's fast engine.
 */
function isDeterministic(tokens: readonly Token[]): boolean {
  if (tokens[0]?.kind !== 'start' || tokens[0].text !== '^') return false;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as Token;
    if (t.kind === 'alt') return false;
    if (t.kind !== 'quant') continue;
    const target = tokens[i - 1];
    if (target?.kind !== 'atom') return false;
    if (/^\{(\d+)\}$/.test(t.text)) continue;
    let next = i + 1;
    while (tokens[next]?.kind === 'open' || tokens[next]?.kind === 'close') next += 1;
    const follower = tokens[next];
    if (follower === undefined || follower.kind === 'end') continue;
    if (follower.kind !== 'atom' || tokens[next + 1]?.kind === 'quant' || overlap(target.text, follower.text)) return false;
  }
  return true;
}

const takesNewline = (atom: string): boolean => atom.length > 0 && new RegExp(`^${atom}$`).test('\n');

/** The most times a quantifier repeats what it follows. */
function quantMax(quant: string): number {
  if (quant.startsWith('?')) return 1;
  if (quant.startsWith('*') || quant.startsWith('+')) return Infinity;
  const m = /^\{(\d+)(,(\d*))?\}/.exec(quant);
  if (m === null) return Infinity;
  if (m[2] === undefined) return Number(m[1]);
  return m[3] === '' ? Infinity : Number(m[3]);
}

/** An upper bound of the newlines one match of tokens[from…] (to the closing bracket) can hold; `next` is where it stopped. */
function lineBreaksOf(tokens: readonly Token[], from: number): { max: number; next: number } {
  let best = 0;
  let seq = 0;
  let i = from;
  while (i < tokens.length) {
    const t = tokens[i] as Token;
    if (t.kind === 'close') break;
    if (t.kind === 'alt') {
      best = Math.max(best, seq);
      seq = 0;
      i += 1;
      continue;
    }
    let item = 0;
    if (t.kind === 'open') {
      const inner = lineBreaksOf(tokens, i + 1);
      item = inner.max;
      i = inner.next + 1;
    } else {
      item = t.kind === 'atom' && takesNewline(t.text) ? 1 : 0;
      i += 1;
    }
    const q = tokens[i];
    if (q?.kind === 'quant') {
      if (item > 0) item *= quantMax(q.text);
      i += 1;
    }
    seq += item;
  }
  return { max: Math.max(best, seq), next: i };
}

function lineShape(tokens: readonly Token[]): { maxLineBreaks: number; anchoredStart: boolean } {
  return { maxLineBreaks: lineBreaksOf(tokens, 0).max, anchoredStart: tokens.some((t) => t.kind === 'start' && t.text === '^') };
}

type LineShape = ReturnType<typeof lineShape>;
/** What is assumed of a pattern whose shape is not worked out: anything. */
const ANY_SHAPE: LineShape = { maxLineBreaks: Infinity, anchoredStart: true };

function wrapRegExp(pattern: string, engine: Re2Engine, regex: RegExp, shape: LineShape, re2js: () => RE2JS): Re2Regex {
  return {
    pattern,
    engine,
    ...shape,
    get re2js() {
      return re2js();
    },
    exec: (text) => regex.exec(text),
    test: (text) => regex.test(text),
  };
}

function wrapRe2js(pattern: string, compiled: RE2JS, shape: LineShape): Re2Regex {
  const names = Object.entries(compiled.namedGroups());
  const exec = (text: string): RegExpExecArray | null => {
    const m = compiled.matcher(text);
    if (!m.find()) return null;
    const result: (string | undefined)[] = [];
    for (let g = 0; g <= m.groupCount(); g++) result.push(m.group(g) ?? undefined);
    const groups: Record<string, string | undefined> = {};
    for (const [name, index] of names) groups[name] = result[index];
    return Object.assign(result, { index: m.start(), input: text, groups: names.length > 0 ? groups : undefined }) as unknown as RegExpExecArray;
  };
  return { pattern, engine: 're2js', ...shape, re2js: compiled, exec, test: (text) => compiled.matcher(text).find() };
}

/**
 * Compiles an RE2 pattern from configuration. `anchorEnd` appends RE2's \z the way NPD's log
 * buffer does (expr + `\z`, so it binds to the last alternative). Throws PatternError naming the
 * problem for anything RE2 refuses. `builtIn`: one of the agent's own patterns, proved valid RE2 by
 * its tests, which re2js then compiles only if asked for (its parse is most of the compile: 12 ms
 * of `check` for the kernel detector's rules).
 */
export function compileRe2(pattern: string, options: { anchorEnd?: boolean; builtIn?: boolean } = {}): Re2Regex {
  setRegexpFlags();
  const full = options.anchorEnd === true ? `${pattern}\\z` : pattern;
  let source: string | undefined;
  let untranslatable: PatternError | undefined;
  try {
    source = translateRe2(full);
  } catch (err) {
    if (!(err instanceof PatternError)) throw err;
    untranslatable = err;
  }
  let reference: RE2JS | undefined;
  const re2js = (): RE2JS => (reference ??= RE2JS.compile(full));
  if (options.builtIn !== true || source === undefined) {
    try {
      re2js();
    } catch (err) {
      // Both refuse it: the translator's message says where, in the pattern as written.
      throw untranslatable ?? new PatternError(`invalid RE2 pattern ${JSON.stringify(pattern)}: ${(err as Error).message}`);
    }
  }
  // Valid RE2 without a JavaScript equivalent here (\pL, (?U), (?m), …): re2js runs it as written.
  if (source === undefined) return wrapRe2js(pattern, re2js(), ANY_SHAPE);
  const tokens = tokenize(source);
  const lines = lineShape(tokens);
  if (isDeterministic(tokens)) return wrapRegExp(pattern, 'backtracking', new RegExp(source), lines, re2js);
  try {
    // Compiled only to ask: V8 falls back only for a regexp its linear engine can run.
    new RegExp(source, 'l');
  } catch {
    // V8's linear engine refuses some valid RE2 (a counted repetition over 16, nested counts).
    return wrapRe2js(pattern, re2js(), lines);
  }
  return wrapRegExp(pattern, 'bounded', new RegExp(source), lines, re2js);
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
