// Builds the controller's container image without a Docker daemon: an OCI image layout in
// dist/image/ (oci-layout, index.json, blobs/sha256/…) holding one image per arch, each a single
// layer with the single executable and the glibc/libstdc++/libgcc/libatomic shared objects it links,
// taken from Debian's own packages (apt-get download + dpkg -x; for arm64 Debian's *-arm64-cross
// packages, whose files are the arm64 libraries), plus their copyright files.
//
//   node scripts/build-image.ts [--out DIR]      (after scripts/build-sea.ts)
//
// index.json names the multi-arch index <version> and each arch's image <version>-<arch>, so
// `skopeo copy --all oci:dist/image:<version> docker://REGISTRY/kubenode-agent:<version>` pushes
// it and `umoci unpack --image dist/image:<version>-amd64 DIR` unpacks one. Every timestamp is
// SOURCE_DATE_EPOCH, every owner root: the same inputs give the same digests.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { binaryName, SEA_ARCHES, type SeaArch } from './build-sea.ts';
import { renderNotices } from './notices.ts';
import { packageVersion } from './package.ts';

const ROOT = resolve(import.meta.dirname, '..');
const DEB_CACHE = join(ROOT, 'node_modules', '.cache', 'kubenode-image', 'debs');

interface ArchSpec {
  oci: string;
  /** Debian packages holding the libraries (gcc-12-*base: the copyright file libstdc++ and libgcc point to). */
  debs: string[];
  /** Where those packages put the libraries, and where the image has them. */
  libFrom: string[];
  libTo: string;
  /** PT_INTERP of the executable, made a link to the loader in libTo. */
  interp: string;
  loader: string;
}

export const IMAGE_ARCHES: Record<SeaArch, ArchSpec> = {
  x64: {
    oci: 'amd64',
    debs: ['libc6', 'libstdc++6', 'libgcc-s1', 'libatomic1', 'gcc-12-base'],
    libFrom: ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu'],
    libTo: 'lib/x86_64-linux-gnu',
    interp: 'lib64/ld-linux-x86-64.so.2',
    loader: 'ld-linux-x86-64.so.2',
  },
  arm64: {
    oci: 'arm64',
    debs: ['libc6-arm64-cross', 'libstdc++6-arm64-cross', 'libgcc-s1-arm64-cross', 'libatomic1-arm64-cross', 'gcc-12-cross-base'],
    libFrom: ['usr/aarch64-linux-gnu/lib'],
    libTo: 'lib/aarch64-linux-gnu',
    interp: 'lib/ld-linux-aarch64.so.1',
    loader: 'ld-linux-aarch64.so.1',
  },
};

export const imageRef = (version: string, arch?: SeaArch) => (arch === undefined ? version : `${version}-${IMAGE_ARCHES[arch].oci}`);

