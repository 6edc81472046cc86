import { isIP } from 'node:net';

/** host:port, the host an IPv4 address, a bracketed IPv6 address or localhost; listenProblem checks the rest. */
export const LISTEN_PATTERN = '^(\\[[0-9a-fA-F:.]+\\]|[0-9.]+|localhost):[0-9]{1,5}$';
export const LISTEN_EXPECTED = 'an address like 127.0.0.1:9746 or [::1]:9746';

export interface ListenAddress {
  host: string;
  port: number;
}

/** Splits host:port; "[::1]:9746" gives host "::1". */
export function parseListen(listen: string): ListenAddress {
  const idx = listen.lastIndexOf(':');
  const host = listen.slice(0, idx).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(listen.slice(idx + 1)) };
}

/** What is wrong with a listen address, in words, or undefined: the same rules for agent.yaml and --listen. */
export function listenProblem(listen: string): string | undefined {
  if (!new RegExp(LISTEN_PATTERN).test(listen)) return `expected ${LISTEN_EXPECTED}, got ${JSON.stringify(listen)}`;
  const { host, port } = parseListen(listen);
  // Port 0 asks the kernel for any free port (tests; the address is logged at start).
  if (!Number.isInteger(port) || port > 65535) return `port ${port} is out of range: expected 1 to 65535 (0: any free port)`;
  if (host !== 'localhost' && isIP(host) === 0) return `${JSON.stringify(host)} is not an IP address: expected ${LISTEN_EXPECTED}`;
  return undefined;
}

/** Loopback only: 127.0.0.0/8, ::1, localhost. Anything else exposes /metrics beyond the node. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}
