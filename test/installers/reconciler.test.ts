import assert from 'node:assert/strict';
import { readFileSync, renameSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { validateConfig } from '../../src/config/load.ts';
import { createHost } from '../../src/host/host.ts';
import { startInstallReconciler } from '../../src/installers/reconciler.ts';
import { allowAll } from '../../src/risk/gate.ts';
import { createLogger } from '../../src/log.ts';
import { componentManifest, makeSandbox } from './helpers.ts';

const manifest = (version: string): string =>
  componentManifest('motd', { component: 'motd', version, source: { type: 'none' }, files: [{ path: '/etc/motd', template: 'node {{nodeName}} at {{version}}\n' }] });

/** Waits (bounded) for a condition; the assertion is on the state reached, not on the time taken. */
async function until(what: string, cond: () => boolean, limitMs = 15_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await sleep(25);
  }
}

describe('standalone reconciler', () => {
  it('applies the manifest directory at start and again after an editor-style atomic save; stops cleanly', async () => {
    const root = makeSandbox();
    const dir = path.join(root, 'etc/kubenode/components');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'motd.yaml'), manifest('1.0.0'));
    const config = validateConfig('test', { nodeName: 'node-a', installers: { reconcileDebounce: '50ms' } });
    const reconciler = startInstallReconciler(createHost({ root }), { installers: config.installers, stateDir: config.stateDir, nodeName: 'node-a' }, createLogger('silent'), { risk: allowAll });
    try {
      const motd = path.join(root, 'etc/motd');
      await until('first pass', () => existsSync(motd));
      assert.equal(readFileSync(motd, 'utf8'), 'node node-a at 1.0.0\n');
      // An editor saves: write a temp file beside it, rename it over the manifest.
      const tmp = path.join(dir, '.motd.yaml.swp');
      writeFileSync(tmp, manifest('1.1.0'));
      renameSync(tmp, path.join(dir, 'motd.yaml'));
      await until('second pass', () => readFileSync(motd, 'utf8') === 'node node-a at 1.1.0\n');
      await until('status', () => reconciler.last?.outcomes[0]?.version === '1.1.0');
      assert.equal(reconciler.last?.outcomes[0]?.result, 'installed');
      assert.deepEqual(reconciler.last?.manifestErrors, []);
    } finally {
      await reconciler.stop();
    }
    const passes = reconciler.passes;
    writeFileSync(path.join(dir, 'motd.yaml'), manifest('2.0.0'));
    await sleep(300);
    assert.equal(reconciler.passes, passes, 'no pass after stop');
  });
});
