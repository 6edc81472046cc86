// Real packages: .deb built with dpkg-deb and .rpm with rpmbuild, served on 127.0.0.1, installed
// into sandbox roots with `dpkg --root` and `rpm --root` (the machine's own tools, acting on the tree).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { agent, componentManifest, makeSandbox, readJson, sha256, startArtifactServer, tempDir, withMarkHook, writeConfig, writeManifest, type ArtifactServer } from './helpers.ts';
import { missingTools, skipOutsideCi } from '../helpers/prerequisites.ts';

const script = (version: string, healthy: boolean): string =>
  `#!/bin/sh\nif [ "$1" = --version ]; then echo "kn-demo ${version}"; exit 0; fi\nif [ "$1" = --health ]; then ${healthy ? 'exit 0' : `echo "kn-demo ${version} is broken" >&2; exit 1`}; fi\n`;

function buildDeb(version: string, healthy: boolean, name = 'kn-demo'): Buffer {
  const dir = tempDir('deb');
  mkdirSync(path.join(dir, 'pkg/DEBIAN'), { recursive: true });
  mkdirSync(path.join(dir, 'pkg/usr/bin'), { recursive: true });
  writeFileSync(path.join(dir, 'pkg/DEBIAN/control'), `Package: ${name}\nVersion: ${version}-1\nArchitecture: all\nMaintainer: kubenode tests <tests@example.invalid>\nDescription: kubenode installer test package\n`);
  writeFileSync(path.join(dir, 'pkg/usr/bin/kn-demo'), script(version, healthy));
  chmodSync(path.join(dir, 'pkg/usr/bin/kn-demo'), 0o755);
  execFileSync('dpkg-deb', ['--build', '--root-owner-group', path.join(dir, 'pkg'), path.join(dir, 'kn-demo.deb')], { stdio: 'ignore' });
  return readFileSync(path.join(dir, 'kn-demo.deb'));
}

function buildRpm(version: string, healthy: boolean, name = 'kn-demo'): Buffer {
  const top = tempDir('rpm');
  for (const d of ['SPECS', 'BUILD', 'RPMS', 'SOURCES', 'SRPMS', 'BUILDROOT']) mkdirSync(path.join(top, d));
  writeFileSync(path.join(top, 'SOURCES/kn-demo'), script(version, healthy));
  writeFileSync(
    path.join(top, 'SPECS/kn-demo.spec'),
    `Name: ${name}\nVersion: ${version}\nRelease: 1\nSummary: kubenode installer test package\nLicense: Apache-2.0\nBuildArch: noarch\nAutoReqProv: no\nSource0: kn-demo\n%description\ntest\n%install\nmkdir -p %{buildroot}/usr/bin\ninstall -m 0755 %{SOURCE0} %{buildroot}/usr/bin/kn-demo\n%files\n/usr/bin/kn-demo\n`,
  );
  execFileSync('rpmbuild', ['--quiet', '--define', `_topdir ${top}`, '--define', '_build_id_links none', '-bb', path.join(top, 'SPECS/kn-demo.spec')], { stdio: 'ignore' });
  const dir = path.join(top, 'RPMS/noarch');
  return readFileSync(path.join(dir, readdirSync(dir)[0] as string));
}

interface Kind {
  type: 'deb' | 'rpm';
  tools: string[];
  build: (version: string, healthy: boolean, name?: string) => Buffer;
  prepare: (root: string) => void;
  installedVersion: (root: string, name?: string) => string | undefined;
}

