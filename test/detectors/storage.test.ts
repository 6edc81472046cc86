import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import {
  containingMount,
  isStalled,
  parseBlockStat,
  parseMounts,
  parseSmartHealth,
  parseSmartScan,
  storage,
  usageOf,
} from '../../src/detectors/storage.ts';
import { runAgent } from '../helpers/cli.ts';
import { condition, copyHost, HOSTS, makeDetector, signal } from './probed.ts';

const read = (rel: string): string => readFileSync(path.join(HOSTS, rel), 'utf8');

// ---------------------------------------------------------------- parsers

test('parseMounts reads the captured /proc/mounts, octal escapes included', () => {
  const mounts = parseMounts(read('storage-healthy/proc/mounts'));
  const root = mounts.find((m) => m.mountpoint === '/');
  assert.deepEqual(root, { device: '/dev/vda', mountpoint: '/', fstype: 'ext4', options: ['rw', 'relatime', 'discard', 'resv_strict', 'resuid=65534', 'resgid=65534'] });
  const [escaped] = parseMounts('/dev/sdb1 /mnt/my\\040disk ext4 rw 0 0\n');
  assert.equal(escaped?.mountpoint, '/mnt/my disk');
});

test('containingMount picks the longest mountpoint prefix, not a sibling with a common prefix', () => {
  const mounts = parseMounts('/dev/a / ext4 rw 0 0\n/dev/b /var ext4 rw 0 0\n/dev/c /var/lib/kube xfs ro 0 0\n');
  assert.equal(containingMount(mounts, '/var/lib/kubelet')?.device, '/dev/b');
  assert.equal(containingMount(mounts, '/var/lib/kube/x')?.device, '/dev/c');
  assert.equal(containingMount(mounts, '/etc')?.device, '/dev/a');
});

test('parseBlockStat reads 11-, 15- and 17-field stat files', () => {
  const captured = parseBlockStat(read('storage-healthy/sys/block/vda/stat'));
  assert.ok(captured !== undefined && captured.inFlight === 0 && captured.completions > 0);
  // 4.14 (11 fields), 4.19 (15), 5.5+ (17): completions are fields 1+5(+12)(+16), in_flight field 9.
  assert.deepEqual(parseBlockStat('10 0 0 0 20 0 0 0 3 7 9'), { completions: 30, inFlight: 3, ioTicks: 7 });
  assert.deepEqual(parseBlockStat('10 0 0 0 20 0 0 0 3 7 9 5 0 0 0'), { completions: 35, inFlight: 3, ioTicks: 7 });
  assert.deepEqual(parseBlockStat('10 0 0 0 20 0 0 0 3 7 9 5 0 0 0 6 0'), { completions: 41, inFlight: 3, ioTicks: 7 });
  assert.equal(parseBlockStat('1 2 3'), undefined);
});

test('isStalled: in flight at both reads with no completion, and only that', () => {
  const s = (completions: number, inFlight: number) => ({ completions, inFlight, ioTicks: 0 });
  const cases: [string, ReturnType<typeof s>, ReturnType<typeof s>, boolean][] = [
    ['stuck requests', s(100, 4), s(100, 4), true],
    ['busy but progressing (near miss)', s(100, 4), s(101, 4), false],
    ['idle', s(100, 0), s(100, 0), false],
    ['drained by the second read', s(100, 4), s(100, 0), false],
    ['a request arrived between reads', s(100, 0), s(100, 1), false],
  ];
  for (const [name, a, b, want] of cases) assert.equal(isStalled(a, b), want, name);
});

test('usageOf counts reserved blocks as unavailable, as df does; no inode limit without an inode table', () => {
  const statfs = JSON.parse(read('storage-healthy/.kubenode-replay/statfs.json')) as Record<string, Parameters<typeof usageOf>[0]>;
  const root = usageOf(statfs['/'] as Parameters<typeof usageOf>[0]);
  assert.ok(root !== undefined && root.usedPercent > 20 && root.usedPercent < 25, String(root?.usedPercent));
  assert.equal(usageOf({ bsize: 4096, blocks: 100, bfree: 10, bavail: 0, files: 0, ffree: 0 })?.usedPercent, 100);
  assert.equal(usageOf({ bsize: 4096, blocks: 100, bfree: 10, bavail: 0, files: 0, ffree: 0 })?.inodesUsedPercent, undefined);
  assert.equal(usageOf({ bsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0 }), undefined);
});

