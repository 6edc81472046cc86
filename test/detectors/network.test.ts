import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ipv4DefaultRoutes, ipv6DefaultRoutes, network, parseResolvConf, withPort } from '../../src/detectors/network.ts';
import { runAgent } from '../helpers/cli.ts';
import { condition, copyHost, HOSTS, makeDetector, signal } from './probed.ts';

const read = (rel: string): string => readFileSync(path.join(HOSTS, rel), 'utf8');

test('default routes from the captured /proc/net/route and /proc/net/ipv6_route', () => {
  assert.deepEqual(ipv4DefaultRoutes(read('network-healthy/proc/net/route')), ['eth0']);
  assert.deepEqual(ipv6DefaultRoutes(read('network-healthy/proc/net/ipv6_route')), ['eth0']);
  assert.deepEqual(ipv4DefaultRoutes(read('network-no-route/proc/net/route')), []);
  // the kernel's "default unreachable" on lo (RTF_REJECT) is still there, and is not a route
  assert.match(read('network-no-route/proc/net/ipv6_route'), /^0{32} 00 .* 00200200\s+lo$/m);
  assert.deepEqual(ipv6DefaultRoutes(read('network-no-route/proc/net/ipv6_route')), []);
});

test('parseResolvConf keeps nameserver addresses in order and ignores the rest', () => {
  assert.deepEqual(parseResolvConf(read('network-healthy/etc/resolv.conf')), ['10.255.255.53']);
  assert.deepEqual(parseResolvConf('# comment\nsearch example.org\nnameserver 127.0.0.53\noptions edns0\nnameserver ::1\nnameserver not-an-ip\n'), ['127.0.0.53', '::1']);
  assert.equal(withPort('127.0.0.1', 5353), '127.0.0.1:5353');
  assert.equal(withPort('::1', 5353), '[::1]:5353');
  assert.equal(withPort('127.0.0.1', 53), '127.0.0.1');
  assert.equal(withPort('127.0.0.1:5300', 5353), '127.0.0.1:5300');
});

interface Report {
  results: { status: string; conditions: { type: string; status: string; reason: string; message: string }[] }[];
}

for (const [fixture, code, reason] of [
  ['network-healthy', 0, 'NodeNetworkOK'],
  ['network-no-route', 1, 'NoDefaultRoute'],
  ['network-lo-down', 1, 'LoopbackDown'],
] as const) {
  test(`check --root ${fixture}: NodeNetworkProblem ${reason}`, async () => {
    const out = await runAgent(['check', '--json', '--only', 'network', '--root', path.join(HOSTS, fixture)]);
    assert.equal(out.code, code, out.stdout + out.stderr);
    const c = (JSON.parse(out.stdout) as Report).results[0]?.conditions.find((x) => x.type === 'NodeNetworkProblem');
    assert.equal(c?.reason, reason);
  });
}

// ---------------------------------------------------------------- a real DNS server on 127.0.0.1

/** A minimal RFC 1035 responder: answers every A question with `address`, after `delayMs`, or never. */
function dnsServer(mode: { address: string; delayMs?: number } | 'silent'): Promise<{ port: number; queries: () => number; close: () => Promise<void> }> {
  const socket = dgram.createSocket('udp4');
  const timers = new Set<NodeJS.Timeout>();
  let queries = 0;
  socket.on('message', (msg, rinfo) => {
    queries += 1;
    if (mode === 'silent') return;
    // question: header (12 bytes), QNAME labels ending in 0, QTYPE, QCLASS
    let end = 12;
    while (msg[end] !== 0) end += (msg[end] as number) + 1;
    const question = msg.subarray(12, end + 5);
    const qtype = msg.readUInt16BE(end + 1);
    const header = Buffer.alloc(12);
    msg.copy(header, 0, 0, 2); // id
    header.writeUInt16BE(0x8180, 2); // response, RD, RA, NOERROR
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(qtype === 1 ? 1 : 0, 6);
    const answer = Buffer.alloc(16);
    answer.writeUInt16BE(0xc00c, 0); // pointer to the question's name
    answer.writeUInt16BE(1, 2); // A
    answer.writeUInt16BE(1, 4); // IN
    answer.writeUInt32BE(60, 6);
    answer.writeUInt16BE(4, 10);
    mode.address.split('.').forEach((octet, i) => answer.writeUInt8(Number(octet), 12 + i));
    const reply = Buffer.concat(qtype === 1 ? [header, question, answer] : [header, question]);
    const timer = setTimeout(() => {
      timers.delete(timer);
      socket.send(reply, rinfo.port, rinfo.address);
    }, mode.delayMs ?? 0);
    timers.add(timer);
  });
  return new Promise((resolve) => {
    socket.bind(0, '127.0.0.1', () => {
      resolve({
        port: socket.address().port,
        queries: () => queries,
        close: () => {
          for (const t of timers) clearTimeout(t);
          return new Promise((r) => socket.close(() => r()));
        },
      });
    });
  });
}

