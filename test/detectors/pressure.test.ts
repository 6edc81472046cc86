import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { parseProcStat } from '../../src/detectors/engine/procs.ts';
import { parseFileNr, parseLoadavgTasks, parseMeminfo, parsePsi, pressure } from '../../src/detectors/pressure.ts';
import { runAgent } from '../helpers/cli.ts';
import { condition, copyHost, HOSTS, makeDetector, signal } from './probed.ts';

const read = (rel: string): string => readFileSync(path.join(HOSTS, rel), 'utf8');

test('parseMeminfo reads the captured /proc/meminfo', () => {
  const mem = parseMeminfo(read('pressure-healthy/proc/meminfo'));
  assert.ok((mem.get('MemTotal') ?? 0) > 0);
  assert.ok((mem.get('MemAvailable') ?? 0) > 0);
  assert.ok(mem.has('Active(anon)'), 'field names with parentheses');
});

test('parsePsi reads some/full lines, and a cpu file without "full" (kernels before 5.13)', () => {
  const cpu = parsePsi(read('pressure-cpu-io/proc/pressure/cpu'));
  assert.equal(cpu.some?.avg60, 95.12);
  assert.deepEqual(parsePsi('some avg10=0.00 avg60=1.50 avg300=0.00 total=123\n'), { some: { avg10: 0, avg60: 1.5, avg300: 0, total: 123 } });
  assert.deepEqual(parsePsi(''), {});
});

test('parseLoadavgTasks, parseFileNr and parseProcStat read captured files', () => {
  assert.deepEqual(parseLoadavgTasks(read('pressure-limits/proc/loadavg')), { running: 3, total: 30000 });
  assert.deepEqual(parseFileNr(read('pressure-limits/proc/sys/fs/file-nr')), { allocated: 2300000, unused: 0, max: 2466170 });
  assert.equal(parseProcStat(read('pressure-limits/proc/11303/stat'))?.state, 'Z');
  assert.equal(parseProcStat(read('pressure-limits/proc/11262/stat'))?.state, 'R');
  // comm may hold spaces and parentheses: the state follows the last ')'.
  assert.equal(parseProcStat('4242 (a) Z (b)) S 1 4242 4242 0 -1')?.state, 'S');
});

interface Report {
  results: { status: string; error?: string; conditions: { type: string; status: string; reason: string; message: string }[] }[];
}

const scenarios: [string, number, [string, string][]][] = [
  ['pressure-healthy', 0, []],
  ['pressure-spike', 0, []],
  ['pressure-no-psi', 0, []],
  ['pressure-memory', 1, [['HighMemoryPressure', 'MemoryAvailableLow']]],
  ['pressure-cpu-io', 1, [['HighCPUPressure', 'CPUPSIHigh'], ['HighIOPressure', 'IOPSIHigh']]],
  ['pressure-limits', 1, [
    ['ConntrackExhaustion', 'ConntrackTableNearFull'],
    ['FileDescriptorExhaustion', 'FileDescriptorsNearLimit'],
    ['PIDExhaustion', 'PIDsNearLimit'],
    ['ZombieProcesses', 'TooManyZombies'],
  ]],
];

for (const [fixture, code, expected] of scenarios) {
  test(`check --root ${fixture} reports ${expected.map((e) => e[1]).join(', ') || 'nothing, and is not unknown'}`, async () => {
    const out = await runAgent(['check', '--json', '--only', 'pressure', '--root', path.join(HOSTS, fixture)]);
    assert.equal(out.code, code, out.stdout + out.stderr);
    const result = (JSON.parse(out.stdout) as Report).results[0];
    assert.equal(result?.conditions.length, 7);
    assert.deepEqual(result?.conditions.filter((c) => c.status === 'True').map((c) => [c.type, c.reason]).sort(), expected);
    if (code === 0) assert.equal(result?.status, 'ok', 'a missing PSI or conntrack file is skipped, not unknown');
  });
}

