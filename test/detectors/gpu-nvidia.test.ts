import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  classifyXid,
  DEFAULT_APP_XIDS,
  DEFAULT_FATAL_XIDS,
  parseSmiCsv,
  parseSmiXml,
  parseXid,
  THROTTLE,
} from '../../src/detectors/gpu-nvidia.ts';
import { FIXTURES, runAgent } from '../helpers/cli.ts';

const HOSTS = path.join(FIXTURES, 'hosts');
const read = (p: string): Promise<string> => readFile(path.join(HOSTS, p), 'utf8');

describe('gpu-nvidia parsers', () => {
  test('parseSmiXml: healthy A10G', async () => {
    const [gpu, ...rest] = parseSmiXml(await read('gpu-healthy/usr/bin/nvidia-smi.xml'));
    assert.equal(rest.length, 0);
    assert.deepEqual(gpu, {
      busId: '00000000:00:1E.0',
      name: 'NVIDIA A10G',
      uuid: 'GPU-9a9a6c50-2a47-2f51-a902-b82c3b127e94',
      remapPending: false,
      remapFailure: false,
      remapUncorrectable: 0,
      retiredPending: undefined,
      dbeVolatile: 0,
      thermalSlowdown: false,
      powerBrakeSlowdown: false,
      hwSlowdown: false,
    });
  });

  test('parseSmiXml: row remapping pending', async () => {
    const [gpu] = parseSmiXml(await read('gpu-remap-pending/usr/bin/nvidia-smi.xml'));
    assert.equal(gpu?.remapPending, true);
    assert.equal(gpu?.remapUncorrectable, 4);
  });

  test('parseSmiXml: newer clocks_event_reasons names and a thermal slowdown', async () => {
    const xml = (await read('gpu-healthy/usr/bin/nvidia-smi.xml'))
      .replaceAll('clocks_throttle_reason', 'clocks_event_reason')
      .replace('<clocks_event_reason_hw_thermal_slowdown>Not Active<', '<clocks_event_reason_hw_thermal_slowdown>Active<');
    assert.equal(parseSmiXml(xml)[0]?.thermalSlowdown, true);
  });

  test('parseSmiCsv', async () => {
    const [row] = parseSmiCsv(await read('gpu-healthy/usr/bin/nvidia-smi.csv'));
    assert.deepEqual(row, {
      index: 0,
      busId: '00000000:00:1E.0',
      uuid: 'GPU-9a9a6c50-2a47-2f51-a902-b82c3b127e94',
      name: 'NVIDIA A10G',
      temperature: 17,
      dbeVolatile: 0,
      retiredPending: undefined,
      throttleMask: 1,
    });
    assert.equal((row?.throttleMask ?? 0) & (THROTTLE.hwThermal | THROTTLE.swThermal | THROTTLE.hwPowerBrake | THROTTLE.hwSlowdown), 0);
  });

  const fatal = new Set(DEFAULT_FATAL_XIDS);
  const app = new Set(DEFAULT_APP_XIDS);
  const xids: { line: string; code: number; cls: string }[] = [
    { line: 'NVRM: Xid (PCI:0000:c6:00): 79, pid=1101234, name=nvc:[driver], GPU has fallen off the bus.', code: 79, cls: 'fatal' },
    { line: "NVRM: Xid (PCI:0000:cb:00): 109, pid=1797828, name=pt_main_thread, Ch 00000008, errorString CTX SWITCH TIMEOUT, Info 0x58005", code: 109, cls: 'fatal' },
    { line: "NVRM: Xid (PCI:0000:0a:00): 62, pid='<unknown>', name=<unknown>, 2023b230 20238a3a 2023e8b6 2023eac4 2023ec3c 2023ea86 00000000 00000000", code: 62, cls: 'fatal' },
    { line: "NVRM: Xid (PCI:0000:cb:00): 13, pid='<unknown>', name=<unknown>, Graphics SM Warp Exception on (GPC 7, TPC 7, SM 0): Illegal Instruction Parameter", code: 13, cls: 'app' },
    { line: 'NVRM: Xid (PCI:0000:01:00): 31, Ch 00000003, engmask 00000101, intr 10000000', code: 31, cls: 'app' },
    { line: 'NVRM: Xid (PCI:0000:10:1c): 63, pid=1896, Row Remapper: New row marked for remapping, reset gpu to activate.', code: 63, cls: 'app' },
    { line: 'NVRM: Xid (PCI:0000:dc:00): 45, pid=1818990, name=python3, Ch 00000001 caused by previous Xid 149', code: 45, cls: 'app' },
  ];
  for (const { line, code, cls } of xids) {
    test(`classify Xid ${code}: ${cls}`, () => {
      const xid = parseXid(line);
      assert.equal(xid?.code, code);
      assert.equal(classifyXid(xid as NonNullable<typeof xid>, fatal, app), cls);
    });
  }

  test('an Xid outside both lists is a warning', () => {
    assert.equal(classifyXid({ pci: '0000:01:00', code: 69, detail: '' }, fatal, app), 'warn');
  });

  test('not an Xid: other NVRM lines', () => {
    assert.equal(parseXid('NVRM: GPU at PCI:0000:c6:00: GPU-760d0170-b7c5-6817-9414-6cc7112645de'), undefined);
  });
});

