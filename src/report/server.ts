import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { parseListen } from '../config/listen.ts';

export interface HealthSource {
  healthy(): { ok: boolean; detail: Record<string, unknown> };
}

/** Bound to loopback by default, read-only, nothing else. */
/** /metrics and /healthz, and /readyz when a readiness source is given. */
export async function startServer(listen: string, registry: Registry, health: HealthSource, readiness?: HealthSource): Promise<{ server: Server; address: string }> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (url.pathname === '/metrics') {
      registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
      return;
    }
    const probe = url.pathname === '/healthz' ? health : url.pathname === '/readyz' ? readiness : undefined;
    if (probe !== undefined) {
      const { ok, detail } = probe.healthy();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(`${JSON.stringify({ status: ok ? 'ok' : 'unhealthy', ...detail })}\n`);
      return;
    }
    res.writeHead(404).end();
  });
  const { host, port } = parseListen(listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  return { server, address: `${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}` };
}
