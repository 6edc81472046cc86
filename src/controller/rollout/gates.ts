// The health gates that ask something outside the cluster: a Prometheus instant query with a
// success condition, and an HTTPS webhook. Each call has four outcomes (Argo's lesson): success,
// failure (the answer says no), and error (no usable answer: unreachable, timeout, 5xx, bad
// JSON, an empty result) — an error pauses a rollout, it never counts as a failure.
import type { ConditionOperators, PrometheusGate, WebhookGate } from '../../api/machine-component-set.ts';
import { errorMessage } from '../../errors.ts';
import { describeNetworkError, HttpError, httpRequest } from '../../host/http.ts';
import { postJson } from '../../risk/webhook.ts';
import { durationMs } from '../../util/duration.ts';

export type GateOutcome = { outcome: 'success' | 'failure' | 'error'; message: string };

/** A Prometheus answer larger than this is an error: a query that returns that much is not a gate. */
const MAX_PROMETHEUS_BYTES = 1024 * 1024;

/** GET through the project's HTTP client (src/host/http.ts), with a deadline and a bounded body. */
async function getText(url: URL, timeoutMs: number, signal?: AbortSignal): Promise<{ status: number; text: string }> {
  const timeout = AbortSignal.timeout(timeoutMs);
  const both = signal === undefined ? timeout : AbortSignal.any([timeout, signal]);
  try {
    const response = await httpRequest(url.href, { signal: both, maxRedirects: 0, headers: { accept: 'application/json' } });
    let text = '';
    response.body.setEncoding('utf8');
    for await (const chunk of response.body as AsyncIterable<string>) {
      text += chunk;
      if (text.length > MAX_PROMETHEUS_BYTES) {
        response.body.destroy();
        throw new Error(`answer larger than ${MAX_PROMETHEUS_BYTES} bytes`);
      }
    }
    return { status: response.status, text };
  } catch (err) {
    if (timeout.aborted) throw new Error(`no answer within ${timeoutMs}ms`, { cause: err });
    // The client's error names the URL, which the caller shows already: say only what went wrong.
    throw new Error(describeNetworkError(err instanceof HttpError && err.cause !== undefined ? err.cause : err), { cause: err });
  }
}

const compare: Record<(typeof ConditionOperators)[number], (a: number, b: number) => boolean> = {
  '<': (a, b) => a < b,
  '<=': (a, b) => a <= b,
  '>': (a, b) => a > b,
  '>=': (a, b) => a >= b,
  '==': (a, b) => a === b,
  '!=': (a, b) => a !== b,
};

/** A regex alternation of machine names for `=~`, each name escaped. */
export function nodesRegex(machines: readonly string[]): string {
  return machines.map((m) => m.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|');
}

export function renderQuery(query: string, vars: { nodes: readonly string[]; set: string; batch: number }): string {
  return query.replaceAll('{{nodes}}', nodesRegex(vars.nodes)).replaceAll('{{set}}', vars.set).replaceAll('{{batch}}', String(vars.batch));
}

interface PromAnswer {
  status?: string;
  error?: string;
  data?: { resultType?: string; result?: unknown };
}

/** One measurement: every sample of the instant query must satisfy the success condition. */
export async function measurePrometheus(gate: PrometheusGate, query: string, signal?: AbortSignal): Promise<GateOutcome> {
  const url = new URL(`${gate.address.replace(/\/+$/, '')}/api/v1/query`);
  url.searchParams.set('query', query);
  let answer: { status: number; text: string };
  try {
    answer = await getText(url, durationMs(gate.timeout), signal);
  } catch (err) {
    return { outcome: 'error', message: `Prometheus ${gate.address} unreachable: ${errorMessage(err)}` };
  }
  let parsed: PromAnswer;
  try {
    parsed = JSON.parse(answer.text) as PromAnswer;
  } catch {
    return { outcome: 'error', message: `Prometheus answered ${answer.status} with no JSON` };
  }
  if (answer.status !== 200 || parsed.status !== 'success') return { outcome: 'error', message: `Prometheus answered ${answer.status}: ${parsed.error ?? parsed.status ?? ''}`.slice(0, 500) };
  const values: number[] = [];
  const { resultType, result } = parsed.data ?? {};
  if (resultType === 'scalar' && Array.isArray(result)) values.push(Number(result[1]));
  else if (resultType === 'vector' && Array.isArray(result)) for (const s of result as { value?: [number, string] }[]) values.push(Number(s.value?.[1]));
  else return { outcome: 'error', message: `unsupported result type ${String(resultType)} (want vector or scalar)` };
  if (values.length === 0) return { outcome: 'error', message: 'empty result (inconclusive)' };
  const { operator, value } = gate.successCondition;
  const test = compare[operator];
  const bad = values.filter((v) => !test(v, value));
  const shown = values.slice(0, 5).join(', ');
  if (bad.length > 0) return { outcome: 'failure', message: `${bad.length} of ${values.length} samples not ${operator} ${value} (${shown})` };
  return { outcome: 'success', message: `all ${values.length} samples ${operator} ${value} (${shown})` };
}

export interface WebhookReview {
  apiVersion: 'kubenode.io/v1alpha1';
  kind: 'RolloutGateReview';
  set: string;
  revision: string;
  version: string;
  batch: number;
  phase: WebhookGate['phase'];
  machines: string[];
}

/** One call: 2xx allows, 4xx denies (the body's message, if any, is shown), anything else is an error. */
export async function callWebhook(gate: WebhookGate, review: WebhookReview, signal?: AbortSignal): Promise<GateOutcome> {
  const ca = gate.caBundle === undefined ? undefined : Buffer.from(gate.caBundle, 'base64').toString('utf8');
  const answer = await postJson(new URL(gate.url), JSON.stringify(review), { timeoutMs: durationMs(gate.timeout), ...(ca === undefined ? {} : { ca }), ...(signal === undefined ? {} : { signal }) });
  if ('error' in answer) return { outcome: 'error', message: `webhook ${gate.name} unreachable: ${answer.error}` };
  let message = answer.text.slice(0, 300);
  try {
    const m = (JSON.parse(answer.text) as { message?: unknown }).message;
    if (typeof m === 'string') message = m.slice(0, 300);
  } catch {
    // not JSON: the raw text is the message
  }
  if (answer.status >= 200 && answer.status < 300) return { outcome: 'success', message: `allowed${message === '' ? '' : `: ${message}`}` };
  if (answer.status >= 400 && answer.status < 500) return { outcome: 'failure', message: `denied (${answer.status})${message === '' ? '' : `: ${message}`}` };
  return { outcome: 'error', message: `webhook ${gate.name} answered ${answer.status}${message === '' ? '' : `: ${message}`}` };
}
