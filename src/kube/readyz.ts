// Whether an apiserver's refusal is its real answer. One that has just started (or sits behind a
// load balancer mid-upgrade) answers 403 to everyone until its RBAC caches fill, and 401 until its
// token caches do: a 401 or 403 says something about our rights only when /readyz answers 200 right
// after it. Every writer that would give up on a refusal asks here first.
import { classifyKubeError, KubeApiError, type KubeClient } from './client.ts';

/**
 * Throws unless /readyz answers 200. It answers 200 with the text "ok", which the JSON client
 * reports as a non-JSON answer: that is the healthy case. Any other answer is an apiserver not
 * ready to serve, whatever its status, thrown as kind 'server' ("not ready"); no answer is thrown
 * as it came (kind 'network').
 */
export async function probeReadyz(client: KubeClient, timeoutMs?: number): Promise<void> {
  try {
    await client.request('GET', '/readyz', timeoutMs === undefined ? {} : { timeoutMs });
  } catch (err) {
    if (!(err instanceof KubeApiError)) throw err;
    if (err.status === 200) return;
    if (err.status === undefined) throw err;
    throw new KubeApiError('GET', '/readyz', 'server', err.status, err.reason, `not ready: ${err.detail}`);
  }
}

/**
 * What a failed request means. A refusal (401, 403) is returned as it is when /readyz answers 200
 * right after it: the refusal is real. Otherwise the apiserver is not ready, and what /readyz said
 * is returned instead (kind 'server', or 'network' when it did not answer): try again later. Any
 * other error is returned as it is, without asking.
 */
export async function judgeRefusal(client: KubeClient, err: unknown, timeoutMs?: number): Promise<unknown> {
  const kind = classifyKubeError(err);
  if (kind !== 'forbidden' && kind !== 'unauthorized') return err;
  try {
    await probeReadyz(client, timeoutMs);
    return err;
  } catch (notReady) {
    return notReady;
  }
}
