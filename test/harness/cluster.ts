// A real kube-apiserver + etcd for tests: test/apiserver builds one Go binary
// that runs both in-process. This file builds it (once per source hash, cached
// across runs), starts it on loopback in a throwaway directory, and tears it
// down; on request it also runs a real kube-controller-manager against it.
// Only node: builtins here so it works before any npm install.
import { readFileSync, rmSync } from 'node:fs';
import { mkdtemp, readFile, rm, unlink } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tail, testClusterBinary } from './binaries.ts';
import { startControllerManager } from './controller-manager.ts';
import type { ControllerManager, ControllerManagerOptions } from './controller-manager.ts';
import { kubectl } from './kubectl.ts';
import type { KubectlOptions, KubectlResult } from './kubectl.ts';
import { startDaemon } from './process.ts';
import type { Daemon } from './process.ts';

export { testClusterBinary } from './binaries.ts';

export interface ClusterOptions {
  /** Agent identities kubenode:agent:node-<i> (group kubenode:agents). Default 40. */
  agents?: number;
  /** Extra kube-apiserver flags, appended after the defaults (later flags win). */
  apiserverArgs?: readonly string[];
  /** How long one start may take to reach /readyz. Default 180 s. */
  readyTimeoutMs?: number;
  /** A cold build compiles all of kube-apiserver. Default 60 min. */
  buildTimeoutMs?: number;
  /** Leave the directory behind on stop() for debugging (also KUBENODE_TESTCLUSTER_KEEP=1). */
  keepDir?: boolean;
  /**
   * Also start a kube-controller-manager once the apiserver is ready (true: the default
   * controllers). Off by default: most tests need no controllers and start faster without.
   * A test that installs CRDs whose objects the garbage collector must see can instead call
   * cluster.startControllerManager() after installing them (the collector rediscovers
   * resource types only every 30 s).
   */
  controllerManager?: boolean | ControllerManagerOptions;
}

/** DIR/ready.json as written by kubenode-testcluster. */
export interface ReadyInfo {
  server: string;
  caFile: string;
  adminToken: string;
  adminKubeconfig: string;
  controllerManagerKubeconfig: string;
  agentsDir: string;
  agents: number;
  etcd: string;
  version: string;
  pid: number;
}

export interface ApiResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface RequestOptions {
  /** Bearer token; defaults to the admin token. Pass '' for an anonymous request. */
  token?: string;
  /** Serialised as JSON unless already a string. */
  body?: unknown;
  headers?: Record<string, string>;
  timeoutMs?: number;
}

export interface Cluster {
  readonly dir: string;
  /** https://127.0.0.1:PORT; stays the same across restart() unless the port was taken meanwhile. */
  readonly server: string;
  readonly caFile: string;
  readonly ca: Buffer;
  readonly adminToken: string;
  readonly adminKubeconfig: string;
  /** e.g. v1.34.4 */
  readonly version: string;
  /** The kubenode-testcluster process, or undefined once stopped. */
  readonly pid: number | undefined;
  readonly logFile: string;
  readonly agents: number;
  agentKubeconfig(i: number): string;
  agentToken(i: number): string;
  agentUser(i: number): string;
  /** An HTTPS request to the apiserver that verifies its certificate against the cluster CA. */
  request(method: string, path: string, options?: RequestOptions): Promise<ApiResponse>;
  /** Runs the real kubectl against this cluster, as the admin unless options.kubeconfig says otherwise. */
  kubectl(args: readonly string[], options?: KubectlOptions): Promise<KubectlResult>;
  /** Starts a kube-controller-manager against this cluster (one at a time). */
  startControllerManager(options?: ControllerManagerOptions): Promise<ControllerManager>;
  /** The running kube-controller-manager, if one was started. */
  readonly controllerManager: ControllerManager | undefined;
  /**
   * Clean stop and start against the same etcd data, certificates and tokens (a controller
   * manager keeps running and reconnects). whileDown runs after the old process has exited and
   * before the new one starts: an outage of the test's choosing, with the old audit log complete.
   */
  restart(options?: { whileDown?: () => Promise<void> }): Promise<void>;
  /** Stops the controller manager, then SIGTERM, wait for exit, remove the directory. Safe to call twice. */
  stop(): Promise<void>;
}

