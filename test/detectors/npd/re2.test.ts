import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileRe2, PatternError, requiredLiteral, translateRe2 } from '../../../src/detectors/npd/re2.ts';

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

const refused: [string, RegExp][] = [
  ['(a)\\1', /backreferences/],
  ['(?=x)', /lookaround/],
  ['(?m)^x', /multi-line/],
  ['(?U)a+', /ungreedy/],
  ['(abc', /unbalanced \(/],
  ['abc)', /unbalanced \)/],
  ['[abc', /unterminated character class/],
  ['[[:nope:]]', /unknown POSIX class/],
  ['\\pL+', /Unicode classes/],
];
for (const [pattern, why] of refused) {
  test(`RE2 ${JSON.stringify(pattern)} is refused with a reason`, () => {
    assert.throws(() => compileRe2(pattern), (err: unknown) => err instanceof PatternError && why.test(err.message));
  });
}

test('a catastrophic-backtracking pattern runs in linear time', () => {
  // (a+)+$ against "aaaa…b" takes exponential time in a backtracking engine;
  // 30 000 characters would never finish there. The linear engine answers at once.
  const re = compileRe2('(a+)+$');
  assert.equal(re.flags.includes('l'), true);
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
