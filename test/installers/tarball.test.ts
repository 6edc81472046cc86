import assert from 'node:assert/strict';
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { agent, artifactServerForSuite, clearSystemctlCalls, componentManifest, demoRelease, installerSandbox, makeSandbox, makeTar, readJson, sha256, startArtifactServer, systemctlCalls, tempDir, writeConfig, writeManifest, type ArtifactServer, type TarEntry } from './helpers.ts';

interface DemoOptions {
  version: string;
  sha?: string;
  conf?: string;
  name?: string;
}

function demoManifest(server: ArtifactServer, body: Buffer, o: DemoOptions): string {
  const artifact = `demo-${o.version}-${sha256(body).slice(0, 8)}.tar.gz`;
  server.put(artifact, body);
  return componentManifest(`node-a-${o.name ?? 'demo'}`, {
    component: o.name ?? 'demo',
    version: o.version,
    source: { type: 'tarball', url: server.url(artifact), sha256: o.sha ?? sha256(body), stripComponents: 1 },
    install: { links: [{ path: `/usr/local/bin/${o.name ?? 'demo'}`, target: 'bin/demo' }] },
    files: [{ path: '/etc/demo/demo.conf', content: o.conf ?? `version=${o.version}\n`, mode: '0640', owner: 'root:daemon' }],
    unit: {
      name: 'demo.service',
      content: '[Unit]\nDescription=demo\n[Service]\nExecStart=/usr/local/bin/demo\n[Install]\nWantedBy=multi-user.target\n',
    },
    healthCheck: { exec: { argv: ['/usr/local/bin/demo', '--health'] }, unitActive: true, retries: 1, intervalSeconds: 0 },
    versionProbe: { argv: ['/usr/local/bin/demo', '--version'], regex: 'demo version (\\S+)' },
  });
}

interface StatusFile {
  phase: string;
  installedVersion?: string;
  lastError?: string;
  observedGeneration: number;
  configHash?: string;
  history: { version: string; result: string }[];
  conditions: { type: string; status: string; reason: string }[];
}

