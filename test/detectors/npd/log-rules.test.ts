import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lineCutFromChunk, retainedBy } from '../../helpers/heap.ts';
import { LogRuleEngine } from '../../../src/detectors/npd/log-rules.ts';
import { compileRe2 } from '../../../src/util/re2.ts';
import { at, inlineMonitor } from './helpers.ts';

const noRecovery = { expiryMs: {}, patterns: [] };

const monitor = inlineMonitor({
  plugin: 'kmsg',
  source: 'test',
  bufferSize: 3,
  conditions: [{ type: 'Broken', reason: 'NotBroken', message: 'all good' }],
  rules: [
    { type: 'temporary', reason: 'Blip', pattern: 'blip \\d+' },
    { type: 'permanent', condition: 'Broken', reason: 'BrokenA', pattern: 'broke A' },
    { type: 'permanent', condition: 'Broken', reason: 'BrokenB', pattern: 'broke B' },
    { type: 'temporary', reason: 'TwoLines', pattern: 'first half\\nsecond half' },
  ],
});

test('conditions start at their declared defaults', () => {
  const engine = new LogRuleEngine(monitor, noRecovery, [], 100);
  assert.deepEqual(engine.conditions, [{ type: 'Broken', status: 'False', reason: 'NotBroken', message: 'all good', transitionTime: 100 }]);
});

test('a temporary rule raises one warning event per matching line and never a condition', () => {
  const engine = new LogRuleEngine(monitor, noRecovery, [], 0);
  const events = engine.process([at(1, 'blip 1'), at(2, 'nothing'), at(3, 'blip 2')]);
  assert.deepEqual(events, [
    { severity: 'warn', reason: 'Blip', message: 'blip 1', timestamp: 1 },
    { severity: 'warn', reason: 'Blip', message: 'blip 2', timestamp: 3 },
  ]);
  assert.equal(engine.conditions[0]?.status, 'False');
});

test('the pattern must match up to the end of the newest line, as NPD appends \\z', () => {
  const engine = new LogRuleEngine(monitor, noRecovery, [], 0);
  assert.deepEqual(engine.process([at(1, 'blip 7 and more')]), []);
});

test('a permanent rule turns its condition True once, with NPD\'s condition-change message; a repeat changes nothing; a new reason is a new transition', () => {
  const engine = new LogRuleEngine(monitor, noRecovery, [], 0);
  const first = engine.process([at(10, 'broke A')]);
  assert.deepEqual(first, [{ severity: 'warn', reason: 'BrokenA', message: 'Node condition Broken is now: True, reason: BrokenA, message: "broke A"', timestamp: 10 }]);
  assert.equal(engine.conditions[0]?.message, 'broke A');
  assert.deepEqual(engine.process([at(20, 'broke A')]), []);
  assert.equal(engine.conditions[0]?.transitionTime, 10);
  const second = engine.process([at(30, 'broke B')]);
  assert.equal(second[0]?.reason, 'BrokenB');
  assert.deepEqual([engine.conditions[0]?.reason, engine.conditions[0]?.transitionTime], ['BrokenB', 30]);
});

test('bufferSize lets a pattern span lines, and the message holds every matched line', () => {
  const engine = new LogRuleEngine(monitor, noRecovery, [], 0);
  const events = engine.process([at(1, 'first half'), at(2, 'second half')]);
  assert.deepEqual(events, [{ severity: 'warn', reason: 'TwoLines', message: 'first half second half', timestamp: 1 }]);
});

test("a rule whose required literal is in an earlier buffered line still matches (the prefilter looks back bufferSize lines)", () => {
  const m = inlineMonitor({
    plugin: 'kmsg',
    source: 'test',
    bufferSize: 3,
    rules: [{ type: 'temporary', reason: 'HardLockup', pattern: 'Watchdog detected hard LOCKUP on cpu \\d+\\nCPU: \\d+' }],
  });
  const engine = new LogRuleEngine(m, noRecovery, [], 0);
  const events = engine.process([at(1, 'NMI watchdog: Watchdog detected hard LOCKUP on cpu 10'), at(2, 'CPU: 10')]);
  assert.deepEqual(events.map((e) => [e.reason, e.message]), [['HardLockup', 'NMI watchdog: Watchdog detected hard LOCKUP on cpu 10 CPU: 10']]);
});

test('lines that fell out of the buffer no longer take part in a match', () => {
  const engine = new LogRuleEngine(monitor, noRecovery, [], 0);
  const events = engine.process([at(1, 'first half'), at(2, 'x'), at(3, 'y'), at(4, 'second half')]);
  assert.deepEqual(events, []);
});

test('a recovery pattern clears the condition with an info event', () => {
  const recovery = { expiryMs: {}, patterns: [{ condition: 'Broken', regex: compileRe2('repaired') }] };
  const engine = new LogRuleEngine(monitor, recovery, [], 0);
  engine.process([at(1, 'broke A')]);
  const events = engine.process([at(2, 'disk repaired')]);
  assert.equal(events[0]?.severity, 'info');
  assert.equal(events[0]?.reason, 'NotBroken');
  assert.deepEqual([engine.conditions[0]?.status, engine.conditions[0]?.reason, engine.conditions[0]?.message], ['False', 'NotBroken', 'all good']);
});

