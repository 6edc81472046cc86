// A full disk, injected through the Host seam: every write the agent makes to its own state
// (the start-up probe, an install journal, the condition store) fails as the kernel fails it.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import pino from 'pino';
import type { MachineComponentSpec } from '../../src/api/machine-component.ts';
import { AgentError, HostIoError, hostWriteError } from '../../src/errors.ts';
import { createHost, type Host } from '../../src/host/host.ts';
import { Journal } from '../../src/installers/journal.ts';
import { ConditionStore } from '../../src/report/condition-store.ts';
import { TempRoot } from '../helpers/host-root.ts';

/** What Node's fs throws when write(2) returns ENOSPC. */
function enospc(): NodeJS.ErrnoException {
  return Object.assign(new Error('ENOSPC: no space left on device, write'), { errno: -28, code: 'ENOSPC', syscall: 'write' });
}

function fullDisk(host: Host): Host {
  return Object.assign(Object.create(host) as Host, {
    writeFileAtomic: (): Promise<void> => Promise.reject(enospc()),
  });
}

test('ENOSPC becomes one HostIoError line naming the file, with the IO code main maps to 74', () => {
  const err = hostWriteError('/var/lib/kubenode-agent/conditions.json', enospc());
  assert.ok(err instanceof HostIoError);
  assert.ok(err instanceof AgentError);
  assert.equal(err.code, 'IO');
  assert.equal(err.message, '/var/lib/kubenode-agent/conditions.json: no space left on device');
  const bug = new TypeError('x is undefined');
  assert.equal(hostWriteError('/f', bug), bug);
});

test('an install journal on a full disk rejects with the file and "no space left on device"', async (t) => {
  const root = new TempRoot();
  t.after(() => root.remove());
  const host = fullDisk(createHost({ root: root.dir }));
  await assert.rejects(
    Journal.begin(host, '/var/lib/kubenode-agent', {
      component: 'containerd',
      mode: 'apply',
      // Never read: the journal's first write is what fails.
      target: { spec: {} as MachineComponentSpec, specHash: 'abc', generation: 1, origin: 'containerd.yaml' },
      pending: { reload: false, restart: false, postInstall: false },
    }),
    (err: unknown) => {
      assert.ok(err instanceof HostIoError);
      assert.equal(err.message, `${root.path('/var/lib/kubenode-agent/installers/journal/containerd.json')}: no space left on device`);
      return true;
    },
  );
});

test('the condition store on a full disk logs one line naming the file and keeps running', async (t) => {
  const root = new TempRoot();
  t.after(() => root.remove());
  const lines: string[] = [];
  const sink = new Writable({ write(chunk: Buffer, _enc, done) { lines.push(...chunk.toString().trim().split('\n')); done(); } });
  const log = pino({ level: 'info' }, sink);
  const store = new ConditionStore(fullDisk(createHost({ root: root.dir })), '/var/lib/kubenode-agent', 'boot-1', log);
  await store.load();
  store.update('kernel-monitor', [{ type: 'KernelDeadlock', status: 'True', reason: 'DockerHung', message: 'task docker:7 blocked', transitionTime: 1 }], true);
  await store.flush();
  store.update('kernel-monitor', [{ type: 'KernelDeadlock', status: 'False', reason: 'KernelHasNoDeadlock', message: 'ok', transitionTime: 2 }], true);
  await store.flush();
  await new Promise((resolve) => setImmediate(resolve));
  const errors = lines.map((l) => JSON.parse(l) as { level: number; err?: string }).filter((l) => l.level >= 50);
  assert.equal(errors.length, 2);
  for (const e of errors) assert.equal(e.err, `${root.path('/var/lib/kubenode-agent/conditions.json')}: no space left on device`);
  assert.deepEqual(store.all().map((c) => c.reason), ['KernelHasNoDeadlock']);
});

test('a real refused write through the local Host names the file and the reason', async (t) => {
  const root = new TempRoot();
  t.after(() => root.remove());
  writeFileSync(root.path('/var'), 'a file where the state directory should be');
  await assert.rejects(createHost({ root: root.dir }).writeFileAtomic('/var/lib/kubenode-agent/.writable', '1\n'), (err: unknown) => {
    assert.ok(err instanceof HostIoError, String(err));
    assert.equal(err.code, 'IO');
    assert.match(err.message, new RegExp(`^${root.path('/var/lib/kubenode-agent/.writable').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: (not a directory|file already exists)$`));
    return true;
  });
});
