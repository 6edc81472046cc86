import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
/** The bundle `npm run build` makes; the test command builds it first. */
export const AGENT = fileURLToPath(new URL('../../dist/kubenode-agent.cjs', import.meta.url));
export const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built agent as a child process with the Node that runs the tests. */
export function runAgent(args: readonly string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [AGENT, ...args], {
      cwd: options.cwd ?? REPO,
      env: { ...process.env, NO_COLOR: '1', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`agent ${args.join(' ')} did not finish in ${options.timeoutMs ?? 60_000}ms\n${stderr}`));
    }, options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * A new temp directory holding what the packages install for kubectl: an executable named
 * kubectl-kubenode that runs the built CLI (exec -a keeps the plugin name in argv0). Put it first
 * on kubectl's PATH; the caller removes it.
 */
export function kubectlPluginDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kubenode-plugin-'));
  writeFileSync(join(dir, 'kubectl-kubenode'), `#!/bin/bash\nexec -a kubectl-kubenode ${process.execPath} ${AGENT} "$@"\n`, { mode: 0o755 });
  return dir;
}

/**
 * Writes DIR/kubeconfig: valid, for an apiserver that is not there, so a command loads and uses
 * the Kubernetes client and its call is refused. Returns the file.
 */
export function unreachableKubeconfig(dir: string): string {
  const file = join(dir, 'kubeconfig');
  writeFileSync(file, `apiVersion: v1
kind: Config
clusters: [{ name: c, cluster: { server: 'https://127.0.0.1:9' } }]
users: [{ name: u, user: { token: t } }]
contexts: [{ name: c, context: { cluster: c, user: u } }]
current-context: c
`);
  return file;
}
