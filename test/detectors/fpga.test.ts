import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readFileSync } from 'node:fs';
import { classifyManagerState, parseErrorRegister, parseXrtDevices } from '../../src/detectors/fpga.ts';
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

  test('XRT "Devices present" table, with and without the Device Ready column', () => {
    const captured = readFileSync(path.join(HOSTS, 'fpga-xrt-not-ready/usr/bin/xbutil.out'), 'utf8');
    assert.deepEqual(parseXrtDevices(captured), [
      { bdf: '0000:65:00.0', shell: 'xilinx_u280_xdma_201920_3', ready: true },
      { bdf: '0000:17:00.0', shell: 'xilinx_u250_GOLDEN_5', ready: false },
    ]);
    // XRT before 2.13 printed no readiness column (Xilinx/XRT pull request #6443).
    const older = 'Devices present\nBDF             :  Shell                      Platform UUID  Device ID\n[0000:65:00.0]  :  xilinx_u280_xdma_201920_3  0x5e278820     mgmt(inst=25856)\n\n';
    assert.deepEqual(parseXrtDevices(older), [{ bdf: '0000:65:00.0', shell: 'xilinx_u280_xdma_201920_3', ready: undefined }]);
    assert.deepEqual(parseXrtDevices('XRT\n  Version : 2.13.0\n'), []);
  });

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
    { name: 'XRT card ready', host: 'fpga-xrt-ready', settings: { expectedCount: 1 }, status: 'ok' },
    { name: 'XRT card not ready', host: 'fpga-xrt-not-ready', status: 'problem', reason: 'FPGANotReady', match: /0000:17:00\.0 \(xilinx_u250_GOLDEN_5\)/ },
    { name: 'XRT cards count towards the expected number', host: 'fpga-xrt-ready', settings: { expectedCount: 2 }, status: 'problem', reason: 'FPGADeviceCountMismatch', match: /1 XRT device/ },
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

test('an XRT tool that hangs is cut off and reported, not waited for', async () => {
  const root = path.join(tmp, 'xrt-hang');
  const { mkdir, chmod } = await import('node:fs/promises');
  await mkdir(path.join(root, 'usr/bin'), { recursive: true });
  await writeFile(path.join(root, 'usr/bin/xbutil'), '#!/bin/sh\nexec sleep 30\n');
  await chmod(path.join(root, 'usr/bin/xbutil'), 0o755);
  const file = path.join(tmp, 'agent-hang.yaml');
  await writeFile(file, JSON.stringify({ detectors: { fpga: { xrtTimeout: '500ms' } } }));
  const result = await runAgent(['check', '--json', '--root', root, '--only', 'fpga', '--config', file]);
  const entry = (JSON.parse(result.stdout) as { results: Entry[] }).results[0] as Entry;
  assert.equal(entry.status, 'problem');
  assert.deepEqual(
    entry.conditions.map((c) => [c.reason, c.message]),
    [['FPGAXRTFailed', 'xbutil examine timed out after 500ms']],
  );
});