test('the memory condition names both the MemAvailable and the PSI readings', async () => {
  const result = await makeDetector(pressure, path.join(HOSTS, 'pressure-memory')).probe(signal());
  const c = condition(result, 'HighMemoryPressure');
  assert.match(c.message, /^MemAvailable 481 MiB is 2\.0% of MemTotal/);
  assert.match(c.message, /memory PSI some avg60=45\.3%/);
  assert.match(c.message, /memory PSI full avg60=24\.51%/);
});

test('a near miss stays quiet: conntrack at 89% with a 90% threshold', async () => {
  const host = copyHost('pressure-limits');
  try {
    writeFileSync(path.join(host.root, 'proc/sys/net/netfilter/nf_conntrack_count'), `${Math.floor(262144 * 0.89)}\n`);
    const result = await makeDetector(pressure, host.root, { config: { zombieCount: 3 } }).probe(signal());
    assert.equal(condition(result, 'ConntrackExhaustion').status, 'False');
    assert.equal(condition(result, 'ZombieProcesses').status, 'True', 'the same host still shows its zombies');
  } finally {
    host.cleanup();
  }
});

test('in the daemon a single high reading does not turn a condition; failuresToTrip in a row do', async () => {
  const host = copyHost('pressure-healthy');
  try {
    const psiFile = path.join(host.root, 'proc/pressure/io');
    const calm = readFileSync(psiFile, 'utf8');
    const stalled = calm.replace(/^full avg10=[\d.]+ avg60=[\d.]+/m, 'full avg10=70.00 avg60=55.00');
    const detector = makeDetector(pressure, host.root, { mode: 'run' });
    const states: string[] = [];
    for (const text of [stalled, calm, stalled, stalled, stalled, calm, calm]) {
      writeFileSync(psiFile, text);
      states.push(condition(await detector.probe(signal()), 'HighIOPressure').status);
    }
    // default failuresToTrip 3, successesToClear 2
    assert.deepEqual(states, ['False', 'False', 'False', 'False', 'True', 'True', 'False']);
  } finally {
    host.cleanup();
  }
});

test('a silenced reason never turns its condition, the others still do', async () => {
  const result = await makeDetector(pressure, path.join(HOSTS, 'pressure-limits'), { config: { zombieCount: 3 }, silenced: ['TooManyZombies', 'PIDsNearLimit'] }).probe(signal());
  assert.equal(condition(result, 'ZombieProcesses').status, 'False');
  assert.equal(condition(result, 'PIDExhaustion').status, 'False');
  assert.equal(condition(result, 'FileDescriptorExhaustion').status, 'True');
});

test('a condition persisted True before a restart keeps its transition time', async () => {
  const previous = [{ type: 'ConntrackExhaustion', status: 'True' as const, reason: 'ConntrackTableNearFull', message: 'old', transitionTime: 1234 }];
  const detector = makeDetector(pressure, path.join(HOSTS, 'pressure-limits'), { mode: 'run', previous });
  const c = condition(await detector.probe(signal()), 'ConntrackExhaustion');
  assert.deepEqual([c.status, c.transitionTime], ['True', 1234]);
});

test('zombies are not scanned for when loadavg counts fewer tasks than zombieCount (zombies count among them)', async () => {
  const host = copyHost('pressure-limits');
  try {
    const loadavg = path.join(host.root, 'proc/loadavg');
    const detector = (): ReturnType<typeof makeDetector> => makeDetector(pressure, host.root, { config: { zombieCount: 3 } });
    assert.equal(condition(await detector().probe(signal()), 'ZombieProcesses').status, 'True', 'scanned: 30000 tasks');
    // The captured zombies stay in proc/, so a scan would still find them: False proves there was none.
    writeFileSync(loadavg, readFileSync(loadavg, 'utf8').replace('3/30000', '1/2'));
    assert.equal(condition(await detector().probe(signal()), 'ZombieProcesses').status, 'False');
  } finally {
    host.cleanup();
  }
});
