import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parseCustomPluginMonitor, parseSystemLogMonitor } from '../../../src/detectors/npd/config.ts';
import { ConfigError } from '../../../src/errors.ts';
import { NPD_CONFIG_DIR } from './helpers.ts';

const files = readdirSync(NPD_CONFIG_DIR).filter((f) => f.endsWith('.json'));

for (const file of files) {
  const text = readFileSync(`${NPD_CONFIG_DIR}${file}`, 'utf8');
  const doc = JSON.parse(text) as { plugin?: string };
  test(`NPD's ${file} loads as it is, or is refused as not supported yet`, () => {
    if (doc.plugin === 'custom') {
      const parsed = parseCustomPluginMonitor(file, text);
      assert.ok(parsed.config.rules.length > 0);
    } else if (doc.plugin === undefined) {
      assert.throws(() => parseSystemLogMonitor(file, text), /system-stats-monitor configs are not supported yet/);
      assert.throws(() => parseCustomPluginMonitor(file, text), /system-stats-monitor configs are not supported yet/);
    } else {
      const parsed = parseSystemLogMonitor(file, text);
      assert.equal(parsed.patterns.length, parsed.config.rules.length);
    }
  });
}

test("NPD's defaults apply to a custom plugin config that leaves them out", () => {
  const parsed = parseCustomPluginMonitor('m.json', JSON.stringify({ plugin: 'custom', source: 's', rules: [{ type: 'temporary', reason: 'R', path: '/bin/true' }] }));
  assert.deepEqual(
    [parsed.invokeIntervalMs, parsed.timeoutMs, parsed.maxOutputLength, parsed.concurrency, parsed.messageChangeUpdates],
    [30_000, 5_000, 80, 3, false],
  );
});

const base = { plugin: 'kmsg', source: 's', conditions: [{ type: 'C', reason: 'Ok', message: 'ok' }] };
const bad: [string, string, RegExp][] = [
  ['not JSON', '{', /^m\.json: invalid JSON/],
  ['unknown plugin', JSON.stringify({ ...base, plugin: 'syslog', rules: [] }), /^m\.json: plugin: /],
  ['rule without pattern', JSON.stringify({ ...base, rules: [{ type: 'temporary', reason: 'R' }] }), /^m\.json: rules\[0\]\.pattern: /],
  ['bad rule type', JSON.stringify({ ...base, rules: [{ type: 'sometimes', reason: 'R', pattern: 'x' }] }), /^m\.json: rules\[0\]\.type: /],
  ['permanent rule without condition', JSON.stringify({ ...base, rules: [{ type: 'permanent', reason: 'R', pattern: 'x' }] }), /^m\.json: rules\[0\]\.condition: a permanent rule must name its condition$/],
  ['undeclared condition', JSON.stringify({ ...base, rules: [{ type: 'permanent', condition: 'Nope', reason: 'R', pattern: 'x' }] }), /^m\.json: rules\[0\]\.condition: condition "Nope" is not declared/],
  ['broken regex', JSON.stringify({ ...base, rules: [{ type: 'temporary', reason: 'R', pattern: 'a(b' }] }), /^m\.json: rules\[0\]\.pattern: unbalanced \(/],
  ['bad lookback', JSON.stringify({ ...base, lookback: 'a while', rules: [] }), /^m\.json: lookback: expected a duration like 30s, 5m, 1h30m/],
  ['filelog without timestampFormat', JSON.stringify({ ...base, plugin: 'filelog', logPath: '/x', pluginConfig: { timestamp: 'a', message: 'b' }, rules: [] }), /^m\.json: pluginConfig\.timestampFormat: required/],
  ['custom config listed as a log monitor', JSON.stringify({ plugin: 'custom', source: 's', rules: [] }), /^m\.json: plugin: this is a custom-plugin-monitor config/],
];
for (const [name, text, expected] of bad) {
  test(`a log monitor with ${name} is refused naming the field`, () => {
    assert.throws(() => parseSystemLogMonitor('m.json', text), (err: unknown) => err instanceof ConfigError && expected.test(err.message));
  });
}

test('a custom plugin monitor with a bad timeout is refused naming the rule', () => {
  const text = JSON.stringify({ plugin: 'custom', source: 's', rules: [{ type: 'temporary', reason: 'R', path: '/bin/true', timeout: 'later' }] });
  assert.throws(() => parseCustomPluginMonitor('m.json', text), /: m\.json: rules\[0\]\.timeout: expected a duration like 30s, 5m, 1h30m/);
});