test('parseSmartScan and parseSmartHealth read captured smartctl JSON', () => {
  assert.deepEqual(parseSmartScan(read('storage-healthy/usr/bin/smartctl.d/scan-open.json')), [
    { name: '/dev/sda', type: 'sat' },
    { name: '/dev/sdb', type: 'usbsunplus' },
  ]);
  const pass = parseSmartHealth(read('storage-healthy/usr/bin/smartctl.d/sda.json'));
  assert.equal(pass.passed, true);
  const fail = parseSmartHealth(read('storage-smart-failing/usr/bin/smartctl.d/sdb.json'));
  assert.deepEqual([fail.passed, fail.exitStatus, fail.model, fail.failing], [false, 216, 'Hitachi HDS721050DLE630', ['Reallocated_Sector_Ct']]);
  // smartctl that could not open the device (AnalogJ/scrutiny testdata smart-fail.json): no verdict, not a failure.
  const openFailed = parseSmartHealth(
    '{"json_format_version":[1,0],"smartctl":{"version":[7,0],"svn_revision":"4883","platform_info":"x86_64-w64-mingw32-win7-sp1","build_info":"(sf-7.0-1)","argv":["smartctl","--all","-j","/dev/sda"],"messages":[{"string":"Smartctl open device: /dev/sda failed: \\\\\\\\.\\\\PhysicalDrive0: Open failed, Error=5","severity":"error"}],"exit_status":2}}',
  );
  assert.equal(openFailed.passed, undefined);
  assert.match(openFailed.error ?? '', /Open failed/);
});

// ---------------------------------------------------------------- the built agent on fixture hosts

interface Report {
  results: { detector: string; status: string; conditions: { type: string; status: string; reason: string; message: string }[] }[];
}

const scenarios: [string, number, { type: string; reason: string; message?: RegExp }[]][] = [
  ['storage-healthy', 0, []],
  ['storage-disk-full', 1, [
    { type: 'DiskFull', reason: 'DiskSpaceLow', message: /^\/ \(\/dev\/vda, ext4\) is 97\.7% full/ },
    { type: 'InodesExhausted', reason: 'InodesLow', message: /^\/ \(\/dev\/vda, ext4\) has 97\.6% of its inodes/ },
  ]],
  ['storage-readonly', 1, [{ type: 'ReadonlyFilesystem', reason: 'FilesystemIsReadOnly', message: /^\/ \(\/dev\/vda, ext4\), which holds \/var\/lib\/kubelet, is mounted read-only$/ }]],
  ['storage-io-stall', 1, [{ type: 'IOStall', reason: 'IORequestsStalled', message: /^\/dev\/vda: 4 request\(s\) in flight/ }]],
  ['storage-smart-failing', 1, [{ type: 'DiskUnhealthy', reason: 'SmartHealthFailed', message: /^\/dev\/sdb \(Hitachi HDS721050DLE630\)/ }]],
];

for (const [fixture, code, expected] of scenarios) {
  test(`check --root ${fixture} reports ${expected.map((e) => e.reason).join(', ') || 'nothing'}`, async () => {
    const out = await runAgent(['check', '--json', '--only', 'storage', '--root', path.join(HOSTS, fixture)]);
    assert.equal(out.code, code, out.stderr);
    const report = JSON.parse(out.stdout) as Report;
    const conditions = report.results[0]?.conditions ?? [];
    const trueOnes = conditions.filter((c) => c.status === 'True');
    assert.deepEqual(trueOnes.map((c) => [c.type, c.reason]).sort(), expected.map((e) => [e.type, e.reason]).sort());
    for (const e of expected) assert.match(trueOnes.find((c) => c.type === e.type)?.message ?? '', e.message ?? /./);
    assert.equal(conditions.length, 5, 'every storage condition is reported');
  });
}

