// The one client for the HTTPS webhooks the project calls: the risk gate's RemedyReview (here) and
// the rollout health gate's RolloutGateReview (src/controller/rollout/gates.ts). Each caller
// decides what an answer means; postJson only says what came back, or why nothing usable did.
import { request as httpsRequest } from 'node:https';
import type { Host } from '../host/host.ts';

export type WebhookAnswer = { status: number; text: string } | { error: string };

export interface PostJsonOptions {
  /** Deadline of the whole call, connection to the answer's last byte. */
  timeoutMs: number;
  /** PEM CA certificates for the endpoint; default: the system roots. */
  ca?: string;
  signal?: AbortSignal;
  /** Larger answers are an error. Default 64 KiB. */
  maxBytes?: number;
}

/**
 * POSTs a JSON body over HTTPS and reads the answer as text. Never throws: a URL that is not
 * https, a refused or reset connection, a TLS failure, the deadline, an answer over maxBytes or
 * the signal is { error } naming it. One connection per call (agent: false), so no pooled socket
 * carries one endpoint's misbehaviour into the next call.
 */
export function postJson(url: URL, body: string, options: PostJsonOptions): Promise<WebhookAnswer> {
  if (url.protocol !== 'https:') return Promise.resolve({ error: 'url must be https' });
  const maxBytes = options.maxBytes ?? 65536;
  return new Promise((resolve) => {
    const headers = { 'content-type': 'application/json', accept: 'application/json', 'content-length': String(Buffer.byteLength(body)) };
    const r = httpsRequest(url, { method: 'POST', headers, agent: false, ...(options.ca === undefined ? {} : { ca: options.ca }), ...(options.signal === undefined ? {} : { signal: options.signal }) }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        text += d;
        if (text.length > maxBytes) res.destroy(new Error(`answer larger than ${maxBytes} bytes`));
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', (err) => resolve({ error: err.message }));
    });
    const timer = setTimeout(() => r.destroy(new Error(`no answer within ${options.timeoutMs}ms`)), options.timeoutMs);
    r.on('close', () => clearTimeout(timer));
    r.on('error', (err) => resolve({ error: err.message }));
    r.end(body);
  });
}

export interface WebhookOptions {
  url: string;
  timeoutMs: number;
  /** Host path of a PEM bundle to verify the webhook's certificate; empty: the system roots. */
  caFile: string;
  /** Unanswered or broken webhook: allow (true) or deny (false, the default). */
  failOpen: boolean;
}

export interface WebhookRequest {
  node: string;
  action: string;
  risk: string;
  reason: string;
  operation: string;
}

/** POSTs a RemedyReview and reads { allowed, reason }; anything else is a failure, handled by failOpen. */
export async function askWebhook(host: Host, options: WebhookOptions, req: WebhookRequest): Promise<{ allowed: boolean; reason: string }> {
  const fail = (why: string) => ({ allowed: options.failOpen, reason: `webhook ${why}; failing ${options.failOpen ? 'open' : 'closed'}` });
  let url: URL;
  try {
    url = new URL(options.url);
  } catch {
    return fail(`url ${JSON.stringify(options.url)} is not a URL`);
  }
  let ca: string | undefined;
  if (options.caFile !== '') {
    ca = await host.tryReadText(options.caFile).catch(() => undefined);
    if (ca === undefined) return fail(`CA file ${options.caFile} unreadable`);
  }
  const body = JSON.stringify({ apiVersion: 'kubenode.io/v1alpha1', kind: 'RemedyReview', request: req });
  const answer = await postJson(url, body, { timeoutMs: options.timeoutMs, ...(ca === undefined ? {} : { ca }) });
  if ('error' in answer) return fail(answer.error);
  if (answer.status !== 200) return fail(`answered HTTP ${answer.status}`);
  try {
    const parsed = JSON.parse(answer.text) as { allowed?: unknown; reason?: unknown };
    if (typeof parsed.allowed !== 'boolean') return fail('answer has no boolean "allowed"');
    const reason = typeof parsed.reason === 'string' && parsed.reason !== '' ? parsed.reason : parsed.allowed ? 'allowed' : 'denied';
    return { allowed: parsed.allowed, reason: `webhook: ${reason}` };
  } catch {
    return fail('answer is not JSON');
  }
}
