// The agent's local remedy records (the state dir, standalone or while the apiserver cannot be
// written) are removed once they were last written longer ago than their retention.
import assert from 'node:assert/strict';
import { readdirSync, utimesSync } from 'node:fs';
import { test } from 'node:test';
import { pino } from 'pino';
import { createHost } from '../../src/host/host.ts';
import { LOCAL_RECORD_RETENTION_MS, operationsDir, StateDirRecorder } from '../../src/remedies/record.ts';
import { TempRoot } from '../helpers/host-root.ts';

test('a new record removes the local records last written before the retention, and keeps the rest', async (t) => {
  const root = new TempRoot();
  t.after(() => root.remove());
  const dir = operationsDir('/var/lib/kubenode');
  const now = Date.now();
  const age = (file: string, ms: number): void => utimesSync(root.path(`${dir}/${file}`), (now - ms) / 1000, (now - ms) / 1000);
  root.write(`${dir}/node-1-restart-runtime-old.json`, JSON.stringify({ id: 'old', status: { phase: 'Succeeded' } }));
  age('node-1-restart-runtime-old.json', LOCAL_RECORD_RETENTION_MS + 3_600_000);
  root.write(`${dir}/node-1-restart-runtime-recent.json`, JSON.stringify({ id: 'recent', status: { phase: 'Succeeded' } }));
  age('node-1-restart-runtime-recent.json', LOCAL_RECORD_RETENTION_MS - 3_600_000);

  const recorder = new StateDirRecorder(createHost({ root: root.dir }), '/var/lib/kubenode', pino({ level: 'silent' }));
  const id = await recorder.create(
    { node: 'node-1', problem: { conditionType: 'ContainerRuntimeUnhealthy', reason: 'ContainerdDown', message: '' }, action: 'restart-runtime', params: {}, risk: 'safe', step: 0, dryRun: false },
    now,
  );
  assert.deepEqual(readdirSync(root.path(dir)).sort(), [`${id}.json`, 'node-1-restart-runtime-recent.json'].sort());
});