const kinds: Kind[] = [
  {
    type: 'deb',
    tools: ['dpkg', 'dpkg-deb'],
    build: buildDeb,
    prepare: (root) => {
      for (const d of ['var/lib/dpkg/info', 'var/lib/dpkg/updates']) mkdirSync(path.join(root, d), { recursive: true });
      writeFileSync(path.join(root, 'var/lib/dpkg/status'), '');
    },
    installedVersion: (root, name = 'kn-demo') => {
      try {
        return execFileSync('dpkg-query', [`--admindir=${root}/var/lib/dpkg`, '-W', '-f', '${Version}', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      } catch {
        return undefined;
      }
    },
  },
  {
    type: 'rpm',
    tools: ['rpm', 'rpmbuild'],
    build: buildRpm,
    prepare: (root) => {
      execFileSync('rpm', ['--root', root, '--dbpath', '/var/lib/rpm', '--initdb'], { stdio: 'ignore' });
    },
    installedVersion: (root, name = 'kn-demo') => {
      try {
        return execFileSync('rpm', ['--root', root, '--dbpath', '/var/lib/rpm', '-q', '--qf', '%{VERSION}-%{RELEASE}', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      } catch {
        return undefined;
      }
    },
  },
];

for (const kind of kinds) {
  const skip = skipOutsideCi(missingTools(kind.tools, 'apt-get install rpm; dpkg-deb comes with dpkg'));
  describe(`${kind.type} component: install, no-op, upgrade, downgrade, rollback on a failing health check`, { skip }, () => {
    let server: ArtifactServer;
    let root: string;
    let manifests: string;
    let config: string;
    const env = (): { root: string; manifests: string; config: string } => ({ root, manifests, config });
    const packages = new Map<string, Buffer>();

    const put = (version: string, extra: Record<string, unknown> = {}): void => {
      const body = packages.get(version) as Buffer;
      const name = `kn-demo-${version}.${kind.type}`;
      server.put(name, body);
      writeManifest(
        manifests,
        'kn-demo.yaml',
        componentManifest('node-a-kn-demo', {
          component: 'kn-demo',
          version,
          source: { type: kind.type, url: server.url(name), sha256: sha256(body), package: 'kn-demo' },
          files: [{ path: '/etc/kn-demo.conf', content: `v=${version}\n` }],
          healthCheck: { exec: { argv: ['/usr/bin/kn-demo', '--health'] }, retries: 0 },
          versionProbe: { argv: ['/usr/bin/kn-demo', '--version'], regex: 'kn-demo (\\S+)' },
          ...extra,
        }),
      );
    };
    const status = (): { phase: string; installedVersion?: string; lastError?: string } => readJson(path.join(root, 'var/lib/kubenode/installers/status/kn-demo.json'));

    before(async () => {
      server = await startArtifactServer();
      packages.set('1.0.0', kind.build('1.0.0', true));
      packages.set('2.0.0', kind.build('2.0.0', true));
      packages.set('3.0.0', kind.build('3.0.0', false));
      packages.set('4.0.0', kind.build('4.0.0', true, 'kn-impostor'));
      root = makeSandbox();
      kind.prepare(root);
      const work = tempDir('work');
      manifests = path.join(work, 'manifests');
      config = writeConfig(work);
    });
    after(() => server.close());

    it('installs 1.0.0 and is then converged', async () => {
      put('1.0.0');
      const r = await agent('apply', env());
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(kind.installedVersion(root), '1.0.0-1');
      assert.equal(readFileSync(path.join(root, 'usr/bin/kn-demo'), 'utf8').includes('kn-demo 1.0.0'), true);
      assert.equal(status().installedVersion, '1.0.0');
      const plan = await agent('plan', env());
      assert.equal(plan.stdout, 'Nothing to do: 1 component(s) converged.\n');
      const again = await agent('apply', env());
      assert.equal(again.stdout, 'Nothing to do: 1 component(s) converged.\n');
    });

    it('upgrades to 2.0.0', async () => {
      put('2.0.0');
      const plan = await agent('plan', env());
      assert.match(plan.stdout, /\[installed 1\.0\.0-1\]/);
      const r = await agent('apply', env());
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(kind.installedVersion(root), '2.0.0-1');
      assert.equal(status().installedVersion, '2.0.0');
    });

    it('downgrades to 1.0.0 from the cached package', async () => {
      const requests = server.requests.length;
      put('1.0.0');
      const r = await agent('apply', env());
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(kind.installedVersion(root), '1.0.0-1');
      assert.equal(server.requests.length, requests, 'served from the cache');
    });

    it('rolls back 3.0.0, whose health check fails, to 1.0.0', async () => {
      put('3.0.0');
      const r = await agent('apply', env());
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.equal(kind.installedVersion(root), '1.0.0-1');
      assert.equal(readFileSync(path.join(root, 'etc/kn-demo.conf'), 'utf8'), 'v=1.0.0\n');
      const s = status();
      assert.equal(s.phase, 'Failed');
      assert.equal(s.installedVersion, '1.0.0');
      assert.match(s.lastError ?? '', /kn-demo 3\.0\.0 is broken.*rolled back to 1\.0\.0/);
    });

    it('refuses a package whose name is not source.package before installing it', async () => {
      const before = status();
      put('4.0.0');
      const r = await agent('apply', env());
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stdout, /refusing http:\/\/127\.0\.0\.1:\d+\/kn-demo-4\.0\.0\.\w+: it holds the package "kn-impostor", not source\.package "kn-demo"; nothing was installed/);
      assert.equal(kind.installedVersion(root, 'kn-impostor'), undefined, 'never installed');
      assert.equal(kind.installedVersion(root), '1.0.0-1', 'what was there stays');
      assert.equal(status().installedVersion, before.installedVersion);
    });

    it('runs preInstall and postInstall hooks around the package install', async () => {
      const fresh = makeSandbox();
      kind.prepare(fresh);
      const hooked = withMarkHook(fresh);
      const work = tempDir('work');
      const dir = path.join(work, 'manifests');
      put('2.0.0', { hooks: { preInstall: [['mark', 'pre']], postInstall: [['mark', 'post']] } });
      cpSync(path.join(manifests, 'kn-demo.yaml'), path.join(dir, 'kn-demo.yaml'));
      const r = await agent('apply', { root: fresh, manifests: dir, config });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /kn-demo 2\.0\.0: installed \(fetch, pre-install, install, file:\/etc\/kn-demo\.conf, post-install\)/);
      assert.deepEqual(hooked(), ['pre start', 'pre done', 'post start', 'post done']);
    });

    it(`dropped from the manifest directory: the package is ${kind.type === 'deb' ? 'purged' : 'erased'} and its files removed`, async () => {
      const fresh = makeSandbox();
      kind.prepare(fresh);
      const dir = path.join(fresh, 'etc/kubenode/components');
      put('2.0.0');
      mkdirSync(dir, { recursive: true });
      cpSync(path.join(manifests, 'kn-demo.yaml'), path.join(dir, 'kn-demo.yaml'));
      const installed = await agent('apply', { root: fresh, config });
      assert.equal(installed.code, 0, installed.stdout + installed.stderr);
      assert.equal(kind.installedVersion(fresh), '2.0.0-1');
      rmSync(path.join(dir, 'kn-demo.yaml'));
      const r = await agent('apply', { root: fresh, config });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /kn-demo 2\.0\.0: removed \(file:\/etc\/kn-demo\.conf, package, cache\)/);
      assert.equal(kind.installedVersion(fresh), undefined, 'package removed');
      assert.equal(existsSync(path.join(fresh, 'usr/bin/kn-demo')), false);
      assert.equal(existsSync(path.join(fresh, 'etc/kn-demo.conf')), false);
    });

    it(`a failing first install of 3.0.0 into a fresh root ${kind.type === 'deb' ? 'purges' : 'erases'} the package again`, async () => {
      const fresh = makeSandbox();
      kind.prepare(fresh);
      const work = tempDir('work');
      const dir = path.join(work, 'manifests');
      put('3.0.0');
      cpSync(path.join(manifests, 'kn-demo.yaml'), path.join(dir, 'kn-demo.yaml'));
      const r = await agent('apply', { root: fresh, manifests: dir, config });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.equal(kind.installedVersion(fresh), undefined, 'package removed');
      assert.equal(existsSync(path.join(fresh, 'usr/bin/kn-demo')), false);
      assert.equal(existsSync(path.join(fresh, 'etc/kn-demo.conf')), false);
      const s = readJson<{ phase: string; installedVersion?: string; lastError?: string }>(path.join(fresh, 'var/lib/kubenode/installers/status/kn-demo.json'));
      assert.equal(s.phase, 'Failed');
      assert.equal(s.installedVersion, undefined);
      assert.match(s.lastError ?? '', /kn-demo 3\.0\.0 is broken.*removed what this run installed/);
    });
  });
}
