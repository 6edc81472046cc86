// A test whose tool is missing is skipped with the reason outside CI and fails the run under
// CI=true: run as a child `node --test` on a file that needs a tool no machine has.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

const dir = mkdtempSync(path.join(os.tmpdir(), 'kn-prereq-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = path.join(dir, 'needs.test.ts');
writeFileSync(
  file,
  `import { describe, test } from 'node:test';
import { missingTools, skipOutsideCi } from ${JSON.stringify(new URL('./prerequisites.ts', import.meta.url).href)};
describe('needs a tool', { skip: skipOutsideCi(missingTools(['kn-no-such-tool', 'sh'], 'apt-get install it')) }, () => {
  test('uses it', () => {});
});
test('needs nothing', { skip: skipOutsideCi(missingTools(['sh'])) }, () => {});
`,
);

function run(ci: string | undefined): { status: number | null; out: string } {
  const env = { ...process.env };
  delete env.CI;
  // Set by the parent runner; left in, the child reports to it instead of exiting with its own status.
  delete env.NODE_TEST_CONTEXT;
  if (ci !== undefined) env.CI = ci;
  const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', file], { env, encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
}

test('outside CI a missing tool skips the suite, naming the tool and the hint; a present one skips nothing', () => {
  const r = run(undefined);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /^ok \d+ - needs a tool # SKIP missing kn-no-such-tool \(apt-get install it\)$/m, r.out);
  assert.match(r.out, /^ok \d+ - needs nothing$/m, r.out);
  assert.match(r.out, /^# fail 0$/m, r.out);
});

test('under CI=true a missing tool fails the run with the reason, and the suite is not skipped', () => {
  const r = run('true');
  assert.notEqual(r.status, 0, r.out);
  assert.match(r.out, /^not ok \d+ - prerequisite: missing kn-no-such-tool \(apt-get install it\)$/m, r.out);
  assert.match(r.out, /^ok \d+ - needs a tool$/m, r.out);
  assert.doesNotMatch(r.out, /# SKIP/, r.out);
});
