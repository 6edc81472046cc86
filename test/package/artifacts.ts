// Shared by the package tests: where the built artifacts are, and how to run them.
// The artifacts come from `npm run build`, `npm run build:sea` and `npm run package`, which the
// test command runs first; a missing one fails the test with the command that makes it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ARM64_SYSROOT, binaryName, officialNode, type SeaArch } from '../../scripts/build-sea.ts';
import { FIXTURES, REPO } from '../helpers/cli.ts';

export const DIST = join(REPO, 'dist');

export function artifact(file: string, madeBy: string): string {
  const path = join(DIST, file);
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`${madeBy}\` first`);
  return path;
}

export function seaBinary(arch: SeaArch): string {
  return artifact(binaryName(arch), 'npm run build:sea');
}

export function bundle(): string {
  return artifact('kubenode-agent.cjs', 'npm run build');
}

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function exec(file: string, args: readonly string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): Result {
  const r = spawnSync(file, args, {
    cwd: REPO,
    env: { ...process.env, NO_COLOR: '1', ...env },
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error !== undefined) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * The agent two ways on one arch: as the single executable, and as the bundle run by the official
 * node of that arch (arm64 both under qemu-user, so the comparison holds process.arch fixed).
 */
export function agentRunners(arch: SeaArch): { binary: (args: readonly string[], env?: NodeJS.ProcessEnv) => Result; bundle: (args: readonly string[], env?: NodeJS.ProcessEnv) => Result } {
  const sea = seaBinary(arch);
  const js = bundle();
  if (arch === 'x64') {
    return {
      binary: (args, env) => exec(sea, args, env),
      bundle: (args, env) => exec(process.execPath, [js, ...args], env),
    };
  }
  const qemu = (args: readonly string[], env?: NodeJS.ProcessEnv) => exec('qemu-aarch64-static', ['-L', ARM64_SYSROOT, ...args], env);
  const node = officialNode('arm64');
  return {
    binary: (args, env) => qemu([sea, ...args], env),
    bundle: (args, env) => qemu([node, js, ...args], env),
  };
}

// Captured hosts that between them make several detectors report problems, and run in well under
// a second (some scenarios wait out a probe deadline on purpose).
const CHECK_SCENARIOS = ['npd-kernel-5.x', 'pressure-memory', 'storage-disk-full', 'runtime-network-not-ready'];

/** Hosts to run `check --root` on: those of CHECK_SCENARIOS that exist, else any one, else an empty root. */
export function checkRoots(): { name: string; dir: string }[] {
  const hosts = join(FIXTURES, 'hosts');
  const scenarios = existsSync(hosts)
    ? readdirSync(hosts, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort()
    : [];
  const chosen = scenarios.filter((name) => CHECK_SCENARIOS.includes(name));
  if (chosen.length > 0) return chosen.map((name) => ({ name, dir: join(hosts, name) }));
  if (scenarios[0] !== undefined) return [{ name: scenarios[0], dir: join(hosts, scenarios[0]) }];
  return [{ name: 'an empty root', dir: mkdtempSync(join(tmpdir(), 'kubenode-empty-root-')) }];
}

export function sha256Sums(dir: string): Map<string, string> {
  const lines = readFileSync(join(dir, 'SHA256SUMS'), 'utf8').trim().split('\n');
  return new Map(lines.map((line) => {
    const [digest, name] = line.split(/\s+\*?/);
    return [name!, digest!];
  }));
}
