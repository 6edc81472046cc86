import { Resolver } from 'node:dns/promises';

export type DnsLookup =
  | { ok: true; addresses: string[]; server: string; durationMs: number }
  | { ok: false; code: string; message: string; server: string; durationMs: number };

/**
 * Resolves `name` (A, then AAAA when there is no A record) by asking `server` ("ip" or "ip:port")
 * directly, one try, within `timeoutMs`. The resolver is cancelled at the deadline, so a server
 * that never answers costs no more than the deadline. DNS goes over the network, so --root does
 * not apply: the caller decides which server to ask (from the host's resolv.conf or config).
 */
export async function lookupWithServer(server: string, name: string, timeoutMs: number): Promise<DnsLookup> {
  const started = performance.now();
  const resolver = new Resolver({ timeout: timeoutMs, tries: 1 });
  resolver.setServers([server]);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      resolver.cancel();
      reject(Object.assign(new Error(`no answer from ${server} within ${timeoutMs}ms`), { code: 'ETIMEOUT' }));
    }, timeoutMs);
  });
  const ask = async (): Promise<string[]> => {
    try {
      return await resolver.resolve4(name);
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ENODATA') return resolver.resolve6(name);
      throw err;
    }
  };
  try {
    const addresses = await Promise.race([ask(), deadline]);
    return { ok: true, addresses, server, durationMs: performance.now() - started };
  } catch (err) {
    const code = typeof (err as { code?: unknown }).code === 'string' ? (err as { code: string }).code : 'EUNKNOWN';
    return { ok: false, code, message: err instanceof Error ? err.message : String(err), server, durationMs: performance.now() - started };
  } finally {
    clearTimeout(timer);
  }
}
