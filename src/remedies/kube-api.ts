// A thin REST layer over the kubeconfig from src/kube/client.ts. Raw requests rather than
// client-node's generated APIs: the gate lives on status codes (409 conflict, 429 PDB) and
// resourceVersions, which the generated clients bury in exceptions of varying shape.
import { Agent, request as httpsRequest, type RequestOptions } from 'node:https';
import { loadKubeConfig, type KubeOptions } from '../kube/client.ts';

export class KubeApiError extends Error {
  readonly status: number;
  readonly reason: string;
  constructor(method: string, path: string, status: number, body: string) {
    let reason = '';
    let message = body.slice(0, 300);
    try {
      const parsed = JSON.parse(body) as { reason?: string; message?: string };
      reason = parsed.reason ?? '';
      message = parsed.message ?? message;
    } catch {
      // not a Status object
    }
    super(`${method} ${path}: ${status === 0 ? 'unreachable' : `HTTP ${status}`}${reason === '' ? '' : ` ${reason}`}: ${message}`);
    this.status = status;
    this.reason = reason;
  }
}

export interface KubeRequestOptions {
  body?: unknown;
  /** Default application/json; merge patches say application/merge-patch+json. */
  contentType?: string;
  timeoutMs?: number;
  query?: Record<string, string>;
}

export interface KubeApi {
  /** Throws KubeApiError (status 0 when the apiserver cannot be reached) unless 2xx. */
  request<T = unknown>(method: string, path: string, options?: KubeRequestOptions): Promise<T>;
  close(): void;
}

export async function createKubeApi(options: KubeOptions & { timeoutMs?: number }): Promise<KubeApi> {
  const kc = await loadKubeConfig(options);
  const cluster = kc.getCurrentCluster();
  if (cluster === null) throw new Error('kubeconfig has no current cluster');
  const base: RequestOptions = {};
  await kc.applyToHTTPSOptions(base);
  const agent = new Agent({
    keepAlive: true,
    maxSockets: 4,
    ...(base.ca === undefined ? {} : { ca: base.ca }),
    ...(base.cert === undefined ? {} : { cert: base.cert }),
    ...(base.key === undefined ? {} : { key: base.key }),
    ...(base.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: base.rejectUnauthorized }),
  });
  const server = cluster.server.replace(/\/+$/, '');
  const defaultTimeout = options.timeoutMs ?? 15_000;
  return {
    async request<T>(method: string, path: string, ro: KubeRequestOptions = {}): Promise<T> {
      // Tokens may rotate (exec plugins, projected service-account tokens): ask each time.
      const auth: RequestOptions = {};
      await kc.applyToHTTPSOptions(auth);
      const url = new URL(server + path);
      for (const [k, v] of Object.entries(ro.query ?? {})) url.searchParams.set(k, v);
      const headers: Record<string, string> = { accept: 'application/json', ...(auth.headers as Record<string, string> | undefined) };
      const payload = ro.body === undefined ? undefined : JSON.stringify(ro.body);
      if (payload !== undefined) headers['content-type'] = ro.contentType ?? 'application/json';
      const { status, body } = await new Promise<{ status: number; body: string }>((resolve) => {
        const req = httpsRequest(url, { method, headers, agent, timeout: ro.timeoutMs ?? defaultTimeout }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
          res.on('error', (err) => resolve({ status: 0, body: err.message }));
        });
        req.on('timeout', () => req.destroy(new Error('request timed out')));
        req.on('error', (err) => resolve({ status: 0, body: err.message }));
        req.end(payload);
      });
      if (status < 200 || status > 299) throw new KubeApiError(method, path, status, body);
      return (body === '' ? undefined : JSON.parse(body)) as T;
    },
    close() {
      agent.destroy();
    },
  };
}

export const isConflict = (err: unknown): boolean => err instanceof KubeApiError && err.status === 409;
export const isNotFound = (err: unknown): boolean => err instanceof KubeApiError && err.status === 404;
/** The apiserver could not be reached or is failing, as opposed to refusing us. */
export const isUnavailable = (err: unknown): boolean => err instanceof KubeApiError && (err.status === 0 || err.status >= 500);
