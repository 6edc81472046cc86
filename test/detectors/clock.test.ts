import assert from 'node:assert/strict';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { clock, parseChronyTracking, parseKeyValues } from '../../src/detectors/clock.ts';
import { runAgent } from '../helpers/cli.ts';
import { condition, copyHost, HOSTS, makeDetector, signal } from './probed.ts';

const read = (rel: string): string => readFileSync(path.join(HOSTS, rel), 'utf8');

test('parseChronyTracking reads the captured 14-field CSV line and a 13-field one', () => {
  const synced = parseChronyTracking(read('clock-chrony-synced/usr/bin/chronyc.out'));
  assert.deepEqual(synced, { refId: '50505300', refName: 'PPS', stratum: 1, systemTimeOffset: -0.000000023, lastOffset: 0.000000019, rootDispersion: 0.000004171, leapStatus: 'Normal' });
  const unsynced = parseChronyTracking(read('clock-chrony-unsynced/usr/bin/chronyc.out'));
  assert.deepEqual([unsynced?.refId, unsynced?.stratum, unsynced?.leapStatus], ['00000000', 0, 'Not synchronised']);
  const without = parseChronyTracking('50505300,1,1611776272.200448744,-0.000000023,0.000000019,0.000000027,-3.950,0.000,0.002,0.000000001,0.000004171,4.0,Normal');
  assert.deepEqual([without?.stratum, without?.systemTimeOffset, without?.leapStatus], [1, -0.000000023, 'Normal']);
  assert.equal(parseChronyTracking('506 Cannot talk to daemon'), undefined);
  assert.equal(parseChronyTracking('a,b,c'), undefined);
});

test('parseKeyValues reads timedatectl show', () => {
  const kv = parseKeyValues(read('clock-timedatectl-unsynced/usr/bin/timedatectl.out'));
  assert.equal(kv.get('NTPSynchronized'), 'no');
  assert.equal(kv.get('TimeUSec'), 'Fri 2020-08-14 21:44:16 UTC');
});

interface Report {
  results: { status: string; error?: string; conditions: { type: string; status: string; reason: string; message: string }[] }[];
}

const scenarios: [string, number, string, string][] = [
  ['clock-chrony-synced', 0, 'False', 'ClockSynchronized'],
  ['clock-timedatectl-synced', 0, 'False', 'ClockSynchronized'],
  ['clock-chrony-offset', 1, 'True', 'ClockOffsetTooLarge'],
  ['clock-chrony-unsynced', 1, 'True', 'ClockNotSynchronized'],
  ['clock-timedatectl-unsynced', 1, 'True', 'ClockNotSynchronized'],
  ['clock-no-source', 2, 'Unknown', 'ClockSkewUnknown'],
];

for (const [fixture, code, status, reason] of scenarios) {
  test(`check --root ${fixture}: ClockSkew ${status} ${reason}`, async () => {
    const out = await runAgent(['check', '--json', '--only', 'clock', '--root', path.join(HOSTS, fixture)]);
    assert.equal(out.code, code, out.stdout + out.stderr);
    const c = (JSON.parse(out.stdout) as Report).results[0]?.conditions.find((x) => x.type === 'ClockSkew');
    assert.deepEqual([c?.status, c?.reason], [status, reason]);
  });
}

test('the offset limit is configurable, and an offset just under it is no problem', async () => {
  const root = path.join(HOSTS, 'clock-chrony-offset');
  assert.equal(condition(await makeDetector(clock, root, { config: { maxOffset: '735ms' } }).probe(signal()), 'ClockSkew').status, 'False');
  const c = condition(await makeDetector(clock, root, { config: { maxOffset: '734ms' } }).probe(signal()), 'ClockSkew');
  assert.deepEqual([c.status, c.reason], ['True', 'ClockOffsetTooLarge']);
  assert.match(c.message, /734\.5ms off NTP time \(source PPS, stratum 1\)/);
});

test('chronyc without a running chronyd falls back to timedatectl', async () => {
  const host = copyHost('clock-timedatectl-unsynced');
  try {
    // chronyc's reply when chronyd is not running.
    const chronyc = path.join(host.root, 'usr/bin/chronyc');
    writeFileSync(chronyc, '#!/bin/sh\necho "506 Cannot talk to daemon" >&2\nexit 1\n');
    chmodSync(chronyc, 0o755);
    const c = condition(await makeDetector(clock, host.root).probe(signal()), 'ClockSkew');
    assert.deepEqual([c.status, c.reason], ['True', 'ClockNotSynchronized']);
  } finally {
    host.cleanup();
  }
});

test('in the daemon one unsynchronized probe is not enough; the condition keeps its transition time', async () => {
  const host = copyHost('clock-chrony-synced');
  try {
    const out = path.join(host.root, 'usr/bin/chronyc.out');
    const good = read('clock-chrony-synced/usr/bin/chronyc.out');
    const bad = read('clock-chrony-unsynced/usr/bin/chronyc.out');
    const detector = makeDetector(clock, host.root, { mode: 'run' });
    const seen: [string, number][] = [];
    for (const text of [bad, good, bad, bad, bad]) {
      writeFileSync(out, text);
      const c = condition(await detector.probe(signal()), 'ClockSkew');
      seen.push([c.status, c.transitionTime]);
    }
    assert.deepEqual(seen.map((s) => s[0]), ['False', 'False', 'False', 'True', 'True']);
    assert.equal(seen[3]?.[1], seen[4]?.[1]);
  } finally {
    host.cleanup();
  }
});

test('ClockNotSynchronized can be silenced while ClockOffsetTooLarge still reports', async () => {
  const silenced = ['ClockNotSynchronized'];
  assert.equal(condition(await makeDetector(clock, path.join(HOSTS, 'clock-chrony-unsynced'), { silenced }).probe(signal()), 'ClockSkew').status, 'False');
  assert.equal(condition(await makeDetector(clock, path.join(HOSTS, 'clock-chrony-offset'), { silenced }).probe(signal()), 'ClockSkew').status, 'True');
});
