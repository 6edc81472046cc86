import { isIP } from 'node:net';
import { Type, type StaticDecode } from '@sinclair/typebox';
import { lookupWithServer } from '../host/dns.ts';
import type { DetectorResult } from '../types.ts';
import { Conditions, tripAfter, type ConditionSpec, type Finding } from './engine/conditions.ts';
import { Duration } from '../util/duration-schema.ts';
import type { DetectorDefinition } from './engine/types.ts';

// ---------------------------------------------------------------- parsers (pure)

const RTF_UP = 0x0001;
const RTF_REJECT = 0x0200;

/** /proc/net/route: an IPv4 default route is an up route with destination and mask 00000000. */
export function ipv4DefaultRoutes(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const flags = parseInt(f[3] as string, 16);
    if (f[1] === '00000000' && f[7] === '00000000' && (flags & RTF_UP) !== 0 && (flags & RTF_REJECT) === 0) out.push(f[0] as string);
  }
  return out;
}

/**
 * /proc/net/ipv6_route: destination, prefix length, source, source prefix length, next hop,
 * metric, refcnt, use, flags, device. The kernel's own "default unreachable" entry on lo carries
 * RTF_REJECT and is not a route.
 */
export function ipv6DefaultRoutes(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const flags = parseInt(f[8] as string, 16);
    if (/^0{32}$/.test(f[0] as string) && f[1] === '00' && (flags & RTF_UP) !== 0 && (flags & RTF_REJECT) === 0 && f[9] !== 'lo') out.push(f[9] as string);
  }
  return out;
}

/** `nameserver` lines of resolv.conf(5), in order. */
export function parseResolvConf(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    // A scoped IPv6 address (fe80::1%eth0) is kept whole; anything not an address is ignored.
    if (m !== null && isIP((m[1] as string).split('%')[0] as string) !== 0) out.push(m[1] as string);
  }
  return out;
}

/** The server as node:dns takes it: a bare address gets the configured port ([v6]:port); one that has a port keeps it. */
export function withPort(server: string, port: number): string {
  const family = isIP(server);
  if (family === 0 || port === 53) return server;
  return family === 6 ? `[${server}]:${port}` : `${server}:${port}`;
}

// ---------------------------------------------------------------- detector

const configSchema = Type.Object(
  {
    requireDefaultRoute: Type.Boolean({ default: true, description: 'NoDefaultRoute when neither an IPv4 nor an IPv6 default route is up' }),
    dnsName: Type.String({ default: '', description: 'Name to resolve; empty turns the DNS check off (no surprise lookups from every node)' }),
    dnsServers: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'Servers to ask ("ip" or "ip:port"); empty means the nameservers of the host\'s /etc/resolv.conf' }),
    dnsPort: Type.Integer({ minimum: 1, maximum: 65535, default: 53, description: 'Port for servers given without one' }),
    dnsTimeout: Duration({ description: 'Deadline of one DNS query', default: '2s', min: '100ms', max: '1m' }),
    failuresToTrip: Type.Integer({ minimum: 1, default: 3, description: 'Consecutive bad probes before the condition turns (the daemon; check takes one look)' }),
    successesToClear: Type.Integer({ minimum: 1, default: 1, description: 'Consecutive good probes before it clears' }),
  },
  { additionalProperties: false },
);

export type NetworkConfig = StaticDecode<typeof configSchema>;

export const NETWORK_CONDITIONS: readonly ConditionSpec[] = [
  // Not NetworkUnavailable: that one belongs to the kubelet and the CNI plugin.
  { type: 'NodeNetworkProblem', okReason: 'NodeNetworkOK', okMessage: 'a default route is up, loopback is up, and DNS answers (when checked)' },
];

const IFF_UP = 0x1;

export const network: DetectorDefinition<typeof configSchema> = {
  description: 'Network basics: a default route, loopback up, and DNS resolution of a configured name within a deadline',
  configSchema,
  defaults: { enabled: true, interval: '60s', timeout: '10s' },
  create(config, ctx) {
    const { host } = ctx;
    const tracker = new Conditions(NETWORK_CONDITIONS, ctx, { failuresToTrip: tripAfter(ctx.mode, config.failuresToTrip), successesToClear: config.successesToClear });
    const dnsTimeoutMs = config.dnsTimeout;
    const read = (p: string): Promise<string | undefined> => host.tryReadText(p).catch(() => undefined);

    return {
      async probe(): Promise<DetectorResult> {
        const findings: Finding[] = [];
        const cannot: string[] = [];

        if (config.requireDefaultRoute) {
          const v4 = await read('/proc/net/route');
          const v6 = await read('/proc/net/ipv6_route');
          if (v4 === undefined && v6 === undefined) cannot.push('neither /proc/net/route nor /proc/net/ipv6_route is readable');
          else if (ipv4DefaultRoutes(v4 ?? '').length === 0 && ipv6DefaultRoutes(v6 ?? '').length === 0) {
            findings.push({ type: 'NodeNetworkProblem', reason: 'NoDefaultRoute', message: 'no IPv4 or IPv6 default route is up (/proc/net/route, /proc/net/ipv6_route)' });
          }
        }

        const loFlags = await read('/sys/class/net/lo/flags');
        if (loFlags === undefined) cannot.push('/sys/class/net/lo/flags is not readable');
        else if ((parseInt(loFlags.trim(), 16) & IFF_UP) === 0) {
          // lo's operstate is "unknown" even when it works; IFF_UP in its flags is what ifdown clears.
          findings.push({ type: 'NodeNetworkProblem', reason: 'LoopbackDown', message: `the loopback interface is down (flags ${loFlags.trim()}, IFF_UP clear)` });
        }

        if (config.dnsName !== '') {
          let servers = config.dnsServers;
          if (servers.length === 0) servers = parseResolvConf((await read('/etc/resolv.conf')) ?? '');
          if (servers.length === 0) cannot.push('no DNS server configured and none in /etc/resolv.conf');
          else {
            // Ask each server in turn, as the libc resolver would: one answer is enough.
            const failures: string[] = [];
            let answered = false;
            for (const server of servers) {
              const result = await lookupWithServer(withPort(server, config.dnsPort), config.dnsName, dnsTimeoutMs);
              if (result.ok) {
                answered = true;
                break;
              }
              failures.push(`${result.server}: ${result.code === 'ETIMEOUT' || result.code === 'ECANCELLED' ? `no answer within ${dnsTimeoutMs}ms` : result.code}`);
            }
            if (!answered) {
              findings.push({ type: 'NodeNetworkProblem', reason: 'DNSResolutionFailed', message: `cannot resolve ${config.dnsName}: ${failures.join('; ')}` });
            }
          }
        }

        const unknown = cannot.length > 0 && findings.length === 0 ? new Map([['NodeNetworkProblem', cannot.join('; ')]]) : undefined;
        const { conditions, events } = tracker.update({ findings, ...(unknown === undefined ? {} : { unknown }) });
        return { conditions, events, ...(unknown === undefined ? {} : { unknown: cannot.join('; ') }) };
      },
    };
  },
};
