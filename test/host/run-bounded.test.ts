// Class 3: no command the agent runs, nor anything it leaves behind, outlives its deadline.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { describe, test } from 'node:test';
import { createHost } from '../../src/host/host.ts';

const host = createHost();
const sh = (script: string, timeoutMs: number, signal?: AbortSignal) =>
  host.exec(['sh', '-c', script], { timeoutMs, ...(signal === undefined ? {} : { signal }) });

/** Alive and not a zombie (an orphan killed here may wait for a reaper that this container lacks). */
async function alive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** The pids still alive after up to 5 s. */
async function waitDead(pids: number[]): Promise<number[]> {
  let living = pids;
  for (let i = 0; i < 50 && living.length > 0; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 100));
    living = (await Promise.all(living.map(async (p) => ((await alive(p)) ? p : undefined)))).filter((p) => p !== undefined);
  }
  return living;
}

const pidsIn = (text: string): number[] => [...text.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1]));

// Each script would hold the call for 60 s or more without the runner's bounds.
const SLOW_MS = 60_000;
const BOUND_MS = 15_000;

describe('a command whose processes outlive it', () => {
  const cases: { name: string; script: string; timeoutMs: number; timedOut: boolean; exitCode: number | null }[] = [
    { name: 'a background child keeps the pipes after the command exits 0', script: 'sleep 60 & echo pid=$!; exit 0', timeoutMs: 30_000, timedOut: false, exitCode: 0 },
    { name: 'a hang past the deadline with a child in its group', script: 'sleep 60 & echo pid=$!; sleep 60', timeoutMs: 300, timedOut: true, exitCode: null },
    { name: 'SIGTERM ignored: SIGKILL after the grace', script: 'trap "" TERM; echo pid=$$; sleep 60 & echo pid=$!; while :; do sleep 1; done', timeoutMs: 300, timedOut: true, exitCode: null },
    { name: 'a double-forked daemon (setsid) holding the pipes, command exits', script: 'setsid sh -c \'echo pid=$$; sleep 60\' & sleep 0.3; exit 0', timeoutMs: 30_000, timedOut: false, exitCode: 0 },
    { name: 'a double-forked daemon (setsid) holding the pipes, command hangs', script: '(setsid sh -c \'echo pid=$$; exec sleep 60\' &); sleep 60', timeoutMs: 500, timedOut: true, exitCode: null },
    { name: 'a daemon that closed its pipes, command times out', script: 'setsid sh -c \'echo pid=$$; exec sleep 60 >/dev/null 2>&1\' & sleep 60', timeoutMs: 500, timedOut: true, exitCode: null },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const started = performance.now();
      const r = await sh(c.script, c.timeoutMs);
      const took = performance.now() - started;
      assert.ok(took < BOUND_MS, `settled after ${Math.round(took)}ms, where the script would take ${SLOW_MS}ms`);
      assert.equal(r.timedOut, c.timedOut);
      assert.equal(r.exitCode, c.exitCode);
      const pids = pidsIn(r.stdout);
      assert.ok(pids.length > 0, `the script printed its pids: ${JSON.stringify(r.stdout)}`);
      assert.deepEqual(await waitDead(pids), [], 'every process it started is gone');
    });
  }

  test('an abort kills the group and settles', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    const r = await sh('sleep 60 & echo pid=$!; sleep 60', 30_000, controller.signal);
    assert.equal(r.exitCode, null);
    assert.equal(r.signal, 'SIGTERM');
    assert.deepEqual(await waitDead(pidsIn(r.stdout)), []);
  });

  test('output written before the end is kept', async () => {
    const r = await sh('echo before; sleep 60 & exit 4', 30_000);
    assert.equal(r.exitCode, 4);
    assert.equal(r.stdout, 'before\n');
  });
});

test('many runs of a daemonizing command leak no descriptor', async () => {
  const count = async (): Promise<number> => (await readdir('/proc/self/fd')).length;
  await sh('true', 1_000);
  const before = await count();
  for (let i = 0; i < 40; i++) {
    await sh(i % 2 === 0 ? '(setsid sleep 60 &); sleep 60' : 'sleep 60 & exit 0', 100);
  }
  // A destroyed pipe's descriptor is closed on a later turn of the event loop: a leak is one that stays.
  let now = await count();
  for (let i = 0; i < 20 && now > before; i++) {
    await new Promise((r) => setTimeout(r, 100));
    now = await count();
  }
  assert.equal(now, before);
});
