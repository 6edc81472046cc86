import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { startServer } from '../../src/report/server.ts';

const health = { healthy: () => ({ ok: true, detail: {} }) };

test('hundreds of idle loopback connections cannot starve /healthz, and idle ones are closed after the timeout', async () => {
  const { server, address } = await startServer('127.0.0.1:0', new Registry(), health, { maxConnections: 32, idleTimeoutMs: 1500 });
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  const sockets: Socket[] = [];
  const closed = new Set<Socket>();
  try {
    for (let i = 0; i < 300; i++) {
      const s = connect(port, host);
      s.on('error', () => undefined);
      s.on('close', () => closed.add(s));
      sockets.push(s);
      await new Promise<void>((resolve) => s.once('connect', () => resolve()).once('close', () => resolve()));
    }
    const open = await new Promise<number>((resolve, reject) => server.getConnections((err, n) => (err === null ? resolve(n) : reject(err))));
    assert.ok(open <= 33, `the server holds ${open} connections, at most its limit`);
    const res = await fetch(`http://${address}/healthz`);
    assert.equal(res.status, 200);
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(closed.size, sockets.length, 'every idle connection was closed by the server');
  } finally {
    for (const s of sockets) s.destroy();
    server.close();
  }
});

test('a port already in use is a ListenError that says so', async () => {
  const first = await startServer('127.0.0.1:0', new Registry(), health);
  try {
    await assert.rejects(startServer(first.address, new Registry(), health), (err: Error) => err.name === 'ListenError' && /cannot listen on 127\.0\.0\.1:\d+: the address is already in use/.test(err.message));
  } finally {
    first.server.close();
  }
});