describe('tarball component: install, no-op, upgrade, config change, downgrade, rollback', () => {
  let server: ArtifactServer;
  let root: string;
  let manifests: string;
  let config: string;
  const env = (): { root: string; manifests: string; config: string } => ({ root, manifests, config });
  const status = (): StatusFile => readJson<StatusFile>(path.join(root, 'var/lib/kubenode/installers/status/demo.json'));
  const current = (): string => readlinkSync(path.join(root, 'opt/kubenode/demo/current'));
  const v1 = demoRelease('1.0.0');
  const v2 = demoRelease('2.0.0');
  const v3broken = demoRelease('3.0.0', { healthy: false });

  before(async () => {
    server = await startArtifactServer();
    root = makeSandbox();
    const work = tempDir('work');
    manifests = path.join(work, 'manifests');
    config = writeConfig(work);
  });
  after(() => server.close());

  it('installs 1.0.0: unpacked, linked, config written with mode and owner, unit enabled, restarted, healthy', async () => {
    writeManifest(manifests, 'demo.yaml', demoManifest(server, v1, { version: '1.0.0' }));
    const plan = await agent('plan', env());
    assert.equal(plan.code, 0, plan.stderr);
    assert.match(plan.stdout, /^demo 1\.0\.0$/m);
    for (const step of ['fetch', 'install', 'activate', 'file:/etc/demo/demo.conf', 'unit', 'daemon-reload', 'enable', 'restart']) {
      assert.match(plan.stdout, new RegExp(`^  ${step.replace(/[/.]/g, '\\$&')} `, 'm'), `plan lists ${step}`);
    }
    const r = await agent('apply', env());
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(current(), '1.0.0');
    assert.equal(readFileSync(path.join(root, 'usr/local/bin/demo'), 'utf8').includes('demo version 1.0.0'), true);
    const conf = statSync(path.join(root, 'etc/demo/demo.conf'));
    assert.equal(conf.mode & 0o7777, 0o640);
    assert.equal(conf.gid, 1);
    assert.equal(readFileSync(path.join(root, 'etc/demo/demo.conf'), 'utf8'), 'version=1.0.0\n');
    assert.equal(lstatSync(path.join(root, 'etc/systemd/system/multi-user.target.wants/demo.service')).isSymbolicLink(), true);
    assert.deepEqual(systemctlCalls(root), ['daemon-reload', 'restart demo.service', 'is-active demo.service']);
    const s = status();
    assert.equal(s.phase, 'Installed');
    assert.equal(s.installedVersion, '1.0.0');
    assert.equal(s.observedGeneration, 1);
    assert.equal(s.conditions.find((c) => c.type === 'Ready')?.status, 'True');
  });

  it('is converged: plan prints nothing to do and a second apply changes nothing', async () => {
    clearSystemctlCalls(root);
    const requests = server.requests.length;
    const plan = await agent('plan', env());
    assert.equal(plan.code, 0);
    assert.equal(plan.stdout, 'Nothing to do: 1 component(s) converged.\n');
    const r = await agent('apply', env());
    assert.equal(r.code, 0);
    assert.equal(r.stdout, 'Nothing to do: 1 component(s) converged.\n');
    assert.deepEqual(systemctlCalls(root), []);
    assert.equal(server.requests.length, requests, 'no download');
  });

  it('upgrades to 2.0.0: restart without daemon-reload (the unit did not change)', async () => {
    clearSystemctlCalls(root);
    writeManifest(manifests, 'demo.yaml', demoManifest(server, v2, { version: '2.0.0' }));
    const r = await agent('apply', env());
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(current(), '2.0.0');
    assert.equal(readFileSync(path.join(root, 'etc/demo/demo.conf'), 'utf8'), 'version=2.0.0\n');
    assert.deepEqual(systemctlCalls(root), ['restart demo.service', 'is-active demo.service']);
    assert.equal(status().installedVersion, '2.0.0');
    assert.ok(existsSync(path.join(root, 'opt/kubenode/demo/1.0.0')), 'previous version kept for rollback');
  });

  it('a config-only change restarts the service once and installs nothing', async () => {
    clearSystemctlCalls(root);
    const before = status().configHash;
    const requests = server.requests.length;
    writeManifest(manifests, 'demo.yaml', demoManifest(server, v2, { version: '2.0.0', conf: 'version=2.0.0\nverbose=true\n' }));
    const plan = await agent('plan', env());
    assert.match(plan.stdout, /^  file:\/etc\/demo\/demo\.conf .*\[content\]$/m);
    assert.doesNotMatch(plan.stdout, /^ +(fetch|install|activate|daemon-reload) /m);
    const r = await agent('apply', env());
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(systemctlCalls(root), ['restart demo.service', 'is-active demo.service']);
    assert.notEqual(status().configHash, before);
    assert.equal(server.requests.length, requests);
  });

  it('downgrades to 1.0.0 from the kept version directory, without downloading', async () => {
    clearSystemctlCalls(root);
    const requests = server.requests.length;
    writeManifest(manifests, 'demo.yaml', demoManifest(server, v1, { version: '1.0.0' }));
    const r = await agent('apply', env());
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(current(), '1.0.0');
    assert.equal(server.requests.length, requests, 'no download for a kept version');
    assert.deepEqual(systemctlCalls(root), ['restart demo.service', 'is-active demo.service']);
    assert.equal(status().installedVersion, '1.0.0');
  });

  it('rolls back a release whose health check fails: old version and config restored, restarted, Failed with the reason', async () => {
    clearSystemctlCalls(root);
    writeManifest(manifests, 'demo.yaml', demoManifest(server, v3broken, { version: '3.0.0' }));
    const r = await agent('apply', env());
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /demo 3\.0\.0: rolled-back/);
    assert.equal(current(), '1.0.0');
    assert.equal(readFileSync(path.join(root, 'etc/demo/demo.conf'), 'utf8'), 'version=1.0.0\n');
    // Restart into 3.0.0 (its exec health check fails twice, so is-active is never asked), restart
    // back into 1.0.0, whose checks pass (exec, then is-active).
    assert.deepEqual(systemctlCalls(root), ['restart demo.service', 'restart demo.service', 'is-active demo.service']);
    const s = status();
    assert.equal(s.phase, 'Failed');
    assert.equal(s.installedVersion, '1.0.0');
    assert.match(s.lastError ?? '', /3\.0\.0: health check \/usr\/local\/bin\/demo --health exited 1: demo 3\.0\.0 is broken .*rolled back to 1\.0\.0/);
    assert.equal(s.history[0]?.result, 'RolledBack');
    assert.equal(existsSync(path.join(root, 'var/lib/kubenode/installers/journal/demo.json')), false);
  });

  it('holds the failed spec: plan says so, apply does not retry it', async () => {
    clearSystemctlCalls(root);
    const plan = await agent('plan', env());
    assert.match(plan.stdout, /^demo held: 3\.0\.0 failed at .* and was rolled back/m);
    const r = await agent('apply', env());
    assert.match(r.stdout, /demo 3\.0\.0: held/);
    assert.deepEqual(systemctlCalls(root), []);
    assert.equal(current(), '1.0.0');
  });

  it('prunes versions beyond keepVersions, keeping the current one', async () => {
    const cfg = writeConfig(tempDir('work'), { keepVersions: 1 });
    writeManifest(manifests, 'demo.yaml', demoManifest(server, v2, { version: '2.0.0' }));
    const r = await agent('apply', { root, manifests, config: cfg });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const dirs = readdirSync(path.join(root, 'opt/kubenode/demo')).filter((n) => !n.startsWith('.')).sort();
    assert.deepEqual(dirs, ['2.0.0', 'current']);
    const cached = readdirSync(path.join(root, 'var/lib/kubenode/installers/cache/demo'));
    assert.deepEqual(cached, [sha256(v2)]);
  });
});

