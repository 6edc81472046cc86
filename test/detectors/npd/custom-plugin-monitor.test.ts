import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { parseCustomPluginMonitor } from '../../../src/detectors/npd/config.ts';
import { createCustomPluginMonitor } from '../../../src/detectors/npd/custom-plugin-monitor.ts';
import type { DetectorContext } from '../../../src/detectors/engine/types.ts';
import { createHost } from '../../../src/host/host.ts';
import { createLogger } from '../../../src/log.ts';
import { TempRoot } from '../../helpers/host-root.ts';

const roots: TempRoot[] = [];
after(() => roots.forEach((r) => r.remove()));

function setup(pluginConfig: object, rules: object[], conditions = [{ type: 'NTPProblem', reason: 'NTPIsUp', message: 'ntp service is up' }]) {
  const root = new TempRoot();
  roots.push(root);
  const monitor = parseCustomPluginMonitor('m.json', JSON.stringify({ plugin: 'custom', pluginConfig, source: 'test', conditions, rules }));
  const ctx: DetectorContext = { host: createHost({ root: root.dir }), log: createLogger('silent'), nodeName: 'n', mode: 'check', previous: [], silenced: new Set() };
  return { root, detector: () => createCustomPluginMonitor(monitor, '/', ctx) };
}

const perm = { type: 'permanent', condition: 'NTPProblem', reason: 'NTPIsDown', path: './config/plugin/check_ntp.sh' };
const signal = new AbortController().signal;

test('exit 0 is OK, 1 a problem, anything else unknown; relative paths resolve against the working dir', async () => {
  const { root, detector } = setup({}, [perm]);
  const d = detector();
  root.script('/config/plugin/check_ntp.sh', 'echo "NTP is down"; exit 1');
  let result = await d.probe(signal);
  assert.deepEqual([result.conditions[0]?.status, result.conditions[0]?.reason, result.conditions[0]?.message], ['True', 'NTPIsDown', 'NTP is down']);
  assert.deepEqual(result.events.map((e) => [e.severity, e.reason]), [['warn', 'NTPIsDown']]);

  root.script('/config/plugin/check_ntp.sh', 'echo "cannot tell"; exit 3');
  result = await d.probe(signal);
  assert.deepEqual([result.conditions[0]?.status, result.conditions[0]?.reason, result.conditions[0]?.message], ['Unknown', 'NTPIsUp', 'cannot tell']);
  assert.match(result.unknown ?? '', /cannot tell/);

  root.script('/config/plugin/check_ntp.sh', 'echo "fine"; exit 0');
  result = await d.probe(signal);
  assert.deepEqual([result.conditions[0]?.status, result.conditions[0]?.reason, result.conditions[0]?.message], ['False', 'NTPIsUp', 'ntp service is up']);
  assert.deepEqual(result.events.map((e) => e.severity), ['info']);
  assert.equal(result.unknown, undefined);
});

test('a condition that stays the same raises no further events', async () => {
  const { root, detector } = setup({}, [perm]);
  root.script('/config/plugin/check_ntp.sh', 'echo down; exit 1');
  const d = detector();
  const first = await d.probe(signal);
  const second = await d.probe(signal);
  assert.equal(first.events.length, 1);
  assert.equal(second.events.length, 0);
  assert.equal(second.conditions[0]?.transitionTime, first.conditions[0]?.transitionTime);
});

test('a changed message updates a True condition only with enable_message_change_based_condition_update', async () => {
  for (const enabled of [false, true]) {
    const { root, detector } = setup({ enable_message_change_based_condition_update: enabled }, [perm]);
    const d = detector();
    root.script('/config/plugin/check_ntp.sh', 'echo "offset 1s"; exit 1');
    await d.probe(signal);
    root.script('/config/plugin/check_ntp.sh', 'echo "offset 9s"; exit 1');
    const result = await d.probe(signal);
    assert.equal(result.conditions[0]?.message, enabled ? 'offset 9s' : 'offset 1s');
    assert.equal(result.events.length, enabled ? 1 : 0);
  }
});

