// Builds the deb and rpm of each arch from the single executables into dist/, and rewrites
// dist/SHA256SUMS to cover binaries and packages.
//
//   node scripts/package.ts [--out DIR]      (after scripts/build-sea.ts)
//
// nfpm writes both formats from packaging/nfpm.yaml; it is built from the Go module proxy at a
// pinned version into node_modules/.cache on first use. SOURCE_DATE_EPOCH (default: the commit's
// time) fixes every timestamp, so the packages are reproducible too.
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { binaryName, SEA_ARCHES, type SeaArch } from './build-sea.ts';
import { renderManPage } from './man-page.ts';
import { renderNotices } from './notices.ts';

const ROOT = resolve(import.meta.dirname, '..');
// Later nfpm releases need modules (go.digitalxero.dev/…) that the module proxy here refuses.
const NFPM = 'github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.0';
const TOOLS = join(ROOT, 'node_modules', '.cache', 'kubenode-tools');

export const FORMATS = ['deb', 'rpm'] as const;
export type Format = (typeof FORMATS)[number];

// Each format's own name for the arch; nfpm takes Debian's and translates for rpm.
const ARCH_NAMES: Record<SeaArch, { deb: string; rpm: string }> = {
  x64: { deb: 'amd64', rpm: 'x86_64' },
  arm64: { deb: 'arm64', rpm: 'aarch64' },
};
const RELEASE = '1'; // packaging/nfpm.yaml's release
const execFileAsync = promisify(execFile);

export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

export function packageName(format: Format, arch: SeaArch, version = packageVersion()): string {
  return format === 'deb'
    ? `kubenode-agent_${version}-${RELEASE}_${ARCH_NAMES[arch].deb}.deb`
    : `kubenode-agent-${version}-${RELEASE}.${ARCH_NAMES[arch].rpm}.rpm`;
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv = {}): string {
  return execFileSync(file, args, { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

function nfpm(): string {
  const bin = join(TOOLS, NFPM.replace(/.*@/, 'nfpm-'));
  if (!existsSync(bin)) {
    const go = existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : 'go';
    const gobin = join(TOOLS, 'gobin');
    run(go, ['install', NFPM], { GOBIN: gobin });
    renameSync(join(gobin, 'nfpm'), bin);
  }
  return bin;
}

function sourceDateEpoch(): string {
  if (process.env.SOURCE_DATE_EPOCH !== undefined) return process.env.SOURCE_DATE_EPOCH;
  try {
    return run('git', ['log', '-1', '--format=%ct']).trim();
  } catch {
    return '0'; // a source tarball: no commit to date from
  }
}

// gzip -9n: no name or time in the header (Node writes mtime 0), so the packages stay reproducible.
const gz = (text: string) => gzipSync(text, { level: 9 });

/** Debian's machine-readable copyright file (DEP-5) for the deb. */
function copyright(): string {
  return [
    'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/',
    'Upstream-Name: kubenode-agent',
    '',
    'Files: *',
    'Copyright: 2026 KubeNode authors',
    'License: Apache-2.0',
    ' On Debian systems, the full text of the Apache License, Version 2.0 is in',
    ' /usr/share/common-licenses/Apache-2.0.',
    ' .',
    ' The executable also contains Node.js and npm packages under their own licences,',
    ' reproduced in full in /usr/share/doc/kubenode-agent/THIRD-PARTY-NOTICES.gz.',
    '',
  ].join('\n');
}

/** The files nfpm.yaml takes from ${KUBENODE_GENERATED}: man page, notices, copyright, README. */
function writeGenerated(dir: string, version: string, epoch: string): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  // The help text is the same on both arches; the x64 binary runs here without emulation.
  const binary = join(dir, '..', binaryName('x64'));
  writeFileSync(join(dir, 'kubenode-agent.1.gz'), gz(renderManPage({ binary, version, epoch: Number(epoch) })));
  const notices = renderNotices(ROOT);
  writeFileSync(join(dir, 'THIRD-PARTY-NOTICES'), notices);
  writeFileSync(join(dir, 'THIRD-PARTY-NOTICES.gz'), gz(notices));
  writeFileSync(join(dir, 'README.md.gz'), gz(readFileSync(join(ROOT, 'README.md'), 'utf8')));
  writeFileSync(join(dir, 'copyright'), copyright());
}

export async function buildPackages(out: string): Promise<string[]> {
  const tool = nfpm();
  const version = packageVersion();
  const epoch = sourceDateEpoch();
  const generated = join(out, 'package-files');
  writeGenerated(generated, version, epoch);
  const jobs: { target: string; args: string[]; env: NodeJS.ProcessEnv }[] = [];
  for (const arch of SEA_ARCHES) {
    const binary = join(out, binaryName(arch));
    if (!existsSync(binary)) throw new Error(`${binary} is missing: run scripts/build-sea.ts first`);
    for (const format of FORMATS) {
      const target = join(out, packageName(format, arch, version));
      rmSync(target, { force: true });
      jobs.push({
        target,
        args: ['package', '--config', 'packaging/nfpm.yaml', '--packager', format, '--target', target],
        env: { NFPM_ARCH: ARCH_NAMES[arch].deb, KUBENODE_BINARY: binary, KUBENODE_VERSION: version, KUBENODE_GENERATED: generated, SOURCE_DATE_EPOCH: epoch },
      });
    }
  }
  // nfpm's xz is single-threaded: one package per core.
  const queue = [...jobs];
  const worker = async () => {
    for (let job = queue.shift(); job !== undefined; job = queue.shift()) {
      await execFileAsync(tool, job.args, { cwd: ROOT, env: { ...process.env, ...job.env }, maxBuffer: 16 << 20 });
    }
  };
  await Promise.all(Array.from({ length: Math.min(availableParallelism(), jobs.length) }, worker));
  const made = jobs.map((j) => j.target);
  const artifacts = [...SEA_ARCHES.map((arch) => join(out, binaryName(arch))), ...made];
  writeFileSync(
    join(out, 'SHA256SUMS'),
    artifacts.map((file) => `${createHash('sha256').update(readFileSync(file)).digest('hex')}  ${relative(out, file)}\n`).join(''),
  );
  return made;
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { out: { type: 'string', default: 'dist' } } });
  for (const file of await buildPackages(resolve(ROOT, values.out))) console.log(relative(process.cwd(), file));
}
