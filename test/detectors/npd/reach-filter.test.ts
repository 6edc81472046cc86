import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RE2JS } from 're2js';
import type { ParsedLogMonitor } from '../../../src/detectors/npd/config.ts';
import { LogRuleEngine, type LogLine } from '../../../src/detectors/npd/log-rules.ts';
import { programOf, ReachFilter } from '../../../src/detectors/npd/reach-filter.ts';
import { compileRe2 } from '../../../src/util/re2.ts';
import { at, inlineMonitor } from './helpers.ts';

const noRecovery = { expiryMs: {}, patterns: [] };

// Patterns that can span any number of lines; the engines the exact search runs on agree with RE2
// on each of them for the lines below (V8's translation counts UTF-16 units, so no `.` is counted
// over an astral character here).
const unbounded = [
  '(?s)a.*b',
  '[\\s\\S]*x',
  '(.|\\n)+y',
  '(?i)(?s)k.*Y',
  '(?s)\\bab.*y\\b',
  '^(?s)a.*y',
  '\\A[\\s\\S]*😀',
  '(?s)(ab|yx).*(b|😀)',
  '(?s)é.*😀 ',
  '\\pL+\\s+😀',
  '(?s)error.*y',
  'a[^z]*b',
  'x*\\n*y',
  '(?s)x.*',
  'K(?s:.)+a',
  '(?s)(a|b)(.|😀)*\\s\\d',
];

/** A deterministic stream of short lines over a small alphabet, astral and combining-free accents included. */
function stream(count: number, seed: number): LogLine[] {
  const tokens = ['a', 'b', 'x', 'y', 'Y', 'k', 'K', '\u212a', 'z', ' ', 'é', '😀', 'error', 'ab', '7', '\ud83d'];
  let state = seed;
  const next = (n: number): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state >>> 8) % n;
  };
  return Array.from({ length: count }, (_, i) => {
    let message = '';
    for (let t = next(7); t > 0; t--) message += tokens[next(tokens.length)] as string;
    return at(i, message);
  });
}

function monitorOf(patterns: readonly string[], bufferSize: number): ParsedLogMonitor {
  return inlineMonitor({
    plugin: 'kmsg',
    source: 'test',
    bufferSize,
    conditions: [],
    rules: patterns.map((pattern, i) => ({ type: 'temporary', reason: `R${i}`, pattern })),
  });
}

/**
 * Counts the exact searches of every rule's regex and the longest text one was given. `stub`
 * answers "no match" without searching: for lines known not to match, where the real searches
 * would take the test 25 s (5 ms each on V8's linear engine, a 1000-line buffer).
 */
function countSearches(monitor: ParsedLogMonitor, stub = false): { searches: number; longest: number } {
  const counter = { searches: 0, longest: 0 };
  for (const regex of monitor.patterns) {
    const exec = regex.exec.bind(regex);
    (regex as { exec: (text: string) => RegExpExecArray | null }).exec = (text) => {
      counter.searches += 1;
      counter.longest = Math.max(counter.longest, text.length);
      return stub ? null : exec(text);
    };
  }
  return counter;
}

test('re2js still compiles programs of the shape the reach filter reads (its internals, pinned by package-lock)', () => {
  // ops: fail, rune1 a, any, alt, rune1 b, empty (\z), match; re2js's numbering in src/Inst.js.
  const { inst, start } = programOf(compileRe2('(?s)a.*b', { anchorEnd: true }).re2js);
  assert.deepEqual(inst.map((i) => i.op), [5, 9, 10, 1, 9, 4, 6]);
  assert.equal(start, 1);
  assert.deepEqual([inst[3]?.out, inst[3]?.arg, inst[1]?.matchRune(0x61), inst[1]?.matchRune(0x62)], [2, 4, true, false]);
  for (const pattern of unbounded) assert.doesNotThrow(() => programOf(compileRe2(pattern, { anchorEnd: true }).re2js), pattern);
  const changed = { re2: () => ({ prog: { inst: [{ op: 'rune' }], start: 0 } }), pattern: () => 'x' } as unknown as RE2JS;
  assert.throws(() => programOf(changed), /changed shape/);
});

