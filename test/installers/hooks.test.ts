// Hooks run for every source type that installs something (tarball, binary here; deb and rpm in
// packages.test.ts), are refused at validation where nothing is installed (none), and a reload or
// stop never kills a running hook half-way to run it again from the start.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { validateConfig } from '../../src/config/load.ts';
import { createHost } from '../../src/host/host.ts';
import { startInstallReconciler } from '../../src/installers/reconciler.ts';
import { allowAll } from '../../src/risk/gate.ts';
import { createLogger } from '../../src/log.ts';
import { agent, artifactServerForSuite, componentManifest, demoRelease, installerSandbox, makeSandbox, sha256, tempDir, withMarkHook, writeConfig, writeManifest, type ArtifactServer } from './helpers.ts';

const hooks = { preInstall: [['mark', 'pre']], postInstall: [['mark', 'post']] };

describe('hooks for every source type', () => {
  const server = artifactServerForSuite();

  const sources: { type: string; source: (s: ArtifactServer) => Record<string, unknown> }[] = [
    {
      type: 'tarball',
      source: (s) => {
        const body = demoRelease('1.0.0');
        s.put('hooks-demo.tgz', body);
        return { type: 'tarball', url: s.url('hooks-demo.tgz'), sha256: sha256(body), stripComponents: 1 };
      },
    },
    {
      type: 'binary',
      source: (s) => {
        const body = Buffer.from('#!/bin/sh\nexit 0\n');
        s.put('hooks-tool', body);
        return { type: 'binary', url: s.url('hooks-tool'), sha256: sha256(body) };
      },
    },
  ];
  for (const src of sources) {
    it(`${src.type}: preInstall before the install, postInstall after it, once each; not again when converged`, async () => {
      const root = makeSandbox();
      const hooked = withMarkHook(root);
      const work = tempDir('work');
      const manifests = path.join(work, 'manifests');
      writeManifest(manifests, 'demo.yaml', componentManifest('demo', { component: 'demo', version: '1.0.0', source: src.source(server), hooks }));
      const r = await agent('apply', { root, manifests, config: writeConfig(work) });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /demo 1\.0\.0: installed \(fetch, pre-install, install, activate, post-install\)/);
      assert.deepEqual(hooked(), ['pre start', 'pre done', 'post start', 'post done']);
      const again = await agent('apply', { root, manifests, config: writeConfig(work) });
      assert.equal(again.stdout, 'Nothing to do: 1 component(s) converged.\n');
      assert.equal(hooked().length, 4);
    });
  }

  it('none: hooks are refused at validation, naming the field (they would never run)', async () => {
    const { root, work, manifests } = installerSandbox();
    writeManifest(manifests, 'conf.yaml', componentManifest('conf', { component: 'conf', version: '1.0.0', source: { type: 'none' }, files: [{ path: '/etc/c', content: 'c\n' }], hooks }));
    const r = await agent('apply', { root, manifests, config: writeConfig(work) });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /conf\.yaml: spec\.hooks: source\.type none installs nothing, so preInstall and postInstall hooks would never run/);
    assert.equal(existsSync(path.join(root, 'etc/c')), false, 'the refused file is not half-applied');
  });
});

describe('a reload or stop while a hook runs', () => {
  const server = artifactServerForSuite();

  for (const how of ['reload (stop with finish)', 'stop (SIGTERM)'] as const) {
    it(`${how}: the running hook finishes, and is not run again`, async () => {
      const root = makeSandbox();
      const hooked = withMarkHook(root);
      const body = Buffer.from('#!/bin/sh\nexit 0\n');
      server.put('slow-hook-tool', body);
      const dir = path.join(root, 'etc/kubenode/components');
      mkdirSync(dir, { recursive: true });
      writeFileSync(
        path.join(dir, 'tool.yaml'),
        componentManifest('tool', { component: 'tool', version: '1.0.0', source: { type: 'binary', url: server.url('slow-hook-tool'), sha256: sha256(body) }, hooks: { postInstall: [['mark', 'post', '1']] } }),
      );
      const config = validateConfig('test', { nodeName: 'node-a', installers: { reconcileDebounce: '50ms' } });
      const start = (): ReturnType<typeof startInstallReconciler> => startInstallReconciler(createHost({ root }), { installers: config.installers, stateDir: config.stateDir, nodeName: 'node-a' }, createLogger('silent'), { risk: allowAll });
      const first = start();
      for (let i = 0; i < 400 && !hooked().includes('post start'); i++) await sleep(25);
      assert.deepEqual(hooked(), ['post start'], 'the hook is running');
      await first.stop(how.startsWith('reload') ? { finish: true } : {});
      assert.deepEqual(hooked(), ['post start', 'post done'], 'it was not killed half-way');
      const second = start();
      try {
        for (let i = 0; i < 400 && second.passes === 0; i++) await sleep(25);
        assert.equal(second.last?.outcomes[0]?.result !== 'failed', true, JSON.stringify(second.last));
      } finally {
        await second.stop();
      }
      assert.deepEqual(hooked(), ['post start', 'post done'], 'and not run again by the next start');
      assert.equal(existsSync(path.join(root, 'var/lib/kubenode/installers/journal/tool.json')), false, 'the run is finished');
    });
  }
});
