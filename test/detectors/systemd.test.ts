import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { parseListUnits, parseShow, restartReason, systemd } from '../../src/detectors/systemd.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { runAgent } from '../helpers/cli.ts';
import { condition, copyHost, HOSTS, makeDetector, signal } from './probed.ts';

const read = (rel: string): string => readFileSync(path.join(HOSTS, rel), 'utf8');

test('parseListUnits reads the captured row, with or without the bullet older versions print', () => {
  const row = { unit: 'apache2.service', load: 'loaded', active: 'failed', sub: 'failed', description: 'The Apache Webserver' };
  assert.deepEqual(parseListUnits(read('systemd-failed-unit/usr/bin/systemctl.d/list-units.out')), [row]);
  assert.deepEqual(parseListUnits('● apache2.service loaded failed failed The Apache Webserver\n'), [row]);
  assert.deepEqual(parseListUnits(''), []);
});

test('parseShow and restartReason', () => {
  const props = parseShow(read('systemd-restart-loop/usr/bin/systemctl.d/show-kubelet.service.out'));
  assert.deepEqual([props.get('NRestarts'), props.get('ActiveState'), props.get('SubState')], ['672', 'activating', 'auto-restart']);
  assert.equal(restartReason('kubelet.service'), 'FrequentKubeletRestart');
  assert.equal(restartReason('containerd.service'), 'FrequentContainerdRestart');
  assert.equal(restartReason('docker'), 'FrequentDockerRestart');
  assert.equal(restartReason('crio.service'), 'FrequentUnitRestart');
});

interface Report {
  results: { status: string; error?: string; conditions: { type: string; status: string; reason: string }[] }[];
}

for (const [fixture, code, expected] of [
  ['systemd-healthy', 0, []],
  ['systemd-failed-unit', 1, [['SystemdUnitFailed', 'UnitFailed']]],
  ['systemd-restart-loop', 1, [['FrequentUnitRestart', 'FrequentKubeletRestart']]],
  ['systemd-not-pid1', 2, []],
] as const) {
  test(`check --root ${fixture}`, async () => {
    const out = await runAgent(['check', '--json', '--only', 'systemd', '--root', path.join(HOSTS, fixture)]);
    assert.equal(out.code, code, out.stdout + out.stderr);
    const result = (JSON.parse(out.stdout) as Report).results[0];
    assert.deepEqual(result?.conditions.filter((c) => c.status === 'True').map((c) => [c.type, c.reason]), expected);
    if (fixture === 'systemd-not-pid1') {
      assert.equal(result?.status, 'unknown');
      assert.match(result?.error ?? '', /System has not been booted with systemd/);
    }
  });
}

test('failedUnits narrows the units that count; ignoreFailedUnits silences one', async () => {
  const root = path.join(HOSTS, 'systemd-failed-unit');
  const only = await makeDetector(systemd, root, { config: { failedUnits: ['kubelet.service'] } }).probe(signal());
  assert.equal(condition(only, 'SystemdUnitFailed').status, 'False');
  const ignoring = await makeDetector(systemd, root, { config: { ignoreFailedUnits: ['apache2.service'] } }).probe(signal());
  assert.equal(condition(ignoring, 'SystemdUnitFailed').status, 'False');
  const listed = await makeDetector(systemd, root, { config: { failedUnits: ['apache2.service'] } }).probe(signal());
  assert.equal(condition(listed, 'SystemdUnitFailed').status, 'True');
});

test('check: many restarts in the past with the unit running now is not a loop (near miss)', async () => {
  const host = copyHost('systemd-restart-loop');
  try {
    const show = path.join(host.root, 'usr/bin/systemctl.d/show-kubelet.service.out');
    writeFileSync(show, read('systemd-restart-loop/usr/bin/systemctl.d/show-kubelet.service.out').replace('ActiveState=activating', 'ActiveState=active').replace('SubState=auto-restart', 'SubState=running'));
    assert.equal(condition(await makeDetector(systemd, host.root).probe(signal()), 'FrequentUnitRestart').status, 'False');
  } finally {
    host.cleanup();
  }
});

test('daemon: NRestarts rising counts in a window; a slow trickle of restarts does not', async () => {
  const host = copyHost('systemd-restart-loop');
  try {
    const show = path.join(host.root, 'usr/bin/systemctl.d/show-kubelet.service.out');
    const at = (n: number): void => writeFileSync(show, `NRestarts=${n}\nActiveState=active\nSubState=running\n`);
    const clock = new FakeClock();
    const detector = makeDetector(systemd, host.root, { mode: 'run', clock, config: { restartCount: 5, restartWindow: '20m', failuresToTrip: 1 } });
    const probe = async (n: number, advanceMs: number): Promise<string> => {
      at(n);
      await clock.advance(advanceMs);
      return condition(await detector.probe(signal()), 'FrequentUnitRestart').status;
    };
    // one restart every 10 minutes: never 5 within 20 minutes
    const slow: string[] = [];
    for (let i = 0; i < 8; i++) slow.push(await probe(10 + i, 10 * 60_000));
    assert.ok(slow.every((s) => s === 'False'), slow.join(','));
    assert.equal(await probe(17, 21 * 60_000), 'False', 'quiet for a whole window');
    // then 6 restarts within two minutes
    assert.equal(await probe(20, 60_000), 'False');
    const looping = await probe(23, 60_000);
    assert.equal(looping, 'True');
    const c = condition(await detector.probe(signal()), 'FrequentUnitRestart');
    assert.equal(c.reason, 'FrequentKubeletRestart');
    // quiet for longer than the window: it clears
    assert.equal(await probe(23, 21 * 60_000), 'False');
  } finally {
    host.cleanup();
  }
});

test('daemon: one probe seeing a failed unit is not enough (default two in a row)', async () => {
  const detector = makeDetector(systemd, path.join(HOSTS, 'systemd-failed-unit'), { mode: 'run' });
  assert.equal(condition(await detector.probe(signal()), 'SystemdUnitFailed').status, 'False');
  assert.equal(condition(await detector.probe(signal()), 'SystemdUnitFailed').status, 'True');
});
