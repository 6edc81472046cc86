import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SchemaConversionError } from '../../src/api/crd.ts';
import { AgentError } from '../../src/errors.ts';
import { LockBusyError } from '../../src/host/lock.ts';
import { ActionParamError } from '../../src/remedies/types.ts';
import { CronError } from '../../src/risk/cron.ts';
import { DeadlineExceeded } from '../../src/util/deadline.ts';
import { PatternError } from '../../src/util/re2.ts';
import { srcLinesMatching } from '../helpers/source-lines.ts';

test('no class in src/ extends a built-in Error except AgentError in src/errors.ts', async () => {
  const builtIn = /\bextends\s+(Error|TypeError|RangeError|SyntaxError)\b/;
  assert.deepEqual(await srcLinesMatching(builtIn, ['errors.ts']), []);
  // The walk reads the tree: the one allowed class is found where it is.
  assert.match((await srcLinesMatching(builtIn)).join('\n'), /^src\/errors\.ts:\d+: export class AgentError extends Error/m);
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
