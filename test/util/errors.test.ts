import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { SchemaConversionError } from '../../src/api/crd.ts';
import { AgentError } from '../../src/errors.ts';
import { LockBusyError } from '../../src/host/lock.ts';
import { ActionParamError } from '../../src/remedies/types.ts';
import { CronError } from '../../src/risk/cron.ts';
import { DeadlineExceeded } from '../../src/util/deadline.ts';
import { PatternError } from '../../src/util/re2.ts';

const SRC = path.join(import.meta.dirname, '../../src');

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await sources(full)));
    else if (entry.name.endsWith('.ts')) out.push(full);
  }
  return out;
}

test('no class in src/ extends a built-in Error except AgentError in src/errors.ts', async () => {
  const files = await sources(SRC);
  assert.ok(files.length > 50, `found only ${files.length} source files under ${SRC}`);
  const offenders: string[] = [];
  for (const file of files) {
    const lines = (await readFile(file, 'utf8')).split('\n');
    lines.forEach((line, i) => {
      if (/\bextends\s+(Error|TypeError|RangeError|SyntaxError)\b/.test(line) && path.relative(SRC, file) !== 'errors.ts') {
        offenders.push(`src/${path.relative(SRC, file)}:${i + 1}: ${line.trim()}`);
      }
    });
  }
  assert.deepEqual(offenders, []);
});

test('the former stragglers are AgentErrors with the code main maps', () => {
  const cases: [AgentError, string][] = [
    [new DeadlineExceeded('statfs /var', 5000), 'TIMEOUT'],
    [new PatternError('bad pattern'), 'INVALID'],
    [new CronError('minute: "61" is not in 0-59'), 'INVALID'],
    [new ActionParamError('restart-unit', 'unit', 'expected a non-empty string'), 'INVALID'],
    [new SchemaConversionError('$.spec', 'cannot express'), 'INTERNAL'],
    [new LockBusyError('/var/lib/kubenode-agent/install.lock', undefined, 1000), 'LOCK'],
  ];
  for (const [err, code] of cases) {
    assert.ok(err instanceof AgentError, err.name);
    assert.equal(err.code, code, err.name);
    assert.equal(err.name, err.constructor.name);
  }
  assert.equal(new DeadlineExceeded('statfs /var', 5000).message, 'statfs /var did not answer within 5000ms');
});
