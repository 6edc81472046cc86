// A real kube-controller-manager (upstream's, same release as the apiserver) against a test
// cluster, started on request: the garbage collector, the disruption controller (PDB status), the
// CSR signer (the cluster CA signs) and approver, and the namespace controller. It authenticates
// as system:kube-controller-manager and runs each controller as its own kube-system service
// account (--use-service-account-credentials), so the bootstrap RBAC policy applies as in kubeadm.
import { mkdir } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { controllerManagerBinary } from './binaries.ts';
import { DaemonStartError, freePort, startDaemon } from './process.ts';
import type { Daemon } from './process.ts';

/** Controller names as kube-controller-manager --controllers takes them (v1.34). */
export const DEFAULT_CONTROLLERS = [
  'garbage-collector-controller',
  'disruption-controller',
  'certificatesigningrequest-signing-controller',
  'certificatesigningrequest-approving-controller',
  'certificatesigningrequest-cleaner-controller',
  'namespace-controller',
] as const;

export interface ControllerManagerOptions {
  /** --controllers; default DEFAULT_CONTROLLERS. */
  controllers?: readonly string[];
  /** Extra flags, after the defaults (later flags win). */
  args?: readonly string[];
  /** Until /healthz answers ok. Default 120 s. */
  readyTimeoutMs?: number;
}

/** What the harness needs to know of the cluster it runs against. */
export interface ControllerManagerTarget {
  dir: string;
  caFile: string;
  caKeyFile: string;
  serviceAccountKeyFile: string;
  kubeconfig: string;
}

export interface ControllerManager {
  readonly pid: number | undefined;
  readonly logFile: string;
  /** https://127.0.0.1:PORT (self-signed serving certificate): /healthz, /metrics. */
  readonly url: string;
  stop(): Promise<void>;
}

export async function startControllerManager(target: ControllerManagerTarget, options: ControllerManagerOptions = {}): Promise<ControllerManager> {
  const bin = await controllerManagerBinary();
  const certDir = join(target.dir, 'controller-manager');
  await mkdir(certDir, { recursive: true, mode: 0o700 });
  const logFile = join(target.dir, 'controller-manager.log');
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const url = `https://127.0.0.1:${port}`;
    const args = [
      `--kubeconfig=${target.kubeconfig}`,
      `--authentication-kubeconfig=${target.kubeconfig}`,
      `--authorization-kubeconfig=${target.kubeconfig}`,
      '--use-service-account-credentials=true',
      `--controllers=${(options.controllers ?? DEFAULT_CONTROLLERS).join(',')}`,
      `--cluster-signing-cert-file=${target.caFile}`,
      `--cluster-signing-key-file=${target.caKeyFile}`,
      `--root-ca-file=${target.caFile}`,
      `--service-account-private-key-file=${target.serviceAccountKeyFile}`,
      // One instance per test cluster: nothing to elect, and no Lease to wait for at start.
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      `--secure-port=${port}`,
      `--cert-dir=${certDir}`,
      '--profiling=false',
      ...(options.args ?? []),
    ];
    try {
      const daemon: Daemon = await startDaemon({
        name: 'kube-controller-manager',
        bin,
        args,
        logFile,
        ready: () => healthz(url),
        readyTimeoutMs: options.readyTimeoutMs ?? 120_000,
      });
      return {
        logFile,
        url,
        get pid() {
          return daemon.pid;
        },
        async stop() {
          const { code, signal } = await daemon.stop();
          if (code !== 0 && signal !== 'SIGTERM') throw new Error(`kube-controller-manager ended with ${signal ?? `code ${code}`}; see ${logFile}`);
        },
      };
    } catch (err) {
      if (attempt >= 3 || !(err instanceof DaemonStartError) || !/address already in use/.test(err.log)) throw err;
    }
  }
}

// /healthz is in kube-controller-manager's --authorization-always-allow-paths; its serving
// certificate is self-signed in --cert-dir, which is all a loopback readiness probe needs.
function healthz(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpsRequest(`${url}/healthz`, { rejectUnauthorized: false, agent: false, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}
