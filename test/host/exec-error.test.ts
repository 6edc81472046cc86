// One exec error: every failed command, wherever it runs, is described by ExecError alone.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AgentError, ExecError, execFailure } from '../../src/errors.ts';
import { createHost, execChecked } from '../../src/host/host.ts';
import { srcLinesMatching } from '../helpers/source-lines.ts';

const host = createHost();
const sh = (script: string, timeoutMs = 5_000) => host.exec(['sh', '-c', script], { timeoutMs });

describe('ExecError', () => {
  test('a non-zero exit carries argv, exit code, stderr tail and duration', async () => {
    const r = await sh('echo "disk on fire" >&2; exit 3');
    const err = execFailure(r);
    assert.ok(err instanceof ExecError && err instanceof AgentError);
    assert.equal(err.code, 'EXEC');
    assert.deepEqual(err.argv, ['sh', '-c', 'echo "disk on fire" >&2; exit 3']);
    assert.equal(err.exitCode, 3);
    assert.equal(err.signal, null);
    assert.equal(err.timedOut, false);
    assert.equal(err.stderrTail, 'disk on fire');
    assert.ok(err.durationMs > 0);
    assert.equal(err.message, 'sh -c "echo \\"disk on fire\\" >&2; exit 3" exited 3: disk on fire');
  });

  test('a timeout says so, with the limit', async () => {
    const err = execFailure(await sh('sleep 5', 200));
    assert.ok(err !== undefined);
    assert.equal(err.timedOut, true);
    assert.equal(err.exitCode, null);
    assert.equal(err.message, 'sh -c "sleep 5" timed out after 200ms');
  });

  test('death by a signal names the signal', async () => {
    const err = execFailure(await sh('kill -USR1 $$'));
    assert.ok(err !== undefined);
    assert.equal(err.signal, 'SIGUSR1');
    assert.equal(err.exitCode, null);
    assert.match(err.message, /was killed by SIGUSR1$/);
  });

  test('a missing command names the command', async () => {
    const err = execFailure(await host.exec(['no-such-tool-anywhere', '--x'], { timeoutMs: 1_000 }));
    assert.ok(err !== undefined);
    assert.equal(err.notFound, true);
    assert.equal(err.message, 'no-such-tool-anywhere not found');
  });

  test('stdout stands in when stderr is empty; the tail is one bounded line', async () => {
    const err = execFailure(await sh('for i in $(seq 1 500); do echo "line $i"; done; exit 1'));
    assert.ok(err !== undefined);
    assert.equal(err.stderrTail, '');
    assert.ok(!err.message.includes('\n'));
    assert.ok(err.message.endsWith('line 499 | line 500'));
    assert.ok(err.message.length < 600, `${err.message.length} characters`);
  });

  test('exit 0 is no failure; execChecked throws the ExecError otherwise', async () => {
    assert.equal(execFailure(await sh('true')), undefined);
    await assert.rejects(execChecked(host, ['sh', '-c', 'echo nope >&2; exit 2'], { timeoutMs: 5_000 }), (err: unknown) => err instanceof ExecError && err.exitCode === 2 && err.stderrTail === 'nope');
  });
});

test('no module outside src/errors.ts builds its own message from an exit code or stderr', async () => {
  const handBuilt = /exited \$\{|exit \$\{[\w.]*exitCode|\.stderr\.trim\(\)|\.stderr \|\||stderr\.slice\(/;
  assert.deepEqual(await srcLinesMatching(handBuilt, ['errors.ts']), []);
});