test('a pseudo filesystem at 100% and a real read-only tmpfs are not problems', async () => {
  const out = await runAgent(['check', '--json', '--only', 'storage', '--root', path.join(HOSTS, 'storage-disk-full')]);
  const report = JSON.parse(out.stdout) as Report;
  const text = JSON.stringify(report);
  assert.doesNotMatch(text, /\/dev\/shm/);
  assert.doesNotMatch(text, /\/mnt\/sandboxing/);
});

test('a silenced reason never turns its condition (detection.silencedReasons)', async () => {
  const detector = makeDetector(storage, path.join(HOSTS, 'storage-disk-full'), { silenced: ['DiskSpaceLow'] });
  const result = await detector.probe(signal());
  assert.equal(condition(result, 'DiskFull').status, 'False');
  assert.equal(condition(result, 'InodesExhausted').status, 'True');
});

// ---------------------------------------------------------------- flap damping and the daemon's write probe

test('in the daemon one stalled probe does not turn IOStall; two in a row do, one good probe clears it', async () => {
  const host = copyHost('storage-io-stall');
  try {
    const detector = makeDetector(storage, host.root, { mode: 'run', config: { ioStallInterval: '1ms', smart: false, writeProbeDirs: [] } });
    const statFile = path.join(host.root, 'sys/block/vda/stat');
    const stalled = readFileSync(statFile, 'utf8');
    assert.equal(condition(await detector.probe(signal()), 'IOStall').status, 'False', 'one stalled probe is a spike');
    const second = await detector.probe(signal());
    assert.equal(condition(second, 'IOStall').status, 'True');
    assert.deepEqual(second.events.map((e) => [e.severity, e.reason]), [['warn', 'IORequestsStalled']]);
    const since = condition(second, 'IOStall').transitionTime;
    assert.equal(condition(await detector.probe(signal()), 'IOStall').transitionTime, since, 'transition time stays while the condition holds');
    writeFileSync(statFile, stalled.replace(/^(\s*(?:\S+\s+){8})4/, '$10'));
    assert.equal(condition(await detector.probe(signal()), 'IOStall').status, 'False');
  } finally {
    host.cleanup();
  }
});

test('requests in flight that complete between the two reads are not a stall', async () => {
  const host = copyHost('storage-io-stall');
  try {
    const statFile = path.join(host.root, 'sys/block/vda/stat');
    const fields = readFileSync(statFile, 'utf8').trim().split(/\s+/);
    const clock = {
      now: () => Date.now(),
      // Between the two reads the device completes one write and still has requests in flight.
      sleep: async () => {
        fields[4] = String(Number(fields[4]) + 1);
        writeFileSync(statFile, `${fields.join(' ')}\n`);
      },
    };
    const detector = makeDetector(storage, host.root, { config: { smart: false }, clock });
    assert.equal(condition(await detector.probe(signal()), 'IOStall').status, 'False');
  } finally {
    host.cleanup();
  }
});

test('check never writes: the write probe runs in the daemon only', async () => {
  const host = copyHost('storage-healthy');
  try {
    const dir = path.join(host.root, 'var/lib/kubelet');
    mkdirSync(dir, { recursive: true });
    const past = new Date(Date.UTC(2020, 0, 1));
    utimesSync(dir, past, past);
    const config = { smart: false, ioStall: false };
    await makeDetector(storage, host.root, { mode: 'check', config }).probe(signal());
    assert.equal(statSync(dir).mtimeMs, past.getTime(), 'check created no file');
    const result = await makeDetector(storage, host.root, { mode: 'run', config }).probe(signal());
    assert.notEqual(statSync(dir).mtimeMs, past.getTime(), 'the daemon wrote and removed its probe file');
    assert.deepEqual(readdirSync(dir), [], 'the probe file is removed');
    assert.equal(condition(result, 'ReadonlyFilesystem').status, 'False');
  } finally {
    host.cleanup();
  }
});
