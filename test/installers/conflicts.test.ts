// Two components claiming the same file, link, unit, package or directory: a conflict reported on
// both components' status, the same answer every pass (no flip-flop of the file between them).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { agent, componentManifest, makeSandbox, readJson, tempDir, writeConfig, writeManifest } from './helpers.ts';

const doc = (component: string, spec: Record<string, unknown>): string =>
  componentManifest(component, { component, version: '1.0.0', source: { type: 'none' }, ...spec });

interface StatusFile {
  phase: string;
  lastError?: string;
  conditions: { type: string; status: string; reason: string; message: string }[];
}

const unit = (name: string): Record<string, unknown> => ({ unit: { name, content: '[Service]\nExecStart=/bin/true\n', enabled: false } });

describe('conflicts between components', () => {
  it('a newcomer claiming an installed component\'s file is refused; the incumbent keeps it; both statuses say so, unchanged pass after pass', async () => {
    const root = makeSandbox();
    const work = tempDir('work');
    const manifests = path.join(work, 'manifests');
    const config = writeConfig(work);
    const env = { root, manifests, config };
    writeManifest(manifests, 'a.yaml', doc('alpha', { files: [{ path: '/etc/shared.conf', content: 'alpha\n' }] }));
    assert.equal((await agent('apply', env)).code, 0);
    writeManifest(manifests, 'b.yaml', doc('beta', { files: [{ path: '/etc/shared.conf', content: 'beta\n' }, { path: '/etc/beta.conf', content: 'b\n' }] }));
    const statusOf = (c: string): StatusFile => readJson<StatusFile>(path.join(root, 'var/lib/kubenode/installers/status', `${c}.json`));
    const texts: string[] = [];
    for (let pass = 0; pass < 3; pass++) {
      const r = await agent('apply', env);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stdout, /beta 1\.0\.0: failed: conflict: file \/etc\/shared\.conf \(component alpha, .*a\.yaml#alpha\) and file \/etc\/shared\.conf \(component beta, .*b\.yaml#beta\) claim the same place; alpha had it first, so beta is refused/);
      assert.equal(readFileSync(path.join(root, 'etc/shared.conf'), 'utf8'), 'alpha\n', `pass ${pass}: the incumbent's content stays`);
      const alpha = statusOf('alpha');
      const beta = statusOf('beta');
      assert.equal(alpha.phase, 'Installed');
      assert.match(alpha.conditions.find((c) => c.type === 'Conflict')?.message ?? '', /alpha had it first and keeps it, beta is refused/);
      assert.equal(beta.phase, 'Failed');
      assert.equal(beta.conditions.find((c) => c.type === 'Ready')?.reason, 'Conflict');
      texts.push(readFileSync(path.join(root, 'var/lib/kubenode/installers/status/alpha.json'), 'utf8') + readFileSync(path.join(root, 'var/lib/kubenode/installers/status/beta.json'), 'utf8'));
    }
    assert.equal(texts[1], texts[0], 'statuses are not rewritten by later passes');
    assert.equal(texts[2], texts[0]);
    assert.throws(() => readFileSync(path.join(root, 'etc/beta.conf')), /ENOENT/, 'nothing of the refused component is written');

    // The newcomer gives the file up: the conflict clears on both.
    writeManifest(manifests, 'b.yaml', doc('beta', { files: [{ path: '/etc/beta.conf', content: 'b\n' }] }));
    const r = await agent('apply', env);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(statusOf('alpha').conditions.some((c) => c.type === 'Conflict'), false);
    assert.equal(statusOf('beta').phase, 'Installed');
  });

  const both: { name: string; a: Record<string, unknown>; b: Record<string, unknown>; what: RegExp }[] = [
    { name: 'the same unit', a: unit('shared.service'), b: unit('shared.service'), what: /unit shared\.service \(component alpha/ },
    { name: 'a file that is the other\'s unit file', a: unit('x.service'), b: { files: [{ path: '/etc/systemd/system/x.service', content: '[Service]\n' }] }, what: /claim the same place/ },
    {
      name: 'a file inside the other\'s install directory',
      a: { source: { type: 'binary', url: 'file:///srv/tool', sha256: 'a'.repeat(64) }, install: { dir: '/opt/tools' } },
      b: { files: [{ path: '/opt/tools/current/config', content: 'x\n' }] },
      what: /install\.dir \/opt\/tools \(component alpha.*file \/opt\/tools\/current\/config \(component beta/,
    },
    {
      name: 'the same package',
      a: { source: { type: 'deb', url: 'file:///srv/a.deb', sha256: 'a'.repeat(64), package: 'kn-demo' } },
      b: { source: { type: 'deb', url: 'file:///srv/b.deb', sha256: 'b'.repeat(64), package: 'kn-demo' } },
      what: /deb package kn-demo \(component alpha/,
    },
  ];
  for (const c of both) {
    it(`two new components claiming ${c.name}: both refused, neither acted on`, async () => {
      const root = makeSandbox();
      const work = tempDir('work');
      const manifests = path.join(work, 'manifests');
      writeManifest(manifests, 'a.yaml', doc('alpha', c.a));
      writeManifest(manifests, 'b.yaml', doc('beta', c.b));
      const r = await agent('apply', { root, manifests, config: writeConfig(work) });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      for (const comp of ['alpha', 'beta']) {
        assert.match(r.stdout, new RegExp(`${comp} 1\\.0\\.0: failed: conflict: .*both are refused`));
        const s = readJson<StatusFile>(path.join(root, 'var/lib/kubenode/installers/status', `${comp}.json`));
        assert.equal(s.phase, 'Failed');
        assert.match(s.lastError ?? '', c.what);
      }
      const plan = await agent('plan', { root, manifests, config: writeConfig(work) });
      assert.match(plan.stdout, /alpha 1\.0\.0\n {2}! conflict: /);
    });
  }
});
