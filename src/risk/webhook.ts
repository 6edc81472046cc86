import { request as httpsRequest } from 'node:https';
import type { Host } from '../host/host.ts';

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
  if (url.protocol !== 'https:') return fail('url must be https');
  let ca: string | undefined;
  if (options.caFile !== '') {
    ca = await host.tryReadText(options.caFile).catch(() => undefined);
    if (ca === undefined) return fail(`CA file ${options.caFile} unreadable`);
  }
  const body = JSON.stringify({ apiVersion: 'kubenode.io/v1alpha1', kind: 'RemedyReview', request: req });
  const answer = await new Promise<{ status: number; text: string } | { error: string }>((resolve) => {
    const r = httpsRequest(url, { method: 'POST', headers: { 'content-type': 'application/json' }, ...(ca === undefined ? {} : { ca }), agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        text += d;
        if (text.length > 65536) res.destroy(new Error('response too large'));
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', (err) => resolve({ error: err.message }));
    });
    const timer = setTimeout(() => r.destroy(new Error(`no answer within ${options.timeoutMs}ms`)), options.timeoutMs);
    r.on('close', () => clearTimeout(timer));
    r.on('error', (err) => resolve({ error: err.message }));
    r.end(body);
  });
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
