import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '../../src/errors.ts';
import { fieldPath } from '../../src/config/decode.ts';
import { defaultConfig, parseConfigText } from '../../src/config/load.ts';
import { AgentConfig } from '../../src/config/schema.ts';
import { compileRe2 } from '../../src/util/re2.ts';
import { isRe2Schema } from '../../src/util/re2-schema.ts';

test('defaults come from the schema', () => {
  const config = defaultConfig();
  assert.equal(config.listen, '127.0.0.1:9746');
  assert.equal(config.stateDir, '/var/lib/kubenode');
  assert.equal(config.check.timeout, 30_000, 'durations are decoded to milliseconds once, at load');
  assert.equal(config.detection.maxConcurrent, 4);
  assert.deepEqual(config.monitors.customPlugin, []);
});

test('every RE2 default in the configuration compiles (loading a configuration takes a default as valid without compiling it)', () => {
  const found: string[] = [];
  const walk = (schema: unknown, at: string): void => {
    if (typeof schema !== 'object' || schema === null) return;
    const s = schema as Record<string, unknown>;
    if (isRe2Schema(s) && typeof s.default === 'string') {
      assert.doesNotThrow(() => compileRe2(s.default as string), at);
      found.push(at);
    }
    for (const [k, v] of Object.entries(s)) if (typeof v === 'object') walk(v, `${at}.${k}`);
  };
  walk(AgentConfig, 'AgentConfig');
  assert.deepEqual(found.map((f) => f.replace(/\.properties\./g, '.')), ['AgentConfig.detectors.kernel.ignoreDevices', 'AgentConfig.detectors.storage.ignoreBlockDevices']);
});

test('a partial file keeps the defaults of what it leaves out', () => {
  const config = parseConfigText('a.yaml', 'detection:\n  maxConcurrent: 2\n');
  assert.equal(config.detection.maxConcurrent, 2);
  assert.equal(config.check.timeout, 30_000);
});

const bad: [string, string, RegExp][] = [
  ['unknown top-level key', 'colour: red\n', /^a\.yaml: colour: unknown key$/],
  ['unknown nested key', 'check:\n  timeuot: 5s\n', /^a\.yaml: check\.timeuot: unknown key$/],
  ['wrong type', 'detection:\n  maxConcurrent: many\n', /^a\.yaml: detection\.maxConcurrent: expected a whole number at least 1 and at most 64, got "many"$/],
  ['out of range', 'detection:\n  maxConcurrent: 0\n', /^a\.yaml: detection\.maxConcurrent: expected a whole number at least 1 and at most 64, got 0$/],
  ['bad duration', 'check:\n  timeout: soon\n', /^a\.yaml: check\.timeout: expected a duration like 30s, 5m, 1h30m, between 1s and 1h, got "soon"$/],
  ['array element', 'monitors:\n  systemLog: [a.json, 3]\n', /^a\.yaml: monitors\.systemLog\[1\]: expected a non-empty string, got 3$/],
  ['enum', 'logLevel: loud\n', /^a\.yaml: logLevel: expected one of "trace", "debug", "info", "warn", "error", got "loud"$/],
  ['port 99999', 'listen: 127.0.0.1:99999\n', /^a\.yaml: listen: port 99999 is out of range: expected 1 to 65535 \(0: any free port\)$/],
  ['not an address', 'listen: 999.1.1.1:9746\n', /^a\.yaml: listen: "999\.1\.1\.1" is not an IP address: expected an address like 127\.0\.0\.1:9746 or \[::1\]:9746$/],
  ['not host:port', 'listen: everywhere\n', /^a\.yaml: listen: expected an address like 127\.0\.0\.1:9746 or \[::1\]:9746, got "everywhere"$/],
  ['invalid YAML', 'check: [\n', /^a\.yaml: invalid YAML: .* at line 2, column 1$/],
  ['duplicate key', 'logLevel: info\nlogLevel: warn\n', /^a\.yaml: invalid YAML/],
  ['a detector pattern RE2 refuses (storage)', 'detectors:\n  storage:\n    ignoreBlockDevices: "(loop)\\\\1"\n', /^a\.yaml: detectors\.storage\.ignoreBlockDevices: expected an RE2 regular expression: backreferences are not RE2 syntax/],
  ['a detector pattern RE2 refuses (kernel)', 'detectors:\n  kernel:\n    ignoreDevices: "^(?=sr)"\n', /^a\.yaml: detectors\.kernel\.ignoreDevices: expected an RE2 regular expression: /],
  ['a recovery pattern RE2 refuses', 'monitors:\n  recoveryPatterns:\n    - condition: KernelDeadlock\n      pattern: "a(?!b)"\n', /^a\.yaml: monitors\.recoveryPatterns\[0\]\.pattern: expected an RE2 regular expression: /],
  ['not a mapping', '- a\n- b\n', /^a\.yaml: expected a YAML mapping at the top level$/],
];

for (const [name, text, expected] of bad) {
  test(`refused: ${name}`, () => {
    assert.throws(() => parseConfigText('a.yaml', text), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, expected);
      return true;
    });
  });
}

test('JSON pointers become field paths', () => {
  assert.equal(fieldPath('/monitors/systemLog/0'), 'monitors.systemLog[0]');
  assert.equal(fieldPath('/a~1b/c'), 'a/b.c');
  assert.equal(fieldPath(''), '');
});
