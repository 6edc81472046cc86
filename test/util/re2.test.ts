import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MachineComponentSpec } from '../../src/api/machine-component.ts';
import { createHost } from '../../src/host/host.ts';
import { probeVersion } from '../../src/installers/health.ts';
import type { InstallContext } from '../../src/installers/types.ts';
import { RE2JS } from 're2js';
import { compileRe2, PatternError, requiredLiteral, translateRe2 } from '../../src/util/re2.ts';
import { TempRoot } from '../helpers/host-root.ts';

const matches: [string, string, boolean][] = [
  ['(?i)Currently unreadable.*sectors|(?i)Offline uncorrectable sectors', 'smartd: 8 OFFLINE UNCORRECTABLE sectors', true],
  ['(?i)abc', 'xAbCx', true],
  ['a(?i)b', 'aB', true],
  ['a(?i)b', 'AB', false],
  ['(?i:x)y', 'Xy', true],
  ['(?i:x)y', 'XY', false],
  ['[[:digit:]]+ errors', '12 errors', true],
  ['(?P<dev>sd[a-z]+)', 'sdb', true],
  ['\\Qa.b\\E', 'a.b', true],
  ['\\Qa.b\\E', 'axb', false],
  ['(?i)\\QA.b\\E', 'a.B', true],
  ['(?i)\\QA.b\\E', 'axb', false],
  ['(?s)a.b', 'a\nb', true],
  ['a.b', 'a\nb', false],
  ['end\\z', 'the end', true],
  ['end\\z', 'end.', false],
  ['caf\\x{e9}', 'café', true],
  ['(?i)[a-c]+', 'ABC', true],
  ['a/b', 'a/b', true],
];

for (const [pattern, input, expected] of matches) {
  test(`RE2 ${JSON.stringify(pattern)} ${expected ? 'matches' : 'does not match'} ${JSON.stringify(input)}`, () => {
    assert.equal(compileRe2(pattern).test(input), expected);
  });
}

// (?i) is RE2's simple case folding: the Kelvin sign is a k, the long s an s, and 'ß', 'ı' and 'ǰ' fold to
// no ASCII letter (toUpperCase makes 'SS', 'I' and 'J̌' of them, which a translation by case mapping matched).
// Each pattern on the engine compileRe2 picks agrees with re2js, RE2 itself, on every character of the BMP.
const folded = ['(?i)k', '(?i)s', '(?i)[k]', '(?i)[^s]', '(?i)[j-t]', '(?i)[a-c]', '(?i)\\Qk\\E', '(?i)ß', '(?i)ı', '(?i)ǰ', '(?i)[à-ÿ]', '(?i)é', '(?i)\\x{e9}', '(?i)[\\x{c0}-\\x{de}]', '(?i)[\\x41]', '(?i)\\x4b'];
for (const pattern of folded) {
  test(`RE2 ${JSON.stringify(pattern)} folds case as RE2 does, on every BMP character`, () => {
    const mine = compileRe2(`^(?:${pattern})$`);
    const reference = RE2JS.compile(`^(?:${pattern})$`);
    const differ: string[] = [];
    for (let c = 0; c < 0x10000; c++) {
      if (c >= 0xd800 && c <= 0xdfff) continue;
      const ch = String.fromCharCode(c);
      if (mine.test(ch) !== reference.matches(ch)) differ.push(`U+${c.toString(16).padStart(4, '0')}`);
    }
    assert.deepEqual(differ, []);
  });
}

const refused: [string, RegExp][] = [
  ['(a)\\1', /backreferences/],
  ['(?=x)', /lookaround/],
  ['(abc', /unbalanced \(/],
  ['abc)', /unbalanced \)/],
  ['[abc', /unterminated character class/],
  ['[[:nope:]]', /unknown POSIX class/],
  ['x{1001}', /invalid repeat count/],
];
for (const [pattern, why] of refused) {
  test(`RE2 ${JSON.stringify(pattern)} is refused with a reason`, () => {
    assert.throws(() => compileRe2(pattern), (err: unknown) => err instanceof PatternError && why.test(err.message));
  });
}

test('a catastrophic-backtracking pattern runs in linear time', () => {
  // (a+)+$ against "aaaa…b" takes exponential time in a backtracking engine;
  // 30 000 characters would never finish there. Bounded, the match falls back to the linear
  // engine after BACKTRACKS_BEFORE_FALLBACK backtracks and answers at once.
  const re = compileRe2('(a+)+$');
  assert.equal(re.engine, 'bounded');
  assert.equal(re.test(`${'a'.repeat(30_000)}b`), false);
  assert.equal(compileRe2('(x+x+)+y').test('x'.repeat(30_000)), false);
});

test('translation leaves plain RE2 untouched', () => {
  assert.equal(translateRe2('task [\\S ]+:\\w+ blocked for more than \\w+ seconds\\.'), 'task [\\S ]+:\\w+ blocked for more than \\w+ seconds\\.');
});

const literals: [string, string | undefined][] = [
  ['task [\\S ]+:\\w+ blocked for more than \\w+ seconds\\.', ' blocked for more than '],
  ['.*\\[Hardware Error\\]: event severity: corrected$', '[Hardware Error]: event severity: corrected'],
  ['ab?cde+fgh', 'cde'],
  ['XFS .* Shutting down filesystem.?', ' Shutting down filesystem'],
  ['foo|barbaz', undefined],
  ['(?i)Offline uncorrectable', undefined],
  ['a(bcdef)g', undefined],
  ['x*', undefined],
];
for (const [pattern, literal] of literals) {
  test(`required literal of ${JSON.stringify(pattern)}`, () => {
    assert.equal(requiredLiteral(pattern), literal);
  });
}

