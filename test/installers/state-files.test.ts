// State that outlives its truth: one unreadable or corrupt state file is set aside with a clear
// error naming it and never stops the other components; what a kill -9 left half-made (temp files
// of atomic writes, unpack temp dirs, partial downloads no spec will resume) is removed at the next
// start, and only names the agent makes.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { agent, artifactServerForSuite, componentManifest, demoRelease, installerSandbox, sha256, writeConfig, writeManifest } from './helpers.ts';

const STATE = 'var/lib/kubenode/installers';

const conf = (component: string): string =>
  componentManifest(component, { component, version: '1.0.0', source: { type: 'none' }, files: [{ path: `/etc/${component}.conf`, content: `${component}\n` }] });

describe('corrupt state files', () => {
  it('a torn journal, a garbage record and a status of the wrong shape: each set aside and named, every component still converges', async () => {
    const { root, work, manifests } = installerSandbox();
    for (const c of ['alpha', 'beta', 'gamma', 'delta']) writeManifest(manifests, `${c}.yaml`, conf(c));
    const bad: Record<string, string> = {
      'journal/alpha.json': '{"version": 1, "component": "alpha", "mode": "ap',
      'records/beta.json': '\u0000\u0000\u0000',
      'status/gamma.json': JSON.stringify({ phase: 'Exploded', observedGeneration: -1 }),
    };
    for (const [rel, text] of Object.entries(bad)) {
      mkdirSync(path.dirname(path.join(root, STATE, rel)), { recursive: true });
      writeFileSync(path.join(root, STATE, rel), text);
    }
    const plan = await agent('plan', { root, manifests, config: writeConfig(work) });
    assert.match(plan.stdout, /journal\/alpha\.json is bad \(not JSON .*\(apply moves it out of the way\)/, plan.stdout + plan.stderr);
    assert.ok(existsSync(path.join(root, STATE, 'journal/alpha.json')), 'plan leaves the file where it is');

    const r = await agent('apply', { root, manifests, config: writeConfig(work) });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    for (const c of ['alpha', 'beta', 'gamma', 'delta']) assert.equal(readFileSync(path.join(root, `etc/${c}.conf`), 'utf8'), `${c}\n`, c);
    for (const [rel, text] of Object.entries(bad)) {
      const dir = path.dirname(path.join(root, STATE, rel));
      const aside = readdirSync(dir).filter((n) => n.startsWith(`${path.basename(rel)}.corrupt-`));
      assert.ok(aside.length >= 1, `${rel} set aside: ${readdirSync(dir).join(', ')}`);
      const now = path.join(root, STATE, rel);
      assert.ok(!existsSync(now) || readFileSync(now, 'utf8') !== text, `${rel} out of the way (gone, or rewritten by the run)`);
      assert.equal(readFileSync(path.join(dir, aside[0] as string), 'utf8'), text, 'kept as it was, for a person to look at');
      assert.match(r.stdout, new RegExp(`! state file \\S+${rel.replace('/', '\\/').replace('.', '\\.')} is bad .*; moved aside to \\S+${rel.replace('/', '\\/').replace('.', '\\.')}\\.corrupt-`), r.stdout);
    }
    assert.match(r.stderr, /"msg":"State file set aside"/);
    const again = await agent('apply', { root, manifests, config: writeConfig(work) });
    assert.equal(again.stdout, 'Nothing to do: 4 component(s) converged.\n', 'set aside once, not every pass');
  });
});

describe('leftovers of a kill -9 are swept at the next start', () => {
  const server = artifactServerForSuite();

  it('removes atomic-write temps, unpack and prune temps and stale partial downloads; keeps look-alikes and the partial it will resume', async () => {
    const { root, work, manifests } = installerSandbox();
    const body = demoRelease('1.0.0');
    server.put('sweep-demo.tgz', body);
    writeManifest(
      manifests,
      'demo.yaml',
      componentManifest('demo', { component: 'demo', version: '1.0.0', source: { type: 'tarball', url: server.url('sweep-demo.tgz'), sha256: sha256(body), stripComponents: 1 }, files: [{ path: '/etc/demo/demo.conf', content: 'x\n' }] }),
    );
    const plant = (rel: string, dir = false): void => {
      const p = path.join(root, rel);
      mkdirSync(dir ? p : path.dirname(p), { recursive: true });
      if (!dir) writeFileSync(p, 'left by a killed run\n');
    };
    const ours = [
      `${STATE}/status/.demo.json.kubenode-0123456789ab`,
      `${STATE}/journal/.demo.json.kubenode-abcdef012345`,
      `${STATE}/cache/demo/${'e'.repeat(64)}.partial`,
      `${STATE}/cache/gone/${'f'.repeat(64)}.partial`,
      'etc/demo/.demo.conf.kubenode-00112233aabb',
    ];
    for (const p of ours) plant(p);
    plant('opt/kubenode/demo/.2.0.0.kubenode-a1b2c3d4e5f6/bin', true);
    const notOurs = ['etc/demo/.demo.conf.swp', 'etc/demo/demo.conf.kubenode-0123456789ab', 'etc/demo/.x.kubenode-0123', `${STATE}/cache/demo/notes.partial`];
    for (const p of notOurs) plant(p);
    // Half of the artifact this spec wants: resumed, not removed.
    mkdirSync(path.join(root, STATE, 'cache/demo'), { recursive: true });
    writeFileSync(path.join(root, STATE, 'cache/demo', `${sha256(body)}.partial`), body.subarray(0, 100));

    const r = await agent('apply', { root, manifests, config: writeConfig(work) });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    for (const p of ours) assert.equal(existsSync(path.join(root, p)), false, `${p} removed`);
    assert.equal(existsSync(path.join(root, 'opt/kubenode/demo/.2.0.0.kubenode-a1b2c3d4e5f6')), false, 'unpack temp dir removed');
    for (const p of notOurs) assert.ok(existsSync(path.join(root, p)), `${p} kept: not a name the agent makes`);
    const resumed = server.requests.filter((q) => q.name === 'sweep-demo.tgz');
    assert.deepEqual(resumed.map((q) => q.range), ['bytes=100-'], 'the wanted partial download was resumed');
  });
});
