// The one door to the apiserver. @kubernetes/client-node is only ever imported
// lazily (inside functions `run` calls with a kubeconfig), so `check` and
// `version` start without loading it.
import type { KubeConfig } from '@kubernetes/client-node';
import { Agent, request as httpsRequest, type AgentOptions, type RequestOptions } from 'node:https';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { getAsset, isSea } from 'node:sea';
import { debuglog } from 'node:util';
import { compileFunction } from 'node:vm';
import { AgentError, ConfigError } from '../errors.ts';
import { version } from '../version.ts';

export interface KubeOptions { kubeconfig?: string; inCluster?: boolean; }

type ClientNode = typeof import('@kubernetes/client-node');
let clientNode: Promise<ClientNode> | undefined;

// Set by scripts/build.ts: a bundle carries client-node as a file of its own (a SEA asset inside
// the executable), three quarters of the agent's code that no command without a kubeconfig should
// read or compile.
declare const __KUBENODE_KUBE_CHUNK__: string | undefined;

// NODE_DEBUG=kubenode reports where the client came from (the tests' observable).
const debug = debuglog('kubenode');

function loadKubeChunk(file: string): ClientNode {
  const load = createRequire(import.meta.url);
  if (!isSea()) {
    debug('loading the Kubernetes client from %s', file);
    try {
      return load(`./${file}`) as ClientNode;
    } catch (err) {
      throw new AgentError('IO', `cannot load the Kubernetes client (${file}, shipped next to the agent's bundle): ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }
  debug('loading the Kubernetes client from the executable (asset %s)', file);
  // A SEA's own require() reaches built-in modules only, which is all the chunk needs. Compiled as
  // CommonJS's wrapper function would be, without copying the 5 MB source into a wrapper string.
  const module = { exports: {} as ClientNode };
  const wrapper = compileFunction(getAsset(file, 'utf8'), ['exports', 'require', 'module', '__filename', '__dirname'], { filename: file });
  wrapper(module.exports, load, module, process.execPath, dirname(process.execPath));
  return module.exports;
}

/** The client-node module, imported on first use. */
export function kubeModule(): Promise<ClientNode> {
  clientNode ??= typeof __KUBENODE_KUBE_CHUNK__ === 'string' ? Promise.resolve(__KUBENODE_KUBE_CHUNK__).then(loadKubeChunk) : import('@kubernetes/client-node');
  return clientNode;
}

/** Loads a kubeconfig file, or the in-cluster service account; lazily imports client-node. */
export async function loadKubeConfig(options: KubeOptions): Promise<KubeConfig> {
  const k8s = await kubeModule();
  const kc = new k8s.KubeConfig();
  if (options.inCluster === true) {
    // client-node would otherwise build https://undefined:undefined and fail much later.
    for (const name of ['KUBERNETES_SERVICE_HOST', 'KUBERNETES_SERVICE_PORT']) {
      if ((process.env[name] ?? '') === '') throw new ConfigError('--in-cluster', name, 'not set: not running in a pod, give --kubeconfig instead');
    }
    kc.loadFromCluster();
  } else if (options.kubeconfig !== undefined) {
    try {
      kc.loadFromFile(options.kubeconfig);
    } catch (err) {
      throw new ConfigError(options.kubeconfig, '', `cannot load kubeconfig: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    const context = kc.getCurrentContext();
    if (context === '' || kc.getContextObject(context) === null) throw new ConfigError(options.kubeconfig, 'current-context', `names no context (${JSON.stringify(context)})`);
    if (kc.getCurrentCluster() === null) throw new ConfigError(options.kubeconfig, `contexts[${context}].cluster`, 'names no cluster');
  } else {
    throw new ConfigError('--kubeconfig', '', 'give either a kubeconfig file or --in-cluster');
  }
  return kc;
}

/** What a failed apiserver call means to a caller deciding whether and how to retry. */
export type KubeErrorKind =
  | 'not-found' // 404
  | 'conflict' // 409: stale resourceVersion, or AlreadyExists on create
  | 'gone' // 410: watch/list resourceVersion too old
  | 'forbidden' // 403: RBAC or admission says no, or an apiserver not ready yet says it to everyone (readyz.ts tells which)
  | 'unauthorized' // 401: credentials not accepted, or token caches not filled yet (as for 403)
  | 'invalid' // 400/422: our request is wrong
  | 'throttled' // 429
  | 'server' // 5xx
  | 'network' // no HTTP answer: refused, reset, DNS, timeout
  | 'other';

export class KubeApiError extends AgentError {
  readonly kind: KubeErrorKind;
  /** HTTP status, undefined when no answer came back. */
  readonly status: number | undefined;
  /** metav1.Status reason (NotFound, Conflict, AlreadyExists…) when the apiserver sent one. */
  readonly reason: string | undefined;
  /** What the apiserver (or the connection) said, without the request in front. */
  readonly detail: string;
  constructor(verb: string, path: string, kind: KubeErrorKind, status: number | undefined, reason: string | undefined, detail: string, options?: { cause?: unknown }) {
    super('KUBE', `${verb} ${path}: ${status === undefined ? '' : `${status} `}${detail}`, options);
    this.kind = kind;
    this.status = status;
    this.reason = reason;
    this.detail = detail;
  }
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'ECONNABORTED', 'UND_ERR_SOCKET']);

export function kindOfStatus(status: number): KubeErrorKind {
  if (status === 404) return 'not-found';
  if (status === 409) return 'conflict';
  if (status === 410) return 'gone';
  if (status === 403) return 'forbidden';
  if (status === 401) return 'unauthorized';
  if (status === 400 || status === 422) return 'invalid';
  if (status === 429) return 'throttled';
  if (status >= 500) return 'server';
  return 'other';
}

/** Classifies our KubeApiError, client-node's ApiException (`code`) and raw socket errors alike. */
export function classifyKubeError(err: unknown): KubeErrorKind {
  if (err instanceof KubeApiError) return err.kind;
  if (typeof err !== 'object' || err === null) return 'other';
  const e = err as { code?: unknown; statusCode?: unknown; cause?: unknown; name?: unknown };
  if (typeof e.code === 'number') return kindOfStatus(e.code);
  if (typeof e.statusCode === 'number') return kindOfStatus(e.statusCode);
  if (typeof e.code === 'string' && NETWORK_CODES.has(e.code)) return 'network';
  if (e.name === 'AbortError' || e.name === 'TimeoutError') return 'network';
  if (e.cause !== undefined && e.cause !== err) return classifyKubeError(e.cause);
  return 'other';
}

export const PatchType = {
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  json: 'application/json-patch+json',
  /** Server-side apply: needs `fieldManager` in the query. */
  apply: 'application/apply-patch+yaml',
} as const;
export type PatchKind = keyof typeof PatchType;

export interface KubeRequestOptions {
  body?: unknown;
  contentType?: string;
  query?: Record<string, string>;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Observes every apiserver call (for metrics); `kind` is undefined on success. */
export type RequestObserver = (verb: string, path: string, kind: KubeErrorKind | undefined, durationMs: number) => void;

/** A JSON client for the few REST calls the reporters make: no generated-model round trip, explicit timeouts. */
export interface KubeClient {
  readonly server: string;
  request<T = unknown>(verb: string, path: string, options?: KubeRequestOptions): Promise<T>;
  get<T = unknown>(path: string, options?: KubeRequestOptions): Promise<T>;
  patch<T = unknown>(path: string, body: unknown, kind: PatchKind, options?: KubeRequestOptions): Promise<T>;
  /** Drops idle keep-alive sockets. */
  close(): void;
}

export interface KubeClientOptions {
  /** Per request; an apiserver that accepts the connection and never answers must not hang a writer. Default 15 s. */
  timeoutMs?: number;
  userAgent?: string;
  observe?: RequestObserver;
}

export function createKubeClient(kc: KubeConfig, options: KubeClientOptions = {}): KubeClient {
  return new RestClient(kc, options);
}

class RestClient implements KubeClient {
  readonly server: string;
  readonly #kc: KubeConfig;
  readonly #timeoutMs: number;
  readonly #userAgent: string;
  readonly #observe: RequestObserver | undefined;
  #agent: Agent | undefined;
  #agentKey: unknown[] = [];

  constructor(kc: KubeConfig, options: KubeClientOptions) {
    const cluster = kc.getCurrentCluster();
    if (cluster === null) throw new ConfigError('kubeconfig', 'current-context', 'names no cluster');
    this.#kc = kc;
    this.server = cluster.server.replace(/\/+$/, '');
    this.#timeoutMs = options.timeoutMs ?? 15_000;
    this.#userAgent = options.userAgent ?? `kubenode-agent/${version}`;
    this.#observe = options.observe;
  }

  get<T>(path: string, options?: KubeRequestOptions): Promise<T> {
    return this.request<T>('GET', path, options);
  }

  patch<T>(path: string, body: unknown, kind: PatchKind, options?: KubeRequestOptions): Promise<T> {
    return this.request<T>('PATCH', path, { ...options, body, contentType: PatchType[kind] });
  }

  close(): void {
    this.#agent?.destroy();
    this.#agent = undefined;
  }

  async request<T>(verb: string, path: string, options: KubeRequestOptions = {}): Promise<T> {
    const started = performance.now();
    try {
      const result = await this.#send(verb, path, options);
      this.#observe?.(verb, path, undefined, performance.now() - started);
      return result as T;
    } catch (err) {
      this.#observe?.(verb, path, classifyKubeError(err), performance.now() - started);
      throw err;
    }
  }

  async #send(verb: string, path: string, options: KubeRequestOptions): Promise<unknown> {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(options.query ?? {})) url.searchParams.set(k, v);
    // Credentials are re-applied per call: token files and exec plugins rotate.
    const opts: RequestOptions = {};
    await this.#kc.applyToHTTPSOptions(opts);
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    const headers: Record<string, string> = {
      ...(opts.headers as Record<string, string> | undefined),
      accept: 'application/json',
      'user-agent': this.#userAgent,
    };
    if (payload !== undefined) {
      headers['content-type'] = options.contentType ?? 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    const https = url.protocol === 'https:';
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const reqOptions: RequestOptions = {
      method: verb,
      headers,
      ...(opts.auth === undefined ? {} : { auth: opts.auth }),
      ...(https ? { agent: this.#keepAliveAgent(opts) } : {}),
      timeout: timeoutMs,
    };
    return await new Promise<unknown>((resolve, reject) => {
      const fail = (kind: KubeErrorKind, detail: string, cause?: unknown): void =>
        reject(new KubeApiError(verb, path, kind, undefined, undefined, detail, { cause }));
      const req = (https ? httpsRequest : httpRequest)(url, reqOptions, (res: IncomingMessage) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('error', (err) => fail('network', err.message, err));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            try {
              resolve(text === '' ? undefined : JSON.parse(text));
            } catch (err) {
              reject(new KubeApiError(verb, path, 'other', status, undefined, 'response is not JSON', { cause: err }));
            }
            return;
          }
          let reason: string | undefined;
          let message = text.slice(0, 500);
          try {
            const s = JSON.parse(text) as { reason?: string; message?: string };
            reason = s.reason;
            if (typeof s.message === 'string') message = s.message;
          } catch {
            // not a metav1.Status; keep the raw text
          }
          reject(new KubeApiError(verb, path, kindOfStatus(status), status, reason, message));
        });
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs}ms`), { code: 'ETIMEDOUT' })));
      req.on('error', (err: NodeJS.ErrnoException) => fail(classifyKubeError(err) === 'network' ? 'network' : 'other', err.message, err));
      if (options.signal !== undefined) {
        if (options.signal.aborted) req.destroy(Object.assign(new Error('aborted'), { code: 'ECONNABORTED' }));
        else options.signal.addEventListener('abort', () => req.destroy(Object.assign(new Error('aborted'), { code: 'ECONNABORTED' })), { once: true });
      }
      req.end(payload);
    });
  }

  /** One keep-alive agent for the TLS material client-node resolved; rebuilt if that material rotates. */
  #keepAliveAgent(opts: RequestOptions): Agent {
    const key = [opts.ca, opts.cert, opts.key, opts.pfx, opts.rejectUnauthorized, opts.servername];
    const same = this.#agent !== undefined && key.every((v, i) => sameMaterial(v, this.#agentKey[i]));
    if (!same) {
      this.#agent?.destroy();
      const agentOptions: AgentOptions = { keepAlive: true, maxSockets: 4 };
      for (const k of ['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername'] as const) {
        if (opts[k] !== undefined) (agentOptions as Record<string, unknown>)[k] = opts[k];
      }
      this.#agent = new Agent(agentOptions);
      this.#agentKey = key;
    }
    return this.#agent as Agent;
  }
}

function sameMaterial(a: unknown, b: unknown): boolean {
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  return a === b;
}
