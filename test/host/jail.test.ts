// `--root` is a jail for every writer in src/host: paths are resolved one component at a time
// under the root, links that stay inside are followed, links that lead out are refused by name.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { removeOlderThan, writeInPlace } from '../../src/host/cleanup.ts';
import { makeDir, removePath, renamePath, setModeOwner, swapSymlink, writeFileAtomicOwned } from '../../src/host/files.ts';
import { createHost, type Host } from '../../src/host/host.ts';
import { HostPathError, resolveInRoot } from '../../src/host/jail.ts';
import { writeProbe } from '../../src/host/write-probe.ts';

const temp = (p: string): string => mkdtempSync(path.join(os.tmpdir(), `kubenode-jail-${p}-`));

/** A root whose etc/out is an absolute link out, lib a relative link in, and up a relative link that climbs out. */
function tree(): { root: string; outside: string; host: Host } {
  const root = temp('root');
  const outside = temp('outside');
  writeFileSync(path.join(outside, 'victim'), 'outside\n');
  mkdirSync(path.join(root, 'etc'));
  mkdirSync(path.join(root, 'usr/lib'), { recursive: true });
  symlinkSync(outside, path.join(root, 'etc/out'));
  symlinkSync('usr/lib', path.join(root, 'lib'));
  symlinkSync('../../../../../../../../..', path.join(root, 'etc/up'));
  symlinkSync(path.join(outside, 'victim'), path.join(root, 'etc/victim-link'));
  return { root, outside, host: createHost({ root }) };
}

describe('resolveInRoot', () => {
  it('follows links that stay inside, refuses those that lead out, acts on the link itself when asked', async () => {
    const { root, outside } = tree();
    assert.equal(await resolveInRoot(root, '/lib/x.so', { followFinal: false }), path.join(root, 'usr/lib/x.so'));
    assert.equal(await resolveInRoot(root, '/lib', { followFinal: false }), path.join(root, 'lib'));
    assert.equal(await resolveInRoot(root, '/lib', { followFinal: true }), path.join(root, 'usr/lib'));
    assert.equal(await resolveInRoot(root, '/new/dir/file', { followFinal: true }), path.join(root, 'new/dir/file'));
    assert.equal(await resolveInRoot(root, '/etc/out', { followFinal: false }), path.join(root, 'etc/out'), 'the link itself may be removed or replaced');
    await assert.rejects(resolveInRoot(root, '/etc/out/victim', { followFinal: false }), (err: unknown) => err instanceof HostPathError && err.message.includes(`/etc/out is a symlink to ${outside}, which leads outside the root`));
    await assert.rejects(resolveInRoot(root, '/etc/up/tmp/x', { followFinal: false }), /\/etc\/up is a symlink to \.\.\/.*leads outside the root/);
    await assert.rejects(resolveInRoot(root, '/etc/victim-link', { followFinal: true }), /leads outside the root/);
    assert.equal(await resolveInRoot('/', '/etc/../etc/x', { followFinal: true }), '/etc/x', 'no jail at /');
  });
});

describe('every host writer refuses to write through a link out of the root', () => {
  const writers: { name: string; run: (host: Host) => Promise<unknown> }[] = [
    { name: 'host.writeFileAtomic', run: (h) => h.writeFileAtomic('/etc/out/victim', 'x') },
    { name: 'writeFileAtomicOwned', run: (h) => writeFileAtomicOwned(h, '/etc/out/new', 'x', { mode: 0o644 }) },
    { name: 'makeDir', run: (h) => makeDir(h, '/etc/out/d') },
    { name: 'removePath', run: (h) => removePath(h, '/etc/out/victim') },
    { name: 'renamePath', run: (h) => renamePath(h, '/etc/out/victim', '/etc/stolen') },
    { name: 'setModeOwner (chmod follows the link)', run: (h) => setModeOwner(h, '/etc/victim-link', { mode: 0o777 }) },
    { name: 'swapSymlink', run: (h) => swapSymlink(h, '/etc/out/link', 'x') },
    { name: 'writeInPlace', run: (h) => writeInPlace(h, '/etc/victim-link', 'x') },
    { name: 'removeOlderThan', run: (h) => removeOlderThan(h, '/etc/out', 0, Date.now() + 1e9) },
  ];
  for (const w of writers) {
    it(w.name, async () => {
      const { outside, host } = tree();
      utimesSync(path.join(outside, 'victim'), new Date(0), new Date(0));
      await assert.rejects(w.run(host), HostPathError);
      assert.deepEqual(readdirSync(outside), ['victim']);
      assert.equal(readFileSync(path.join(outside, 'victim'), 'utf8'), 'outside\n');
    });
  }

  it('the write probe reports the refusal instead of writing', async () => {
    const { outside, host } = tree();
    const r = await writeProbe(host, '/etc/out');
    assert.equal(r.ok, false);
    assert.match(r.ok ? '' : r.message, /leads outside the root/);
    assert.deepEqual(readdirSync(outside), ['victim']);
  });

  it('a removal inside the root through an inside link still works', async () => {
    const { root, host } = tree();
    writeFileSync(path.join(root, 'usr/lib/old.so'), 'x');
    await removePath(host, '/lib/old.so');
    assert.deepEqual(readdirSync(path.join(root, 'usr/lib')), []);
  });
});
