// The test cluster's Go-built binaries: test/apiserver/build.sh builds each once per source hash
// into ~/.cache/kubenode-agent (flock-serialised across processes); here each is asked for at
// most once per test process. An environment variable names a prebuilt one instead.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BUILD_SH = fileURLToPath(new URL('../apiserver/build.sh', import.meta.url));

export type HarnessBinary = 'kubenode-testcluster' | 'kube-controller-manager' | 'kubectl';

const ENV: Record<HarnessBinary, string> = {
  'kubenode-testcluster': 'KUBENODE_TESTCLUSTER_BIN',
  'kube-controller-manager': 'KUBENODE_CONTROLLER_MANAGER_BIN',
  kubectl: 'KUBENODE_KUBECTL_BIN',
};

/** A cold build compiles a large part of Kubernetes. */
export const DEFAULT_BUILD_TIMEOUT_MS = 60 * 60_000;

const builds = new Map<HarnessBinary, Promise<string>>();

/** Path of one harness binary: its environment variable, or build.sh's output. */
export function harnessBinary(name: HarnessBinary, buildTimeoutMs = DEFAULT_BUILD_TIMEOUT_MS): Promise<string> {
  const fromEnv = process.env[ENV[name]];
  if (fromEnv) return Promise.resolve(fromEnv);
  let build = builds.get(name);
  if (build === undefined) {
    build = runBuild(name, buildTimeoutMs).catch((err: unknown) => {
      builds.delete(name);
      throw err;
    });
    builds.set(name, build);
  }
  return build;
}

/** kube-apiserver + etcd in one process ($KUBENODE_TESTCLUSTER_BIN overrides). */
export function testClusterBinary(buildTimeoutMs = DEFAULT_BUILD_TIMEOUT_MS): Promise<string> {
  return harnessBinary('kubenode-testcluster', buildTimeoutMs);
}

/** Upstream kube-controller-manager of the apiserver's release ($KUBENODE_CONTROLLER_MANAGER_BIN overrides). */
export function controllerManagerBinary(buildTimeoutMs = DEFAULT_BUILD_TIMEOUT_MS): Promise<string> {
  return harnessBinary('kube-controller-manager', buildTimeoutMs);
}

/** Upstream kubectl of the apiserver's release ($KUBENODE_KUBECTL_BIN overrides). */
export function kubectlPath(buildTimeoutMs = DEFAULT_BUILD_TIMEOUT_MS): Promise<string> {
  return harnessBinary('kubectl', buildTimeoutMs);
}

function runBuild(name: HarnessBinary, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [BUILD_SH, name], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      // A cold build runs for minutes; let the person waiting see why.
      process.stderr.write(d);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const bin = stdout.trim().split('\n').pop() ?? '';
      if (code === 0 && bin !== '') resolve(bin);
      else reject(new Error(`${BUILD_SH} ${name} failed (${signal ?? `exit ${code}`}${signal === 'SIGKILL' ? `, timeout ${timeoutMs}ms` : ''}):\n${tail(stderr)}`));
    });
  });
}

export function tail(text: string, lines = 40): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}
