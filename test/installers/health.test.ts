// The version probe's regex comes from a manifest: it runs on the linear-time RE2 engine, so a
// pattern that would backtrack exponentially on the probe's output still answers at once.
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { validateConfig } from '../../src/config/load.ts';
import { createHost } from '../../src/host/host.ts';
import { createInstallContext } from '../../src/installers/context.ts';
import { probeVersion } from '../../src/installers/health.ts';
import { parseManifestText } from '../../src/installers/manifests.ts';
import { allowAll } from '../../src/risk/gate.ts';
import { createLogger } from '../../src/log.ts';
import { makeSandbox } from './helpers.ts';

describe('version probe', () => {
  // With a backtracking engine `^(a|aa)+$` on 64 a's and a '!' takes longer than the universe has.
  it('a catastrophic pattern on hostile output: no match, reported, without backtracking', { timeout: 60_000 }, async () => {
    const root = makeSandbox();
    writeFileSync(path.join(root, 'usr/bin/probe'), `#!/bin/sh\necho ${'a'.repeat(64)}!\n`);
    chmodSync(path.join(root, 'usr/bin/probe'), 0o755);
    const [target] = parseManifestText(
      'm.yaml',
      JSON.stringify({ apiVersion: 'kubenode.io/v1alpha1', kind: 'MachineComponent', metadata: { name: 'p' }, spec: { component: 'p', version: '1.0.0', source: { type: 'none' }, versionProbe: { argv: ['probe'], regex: '^(a|aa)+$' } } }),
    );
    assert.ok(target !== undefined);
    const config = validateConfig('test', { nodeName: 'node-a' });
    const ctx = createInstallContext(createHost({ root }), { installers: config.installers, stateDir: config.stateDir, nodeName: 'node-a' }, createLogger('silent'), { risk: allowAll });
    const r = await probeVersion(ctx, target.spec);
    assert.match(r?.error ?? '', /version probe output does not match \/\^\(a\|aa\)\+\$\//);
  });
});