let good: Awaited<ReturnType<typeof dnsServer>>;
let slow: Awaited<ReturnType<typeof dnsServer>>;
let silent: Awaited<ReturnType<typeof dnsServer>>;
before(async () => {
  good = await dnsServer({ address: '192.0.2.10' });
  slow = await dnsServer({ address: '192.0.2.11', delayMs: 5_000 });
  silent = await dnsServer('silent');
});
after(async () => {
  await Promise.all([good.close(), slow.close(), silent.close()]);
});

const dns = (servers: string[], extra: Record<string, unknown> = {}) => ({ dnsName: 'kubernetes.example.org', dnsServers: servers, dnsTimeout: '300ms', ...extra });

test('DNS is off unless a name is configured: no query is sent', async () => {
  const before = good.queries();
  const result = await makeDetector(network, path.join(HOSTS, 'network-healthy'), { config: { dnsServers: [`127.0.0.1:${good.port}`] } }).probe(signal());
  assert.equal(condition(result, 'NodeNetworkProblem').status, 'False');
  assert.equal(good.queries(), before);
});

test('a server that answers: no problem', async () => {
  const before = good.queries();
  const result = await makeDetector(network, path.join(HOSTS, 'network-healthy'), { config: dns([`127.0.0.1:${good.port}`]) }).probe(signal());
  assert.equal(condition(result, 'NodeNetworkProblem').status, 'False');
  assert.ok(good.queries() > before, 'the server was asked');
});

test('a server that answers after the deadline, and one that never answers: DNSResolutionFailed', async () => {
  for (const server of [slow, silent]) {
    const result = await makeDetector(network, path.join(HOSTS, 'network-healthy'), { config: dns([`127.0.0.1:${server.port}`]) }).probe(signal());
    const c = condition(result, 'NodeNetworkProblem');
    assert.deepEqual([c.status, c.reason], ['True', 'DNSResolutionFailed']);
    assert.match(c.message, new RegExp(`^cannot resolve kubernetes\\.example\\.org: 127\\.0\\.0\\.1:${server.port}: no answer within 300ms$`));
  }
});

test('the nameservers come from the host resolv.conf under --root; a second server that answers is enough', async () => {
  const host = copyHost('network-healthy');
  try {
    // resolv.conf has no port syntax: dnsPort says which port its nameservers listen on.
    writeFileSync(path.join(host.root, 'etc/resolv.conf'), 'search example.org\nnameserver 127.0.0.1\n');
    const ok = await makeDetector(network, host.root, { config: { ...dns([]), dnsPort: good.port } }).probe(signal());
    assert.equal(condition(ok, 'NodeNetworkProblem').status, 'False');
    const bad = await makeDetector(network, host.root, { config: { ...dns([]), dnsPort: silent.port } }).probe(signal());
    assert.equal(condition(bad, 'NodeNetworkProblem').reason, 'DNSResolutionFailed');
    const fallback = await makeDetector(network, host.root, { config: dns([`127.0.0.1:${silent.port}`, `127.0.0.1:${good.port}`]) }).probe(signal());
    assert.equal(condition(fallback, 'NodeNetworkProblem').status, 'False');
  } finally {
    host.cleanup();
  }
});

test('check --root with a DNS name configured asks the server and reports the failure', async () => {
  const host = copyHost('network-healthy');
  try {
    const config = path.join(host.root, 'agent.yaml');
    writeFileSync(config, `monitors: {systemLog: [], customPlugin: []}\ndetectors:\n  network:\n    dnsName: kubernetes.example.org\n    dnsServers: ["127.0.0.1:${silent.port}"]\n    dnsTimeout: 300ms\n`);
    const out = await runAgent(['check', '--json', '--only', 'network', '--root', host.root, '--config', config]);
    assert.equal(out.code, 1, out.stdout + out.stderr);
    const c = (JSON.parse(out.stdout) as Report).results[0]?.conditions[0];
    assert.equal(c?.reason, 'DNSResolutionFailed');
  } finally {
    host.cleanup();
  }
});

test('in the daemon one failed lookup does not turn the condition (default: three in a row)', async () => {
  const detector = makeDetector(network, path.join(HOSTS, 'network-healthy'), { mode: 'run', config: dns([`127.0.0.1:${silent.port}`]) });
  const states: string[] = [];
  for (let i = 0; i < 3; i++) states.push(condition(await detector.probe(signal()), 'NodeNetworkProblem').status);
  assert.deepEqual(states, ['False', 'False', 'True']);
});
