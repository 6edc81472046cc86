// The agent's HTTP client for artifact servers and health checks, on node:http/https directly.
// Not fetch: the undici inside Node 24.21.0 throws an uncatchable assertion when a server closes
// the connection while a response body is paused (nodejs/undici#5360), which would take the whole
// agent down on every node pointed at such a server. Here every failure is an error of the call.
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { AgentError } from '../errors.ts';

export class HttpError extends AgentError {
  /** Asking again cannot help: a redirect loop, a refused redirect, a URL that is not http(s). */
  readonly permanent: boolean;
  constructor(message: string, options?: { cause?: unknown; permanent?: boolean }) {
    super('DOWNLOAD', message, options);
    this.permanent = options?.permanent ?? false;
  }
}

export interface HttpRequestOptions {
  headers?: Record<string, string>;
  /** Aborting it destroys the connection, in any phase; the call rejects with the reason. */
  signal?: AbortSignal;
  /** Redirects followed (301, 302, 303, 307, 308); 0 returns them as they are. Default 5. */
  maxRedirects?: number;
}

export interface HttpResponse {
  status: number;
  statusText: string;
  headers: IncomingHttpHeaders;
  /** After redirects. */
  url: string;
  /** The body as it arrives; read it to the end or destroy it. */
  body: IncomingMessage;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
export const DEFAULT_MAX_REDIRECTS = 5;

function reasonOf(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new HttpError(String(signal.reason ?? 'aborted'));
}

/** What went wrong with a socket or a parser, in words an operator can act on. */
export function describeNetworkError(err: unknown): string {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  const message = err instanceof Error ? err.message : String(err);
  if (code === 'ECONNRESET') return 'the server closed or reset the connection';
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (typeof code === 'string' && code.startsWith('HPE_')) return `malformed HTTP response (${message})`;
  return typeof code === 'string' && !message.includes(code) ? `${message} (${code})` : message;
}

function once(url: URL, options: HttpRequestOptions): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const signal = options.signal;
    if (signal?.aborted === true) {
      reject(reasonOf(signal));
      return;
    }
    // agent: false: one connection per request, closed after it, so no pooled socket can carry
    // one server's misbehaviour into the next request.
    const request = (url.protocol === 'https:' ? https : http).get(url, { headers: options.headers ?? {}, agent: false });
    const onAbort = (): void => {
      request.destroy(reasonOf(signal as AbortSignal));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    request.once('error', (err) => {
      signal?.removeEventListener('abort', onAbort);
      reject(signal?.aborted === true ? reasonOf(signal) : new HttpError(`${url.href}: ${describeNetworkError(err)}`, { cause: err }));
    });
    request.once('response', (response) => {
      // The body stays abortable: the caller's signal destroys it mid-transfer.
      const detach = (): void => signal?.removeEventListener('abort', onAbort);
      response.once('close', detach);
      response.once('error', () => undefined);
      resolve(response);
    });
  });
}

/**
 * GET `url` (http or https), following redirects up to maxRedirects. A redirect loop, a redirect
 * to another scheme than http(s), or from https down to http, is refused with an HttpError.
 */
export async function httpRequest(url: string, options: HttpRequestOptions = {}): Promise<HttpResponse> {
  const maxRedirects = options.maxRedirects ?? DEFAULT_MAX_REDIRECTS;
  let current: URL;
  try {
    current = new URL(url);
  } catch (err) {
    throw new HttpError(`${JSON.stringify(url)} is not a URL`, { cause: err, permanent: true });
  }
  const seen = new Set<string>();
  for (let hops = 0; ; hops++) {
    if (current.protocol !== 'http:' && current.protocol !== 'https:') throw new HttpError(`${current.href}: only http and https URLs can be fetched`, { permanent: true });
    seen.add(current.href);
    const response = await once(current, options);
    const status = response.statusCode ?? 0;
    const location = response.headers.location;
    if (!REDIRECTS.has(status) || maxRedirects === 0) {
      return { status, statusText: response.statusMessage ?? '', headers: response.headers, url: current.href, body: response };
    }
    response.destroy();
    if (location === undefined || location === '') throw new HttpError(`${current.href}: HTTP ${status} redirect without a Location`, { permanent: true });
    let next: URL;
    try {
      next = new URL(location, current);
    } catch (err) {
      throw new HttpError(`${current.href}: HTTP ${status} redirect to an invalid Location ${JSON.stringify(location)}`, { cause: err, permanent: true });
    }
    if (current.protocol === 'https:' && next.protocol === 'http:') throw new HttpError(`${current.href}: refusing a redirect from https down to ${next.href}`, { permanent: true });
    if (seen.has(next.href)) throw new HttpError(`${url}: redirect loop at ${next.href}`, { permanent: true });
    if (hops + 1 > maxRedirects) throw new HttpError(`${url}: more than ${maxRedirects} redirects`, { permanent: true });
    current = next;
  }
}

/** GET with a deadline; resolves to the status code (redirects are not followed), or throws HttpError. */
export async function httpGetStatus(url: string, timeoutMs: number, signal?: AbortSignal): Promise<number> {
  const timeout = AbortSignal.timeout(timeoutMs);
  const both = signal === undefined ? timeout : AbortSignal.any([timeout, signal]);
  try {
    const response = await httpRequest(url, { signal: both, maxRedirects: 0 });
    response.body.destroy();
    return response.status;
  } catch (err) {
    if (timeout.aborted) throw new HttpError(`${url}: no answer within ${timeoutMs}ms`, { cause: err });
    throw err;
  }
}