test('with the reach filter, a monitor raises exactly the events of searching the whole buffer after every line', () => {
  const fired = new Set<string>();
  for (const bufferSize of [1, 4, 30]) {
    for (const seed of [1, 2, 3]) {
      const lines = stream(400, seed);
      const filtered = new LogRuleEngine(monitorOf(unbounded, bufferSize), noRecovery, [], 0).process(lines);
      const reference = new LogRuleEngine(monitorOf(unbounded, bufferSize), noRecovery, [], 0, { reachFilter: false }).process(lines);
      assert.deepEqual(filtered, reference, `bufferSize ${bufferSize}, seed ${seed}`);
      for (const e of reference) fired.add(e.reason);
    }
  }
  assert.deepEqual([...fired].sort(), unbounded.map((_, i) => `R${i}`).sort(), 'the streams exercise every rule');
});

test('with bufferSize 1000 and an unbounded pattern without a literal, 5,000 lines that cannot complete a match run no search', () => {
  const patterns = ['(?is)soft lockup.*stuck for \\d+s', '\\pL+ lockup(?s:.*)stuck for \\d+s'];
  const lines = [at(0, 'watchdog: BUG: soft lockup - CPU#3'), ...Array.from({ length: 5000 }, (_, i) => at(i + 1, `audit: type=1400 audit(${i}.0:1): apparmor="STATUS" operation="profile_load" name="p${i}"`))];
  const before = monitorOf(patterns, 1000);
  const unfiltered = countSearches(before, true);
  new LogRuleEngine(before, noRecovery, [], 0, { reachFilter: false }).process(lines);
  assert.equal(unfiltered.searches, 2 * lines.length, 'without the filter each line searches the buffer for each rule');
  assert.ok(unfiltered.longest > 999 * 80, 'the whole buffer');

  const after = monitorOf(patterns, 1000);
  const filtered = countSearches(after);
  const engine = new LogRuleEngine(after, noRecovery, [], 0);
  assert.deepEqual(engine.process(lines), []);
  assert.equal(filtered.searches, 0);
  const events = engine.process([at(6000, 'soft lockup again'), at(6001, 'CPU#3 stuck for 23s')]);
  assert.equal(filtered.searches, 2, 'a line that can end a match is searched');
  assert.deepEqual(events.map((e) => [e.reason, e.message]), [['R0', 'soft lockup again CPU#3 stuck for 23s'], ['R1', 'soft lockup again CPU#3 stuck for 23s']]);
});

test('a match that would start before the buffer is not searched for, and one inside it is', () => {
  const patterns = ['(?is)begin.*end'];
  const monitor = monitorOf(patterns, 3);
  const counter = countSearches(monitor);
  const engine = new LogRuleEngine(monitor, noRecovery, [], 0);
  assert.deepEqual(engine.process([at(0, 'begin'), at(1, '-'), at(2, '-'), at(3, 'end')]), []);
  assert.equal(counter.searches, 0, 'begin fell out of the three-line buffer');
  assert.deepEqual(engine.process([at(4, 'begin'), at(5, '-'), at(6, 'end')]).map((e) => e.message), ['begin - end']);
  assert.equal(counter.searches, 1);
});

test("the filter's work per line is bounded by the line's length and the program's size, whatever bufferSize", () => {
  const regex = compileRe2('(?is)soft lockup.*stuck for \\d+s', { anchorEnd: true });
  const size = programOf(regex.re2js).inst.length;
  const lines = ['watchdog: BUG: soft lockup - CPU#3', ...Array.from({ length: 5000 }, (_, i) => `EXT4-fs (sda1): mounted filesystem ${i} with ordered data mode`)];
  const runes = lines.reduce((n, l) => n + l.length + 1, 0);
  for (const bufferSize of [10, 1000, 1_000_000]) {
    const filter = new ReachFilter(regex, bufferSize);
    let worst = 0;
    for (const line of lines) {
      const before = filter.steps;
      assert.equal(filter.pushLine(line), false);
      worst = Math.max(worst, (filter.steps - before) / (line.length + 1));
    }
    assert.ok(filter.steps <= 2 * size * runes, `bufferSize ${bufferSize}: ${filter.steps} steps for ${runes} runes`);
    assert.ok(worst <= 2 * size, `bufferSize ${bufferSize}: ${worst} steps per rune`);
  }
});
