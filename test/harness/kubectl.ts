// The real kubectl, for what users type: upstream's, built by test/apiserver/build.sh at the
// apiserver's release.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { kubectlPath } from './binaries.ts';

export interface KubectlOptions {
  /** --kubeconfig; required unless args carry their own connection flags. */
  kubeconfig?: string;
  /** Written to kubectl's stdin (for `-f -`). */
  input?: string;
  /** Killed (SIGKILL) after this. Default 60 s. */
  timeoutMs?: number;
  /** Working directory (for relative paths such as `-k deploy/`). Default: the test's. */
  cwd?: string;
  /** Added to (and overriding) the test's environment; PATH here decides which kubectl plugins it finds. */
  env?: NodeJS.ProcessEnv;
}

export interface KubectlResult {
  /** Exit code; null when killed. */
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs kubectl ARGS and resolves with its exit code and output; never rejects on a non-zero exit. */
export async function kubectl(args: readonly string[], options: KubectlOptions = {}): Promise<KubectlResult> {
  const bin = await kubectlPath();
  const full = options.kubeconfig === undefined ? [...args] : [`--kubeconfig=${options.kubeconfig}`, ...args];
  return new Promise((resolve, reject) => {
    // kubectl caches discovery under ~/.kube/cache by default: keep it next to the kubeconfig
    // (the test cluster's directory) so nothing is written outside the test's directories, and
    // no KUBECONFIG of the machine's user leaks in.
    const cacheDir = options.kubeconfig === undefined ? scratchCacheDir() : join(dirname(options.kubeconfig), '.kubectl-cache');
    const env = { ...process.env, KUBECONFIG: '', KUBECACHEDIR: cacheDir, ...options.env };
    const child = spawn(bin, full, { cwd: options.cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

let scratch: string | undefined;
function scratchCacheDir(): string {
  if (scratch === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'kubenode-kubectl-'));
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    scratch = dir;
  }
  return scratch;
}
