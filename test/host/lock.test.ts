// The lock between agents on one machine: callers in one process and in separate processes never
// hold it at once, a release gives back only the caller's own acquisition, and locks written by
// earlier releases (no token) are still honoured.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createHost } from '../../src/host/host.ts';
import { acquireLock, processStartTime, machineBootId } from '../../src/host/lock.ts';
import { TempRoot } from '../helpers/host-root.ts';

const LOCK = '/run/kubenode-agent/test.lock';
const lockModule = fileURLToPath(new URL('../../src/host/lock.ts', import.meta.url));
const hostModule = fileURLToPath(new URL('../../src/host/host.ts', import.meta.url));

describe('lock', () => {
  test('twelve callers in one process, five rounds each, polling every 2 ms: never two inside at once', async () => {
    const root = new TempRoot();
    try {
      const host = createHost({ root: root.dir });
      let inside = 0;
      let most = 0;
      let entries = 0;
      await Promise.all(
        Array.from({ length: 12 }, async () => {
          for (let round = 0; round < 5; round++) {
            const lock = await acquireLock(host, LOCK, { timeoutMs: 60_000, pollMs: 2, purpose: 'test' });
            inside++;
            entries++;
            most = Math.max(most, inside);
            await sleep(1);
            inside--;
            await lock.release();
          }
        }),
      );
      assert.equal(entries, 60);
      assert.equal(most, 1);
      assert.deepEqual(readdirSync(root.path('/run/kubenode-agent')), [], 'no lock, temporary or stale file is left');
    } finally {
      root.remove();
    }
  });

  test('six processes, three rounds each: entries and exits never interleave', async () => {
    const root = new TempRoot();
    try {
      const journal = root.path('/journal');
      writeFileSync(journal, '');
      const script = `
        import { appendFileSync } from 'node:fs';
        import { createHost } from ${JSON.stringify(hostModule)};
        import { acquireLock } from ${JSON.stringify(lockModule)};
        const host = createHost({ root: ${JSON.stringify(root.dir)} });
        for (let i = 0; i < 3; i++) {
          const lock = await acquireLock(host, ${JSON.stringify(LOCK)}, { timeoutMs: 60_000, pollMs: 2, purpose: 'child' });
          appendFileSync(${JSON.stringify(journal)}, 'in ' + process.pid + '\\n');
          await new Promise((r) => setTimeout(r, 3));
          appendFileSync(${JSON.stringify(journal)}, 'out ' + process.pid + '\\n');
          await lock.release();
        }`;
      const codes = await Promise.all(
        Array.from(
          { length: 6 },
          () =>
            new Promise<number | null>((resolve) => {
              const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'inherit'] });
              child.on('exit', resolve);
            }),
        ),
      );
      assert.deepEqual(codes, [0, 0, 0, 0, 0, 0]);
      const lines = readFileSync(journal, 'utf8').trim().split('\n');
      assert.equal(lines.length, 36);
      for (let i = 0; i < lines.length; i += 2) {
        const [enter, exit] = [lines[i], lines[i + 1]];
        assert.equal(exit, enter?.replace(/^in /, 'out '), `line ${i + 1}: ${enter} was followed by ${exit}`);
      }
    } finally {
      root.remove();
    }
  });

  test("a release gives back only the caller's own acquisition, even in the same process", async () => {
    const root = new TempRoot();
    try {
      const host = createHost({ root: root.dir });
      const first = await acquireLock(host, LOCK, { timeoutMs: 1_000, purpose: 'first' });
      await first.release();
      const second = await acquireLock(host, LOCK, { timeoutMs: 1_000, purpose: 'second' });
      // A late second release of the first acquisition must not free the lock the second holds.
      await first.release();
      await assert.rejects(acquireLock(host, LOCK, { timeoutMs: 50, purpose: 'third' }), /held by pid \d+ \(second/);
      await second.release();
      await (await acquireLock(host, LOCK, { timeoutMs: 50, purpose: 'fourth' })).release();
    } finally {
      root.remove();
    }
  });

  test('a lock written by an earlier release (no token) and held by a live process is waited for, not taken over', async () => {
    const root = new TempRoot();
    try {
      const host = createHost({ root: root.dir });
      mkdirSync(root.path('/run/kubenode-agent'), { recursive: true });
      const old = { pid: process.pid, bootId: await machineBootId(), startTime: await processStartTime(process.pid), hostname: 'node-a', since: '2026-01-01T00:00:00.000Z', purpose: 'kubenode-agent run (installers)' };
      writeFileSync(root.path(LOCK), JSON.stringify(old));
      await assert.rejects(acquireLock(host, LOCK, { timeoutMs: 300, purpose: 'new' }), /held by pid \d+ \(kubenode-agent run \(installers\), since 2026-01-01/);
    } finally {
      root.remove();
    }
  });
});
