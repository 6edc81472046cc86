import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Kind, type TSchema } from '@sinclair/typebox';
import { defaultConfigDocument, parseConfigText } from '../../src/config/load.ts';
import { AgentConfig } from '../../src/config/schema.ts';
import { parseCustomPluginMonitor, parseSystemLogMonitor } from '../../src/detectors/npd/config.ts';
import { ConfigError } from '../../src/errors.ts';
import { MAX_TIMER_MS, parseDuration } from '../../src/util/duration.ts';
import { DURATION_KIND, durationBounds } from '../../src/util/duration-schema.ts';
import { kinds } from '../../src/api/index.ts';

interface Field {
  path: string[];
  schema: TSchema;
}

/** Every duration setting reachable through objects (arrays and maps are covered by the table below). */
function durationFields(schema: TSchema, path: string[] = []): Field[] {
  if ((schema as unknown as Record<symbol, unknown>)[Kind] === DURATION_KIND) return [{ path, schema }];
  const props = (schema as { properties?: Record<string, TSchema> }).properties;
  if (props === undefined) return [];
  return Object.entries(props).flatMap(([name, sub]) => durationFields(sub, [...path, name]));
}

function yamlAt(path: string[], value: string): string {
  return path.map((part, i) => `${'  '.repeat(i)}${part}:${i === path.length - 1 ? ` ${value}` : ''}`).join('\n') + '\n';
}

function refusal(text: string): string {
  try {
    parseConfigText('agent.yaml', text);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `a ConfigError, not ${String(err)}`);
    return err.message;
  }
  return assert.fail(`accepted:\n${text}`);
}

const fields = durationFields(AgentConfig);

test('agent.yaml has duration settings everywhere the schema says (detectors, installers, remedies, check, detection)', () => {
  const sections = new Set(fields.map((f) => f.path[0]));
  for (const s of ['check', 'detection', 'detectors', 'installers', 'remedies']) assert.ok(sections.has(s), s);
  assert.ok(fields.length >= 40, `found ${fields.length}`);
});

for (const { path, schema } of fields) {
  const field = path.join('.');
  const bounds = durationBounds(schema);
  assert.ok(bounds !== undefined);
  test(`${field}: 720h (past a Node timer) and a zero or too-short value are refused in words, naming the file and field`, () => {
    const tooLong = refusal(yamlAt(path, '720h'));
    assert.equal(tooLong, `agent.yaml: ${field}: expected a duration like 30s, 5m, 1h30m, ${parseDuration(bounds.min) === 0 ? `from 0 (off) up to ${bounds.max}` : `between ${bounds.min} and ${bounds.max}`}, got "720h"`);
    if (parseDuration(bounds.min) !== 0) assert.match(refusal(yamlAt(path, '0s')), new RegExp(`^agent\\.yaml: ${field.replaceAll('.', '\\.')}: expected a duration like 30s, 5m, 1h30m, between`));
    assert.match(refusal(yamlAt(path, 'soon')), /expected a duration like 30s, 5m, 1h30m/);
  });
}

test('every timer bound fits a Node timer; the bounds of every field accept its default', () => {
  for (const { path, schema } of fields) {
    const b = durationBounds(schema);
    assert.ok(b !== undefined);
    const def = (schema as { default?: string }).default;
    if (def !== undefined) {
      const ms = parseDuration(def) as number;
      assert.ok(ms >= (parseDuration(b.min) as number) && ms <= (parseDuration(b.max) as number), `${path.join('.')}: default ${def}`);
    }
    if (path.at(-1) !== 'olderThan') assert.ok((parseDuration(b.max) as number) <= MAX_TIMER_MS, `${path.join('.')}: max ${b.max}`);
  }
});