function run(file: string, args: string[], options: { cwd?: string } = {}): string {
  return execFileSync(file, args, { cwd: options.cwd ?? ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
}

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/** The .deb of each package, downloaded once into node_modules/.cache (apt-get download: no install, no root needed). */
function debFiles(packages: string[]): string[] {
  mkdirSync(DEB_CACHE, { recursive: true });
  const wanted = packages.map((p) => {
    const version = run('apt-cache', ['policy', p]).match(/Candidate:\s*(\S+)/)?.[1];
    if (!version || version === '(none)') throw new Error(`apt-cache policy ${p}: no candidate version (is Debian's apt configured?)`);
    return { p, file: `${p}_${version.replace(/^\d+:/, '').replaceAll(':', '%3a')}_` };
  });
  const have = () => readdirSync(DEB_CACHE);
  const missing = wanted.filter((w) => !have().some((f) => f.startsWith(w.file)));
  if (missing.length > 0) run('apt-get', ['download', '-qq', ...missing.map((m) => m.p)], { cwd: DEB_CACHE });
  return wanted.map((w) => {
    const f = have().find((name) => name.startsWith(w.file) && name.endsWith('.deb'));
    if (f === undefined) throw new Error(`apt-get download ${w.p} left no ${w.file}*.deb in ${DEB_CACHE}`);
    return join(DEB_CACHE, f);
  });
}

/** DT_NEEDED of an ELF file, read with binutils' objdump (any arch). */
function needed(file: string): string[] {
  return [...run('objdump', ['-p', file]).matchAll(/^\s*NEEDED\s+(\S+)$/gm)].map((m) => m[1]!);
}

/** Lays out the image's filesystem for one arch under root. */
function rootfs(arch: SeaArch, binary: string, root: string): { debs: string[] } {
  const spec = IMAGE_ARCHES[arch];
  const debs = debFiles(spec.debs);
  const extracted = mkdtempSync(join(tmpdir(), 'kubenode-image-debs-'));
  try {
    for (const deb of debs) run('dpkg-deb', ['-x', deb, extracted]);
    mkdirSync(join(root, 'usr/bin'), { recursive: true });
    copyFileSync(binary, join(root, 'usr/bin/kubenode-agent'));
    chmodSync(join(root, 'usr/bin/kubenode-agent'), 0o755);
    const libDir = join(root, spec.libTo);
    mkdirSync(libDir, { recursive: true });
    const find = (name: string): string => {
      for (const dir of spec.libFrom) {
        const p = join(extracted, dir, name);
        if (existsSync(p)) return p;
      }
      throw new Error(`${name}, needed by the ${arch} executable, is in none of ${spec.debs.join(', ')}`);
    };
    // The executable's DT_NEEDED closure, each library as a regular file under its soname.
    const queue = needed(binary);
    const done = new Set<string>();
    while (queue.length > 0) {
      const name = queue.shift()!;
      if (done.has(name)) continue;
      done.add(name);
      const src = find(name);
      copyFileSync(realpathSync(src), join(libDir, name));
      chmodSync(join(libDir, name), 0o755);
      queue.push(...needed(src));
    }
    if (!done.has(spec.loader)) {
      copyFileSync(realpathSync(find(spec.loader)), join(libDir, spec.loader));
      chmodSync(join(libDir, spec.loader), 0o755);
    }
    mkdirSync(join(root, spec.interp, '..'), { recursive: true });
    // Relative, so it resolves inside the image however its root is reached.
    symlinkSync(relative(join(root, spec.interp, '..'), join(libDir, spec.loader)), join(root, spec.interp));
    // The libraries' licences travel with them.
    for (const pkg of spec.debs) {
      const copyright = join(extracted, 'usr/share/doc', pkg, 'copyright');
      if (!existsSync(copyright)) throw new Error(`${pkg} has no /usr/share/doc/${pkg}/copyright`);
      mkdirSync(join(root, 'usr/share/doc', pkg), { recursive: true });
      copyFileSync(realpathSync(copyright), join(root, 'usr/share/doc', pkg, 'copyright'));
    }
    mkdirSync(join(root, 'usr/share/doc/kubenode-agent'), { recursive: true });
    copyFileSync(join(ROOT, 'LICENSE'), join(root, 'usr/share/doc/kubenode-agent/LICENSE'));
    writeFileSync(join(root, 'usr/share/doc/kubenode-agent/THIRD-PARTY-NOTICES'), renderNotices(ROOT));
  } finally {
    rmSync(extracted, { recursive: true, force: true });
  }
  mkdirSync(join(root, 'etc'), { recursive: true });
  // The Deployment runs as 65532 (runAsNonRoot needs a numeric user); names for humans and libc.
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/:/sbin/nologin\n');
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\nnonroot:x:65532:\n');
  writeFileSync(join(root, 'etc/nsswitch.conf'), 'passwd: files\ngroup: files\nhosts: files dns\n');
  mkdirSync(join(root, 'tmp'));
  chmodSync(join(root, 'tmp'), 0o1777);
  chmodSync(root, 0o755); // mkdtemp's 0700 would become the image's /
  return { debs: debs.map((d) => basename(d)) };
}

interface Blob {
  mediaType: string;
  digest: string;
  size: number;
}

function writeBlob(layout: string, mediaType: string, data: Buffer | string): Blob {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
  const hex = sha256(buf);
  writeFileSync(join(layout, 'blobs', 'sha256', hex), buf);
  return { mediaType, digest: `sha256:${hex}`, size: buf.length };
}

export function buildImage(out: string): string {
  const version = packageVersion();
  const epoch = process.env.SOURCE_DATE_EPOCH ?? run('git', ['log', '-1', '--format=%ct']).trim();
  const created = new Date(Number(epoch) * 1000).toISOString();
  const layout = join(out, 'image');
  rmSync(layout, { recursive: true, force: true });
  mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
  const manifests: (Blob & { platform: { architecture: string; os: string }; annotations: Record<string, string> })[] = [];
  for (const arch of SEA_ARCHES) {
    const binary = join(out, binaryName(arch));
    if (!existsSync(binary)) throw new Error(`${binary} is missing: run scripts/build-sea.ts first`);
    const root = mkdtempSync(join(tmpdir(), 'kubenode-image-root-'));
    try {
      const { debs } = rootfs(arch, binary, root);
      // GNU tar's reproducible-archive options: sorted names, root owner, fixed times, no atime/ctime.
      const tar = execFileSync('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', `--mtime=@${epoch}`, '--format=posix', '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime', '-C', root, '-cf', '-', '.'], { maxBuffer: 1 << 30 });
      const layer = writeBlob(layout, 'application/vnd.oci.image.layer.v1.tar+gzip', gzipSync(tar, { level: 9 }));
      const config = writeBlob(
        layout,
        'application/vnd.oci.image.config.v1+json',
        JSON.stringify({
          created,
          architecture: IMAGE_ARCHES[arch].oci,
          os: 'linux',
          config: {
            User: '65532:65532',
            Entrypoint: ['/usr/bin/kubenode-agent'],
            Cmd: ['controller', '--in-cluster'],
            Env: ['PATH=/usr/bin'],
            WorkingDir: '/',
            Labels: { 'org.opencontainers.image.version': version, 'org.opencontainers.image.licenses': 'Apache-2.0', 'io.kubenode.base-libraries': debs.join(' ') },
          },
          rootfs: { type: 'layers', diff_ids: [`sha256:${sha256(tar)}`] },
          history: [{ created, created_by: `scripts/build-image.ts: ${binaryName(arch)} + ${debs.join(' ')}` }],
        }),
      );
      const manifest = writeBlob(
        layout,
        'application/vnd.oci.image.manifest.v1+json',
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config,
          layers: [layer],
          annotations: { 'org.opencontainers.image.created': created, 'org.opencontainers.image.version': version },
        }),
      );
      manifests.push({ ...manifest, platform: { architecture: IMAGE_ARCHES[arch].oci, os: 'linux' }, annotations: { 'org.opencontainers.image.ref.name': imageRef(version, arch) } });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }
  const index = writeBlob(
    layout,
    'application/vnd.oci.image.index.v1+json',
    JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: manifests.map(({ annotations: _a, ...m }) => m) }),
  );
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(layout, 'index.json'),
    JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ ...index, annotations: { 'org.opencontainers.image.ref.name': imageRef(version) } }, ...manifests] }),
  );
  return layout;
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { out: { type: 'string', default: 'dist' } } });
  console.log(buildImage(resolve(ROOT, values.out)));
}