test('an expiry clears a condition that has not been seen again in time', () => {
  const engine = new LogRuleEngine(monitor, { expiryMs: { Broken: 60_000 }, patterns: [] }, [], 0);
  engine.process([at(1_000, 'broke A')]);
  assert.deepEqual(engine.expire(50_000), []);
  engine.process([at(40_000, 'broke A')]);
  assert.deepEqual(engine.expire(90_000), []);
  const events = engine.expire(100_000);
  assert.equal(events.length, 1);
  assert.equal(engine.conditions[0]?.status, 'False');
});

test('state persisted before a restart is where the monitor starts', () => {
  const previous = [{ type: 'Broken', status: 'True' as const, reason: 'BrokenA', message: 'broke A', transitionTime: 5 }];
  const engine = new LogRuleEngine(monitor, noRecovery, previous, 1_000);
  assert.deepEqual(engine.conditions, previous);
  assert.deepEqual(engine.process([at(1_001, 'broke A')]), [], 'no second announcement after a restart');
});

/**
 * A bufferSize-1000 engine over rules, whose regexes record the longest text each was asked to
 * search, by rule reason: what the buffer-window tests measure.
 */
function searchedPerRule(rules: object[]): { engine: LogRuleEngine; searched: Record<string, number> } {
  const big = inlineMonitor({ plugin: 'kmsg', source: 'test', bufferSize: 1000, conditions: [], rules });
  const searched: Record<string, number> = {};
  big.patterns.forEach((regex, i) => {
    const reason = big.config.rules[i]?.reason as string;
    searched[reason] = 0;
    const exec = regex.exec.bind(regex);
    (regex as { exec: (text: string) => RegExpExecArray | null }).exec = (text) => {
      searched[reason] = Math.max(searched[reason] as number, text.length);
      return exec(text);
    };
  });
  return { engine: new LogRuleEngine(big, noRecovery, [], 0), searched };
}

test('with bufferSize 1000 and a pattern without a literal, each line searches only itself unless the pattern can span lines', () => {
  const { engine, searched } = searchedPerRule([
    { type: 'temporary', reason: 'OneLine', pattern: '(x+x+)+y' },
    { type: 'temporary', reason: 'Spanning', pattern: 'x\\s+y' },
  ]);
  const line = 'x'.repeat(50);
  const events = engine.process([...Array.from({ length: 2000 }, (_, i) => at(i, line)), at(2000, 'xxy'), at(2001, 'x'), at(2002, 'y')]);
  assert.equal(searched.OneLine, line.length, 'the one-line rule never saw more than one line');
  assert.ok((searched.Spanning as number) > line.length * 999, 'the spanning rule saw the buffer');
  assert.deepEqual(events.map((e) => [e.reason, e.message]), [['OneLine', 'xxy'], ['Spanning', 'x y']]);
});

test('with bufferSize 1000, a pattern that spans at most k lines breaks searches only the last k+1 lines, and still finds its match', () => {
  const { engine, searched } = searchedPerRule([
    { type: 'temporary', reason: 'ThreeLines', pattern: 'x\\n[^\\n]*\\n(a|b)+y' },
    { type: 'temporary', reason: 'Counted', pattern: '(q\\n){2}z' },
    { type: 'temporary', reason: 'FromStart', pattern: '^only\\nthis' },
  ]);
  const line = 'x'.repeat(50);
  const events = engine.process([at(0, 'only'), at(1, 'this'), ...Array.from({ length: 2000 }, (_, i) => at(i + 2, line)), at(3000, 'x'), at(3001, 'middle'), at(3002, 'aby'), at(3003, 'q'), at(3004, 'q'), at(3005, 'z')]);
  assert.ok((searched.ThreeLines as number) <= 3 * (line.length + 1), `searched ${searched.ThreeLines} characters`);
  assert.ok((searched.Counted as number) <= 3 * (line.length + 1), `searched ${searched.Counted} characters`);
  assert.equal(searched.FromStart, 'only\nthis'.length, 'a pattern anchored at the start is not searched once the buffer holds more lines than it can span');
  assert.deepEqual(events.map((e) => [e.reason, e.message]), [['FromStart', 'only this'], ['ThreeLines', 'x middle aby'], ['Counted', 'q q z']]);
});

test("an event's message does not hold the read chunk its line was cut from", () => {
  const engine = new LogRuleEngine(monitor, noRecovery, [], 0);
  // 200 chunks of 256 KiB: 51 MiB if each event kept its chunk alive.
  const { bytes, result } = retainedBy(() => Array.from({ length: 200 }, (_, i) => engine.process([at(i, lineCutFromChunk(`a line long enough to be a view: blip ${i}`))])).flat());
  assert.equal((result as unknown[]).length, 200);
  assert.ok(bytes < 8 * 1024 * 1024, `200 events retain ${(bytes / 1048576).toFixed(1)} MiB`);
});
