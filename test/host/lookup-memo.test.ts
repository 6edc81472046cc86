// A probe's command lookup (ExecOptions.cachedLookup) is reused for a minute; nothing that acts on
// the host ever gets a stale one: a tool an installer has just put in place is found at once.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { afterEach, describe, test } from 'node:test';
import { createHost, LOOKUP_MEMO_MS } from '../../src/host/host.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { TempRoot } from '../helpers/host-root.ts';
import { srcLinesMatching } from '../helpers/source-lines.ts';

const probe = { timeoutMs: 5_000, cachedLookup: true } as const;
const fresh = { timeoutMs: 5_000 } as const;

describe('command lookups of probes', () => {
  let root: TempRoot;
  afterEach(() => root.remove());

  test('an absent tool stays absent to a probe for LOOKUP_MEMO_MS, to anything else it is found at once; a fresh lookup renews the memo', async () => {
    root = new TempRoot();
    const clock = new FakeClock();
    const host = createHost({ root: root.dir, clock });
    assert.equal((await host.exec(['probe-tool'], probe)).notFound, true);
    root.script('/usr/bin/probe-tool', 'echo here');
    assert.equal((await host.exec(['probe-tool'], probe)).notFound, true, 'the memo stands within its age');
    const installer = await host.exec(['probe-tool'], fresh);
    assert.deepEqual([installer.notFound, installer.stdout], [false, 'here\n']);
    const after = await host.exec(['probe-tool'], probe);
    assert.deepEqual([after.notFound, after.stdout], [false, 'here\n'], 'the fresh lookup renewed the memo');
  });

  test('past LOOKUP_MEMO_MS a probe looks again', async () => {
    root = new TempRoot();
    const clock = new FakeClock();
    const host = createHost({ root: root.dir, clock });
    assert.equal((await host.exec(['late-tool'], probe)).notFound, true);
    root.script('/usr/sbin/late-tool', 'echo late');
    await clock.advance(LOOKUP_MEMO_MS - 1);
    assert.equal((await host.exec(['late-tool'], probe)).notFound, true);
    await clock.advance(1);
    assert.equal((await host.exec(['late-tool'], probe)).stdout, 'late\n');

  });

  test('a wall clock stepped back does not stretch the memo', async () => {
    root = new TempRoot();
    let now = Date.UTC(2026, 0, 1);
    const host = createHost({ root: root.dir, clock: { now: () => now, sleep: () => Promise.resolve() } });
    assert.equal((await host.exec(['stepped-tool'], probe)).notFound, true);
    root.script('/usr/sbin/stepped-tool', 'echo stepped');
    now -= 3_600_000;
    assert.equal((await host.exec(['stepped-tool'], probe)).stdout, 'stepped\n');
  });

  test('a found tool that is gone is looked up again, not run from where it was', async () => {
    root = new TempRoot();
    const host = createHost({ root: root.dir, clock: new FakeClock() });
    root.script('/usr/local/bin/moving-tool', 'echo local');
    root.script('/usr/bin/moving-tool', 'echo usr');
    assert.equal((await host.exec(['moving-tool'], probe)).stdout, 'local\n');
    rmSync(root.path('/usr/local/bin/moving-tool'));
    const moved = await host.exec(['moving-tool'], probe);
    assert.deepEqual([moved.notFound, moved.exitCode, moved.stdout], [false, 0, 'usr\n']);
    rmSync(root.path('/usr/bin/moving-tool'));
    assert.equal((await host.exec(['moving-tool'], probe)).notFound, true);
  });

  test('only detectors ask for a cached lookup: no installer, remedy or controller code does', async () => {
    const users = await srcLinesMatching(/cachedLookup: true/);
    assert.deepEqual(users.filter((line) => !line.startsWith('src/detectors/')), []);
    assert.ok(users.length >= 8, users.join('\n'));
  });
});
