import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Registry } from 'prom-client';
import { parseListen } from '../config/listen.ts';
import { AgentError } from '../errors.ts';

export interface HealthSource {
  healthy(): { ok: boolean; detail: Record<string, unknown> };
}

export interface ServerOptions {
  /** /readyz answers from this source when given. */
  readiness?: HealthSource;
  /** Open connections at most; past it the longest-idle one is closed to make room. */
  maxConnections?: number;
  /** A connection that sends nothing for this long is closed. */
  idleTimeoutMs?: number;
}

const MAX_CONNECTIONS = 64;
const IDLE_TIMEOUT_MS = 10_000;

/** Why the endpoint could not be opened: the address is taken, not on this host, or not allowed. */
export class ListenError extends AgentError {
  constructor(listen: string, cause: NodeJS.ErrnoException) {
    const why =
      cause.code === 'EADDRINUSE'
        ? 'the address is already in use (another agent running?)'
        : cause.code === 'EADDRNOTAVAIL'
          ? 'no interface of this host has that address'
          : cause.code === 'EACCES'
            ? 'permission denied (ports below 1024 need privileges)'
            : cause.message;
    super('LISTEN', `cannot listen on ${listen}: ${why}`, { cause });
  }
}

/**
 * /metrics and /healthz (and /readyz), read-only, bound to loopback by default. Bounded: a scrape
 * loop or a crowd of idle connections cannot take the agent's descriptors, and /healthz still answers.
 */
export async function startServer(listen: string, registry: Registry, health: HealthSource, options: ServerOptions = {}): Promise<{ server: Server; address: string }> {
  const idleMs = options.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
  const limit = options.maxConnections ?? MAX_CONNECTIONS;
  const server = createServer({ headersTimeout: idleMs, requestTimeout: idleMs * 2, keepAliveTimeout: Math.min(5000, idleMs) }, (req, res) => {
    busy.add(req.socket);
    res.once('close', () => busy.delete(req.socket));
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
    const probe = url.pathname === '/healthz' ? health : url.pathname === '/readyz' ? options.readiness : undefined;
    if (probe !== undefined) {
      const { ok, detail } = probe.healthy();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(`${JSON.stringify({ status: ok ? 'ok' : 'unhealthy', ...detail })}\n`);
      return;
    }
    res.writeHead(404).end();
  });
  // Oldest first (a Set keeps insertion order); a socket is busy while a request on it is answered.
  const open = new Set<Socket>();
  const busy = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    open.add(socket);
    socket.once('close', () => {
      open.delete(socket);
      busy.delete(socket);
    });
    socket.setTimeout(idleMs, () => socket.destroy());
    if (open.size <= limit) return;
    const idle = [...open].find((s) => !busy.has(s) && s !== socket);
    (idle ?? socket).destroy();
  });
  const { host, port } = parseListen(listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new ListenError(listen, err)));
    server.listen(port, host, () => {
      server.removeAllListeners('error');
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  return { server, address: `${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}` };
}
