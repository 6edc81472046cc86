// A managed path never replaces a symlinked system directory nor writes through one (a merged-/usr
// root: /bin -> usr/bin, /lib -> usr/lib), and `--root` is a jail: whatever links the tree holds,
// nothing the agent writes lands outside it.
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { agent, componentManifest, demoRelease, makeSandbox, sha256, startArtifactServer, tempDir, writeConfig, writeManifest, type ArtifactServer } from './helpers.ts';

/** A sandbox laid out like a merged-/usr host. */
function mergedUsrRoot(): string {
  const root = makeSandbox();
  mkdirSync(path.join(root, 'usr/lib'), { recursive: true });
  mkdirSync(path.join(root, 'usr/sbin'), { recursive: true });
  writeFileSync(path.join(root, 'usr/lib/libc.so.6'), 'system\n');
  writeFileSync(path.join(root, 'usr/bin/python3.11'), 'python\n');
  symlinkSync('python3.11', path.join(root, 'usr/bin/python3'));
  symlinkSync('usr/bin', path.join(root, 'bin'));
  symlinkSync('usr/lib', path.join(root, 'lib'));
  symlinkSync('usr/sbin', path.join(root, 'sbin'));
  return root;
}

const listing = (dir: string): string[] => readdirSync(dir).sort();

describe('managed paths and symlinked system directories', () => {
  let server: ArtifactServer;
  let body: Buffer;
  before(async () => {
    server = await startArtifactServer();
    body = demoRelease('1.0.0');
    server.put('paths-demo.tar.gz', body);
  });
  after(() => server.close());

  const spec = (extra: Record<string, unknown>): Record<string, unknown> => ({ component: 'demo', version: '1.0.0', source: { type: 'none' }, ...extra });
  const tarball = (install: Record<string, unknown>): Record<string, unknown> => ({
    component: 'demo',
    version: '1.0.0',
    source: { type: 'tarball', url: server.url('paths-demo.tar.gz'), sha256: sha256(body), stripComponents: 1 },
    install,
  });

  const cases: { name: string; spec: () => Record<string, unknown>; error: RegExp }[] = [
    { name: 'a file at /lib (a link to usr/lib)', spec: () => spec({ files: [{ path: '/lib', content: 'x\n' }] }), error: /file \/lib is a symlink to the directory usr\/lib; refusing to replace it/ },
    { name: 'a file under /bin', spec: () => spec({ files: [{ path: '/bin/demo.conf', content: 'x\n' }] }), error: /file \/bin\/demo\.conf goes through the symlink \/bin -> usr\/bin; refusing to write through it/ },
    { name: 'a link at /sbin', spec: () => tarball({ links: [{ path: '/sbin', target: 'bin/demo' }] }), error: /link \/sbin is a symlink to the directory usr\/sbin; refusing to replace it/ },
    { name: 'a link under /bin', spec: () => tarball({ links: [{ path: '/bin/demo', target: 'bin/demo' }] }), error: /link \/bin\/demo goes through the symlink \/bin -> usr\/bin/ },
    { name: 'install.dir /lib/demo', spec: () => tarball({ dir: '/lib/demo' }), error: /install\.dir \/lib\/demo goes through the symlink \/lib -> usr\/lib/ },
    { name: 'install.dir /bin itself', spec: () => tarball({ dir: '/bin' }), error: /install\.dir \/bin is a symlink to usr\/bin; refusing to write through it/ },
    { name: 'a link over a link it did not make (usr/bin/python3 -> python3.11)', spec: () => tarball({ links: [{ path: '/usr/bin/python3', target: 'bin/demo' }] }), error: /\/usr\/bin\/python3 is a link to python3\.11, which this agent did not make; refusing to replace it/ },
  ];
  for (const c of cases) {
    it(`refuses ${c.name} before anything is written`, async () => {
      const root = mergedUsrRoot();
      const work = tempDir('work');
      const manifests = path.join(work, 'manifests');
      writeManifest(manifests, 'demo.yaml', componentManifest('demo', c.spec() ));
      const before = { usr: listing(path.join(root, 'usr/bin')), lib: listing(path.join(root, 'usr/lib')), sbin: listing(path.join(root, 'usr/sbin')) };
      const plan = await agent('plan', { root, manifests, config: writeConfig(work) });
      assert.match(plan.stdout, c.error, plan.stdout + plan.stderr);
      const r = await agent('apply', { root, manifests, config: writeConfig(work) });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stdout, c.error);
      for (const [link, target] of [['bin', 'usr/bin'], ['lib', 'usr/lib'], ['sbin', 'usr/sbin']] as const) {
        assert.ok(lstatSync(path.join(root, link)).isSymbolicLink(), `${link} is still a link`);
        assert.equal(readlinkSync(path.join(root, link)), target);
      }
      assert.deepEqual({ usr: listing(path.join(root, 'usr/bin')), lib: listing(path.join(root, 'usr/lib')), sbin: listing(path.join(root, 'usr/sbin')) }, before, 'nothing written through the links');
      assert.equal(existsSync(path.join(root, 'opt')), false);
      assert.equal(readlinkSync(path.join(root, 'usr/bin/python3')), 'python3.11');
    });
  }
});

describe('--root is a jail', () => {
  const files = componentManifest('conf', { component: 'conf', version: '1.0.0', source: { type: 'none' }, files: [{ path: '/etc/conf.d/a', content: 'a\n' }] });
  const escapes: { name: string; plant: (root: string, outside: string) => void; error: RegExp }[] = [
    {
      name: 'the state dir is an absolute link to a directory outside the root',
      plant: (root, outside) => {
        mkdirSync(path.join(root, 'var/lib'), { recursive: true });
        symlinkSync(outside, path.join(root, 'var/lib/kubenode'));
      },
      error: /\/var\/lib\/kubenode is a symlink to \S+, which leads outside the root/,
    },
    {
      name: 'the state dir is a relative link climbing out of the root',
      plant: (root, outside) => {
        mkdirSync(path.join(root, 'var/lib'), { recursive: true });
        symlinkSync(path.relative(path.join(root, 'var/lib'), outside), path.join(root, 'var/lib/kubenode'));
      },
      error: /\/var\/lib\/kubenode is a symlink to \S+, which leads outside the root/,
    },
    {
      name: '/run is the absolute link /run (the machine\'s own)',
      plant: (root, outside) => {
        symlinkSync(outside, path.join(root, 'run'));
      },
      error: /\/run is a symlink to \S+, which leads outside the root/,
    },
  ];
  for (const e of escapes) {
    it(`writes nothing outside when ${e.name}`, async () => {
      const root = makeSandbox();
      const outside = tempDir('outside');
      e.plant(root, outside);
      const work = tempDir('work');
      const manifests = path.join(work, 'manifests');
      writeManifest(manifests, 'conf.yaml', files);
      const r = await agent('apply', { root, manifests, config: writeConfig(work) });
      assert.notEqual(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout + r.stderr, e.error);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'one line, no stack');
      assert.deepEqual(readdirSync(outside), [], 'nothing written outside the root');
    });
  }
});