// Clusters still running when the test process exits (a test that threw
// before stop(), say). The binary also gets SIGHUP from the kernel when its
// parent dies, and process.ts's exit hook (registered first: that module is
// evaluated before this one) SIGKILLs it, but only this hook can remove the directory.
const live = new Set<TestCluster>();
process.on('exit', () => {
  for (const c of live) c.removeDirSync();
});

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const bin = await testClusterBinary(options.buildTimeoutMs);
  const dir = await mkdtemp(join(tmpdir(), 'kubenode-testcluster-'));
  const cluster = new TestCluster(bin, dir, options);
  live.add(cluster);
  try {
    await cluster.start();
    const cm = options.controllerManager;
    if (cm !== undefined && cm !== false) await cluster.startControllerManager(cm === true ? {} : cm);
  } catch (err) {
    await cluster.stop().catch(() => {});
    throw err;
  }
  return cluster;
}

class TestCluster implements Cluster {
  readonly dir: string;
  readonly logFile: string;
  readonly agents: number;
  readonly #bin: string;
  readonly #args: string[];
  readonly #readyTimeoutMs: number;
  readonly #keepDir: boolean;
  #daemon: Daemon | undefined;
  #info: ReadyInfo | undefined;
  #ca: Buffer | undefined;
  #agentTokens: string[] | undefined;
  #stopped = false;
  #controllerManager: ControllerManager | undefined;

  constructor(bin: string, dir: string, options: ClusterOptions) {
    this.#bin = bin;
    this.dir = dir;
    this.logFile = join(dir, 'testcluster.log');
    this.agents = options.agents ?? 40;
    this.#args = ['--dir', dir, '--agents', String(this.agents)];
    if (options.apiserverArgs?.length) this.#args.push('--', ...options.apiserverArgs);
    this.#readyTimeoutMs = options.readyTimeoutMs ?? 180_000;
    this.#keepDir = options.keepDir ?? process.env.KUBENODE_TESTCLUSTER_KEEP === '1';
  }

  get server(): string {
    return this.#ready().server;
  }
  get caFile(): string {
    return this.#ready().caFile;
  }
  get ca(): Buffer {
    this.#ca ??= readFileSync(this.caFile);
    return this.#ca;
  }
  get adminToken(): string {
    return this.#ready().adminToken;
  }
  get adminKubeconfig(): string {
    return this.#ready().adminKubeconfig;
  }
  get version(): string {
    return this.#ready().version;
  }
  get pid(): number | undefined {
    return this.#daemon?.pid;
  }

  agentKubeconfig(i: number): string {
    this.#checkAgent(i);
    return join(this.#ready().agentsDir, `node-${i}.kubeconfig`);
  }
  agentToken(i: number): string {
    this.#checkAgent(i);
    this.#agentTokens ??= (JSON.parse(readFileSync(join(this.dir, 'state.json'), 'utf8')) as { agentTokens: string[] }).agentTokens;
    const token = this.#agentTokens[i];
    if (token === undefined) throw new Error(`no token for agent ${i} in ${this.dir}/state.json`);
    return token;
  }
  agentUser(i: number): string {
    this.#checkAgent(i);
    return `kubenode:agent:node-${i}`;
  }

  get controllerManager(): ControllerManager | undefined {
    return this.#controllerManager;
  }

  async startControllerManager(options: ControllerManagerOptions = {}): Promise<ControllerManager> {
    if (this.#controllerManager !== undefined) throw new Error('a kube-controller-manager is already running for this cluster');
    const info = this.#ready();
    this.#controllerManager = await startControllerManager(
      {
        dir: this.dir,
        caFile: info.caFile,
        caKeyFile: join(this.dir, 'pki', 'ca.key'),
        serviceAccountKeyFile: join(this.dir, 'pki', 'sa.key'),
        kubeconfig: info.controllerManagerKubeconfig,
      },
      options,
    );
    return this.#controllerManager;
  }

  kubectl(args: readonly string[], options: KubectlOptions = {}): Promise<KubectlResult> {
    return kubectl(args, { kubeconfig: this.adminKubeconfig, ...options });
  }

  #checkAgent(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.agents) throw new RangeError(`agent ${i} out of range 0..${this.agents - 1}`);
  }

