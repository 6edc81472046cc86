import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { classifyManagerState, parseErrorRegister } from '../../src/detectors/fpga.ts';
import { FIXTURES, runAgent } from '../helpers/cli.ts';

const HOSTS = path.join(FIXTURES, 'hosts');

describe('fpga parsers', () => {
  // Every state of Documentation/ABI/testing/sysfs-class-fpga-manager.
  const states: [string, string][] = [
    ['unknown', 'other'],
    ['power off', 'other'],
    ['power up', 'other'],
    ['reset', 'other'],
    ['firmware request', 'other'],
    ['firmware request error', 'error'],
    ['write init', 'other'],
    ['write init error', 'error'],
    ['write', 'other'],
    ['write error', 'error'],
    ['write complete', 'other'],
    ['write complete error', 'error'],
    ['operating\n', 'operating'],
  ];
  for (const [state, want] of states) test(`state "${state.trim()}" is ${want}`, () => assert.equal(classifyManagerState(state), want));

  test('error registers', () => {
    assert.equal(parseErrorRegister('0x0\n'), 0n);
    assert.equal(parseErrorRegister('0x800\n'), 0x800n);
    assert.equal(parseErrorRegister('0xffffffffffffffff\n'), 0xffffffffffffffffn);
    assert.equal(parseErrorRegister('garbage'), undefined);
  });
});

let tmp: string;
before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'kn-fpga-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

interface Entry {
  status: string;
  conditions: { type: string; status: string; reason: string; message: string }[];
}

let n = 0;
async function check(host: string, settings: Record<string, unknown> = {}, silenced: string[] = []): Promise<Entry> {
  const file = path.join(tmp, `agent-${n++}.yaml`);
  await writeFile(file, JSON.stringify({ monitors: { systemLog: [], customPlugin: [] }, detection: { silencedReasons: silenced }, detectors: { fpga: settings } }));
  const result = await runAgent(['check', '--json', '--root', path.join(HOSTS, host), '--only', 'fpga', '--config', file]);
  assert.ok(result.stdout.startsWith('{'), `no report: ${result.stderr}`);
  const entry = (JSON.parse(result.stdout) as { results: Entry[] }).results[0] as Entry;
  assert.equal(result.code, entry.status === 'ok' ? 0 : entry.status === 'problem' ? 1 : 2);
  return entry;
}

describe('fpga on fixture hosts', () => {
  const cases: { name: string; host: string; settings?: Record<string, unknown>; silenced?: string[]; status: string; reason?: string; match?: RegExp }[] = [
    { name: 'no FPGA, none expected', host: 'fpga-none', status: 'ok' },
    { name: 'no FPGA but expected', host: 'fpga-none', settings: { expected: 'true' }, status: 'problem', reason: 'FPGADeviceCountMismatch' },
    { name: 'healthy DFL card', host: 'fpga-healthy', status: 'ok' },
    { name: 'healthy, expected count 1', host: 'fpga-healthy', settings: { expectedCount: 1 }, status: 'ok' },
    { name: 'one FPGA where two are expected', host: 'fpga-healthy', settings: { expectedCount: 2 }, status: 'problem', reason: 'FPGADeviceCountMismatch' },
    { name: 'programming failed', host: 'fpga-write-error', status: 'problem', reason: 'FPGAManagerError', match: /write init error.*reconfig CRC error/ },
    { name: 'DFL catastrophic error', host: 'fpga-dfl-catfatal', status: 'problem', reason: 'FPGADFLError', match: /catfatal_errors=0x800/ },
    { name: 'injected test errors are not a fault', host: 'fpga-inject-only', status: 'ok' },
    { name: 'kill switch for FPGADFLError', host: 'fpga-dfl-catfatal', silenced: ['FPGADFLError'], status: 'ok' },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const e = await check(c.host, c.settings, c.silenced);
      assert.equal(e.status, c.status, JSON.stringify(e));
      const cond = e.conditions.find((x) => x.type === 'FPGAUnhealthy');
      assert.equal(cond?.status, c.reason === undefined ? 'False' : 'True');
      if (c.reason !== undefined) assert.equal(cond?.reason, c.reason);
      if (c.match !== undefined) assert.match(cond?.message ?? '', c.match);
    });
  }
});
