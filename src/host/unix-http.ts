import http from 'node:http';
import net from 'node:net';
import type { Host } from './host.ts';

export type HttpFailure = 'timeout' | 'refused' | 'missing' | 'aborted' | 'error';

export type HttpGetResult =
  | { ok: true; statusCode: number; body: string; durationMs: number }
  | { ok: false; failure: HttpFailure; message: string; durationMs: number };

export interface HttpGetOptions {
  /** The whole request, connect to last byte, must finish by then. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** Bytes of body kept; the rest is read and dropped. */
  maxBodyBytes?: number;
}

export type HttpTarget = { socketPath: string; path: string } | { url: string };

function classify(err: unknown): { failure: HttpFailure; message: string } {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  const message = err instanceof Error ? err.message : String(err);
  if (code === 'ECONNREFUSED') return { failure: 'refused', message };
  if (code === 'ENOENT' || code === 'ENOTDIR') return { failure: 'missing', message };
  return { failure: 'error', message };
}

/**
 * One HTTP GET with a hard deadline, over a unix socket (a local path, already re-rooted) or
 * TCP. Never throws: a refused connection, a missing socket, an overrun or an abort come back
 * as a failure the caller can tell apart.
 */
export function httpGet(target: HttpTarget, options: HttpGetOptions): Promise<HttpGetResult> {
  const started = performance.now();
  const elapsed = (): number => performance.now() - started;
  const maxBody = options.maxBodyBytes ?? 64 * 1024;
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: HttpGetResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      req.destroy();
      resolve(result);
    };
    const requestOptions: http.RequestOptions =
      'socketPath' in target
        ? { socketPath: target.socketPath, path: target.path, method: 'GET', headers: { host: 'localhost' }, agent: false }
        : { method: 'GET', agent: false };
    const req = 'url' in target ? http.request(target.url, requestOptions) : http.request(requestOptions);
    const timer = setTimeout(() => {
      finish({ ok: false, failure: 'timeout', message: `no answer within ${options.timeoutMs}ms`, durationMs: elapsed() });
    }, options.timeoutMs);
    const onAbort = (): void => finish({ ok: false, failure: 'aborted', message: 'aborted', durationMs: elapsed() });
    if (options.signal?.aborted === true) {
      onAbort();
      return;
    }
    options.signal?.addEventListener('abort', onAbort, { once: true });
    req.on('error', (err) => finish({ ok: false, ...classify(err), durationMs: elapsed() }));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let kept = 0;
      res.on('data', (chunk: Buffer) => {
        if (kept < maxBody) {
          chunks.push(chunk.subarray(0, maxBody - kept));
          kept += Math.min(chunk.length, maxBody - kept);
        }
      });
      res.on('error', (err) => finish({ ok: false, ...classify(err), durationMs: elapsed() }));
      res.on('end', () =>
        finish({ ok: true, statusCode: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), durationMs: elapsed() }),
      );
    });
    req.end();
  });
}

/** GET over a unix socket named by its host path (re-rooted under --root). */
export function unixHttpGet(host: Host, socketHostPath: string, path: string, options: HttpGetOptions): Promise<HttpGetResult> {
  return httpGet({ socketPath: host.path(socketHostPath), path }, options);
}

export type ConnectResult = { ok: true; durationMs: number } | { ok: false; failure: HttpFailure; message: string; durationMs: number };

/** Whether something accepts connections on a unix socket (host path), within a deadline. */
export function unixConnect(host: Host, socketHostPath: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<ConnectResult> {
  const started = performance.now();
  const elapsed = (): number => performance.now() - started;
  return new Promise((resolve) => {
    let settled = false;
    const socket = net.createConnection({ path: host.path(socketHostPath) });
    const finish = (result: ConnectResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish({ ok: false, failure: 'timeout', message: `no connection within ${options.timeoutMs}ms`, durationMs: elapsed() }), options.timeoutMs);
    const onAbort = (): void => finish({ ok: false, failure: 'aborted', message: 'aborted', durationMs: elapsed() });
    options.signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('connect', () => finish({ ok: true, durationMs: elapsed() }));
    socket.on('error', (err) => finish({ ok: false, ...classify(err), durationMs: elapsed() }));
  });
}
