import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { readProcesses } from '../../../src/detectors/engine/procs.ts';
import { createHost } from '../../../src/host/host.ts';
import { FIXTURES } from '../../helpers/cli.ts';
import { FakeClock } from '../../helpers/fake-clock.ts';

test('readProcesses: every readable stat line, leaving out a process that exited and one it cannot parse', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'kn-procs-'));
  try {
    // 3976 is a containerd in D state, captured (test/fixtures/hosts/runtime-dstate).
    cpSync(path.join(FIXTURES, 'hosts/runtime-dstate/proc/3976'), path.join(root, 'proc/3976'), { recursive: true });
    mkdirSync(path.join(root, 'proc/3977'), { recursive: true }); // exited: its directory, no stat
    mkdirSync(path.join(root, 'proc/3978'), { recursive: true });
    writeFileSync(path.join(root, 'proc/3978/stat'), 'not a stat line');
    assert.deepEqual(readProcesses(createHost({ root })), [{ pid: 3976, comm: 'containerd', state: 'D' }]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('readProcesses: one scan answers every caller on the host for a second of its clock, then /proc is read again', async () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'kn-procs-'));
  try {
    cpSync(path.join(FIXTURES, 'hosts/runtime-dstate/proc/3976'), path.join(root, 'proc/3976'), { recursive: true });
    const clock = new FakeClock();
    const host = createHost({ root, clock });
    const first = readProcesses(host);
    mkdirSync(path.join(root, 'proc/3990'), { recursive: true });
    writeFileSync(path.join(root, 'proc/3990/stat'), readFileSync(path.join(root, 'proc/3976/stat'), 'utf8').replace(/^3976 /, '3990 '));
    await clock.advance(999);
    assert.equal(readProcesses(host), first, 'the same scan, within the second');
    assert.equal(readProcesses(createHost({ root, clock })).length, 2, 'another host scans for itself');
    await clock.advance(1);
    assert.deepEqual(readProcesses(host).map((p) => p.pid).sort(), [3976, 3990]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