let tmp: string;
before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'kn-gpu-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

interface Entry {
  status: string;
  conditions: { type: string; status: string; reason: string; message: string }[];
  events: { reason: string; message: string }[];
  error?: string;
}

let n = 0;
async function check(host: string, settings: Record<string, unknown> = {}, silenced: string[] = [], root = path.join(HOSTS, host)): Promise<Entry> {
  const file = path.join(tmp, `agent-${n++}.yaml`);
  await writeFile(file, JSON.stringify({ monitors: { systemLog: [], customPlugin: [] }, detection: { silencedReasons: silenced }, detectors: { 'gpu-nvidia': settings } }));
  const result = await runAgent(['check', '--json', '--root', root, '--only', 'gpu-nvidia', '--config', file]);
  assert.ok(result.stdout.startsWith('{'), `no report: ${result.stderr}`);
  const entry = (JSON.parse(result.stdout) as { results: Entry[] }).results[0] as Entry;
  assert.equal(result.code, entry.status === 'ok' ? 0 : entry.status === 'problem' ? 1 : 2);
  return entry;
}

describe('gpu-nvidia on fixture hosts', () => {
  const cases: { name: string; host: string; settings?: Record<string, unknown>; silenced?: string[]; status: string; reason?: string; warn?: string[] }[] = [
    { name: 'no GPU, none expected', host: 'gpu-none', status: 'ok' },
    { name: 'no GPU but one expected', host: 'gpu-none', settings: { expectedCount: 1 }, status: 'problem', reason: 'NvidiaDeviceCountMismatch' },
    { name: 'healthy A10G', host: 'gpu-healthy', status: 'ok' },
    { name: 'healthy A10G, expected count 1', host: 'gpu-healthy', settings: { expectedCount: 1 }, status: 'ok' },
    { name: 'one GPU where two are expected', host: 'gpu-healthy', settings: { expectedCount: 2 }, status: 'problem', reason: 'NvidiaDeviceCountMismatch' },
    { name: 'application XIDs never mark the node', host: 'gpu-app-xids', status: 'ok', warn: [] },
    { name: 'Xid 79 fallen off the bus', host: 'gpu-xid79', status: 'problem', reason: 'NvidiaXID79Error', warn: ['NvidiaXID79Error'] },
    { name: 'Xid 79 older than xidWindow is not reported', host: 'gpu-xid79', settings: { xidWindow: '30s' }, status: 'ok', warn: [] },
    { name: 'Xid 79 made a warning by config', host: 'gpu-xid79', settings: { fatalXids: [48] }, status: 'problem', warn: ['NvidiaXID79Warning'] },
    { name: 'kill switch for NvidiaXID79Error', host: 'gpu-xid79', silenced: ['NvidiaXID79Error'], status: 'ok' },
    { name: 'Xid 79 where two GPUs are expected: the count mismatch ranks first', host: 'gpu-xid79', settings: { expectedCount: 2 }, status: 'problem', reason: 'NvidiaDeviceCountMismatch' },
    { name: 'a silenced reason lets the next one surface', host: 'gpu-xid79', settings: { expectedCount: 2 }, silenced: ['NvidiaDeviceCountMismatch'], status: 'problem', reason: 'NvidiaXID79Error' },
    { name: 'row remapping pending', host: 'gpu-remap-pending', status: 'problem', reason: 'NvidiaRowRemapPending' },
    { name: 'nvidia-smi hangs', host: 'gpu-smi-hung', settings: { smiTimeout: '500ms' }, status: 'problem', reason: 'NvidiaSmiHung' },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const e = await check(c.host, c.settings, c.silenced);
      assert.equal(e.status, c.status, JSON.stringify(e));
      const cond = e.conditions.find((x) => x.type === 'GPUUnhealthy');
      assert.equal(cond?.status, c.reason === undefined ? 'False' : 'True', JSON.stringify(e));
      if (c.reason !== undefined) assert.equal(cond?.reason, c.reason);
      if (c.warn !== undefined) assert.deepEqual(e.events.map((ev) => ev.reason), c.warn);
    });
  }
});

test('an XID line written to /dev/kmsg from user space (facility 1, as the kernel stamps such writes) marks no GPU', async () => {
  const root = path.join(tmp, 'gpu-xid79-userspace');
  await cp(path.join(HOSTS, 'gpu-xid79'), root, { recursive: true });
  const kmsg = path.join(root, 'dev', 'kmsg');
  // The same captured Xid 79 text, but with priority 12 (LOG_USER|LOG_WARNING) instead of the kernel's 4.
  await writeFile(kmsg, (await readFile(kmsg, 'utf8')).replace('4,1202,', '12,1202,'));
  const e = await check('gpu-xid79', {}, [], root);
  assert.equal(e.status, 'ok', JSON.stringify(e));
  assert.deepEqual(e.events.map((ev) => ev.reason), []);
});
