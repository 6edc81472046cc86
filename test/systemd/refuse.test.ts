// The opt-in real-systemd script (real-systemd.ts) must refuse, with exit 2 and a reason, unless
// PID 1 is systemd AND KUBENODE_REAL_SYSTEMD=1: it is never run for real here. PID 1's name is
// read from a file given by KUBENODE_SELFTEST_PID1_COMM, so these cases do not depend on the
// machine the tests run on.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('./real-systemd.ts', import.meta.url));
const dir = mkdtempSync(path.join(os.tmpdir(), 'kubenode-selftest-'));
const comm = (name: string): string => {
  const file = path.join(dir, name);
  writeFileSync(file, `${name}\n`);
  return file;
};

const cases: { name: string; pid1: string; optIn: boolean; reasons: RegExp[]; notReasons: RegExp[] }[] = [
  { name: 'PID 1 is not systemd, not opted in', pid1: comm('init'), optIn: false, reasons: [/PID 1 is "init"/, /KUBENODE_REAL_SYSTEMD=1 is not set/], notReasons: [] },
  { name: 'opted in, but PID 1 is not systemd', pid1: comm('tini'), optIn: true, reasons: [/PID 1 is "tini" .*not systemd/], notReasons: [/KUBENODE_REAL_SYSTEMD/] },
  { name: 'PID 1 is systemd, but not opted in', pid1: comm('systemd'), optIn: false, reasons: [/KUBENODE_REAL_SYSTEMD=1 is not set/], notReasons: [/PID 1 is/] },
  { name: 'PID 1 unreadable', pid1: path.join(dir, 'missing'), optIn: true, reasons: [/PID 1 is "unreadable \(ENOENT/], notReasons: [] },
];

describe('real-systemd.ts refuses unless PID 1 is systemd and KUBENODE_REAL_SYSTEMD=1', () => {
  for (const c of cases) {
    it(c.name, () => {
      const env: NodeJS.ProcessEnv = { ...process.env, KUBENODE_SELFTEST_PID1_COMM: c.pid1 };
      if (c.optIn) env.KUBENODE_REAL_SYSTEMD = '1';
      else delete env.KUBENODE_REAL_SYSTEMD;
      const r = spawnSync(process.execPath, [SCRIPT], { env, encoding: 'utf8', timeout: 30_000 });
      assert.equal(r.status, 2, r.stdout + r.stderr);
      assert.match(r.stderr, /^real-systemd: refusing to run:/);
      for (const re of c.reasons) assert.match(r.stderr, re);
      for (const re of c.notReasons) assert.doesNotMatch(r.stderr, re);
      assert.equal(r.stdout, '', 'nothing was done');
    });
  }
});