// Valid RE2 (NPD accepts each) that V8's engines cannot run as translated: accepted, on an engine that keeps linear time.
const accepted: [string, string, boolean][] = [
  ['[0-9a-f]{64}', `id ${'ab'.repeat(32)}`, true],
  ['a{64}', 'a'.repeat(63), false],
  ['(?m)^x', 'a\nx', true],
  ['(?U)a+', 'aaa', true],
  ['\\pL+', 'é', true],
];
for (const [pattern, input, expected] of accepted) {
  test(`valid RE2 ${JSON.stringify(pattern)} is accepted and runs in linear time`, () => {
    const re = compileRe2(pattern);
    assert.notEqual(re.engine, 'backtracking');
    assert.equal(re.test(input), expected);
  });
}

test('(?U) makes quantifiers lazy, as in RE2', () => {
  assert.equal(compileRe2('(?U)(a+)').exec('aaa')?.[1], 'a');
});

test('a pattern that provably never backtracks runs on the fast engine; anything else on it bounded, or on re2js', () => {
  const engines: [string, string][] = [
    ['^.{15}', 'backtracking'],
    ['^(\\d+) (\\w+)$', 'backtracking'],
    ['^([A-Z][a-z]{2} [ 0-9]\\d) ', 'backtracking'],
    ['^\\d+\\d+x', 'bounded'],
    ['^.*x', 'bounded'],
    ['kernel: \\[.*\\] (.*)', 'bounded'],
    ['^(a|b)+', 'bounded'],
    ['^(a+)+$', 'bounded'],
    ['a{17}', 're2js'],
  ];
  for (const [pattern, engine] of engines) assert.equal(compileRe2(pattern).engine, engine, pattern);
});

test('a built-in pattern skips re2js until its program is asked for, and matches as a checked one does', () => {
  const original = RE2JS.compile;
  const compile = original.bind(RE2JS);
  let calls = 0;
  RE2JS.compile = ((...args: Parameters<typeof compile>) => {
    calls += 1;
    return compile(...args);
  }) as typeof RE2JS.compile;
  try {
    const pattern = 'Killed process (\\d+) \\((.+)\\) total-vm';
    const built = compileRe2(pattern, { builtIn: true });
    assert.equal(calls, 0, 'no re2js parse for a built-in pattern');
    const checked = compileRe2(pattern);
    assert.equal(calls, 1, 'a configured one is parsed by re2js: its verdict');
    const line = 'Out of memory: Killed process 4242 (stress-ng) total-vm:8589934592kB';
    assert.deepEqual([...(built.exec(line) ?? [])], [...(checked.exec(line) ?? [])]);
    assert.equal(built.engine, checked.engine);
    assert.equal(built.re2js.groupCount(), 2);
    assert.equal(calls, 2, 'compiled when its program is asked for');
    compileRe2('\\pL+', { builtIn: true });
    assert.equal(calls, 3, 'one only re2js can run is compiled by it at once');
  } finally {
    RE2JS.compile = original;
  }
});

test('RE2 semantics where JavaScript differs: . stops only at \\n, \\s is ASCII whitespace', () => {
  assert.equal(compileRe2('a.b').test('a\rb'), true);
  assert.equal(compileRe2('a\\sb').test('a\u00a0b'), false);
  assert.equal(compileRe2('a\\sb').test('a\tb'), true);
});

test('named groups and the match index come back the same on every engine', () => {
  for (const pattern of ['(?P<dev>sd[a-z]+) (?P<hex>[0-9a-f]{20})', '(?P<dev>sd[a-z]+) (?P<hex>[0-9a-f]+)']) {
    const m = compileRe2(pattern).exec(`xx sdb ${'0'.repeat(20)}`);
    assert.equal(m?.index, 3, pattern);
    assert.deepEqual({ ...m?.groups }, { dev: 'sdb', hex: '0'.repeat(20) }, pattern);
  }
});

test("an installer's versionProbe.regex runs in linear time: a backtracking pattern over long output still answers", async () => {
  const root = new TempRoot();
  try {
    // 30 001 characters against (a+)+$: a backtracking engine would not finish this in a lifetime.
    root.script('/usr/bin/demo', `printf 'demo %sb' "$(yes a | head -n 30000 | tr -d '\\n')"`);
    const ctx = { host: createHost({ root: root.dir }) } as unknown as InstallContext;
    const spec = { versionProbe: { argv: ['/usr/bin/demo'], regex: '(a+)+$', timeoutSeconds: 10 } } as unknown as MachineComponentSpec;
    const result = await probeVersion(ctx, spec);
    assert.match(result?.error ?? '', /does not match/);
    const named = { versionProbe: { argv: ['/usr/bin/demo'], regex: 'demo (?P<v>a{64})', timeoutSeconds: 10 } } as unknown as MachineComponentSpec;
    assert.equal((await probeVersion(ctx, named))?.version, 'a'.repeat(64), 'RE2 syntax ((?P<name>), {64}) is accepted');
  } finally {
    root.remove();
  }
});
