// The controller's container image (scripts/build-image.ts, an OCI image layout in dist/image):
// a valid layout by the tools that read them (skopeo, umoci), digests that match, and an
// executable that runs `version` with nothing but the image's filesystem — its own loader and
// libraries, found through --library-path, never the machine's (checked with LD_DEBUG).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { binaryName, SEA_ARCHES } from '../../scripts/build-sea.ts';
import { IMAGE_ARCHES, imageRef } from '../../scripts/build-image.ts';
import { packageVersion } from '../../scripts/package.ts';
import { artifact, exec, seaBinary, type Result } from './artifacts.ts';

const version = packageVersion();
const layout = () => artifact('image/index.json', 'npm run package').replace(/\/index\.json$/, '');

function ok(r: Result, what: string): string {
  assert.equal(r.code, 0, `${what} failed:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string };
  annotations?: Record<string, string>;
}

function blob(d: Descriptor): Buffer {
  const data = readFileSync(join(layout(), 'blobs', 'sha256', d.digest.replace(/^sha256:/, '')));
  assert.equal(data.length, d.size, `${d.digest} size`);
  assert.equal(`sha256:${createHash('sha256').update(data).digest('hex')}`, d.digest, `${d.digest} content`);
  return data;
}

describe('container image (OCI layout)', () => {
  let scratch: string;
  before(() => {
    scratch = mkdtempSync(join(tmpdir(), 'kubenode-image-test-'));
  });
  after(() => rmSync(scratch, { recursive: true, force: true }));

  test('index.json names a multi-arch index and each arch; every blob matches its digest and size', () => {
    assert.deepEqual(JSON.parse(readFileSync(join(layout(), 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
    const index = JSON.parse(readFileSync(join(layout(), 'index.json'), 'utf8')) as { manifests: Descriptor[] };
    const refs = index.manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name']);
    assert.deepEqual(refs, [imageRef(version), ...SEA_ARCHES.map((a) => imageRef(version, a))]);
    const multi = JSON.parse(blob(index.manifests[0]!).toString()) as { manifests: Descriptor[] };
    assert.deepEqual(multi.manifests.map((m) => m.platform), SEA_ARCHES.map((a) => ({ architecture: IMAGE_ARCHES[a].oci, os: 'linux' })));
    const referenced = new Set<string>([index.manifests[0]!.digest]);
    for (const m of multi.manifests) {
      referenced.add(m.digest);
      const manifest = JSON.parse(blob(m).toString()) as { config: Descriptor; layers: Descriptor[] };
      const config = JSON.parse(blob(manifest.config).toString()) as { architecture: string; config: { User: string; Entrypoint: string[] }; rootfs: { diff_ids: string[] } };
      assert.equal(config.architecture, m.platform?.architecture);
      assert.equal(config.config.User, '65532:65532');
      assert.deepEqual(config.config.Entrypoint, ['/usr/bin/kubenode-agent']);
      assert.equal(manifest.layers.length, 1);
      const tar = gunzipSync(blob(manifest.layers[0]!));
      assert.equal(`sha256:${createHash('sha256').update(tar).digest('hex')}`, config.rootfs.diff_ids[0], 'diff_id is the uncompressed layer');
      referenced.add(manifest.config.digest).add(manifest.layers[0]!.digest);
    }
    // Nothing unreferenced left in the layout.
    assert.deepEqual(readdirSync(join(layout(), 'blobs', 'sha256')).sort(), [...referenced].map((d) => d.slice(7)).sort());
  });

  test('skopeo reads the multi-arch image and each arch', () => {
    const raw = JSON.parse(ok(exec('skopeo', ['inspect', '--raw', `oci:${layout()}:${imageRef(version)}`]), 'skopeo inspect --raw')) as { manifests: Descriptor[] };
    assert.equal(raw.manifests.length, SEA_ARCHES.length);
    for (const arch of SEA_ARCHES) {
      const info = JSON.parse(ok(exec('skopeo', ['inspect', `oci:${layout()}:${imageRef(version, arch)}`]), `skopeo inspect ${arch}`)) as { Architecture: string; Labels: Record<string, string> };
      assert.equal(info.Architecture, IMAGE_ARCHES[arch].oci);
      assert.equal(info.Labels['org.opencontainers.image.version'], version);
    }
  });

  for (const arch of SEA_ARCHES) {
    test(`${arch}: umoci unpacks it, and the executable runs version with only the image's loader and libraries`, () => {
      const bundle = join(scratch, arch);
      ok(exec('umoci', ['unpack', '--rootless', '--image', `${layout()}:${imageRef(version, arch)}`, bundle]), 'umoci unpack');
      const root = join(bundle, 'rootfs');
      const spec = IMAGE_ARCHES[arch];
      const bin = join(root, 'usr/bin/kubenode-agent');
      assert.deepEqual(readFileSync(bin), readFileSync(seaBinary(arch)), `${binaryName(arch)} unchanged in the image`);
      // The executable's PT_INTERP resolves inside the image.
      assert.equal(readlinkSync(join(root, spec.interp)).startsWith('/'), false);
      const loader = join(root, spec.libTo, spec.loader);
      const args = [loader, '--library-path', join(root, spec.libTo), bin, 'version'];
      const [file, ...rest] = arch === 'x64' ? args : ['qemu-aarch64-static', ...args];
      const r = exec(file!, rest, { LD_DEBUG: 'libs' });
      assert.match(ok(r, 'version'), new RegExp(`^kubenode-agent ${version.replaceAll('.', '\\.')} .*linux/${arch}\\)`));
      const loaded = [...r.stderr.matchAll(/calling init: (\S+)/g)].map((m) => m[1]!);
      assert.ok(loaded.length >= 5, r.stderr.slice(0, 2000));
      for (const lib of loaded) assert.ok(lib.startsWith(root), `${lib} is not from the image`);
    });
  }
});