test('a temporary rule raises an event only on a problem', async () => {
  const { root, detector } = setup({}, [{ type: 'temporary', reason: 'ConntrackFull', path: '/bin/plugin.sh' }], []);
  const d = detector();
  root.script('/bin/plugin.sh', 'echo ok; exit 0');
  assert.deepEqual((await d.probe(signal)).events, []);
  root.script('/bin/plugin.sh', 'echo "conntrack table full"; exit 1');
  assert.deepEqual((await d.probe(signal)).events.map((e) => [e.reason, e.message]), [['ConntrackFull', 'conntrack table full']]);
  root.script('/bin/plugin.sh', 'exit 2');
  assert.deepEqual((await d.probe(signal)).events, []);
});

test('output is trimmed and cut to max_output_length', async () => {
  const { root, detector } = setup({ max_output_length: 10 }, [perm]);
  root.script('/config/plugin/check_ntp.sh', 'echo "   0123456789abcdef   "; exit 1');
  const result = await detector().probe(signal);
  assert.equal(result.conditions[0]?.message, '0123456789');
});

test('a plugin that floods megabytes of output and exits 1 is a problem, its message cut', async () => {
  const { root, detector } = setup({ max_output_length: 16 }, [perm]);
  root.script('/config/plugin/check_ntp.sh', 'yes "NTP is down, offset unknown" | head -c 8000000; exit 1');
  const result = await detector().probe(signal);
  assert.deepEqual([result.conditions[0]?.status, result.conditions[0]?.reason, result.conditions[0]?.message], ['True', 'NTPIsDown', 'NTP is down, off']);
  assert.equal(result.unknown, undefined);
});

test('a plugin past its timeout is killed, with its children, and reported unknown', async () => {
  const { root, detector } = setup({ timeout: '5s' }, [{ ...perm, timeout: '300ms' }]);
  root.script('/config/plugin/check_ntp.sh', 'sleep 30 & echo $! > "$(dirname "$0")/child.pid"; wait');
  const result = await detector().probe(signal);
  assert.equal(result.conditions[0]?.status, 'Unknown');
  assert.match(result.conditions[0]?.message ?? '', /^Timeout when running plugin/);
  const { readFileSync } = await import('node:fs');
  const pid = Number(readFileSync(root.path('/config/plugin/child.pid'), 'utf8'));
  // Gone, or a zombie waiting for init to reap it: either way no longer running.
  let state = 'gone';
  try {
    state = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0] ?? 'gone';
  } catch {
    // already reaped
  }
  assert.ok(state === 'gone' || state === 'Z', `the plugin's child is still running (state ${state})`);
});

test('a plugin that does not exist is unknown, not a problem', async () => {
  const { detector } = setup({}, [perm]);
  const result = await detector().probe(signal);
  assert.equal(result.conditions[0]?.status, 'Unknown');
  assert.match(result.unknown ?? '', /not found/);
});

test('no more than `concurrency` plugins run at once', async () => {
  const rules = Array.from({ length: 6 }, (_, i) => ({ type: 'temporary', reason: `R${i}`, path: '/bin/plugin.sh', args: [String(i)] }));
  const { root, detector } = setup({ concurrency: 2 }, rules, []);
  // Each plugin records how many were running when it started, using mkdir as an atomic counter slot.
  root.script(
    '/bin/plugin.sh',
    [
      'd="$(dirname "$0")/running"; mkdir -p "$d"; touch "$d/$1"',
      'ls "$d" | wc -l >> "$(dirname "$0")/seen"',
      'sleep 0.3; rm "$d/$1"; exit 0',
    ].join('\n'),
  );
  await detector().probe(signal);
  const { readFileSync } = await import('node:fs');
  const seen = readFileSync(root.path('/bin/seen'), 'utf8').trim().split('\n').map(Number);
  assert.equal(seen.length, 6);
  assert.ok(Math.max(...seen) <= 2, `saw ${Math.max(...seen)} at once`);
  assert.ok(Math.max(...seen) === 2, 'runs in parallel up to the limit');
});