  #ready(): ReadyInfo {
    if (this.#info === undefined) throw new Error('test cluster is not running');
    return this.#info;
  }

  request(method: string, path: string, options: RequestOptions = {}): Promise<ApiResponse> {
    const url = new URL(path, this.server);
    const token = options.token ?? this.adminToken;
    const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
    if (token !== '') headers.authorization = `Bearer ${token}`;
    let payload: string | undefined;
    if (options.body !== undefined) {
      payload = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
      headers['content-type'] ??= 'application/json';
    }
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        url,
        // agent: false so no pooled socket outlives a restart or the test.
        { method, headers, ca: this.ca, agent: false, timeout: options.timeoutMs ?? 30_000 },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${url.href} timed out`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  async start(): Promise<void> {
    // Another process can grab one of the probed-free ports before the
    // binary binds it; the binary then picks new ports on the next start.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#startOnce();
        return;
      } catch (err) {
        if (attempt >= 3 || !(err instanceof Error) || !/address already in use/.test(err.message)) throw err;
      }
    }
  }

  async #startOnce(): Promise<void> {
    const readyPath = join(this.dir, 'ready.json');
    await unlink(readyPath).catch(() => {});
    this.#info = undefined;
    this.#ca = undefined;
    this.#agentTokens = undefined;

    this.#daemon = await startDaemon({
      name: 'kubenode-testcluster',
      bin: this.#bin,
      args: this.#args,
      logFile: this.logFile,
      ownDeathSignal: true,
      logTail: () => this.#logTail(),
      readyTimeoutMs: this.#readyTimeoutMs,
      ready: async (pid) => {
        const info = await readFile(readyPath, 'utf8').then(
          (text) => JSON.parse(text) as ReadyInfo,
          () => undefined,
        );
        // pid guards against a ready.json left by an earlier run.
        if (info === undefined || info.pid !== pid) return false;
        this.#info = info;
        return true;
      },
    });
  }

  async #logTail(): Promise<string> {
    const etcdLog = await readFile(join(this.dir, 'etcd.log'), 'utf8').catch(() => '');
    const main = tail(await readFile(this.logFile, 'utf8').catch(() => ''));
    return etcdLog.trim() === '' ? main : `${main}\n--- etcd.log:\n${tail(etcdLog, 20)}`;
  }

  /** Stops the process, keeping the directory. Resolves with an error description if it did not exit cleanly. */
  async #terminate(timeoutMs = 90_000): Promise<string | undefined> {
    const daemon = this.#daemon;
    this.#info = undefined;
    if (daemon === undefined) return undefined;
    this.#daemon = undefined;
    const { code, signal, timedOut } = await daemon.stop(timeoutMs);
    if (timedOut) return `did not exit within ${timeoutMs}ms of SIGTERM; killed`;
    if (code !== 0) return `exited with ${signal ? `signal ${signal}` : `code ${code}`} after SIGTERM`;
    return undefined;
  }

  async restart(options: { whileDown?: () => Promise<void> } = {}): Promise<void> {
    if (this.#stopped) throw new Error('test cluster was stopped');
    const problem = await this.#terminate();
    if (problem !== undefined) throw new Error(`restart: kubenode-testcluster ${problem}; ${this.logFile}:\n${await this.#logTail()}`);
    try {
      await options.whileDown?.();
    } finally {
      await this.start();
    }
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const cm = this.#controllerManager;
    this.#controllerManager = undefined;
    const cmProblem = await cm?.stop().then(
      () => undefined,
      (err: unknown) => (err instanceof Error ? err.message : String(err)),
    );
    const problem = await this.#terminate();
    const logTail = problem === undefined ? '' : await this.#logTail();
    live.delete(this);
    if (!this.#keepDir) await rm(this.dir, { recursive: true, force: true, maxRetries: 3 });
    if (problem !== undefined) throw new Error(`stop: kubenode-testcluster ${problem}; log:\n${logTail}`);
    if (cmProblem !== undefined) throw new Error(`stop: ${cmProblem}`);
  }

  /** For the process exit hook, where nothing asynchronous can run. */
  removeDirSync(): void {
    if (!this.#keepDir) rmSync(this.dir, { recursive: true, force: true, maxRetries: 3 });
  }
}
