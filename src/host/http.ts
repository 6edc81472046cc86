/** GET with a deadline; resolves to the status code, or throws with the network error. */
export async function httpGetStatus(url: string, timeoutMs: number, signal?: AbortSignal): Promise<number> {
  const timeout = AbortSignal.timeout(timeoutMs);
  const response = await fetch(url, { signal: signal === undefined ? timeout : AbortSignal.any([timeout, signal]), redirect: 'manual' });
  await response.body?.cancel();
  return response.status;
}
