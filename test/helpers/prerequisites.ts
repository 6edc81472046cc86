// Tests that need something this machine may lack (a tool on PATH, a device). Outside CI such a
// test is skipped with the reason; under CI=true a missing prerequisite is a defect of the CI
// machine that must not pass as a green run, so nothing is skipped and the run fails naming it.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';

function onPath(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v "$1"', 'sh', tool], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** "missing a, b (hint)" for those of tools not on PATH, or undefined when every one is there. */
export function missingTools(tools: readonly string[], hint?: string): string | undefined {
  const missing = tools.filter((t) => !onPath(t));
  if (missing.length === 0) return undefined;
  return `missing ${missing.join(', ')}${hint === undefined ? '' : ` (${hint})`}`;
}

/**
 * The node:test `skip` option for a test or suite that cannot run for `missing` (undefined when
 * nothing is missing). Under CI=true it skips nothing, and registers a test of its own that fails
 * with the reason, so the suite's own failures come with their cause.
 */
export function skipOutsideCi(missing: string | undefined): string | false {
  if (missing === undefined) return false;
  if (process.env.CI !== 'true') return missing;
  test(`prerequisite: ${missing}`, () => assert.fail(`${missing}: under CI=true a missing prerequisite fails the run`));
  return false;
}