describe('refused artifacts install nothing', () => {
  const server = artifactServerForSuite();

  it('checksum mismatch names both sums and leaves the node as it was', async () => {
    const { root, work, manifests } = installerSandbox();
    const body = demoRelease('1.0.0');
    const wrong = sha256('something else');
    writeManifest(manifests, 'demo.yaml', demoManifest(server, body, { version: '1.0.0', sha: wrong }));
    const r = await agent('apply', { root, manifests, config: writeConfig(work) });
    assert.equal(r.code, 1);
    assert.match(r.stdout, new RegExp(`sha256 mismatch for http://127\\.0\\.0\\.1:\\d+/\\S+: expected ${wrong}, got ${sha256(body)}; nothing was installed`));
    assert.equal(existsSync(path.join(root, 'opt')), false);
    assert.equal(existsSync(path.join(root, 'etc/demo')), false);
    assert.equal(existsSync(path.join(root, 'etc/systemd')), false);
    assert.deepEqual(readdirSync(path.join(root, 'var/lib/kubenode/installers/cache/demo')), []);
    assert.equal(readJson<StatusFile>(path.join(root, 'var/lib/kubenode/installers/status/demo.json')).phase, 'Failed');
  });

  const hostile: { name: string; entries: TarEntry[]; error: RegExp }[] = [
    { name: 'path traversal', entries: [{ path: 'demo/bin/demo', content: 'x' }, { path: 'demo/../../../etc/cron.d/evil', content: 'x' }], error: /'\.\.' in path is not allowed/ },
    { name: 'absolute path', entries: [{ path: '/etc/cron.d/evil', content: 'x' }], error: /absolute paths are not allowed/ },
    { name: 'symlink escaping', entries: [{ path: 'demo/lib', type: 'SymbolicLink', linkpath: '../../../../etc' }], error: /symlink to "\.\.\/\.\.\/\.\.\/\.\.\/etc" points outside the archive/ },
    { name: 'absolute symlink', entries: [{ path: 'demo/passwd', type: 'SymbolicLink', linkpath: '/etc/passwd' }], error: /points outside the archive/ },
    { name: 'write through a symlink', entries: [{ path: 'demo/d', type: 'SymbolicLink', linkpath: 'bin' }, { path: 'demo/bin/', type: 'Directory' }, { path: 'demo/d/x', content: 'x' }], error: /written through the symlink "d"/ },
    { name: 'hard link escaping', entries: [{ path: 'demo/shadow', type: 'Link', linkpath: '../etc/shadow' }], error: /hard link .* points outside the archive/ },
    { name: 'device file', entries: [{ path: 'demo/null', type: 'CharacterDevice' }], error: /CharacterDevice entries are not allowed/ },
    { name: 'fifo', entries: [{ path: 'demo/pipe', type: 'FIFO' }], error: /FIFO entries are not allowed/ },
  ];
  for (const h of hostile) {
    it(`refuses a tarball with ${h.name}`, async () => {
      const { root, work, manifests } = installerSandbox();
      const body = makeTar(h.entries);
      writeManifest(manifests, 'demo.yaml', demoManifest(server, body, { version: '1.0.0' }));
      const r = await agent('apply', { root, manifests, config: writeConfig(work) });
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stdout, h.error);
      assert.match(r.stdout, /nothing was written/);
      assert.equal(existsSync(path.join(root, 'opt')), false, 'no install directory');
      assert.equal(existsSync(path.join(root, 'etc/cron.d')), false);
      assert.equal(existsSync(path.join(root, 'etc/demo')), false);
    });
  }
});