const nested: [string, string, RegExp][] = [
  ['a condition expiry', 'monitors:\n  conditionExpiry:\n    KernelDeadlock: 720h\n', /^agent\.yaml: monitors\.conditionExpiry\.KernelDeadlock: expected a duration like 30s, 5m, 1h30m, between 1s and 168h, got "720h"$/],
  ['a kernel threshold window', 'detectors:\n  kernel:\n    thresholds:\n      ConntrackTableFull: { count: 2, window: 0s }\n', /^agent\.yaml: detectors\.kernel\.thresholds\.ConntrackTableFull\.window: expected a duration like/],
  ['a remedy rule step', 'remedies:\n  rules:\n    - name: r\n      condition: { type: KernelDeadlock }\n      steps: [{ action: reboot, verifyAfter: 720h }]\n', /^agent\.yaml: remedies\.rules\[0\]\.steps\[0\]\.verifyAfter: expected a duration like 30s, 5m, 1h30m, between 100ms and 24h, got "720h"$/],
  ['a clean-disk path', 'remedies:\n  cleanPaths: [{ path: /var/tmp, olderThan: 0s }]\n', /^agent\.yaml: remedies\.cleanPaths\[0\]\.olderThan: expected a duration like 30s, 5m, 1h30m, between 1m and 8760h, got "0s"$/],
];
for (const [name, text, expected] of nested) test(`refused: ${name}`, () => assert.match(refusal(text), expected));

test('durations decode to milliseconds, and the defaults encode back to the text agent.yaml uses', () => {
  const config = parseConfigText('agent.yaml', 'detectors:\n  kernel:\n    interval: 1h30m\n    lookback: 0\ninstallers:\n  reconcileInterval: 1.5h\n');
  const kernel = config.detectors.kernel as { interval: number; lookback: number };
  assert.equal(kernel.interval, 5_400_000);
  assert.equal(kernel.lookback, 0);
  assert.equal(config.installers.reconcileInterval, 5_400_000);
  const doc = defaultConfigDocument() as { check: { timeout: unknown }; installers: { reconcileInterval: unknown } };
  assert.equal(doc.check.timeout, '30s');
  assert.equal(doc.installers.reconcileInterval, '10m');
});

test('NPD monitor files: a zero or huge invoke_interval, timeout or lookback is refused naming the field', () => {
  const plugin = (pc: Record<string, string>) =>
    JSON.stringify({ plugin: 'custom', pluginConfig: pc, source: 's', conditions: [], rules: [{ type: 'temporary', reason: 'R', path: '/bin/true' }] });
  assert.throws(() => parseCustomPluginMonitor('p.json', plugin({ invoke_interval: '0s' })), /^ConfigError: p\.json: pluginConfig\.invoke_interval: expected a duration like 30s, 5m, 1h30m, between 1s and 24h, got "0s"$/);
  assert.throws(() => parseCustomPluginMonitor('p.json', plugin({ invoke_interval: '720h' })), /pluginConfig\.invoke_interval: expected a duration like/);
  assert.throws(() => parseCustomPluginMonitor('p.json', plugin({ timeout: '0s' })), /pluginConfig\.timeout: expected a duration like 30s, 5m, 1h30m, between 100ms and 1h/);
  const log = JSON.stringify({ plugin: 'kmsg', logPath: '/dev/kmsg', lookback: '720h', bufferSize: 10, source: 'k', conditions: [], rules: [] });
  assert.throws(() => parseSystemLogMonitor('k.json', log), /k\.json: lookback: expected a duration like 30s, 5m, 1h30m, from 0 \(off\) up to 168h, got "720h"/);
});

test('custom resources: every duration field carries its bounds as a CEL rule the apiserver checks', () => {
  let count = 0;
  const walk = (node: unknown): void => {
    if (typeof node !== 'object' || node === null) return;
    const bounds = durationBounds(node);
    if (bounds !== undefined) {
      count++;
      const rules = (node as { 'x-kubernetes-validations'?: { rule: string }[] })['x-kubernetes-validations'] ?? [];
      assert.ok(rules.some((r) => r.rule === `duration(self) >= duration('${bounds.min}') && duration(self) <= duration('${bounds.max}')`));
    }
    for (const v of Object.values(node)) walk(v);
  };
  for (const def of Object.values(kinds)) walk(def);
  assert.ok(count >= 8, `found ${count}`);
});
