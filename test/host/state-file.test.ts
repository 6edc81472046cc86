// The agent's JSON state files: a bad file is set aside once per bad content, and what a kill -9
// left of an atomic write is removed at start by each state file's owner.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Type } from '@sinclair/typebox';
import { pino } from 'pino';
import { decodeSection } from '../../src/config/decode.ts';
import { createHost } from '../../src/host/host.ts';
import { readStateFile } from '../../src/host/state-file.ts';
import { RemediesConfig } from '../../src/remedies/config.ts';
import { createRemedies } from '../../src/remedies/setup.ts';
import { ConditionStore } from '../../src/report/condition-store.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { TempRoot } from '../helpers/host-root.ts';
import { recordingRoot, riskGate } from '../remedies/helpers.ts';

const silent = pino({ level: 'silent' });
const Shape = Type.Object({ version: Type.Literal(1) });

test('a bad state file read again and again is set aside once; new bad content is set aside again', async () => {
  const root = new TempRoot();
  try {
    const clock = new FakeClock();
    const host = createHost({ root: root.dir, clock });
    root.write('/state/s.json', '{"version": 2}');
    const first = await readStateFile(host, '/state/s.json', Shape);
    for (let i = 0; i < 3; i++) {
      await clock.advance(60_000);
      const again = await readStateFile(host, '/state/s.json', Shape);
      assert.deepEqual(again, first, `read ${i + 2}`);
    }
    assert.equal(first.state, 'corrupt');
    assert.deepEqual(readdirSync(root.path('/state')).sort(), ['s.json', 's.json.corrupt-20260101T000000Z']);
    root.write('/state/s.json', 'not json');
    const other = await readStateFile(host, '/state/s.json', Shape);
    assert.equal(other.state === 'corrupt' && other.setAsideAs, '/state/s.json.corrupt-20260101T000300Z');
    await readStateFile(host, '/state/s.json', Shape);
    assert.deepEqual(readdirSync(root.path('/state')).sort(), ['s.json', 's.json.corrupt-20260101T000000Z', 's.json.corrupt-20260101T000300Z']);
    assert.equal(readFileSync(root.path('/state/s.json.corrupt-20260101T000300Z'), 'utf8'), 'not json');
  } finally {
    root.remove();
  }
});

// Names as writeFileAtomic makes them (src/host/jail.ts tempName), as a kill -9 between its open and its rename leaves them.
const TEMPS = {
  ladders: '/var/lib/kubenode/remedies/.ladders.json.kubenode-0123456789ab',
  intent: '/var/lib/kubenode/remedies/.reboot-intent.json.kubenode-abcdef012345',
  record: '/var/lib/kubenode/remedies/operations/.node-a-reboot-x.json.kubenode-00112233aabb',
  conditions: '/var/lib/kubenode/.conditions.json.kubenode-ffeeddccbbaa',
};

test('the remedy engine removes the temp files of interrupted writes of its state at start, and nothing else', async () => {
  const root = recordingRoot();
  try {
    for (const file of Object.values(TEMPS)) root.write(file, '{"half":');
    root.write('/var/lib/kubenode/remedies/operations/node-a-reboot-y.json', '{}');
    root.write('/var/lib/kubenode/remedies/.someone-else.kubenode', 'x');
    const host = createHost({ root: root.dir, clock: new FakeClock() });
    const remedies = createRemedies({ host, config: decodeSection('test', RemediesConfig, {}), stateDir: '/var/lib/kubenode', nodeName: 'node-a', bootId: 'boot-1', log: silent, gate: riskGate(host) });
    await remedies.engine.resume();
    assert.deepEqual(readdirSync(root.path('/var/lib/kubenode/remedies')).sort(), ['.someone-else.kubenode', 'ladders.json', 'operations']);
    assert.deepEqual(readdirSync(root.path('/var/lib/kubenode/remedies/operations')), ['node-a-reboot-y.json']);
    assert.ok(readdirSync(root.path('/var/lib/kubenode')).includes('.conditions.json.kubenode-ffeeddccbbaa'), "the condition store's is its own to remove");
  } finally {
    root.remove();
  }
});

test('the condition store removes the temp files of its interrupted writes at load, and only its own', async () => {
  const root = new TempRoot();
  try {
    root.write(TEMPS.conditions, '{"version":1,"det');
    root.write('/var/lib/kubenode/.other.json.kubenode-ffeeddccbbaa', 'x');
    root.write('/var/lib/kubenode/conditions.json', '{"version":1,"detectors":{}}');
    const store = new ConditionStore(createHost({ root: root.dir }), '/var/lib/kubenode', 'boot-1', silent);
    await store.load();
    assert.deepEqual(readdirSync(root.path('/var/lib/kubenode')).sort(), ['.other.json.kubenode-ffeeddccbbaa', 'conditions.json']);
  } finally {
    root.remove();
  }
});
