// plan/apply's session is built from the installers' and the risk gate's slices alone, with no
// whole configuration to reach into.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { defaultConfig } from '../../src/config/load.ts';
import { createHost } from '../../src/host/host.ts';
import { openInstallerSession, type InstallerSessionSetup } from '../../src/installers/session.ts';
import { TempRoot } from '../helpers/host-root.ts';

test('an installer session opens from its slices and reads the manifest directory', async (t) => {
  const root = new TempRoot();
  t.after(() => root.remove());
  const defaults = defaultConfig();
  root.write('/etc/kubenode/manifests/README', 'not a manifest');
  const setup: InstallerSessionSetup = { host: createHost({ root: root.dir }), log: pino({ level: 'silent' }), nodeName: 'node-s', stateDir: '/var/lib/kubenode', installers: { ...defaults.installers, manifestDir: '/etc/kubenode/manifests' }, risk: defaults.risk };
  assert.deepEqual(Object.keys(setup).sort(), ['host', 'installers', 'log', 'nodeName', 'risk', 'stateDir']);
  const session = await openInstallerSession({}, setup);
  try {
    assert.equal(session.nodeName, 'node-s');
    assert.deepEqual(session.manifests.targets, []);
    assert.deepEqual(await session.engine.plan(session.manifests.targets, { retryFailed: false, removeUndeclared: false }), []);
  } finally {
    session.close();
  }
});
