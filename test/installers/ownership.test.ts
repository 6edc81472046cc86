// Deleting (or using) what the agent did not create: pruning touches only version directories the
// agent recorded making; a directory at a version's name that it did not make is never trusted
// as installed nor replaced; a kill -9 while pruning never leaves a part of a version at its name.
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { agent, artifactServerForSuite, componentManifest, demoRelease, installerSandbox, makeSandbox, sha256, tempDir, writeConfig, writeManifest, type ArtifactServer } from './helpers.ts';

function demo(server: ArtifactServer, version: string, dir?: string): string {
  const body = demoRelease(version);
  const name = `own-demo-${version}.tar.gz`;
  server.put(name, body);
  return componentManifest('demo', {
    component: 'demo',
    version,
    source: { type: 'tarball', url: server.url(name), sha256: sha256(body), stripComponents: 1 },
    install: dir === undefined ? {} : { dir },
    versionProbe: { argv: [`${dir ?? '/opt/kubenode/demo'}/current/bin/demo`, '--version'], regex: 'demo version (\\S+)' },
  });
}

describe('pruning and version directories: only what the agent made', () => {
  const server = artifactServerForSuite();

  it('install.dir /opt: pruning keeps /opt/nvidia and a version-looking /opt/0.9.0 it did not make, removes its own old version', async () => {
    const root = makeSandbox();
    mkdirSync(path.join(root, 'opt/nvidia/lib'), { recursive: true });
    writeFileSync(path.join(root, 'opt/nvidia/lib/libcuda.so'), 'not ours\n');
    mkdirSync(path.join(root, 'opt/0.9.0'), { recursive: true });
    writeFileSync(path.join(root, 'opt/0.9.0/data'), 'not ours either\n');
    const work = tempDir('work');
    const manifests = path.join(work, 'manifests');
    const config = writeConfig(work, { keepVersions: 1 });
    for (const v of ['1.0.0', '2.0.0']) {
      writeManifest(manifests, 'demo.yaml', demo(server, v, '/opt'));
      const r = await agent('apply', { root, manifests, config });
      assert.equal(r.code, 0, r.stdout + r.stderr);
    }
    assert.equal(readFileSync(path.join(root, 'opt/nvidia/lib/libcuda.so'), 'utf8'), 'not ours\n');
    assert.equal(readFileSync(path.join(root, 'opt/0.9.0/data'), 'utf8'), 'not ours either\n');
    assert.deepEqual(readdirSync(path.join(root, 'opt')).sort(), ['0.9.0', '2.0.0', 'current', 'nvidia'], 'its own 1.0.0 pruned, nothing else');
  });

  it('a directory at the version name that the agent did not make (a part of a version) is refused, not trusted or replaced', async () => {
    const root = makeSandbox();
    mkdirSync(path.join(root, 'opt/kubenode/demo/1.0.0'), { recursive: true });
    writeFileSync(path.join(root, 'opt/kubenode/demo/1.0.0/README'), 'half a version\n');
    const work = tempDir('work');
    const manifests = path.join(work, 'manifests');
    writeManifest(manifests, 'demo.yaml', demo(server, '1.0.0'));
    const plan = await agent('plan', { root, manifests, config: writeConfig(work) });
    assert.match(plan.stdout, /opt\/kubenode\/demo\/1\.0\.0 exists and was not made by this agent; refusing to use or replace it/);
    const r = await agent('apply', { root, manifests, config: writeConfig(work) });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /demo 1\.0\.0: failed: .*1\.0\.0 exists and was not made by this agent/);
    assert.deepEqual(readdirSync(path.join(root, 'opt/kubenode/demo')), ['1.0.0'], 'no current link to it');
    assert.equal(readFileSync(path.join(root, 'opt/kubenode/demo/1.0.0/README'), 'utf8'), 'half a version\n');
  });

  it('kill -9 at every boundary while pruning: a version is whole at its name or not there, and going back to it unpacks it again', async () => {
    const { root: base, work, manifests } = installerSandbox();
    const config = writeConfig(work, { keepVersions: 1 });
    writeManifest(manifests, 'demo.yaml', demo(server, '1.0.0'));
    assert.equal((await agent('apply', { root: base, manifests, config })).code, 0);
    writeManifest(manifests, 'demo.yaml', demo(server, '2.0.0'));
    let prunes = 0;
    for (let n = 1; n < 30; n++) {
      const root = tempDir(`prune-crash-${n}`);
      cpSync(base, root, { recursive: true, verbatimSymlinks: true });
      const env = { root, manifests, config };
      const crashed = await agent('apply', env, [], { env: { KUBENODE_TEST_CRASH_AFTER_STEP: String(n) } });
      if (crashed.code !== null) {
        assert.equal(crashed.code, 0, crashed.stdout + crashed.stderr);
        break;
      }
      const dir = path.join(root, 'opt/kubenode/demo');
      if (!existsSync(path.join(root, 'var/lib/kubenode/installers/journal/demo.json'))) {
        // Past the run's journal: this is a crash inside pruning, with 1.0.0 moved aside.
        prunes++;
        assert.equal(existsSync(path.join(dir, '1.0.0')), false, `n=${n}: no part of 1.0.0 at its name`);
        assert.ok(readdirSync(dir).some((e) => /^\.1\.0\.0\.kubenode-[0-9a-f]{12}$/.test(e)), `n=${n}: moved aside under a temp name`);
      }
      const resumed = await agent('apply', env);
      assert.equal(resumed.code, 0, `n=${n}: ${resumed.stdout}${resumed.stderr}`);
      assert.deepEqual(readdirSync(dir).sort(), ['2.0.0', 'current'], `n=${n}: the leftover was swept at the next start`);
      writeManifest(manifests, 'demo.yaml', demo(server, '1.0.0'));
      const back = await agent('apply', env);
      writeManifest(manifests, 'demo.yaml', demo(server, '2.0.0'));
      assert.equal(back.code, 0, `n=${n}: ${back.stdout}${back.stderr}`);
      assert.match(back.stdout, /demo 1\.0\.0: installed \(.*install/, `n=${n}: unpacked again, not trusted`);
      assert.equal(readlinkSync(path.join(dir, 'current')), '1.0.0');
    }
    assert.equal(prunes, 1, 'one boundary inside pruning');
  });
});
