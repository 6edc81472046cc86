// Class 8 (transport) and the download half of class 2: against real servers on 127.0.0.1 that
// close right after the body, reset mid-body, stall, trickle, lie about Content-Length and
// redirect badly, every download ends in a clear error or a success, and never crashes the process.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { FetchError, fetchInto, type FetchOptions } from '../../src/host/download.ts';
import { createHost } from '../../src/host/host.ts';
import { httpGetStatus } from '../../src/host/http.ts';
import { ensureArtifact } from '../../src/installers/download.ts';
import type { InstallContext } from '../../src/installers/types.ts';
import { createLogger } from '../../src/log.ts';

const BODY = Buffer.alloc(256 * 1024, 0x61);
const head = (length: number, extra = ''): string => `HTTP/1.1 200 OK\r\nContent-Length: ${length}\r\n${extra}\r\n`;

type Behaviour = (socket: net.Socket, request: string) => void;

/** A raw TCP server, so each misbehaviour is exactly what goes on the wire. */
async function rawServer(routes: Record<string, Behaviour>): Promise<{ url: (p: string) => string; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffered = '';
    socket.on('data', function onData(chunk) {
      buffered += chunk.toString('latin1');
      if (!buffered.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      const target = /^GET (\S+)/.exec(buffered)?.[1] ?? '/';
      (routes[target] ?? ((s) => s.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n')))(socket, buffered);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: (p) => `http://127.0.0.1:${port}${p}`,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('downloads against misbehaving servers', () => {
  let dir: string;
  let server: Awaited<ReturnType<typeof rawServer>>;
  const host = createHost();
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown): void => {
    uncaught.push(err);
  };
  let n = 0;
  const target = (): string => path.join(dir, `artifact-${n++}.partial`);
  const options = (extra: Partial<FetchOptions> = {}): FetchOptions => ({ maxBytes: 16 * 1024 * 1024, idleTimeoutMs: 2_000, deadlineMs: 20_000, ...extra });
  const failure = async (url: string, extra: Partial<FetchOptions> = {}): Promise<FetchError> => {
    try {
      await fetchInto(host, url, target(), options(extra));
    } catch (err) {
      assert.ok(err instanceof FetchError, `a FetchError, not ${String(err)}`);
      return err;
    }
    assert.fail(`${url} succeeded`);
  };

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'kubenode-download-'));
    process.on('uncaughtException', onUncaught);
    server = await rawServer({
      // What made Node 24.21.0's fetch assert: FIN right after a Connection: close body.
      '/close-after-body': (s) => {
        s.write(head(BODY.length, 'Connection: close\r\n'));
        s.write(BODY);
        s.end();
      },
      '/reset-mid-body': (s) => {
        s.write(head(BODY.length));
        s.write(BODY.subarray(0, 100_000), () => setTimeout(() => s.resetAndDestroy(), 50));
      },
      '/stall-before-headers': () => undefined,
      '/stall-mid-body': (s) => {
        s.write(head(BODY.length));
        s.write(BODY.subarray(0, 1000));
      },
      '/trickle': (s) => {
        s.write(head(1_000_000));
        const timer = setInterval(() => s.write('x'), 100);
        s.on('close', () => clearInterval(timer));
      },
      '/short-body': (s) => {
        s.write(head(BODY.length));
        s.end(BODY.subarray(0, 1000));
      },
      '/long-body': (s) => {
        s.write(head(1000, 'Connection: close\r\n'));
        s.end(BODY);
      },
      '/garbage': (s) => s.end('SSH-2.0-OpenSSH_9.2\r\n\r\n'),
      '/loop-a': (s) => s.end('HTTP/1.1 302 Found\r\nLocation: /loop-b\r\nContent-Length: 0\r\n\r\n'),
      '/loop-b': (s) => s.end('HTTP/1.1 302 Found\r\nLocation: /loop-a\r\nContent-Length: 0\r\n\r\n'),
      '/to-ftp': (s) => s.end('HTTP/1.1 301 Moved\r\nLocation: ftp://127.0.0.1/x\r\nContent-Length: 0\r\n\r\n'),
      '/no-location': (s) => s.end('HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n'),
      ...Object.fromEntries(
        Array.from({ length: 8 }, (_, i) => [`/chain-${i}`, (s: net.Socket) => s.end(`HTTP/1.1 307 Temporary\r\nLocation: /chain-${i + 1}\r\nContent-Length: 0\r\n\r\n`)]),
      ),
    });
  });
  after(async () => {
    process.off('uncaughtException', onUncaught);
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('a server that closes right after the body: 12 of 12 downloads complete', async () => {
    for (let i = 0; i < 12; i++) {
      const file = target();
      const r = await fetchInto(host, server.url('/close-after-body'), file, options());
      assert.equal(r.bytes, BODY.length);
      assert.deepEqual(await readFile(file), BODY);
    }
    assert.deepEqual(uncaught, []);
  });

  test('a reset mid-body keeps what arrived and may be resumed', async () => {
    const err = await failure(server.url('/reset-mid-body'));
    assert.equal(err.permanent, false);
    assert.match(err.message, /transfer interrupted after \d+ bytes: the server closed or reset the connection/);
    assert.ok(err.bytes > 0 && err.bytes < BODY.length, `${err.bytes} bytes kept`);
  });

  test('a server that never answers is cut at the idle timeout', async () => {
    const err = await failure(server.url('/stall-before-headers'), { idleTimeoutMs: 300 });
    assert.match(err.message, /no data for 300ms/);
  });

  test('a body that stops is cut at the idle timeout', async () => {
    const err = await failure(server.url('/stall-mid-body'), { idleTimeoutMs: 300 });
    assert.match(err.message, /transfer interrupted after 1000 bytes: no data for 300ms/);
  });

  test('a server trickling bytes is cut at the overall deadline', async () => {
    const started = performance.now();
    const err = await failure(server.url('/trickle'), { idleTimeoutMs: 1_000, deadlineMs: 1_500 });
    assert.match(err.message, /transfer interrupted after \d+ bytes: not finished within 1500ms/);
    assert.ok(performance.now() - started < 10_000);
  });

  test('an artifact trickling in is given up at installers.downloadTimeout, all attempts together', async () => {
    const ctx = {
      host,
      log: createLogger('silent'),
      config: { cacheRoot: dir, maxDownloadBytes: 16 * 1024 * 1024, idleTimeoutMs: 1_000, downloadTimeoutMs: 1_500, downloadAttempts: 5, backoffMs: 10 },
    } as unknown as InstallContext;
    const started = performance.now();
    await assert.rejects(ensureArtifact(ctx, 'slow', server.url('/trickle'), 'a'.repeat(64)), /download failed after 1 attempt: .*not finished within 1[45]\d\dms \(installers\.downloadTimeout: 1500ms for all attempts\)/);
    assert.ok(performance.now() - started < 10_000);
  });

  test('a body shorter than its Content-Length is an error', async () => {
    const err = await failure(server.url('/short-body'));
    assert.match(err.message, /transfer interrupted after 1000 bytes|connection closed after 1000 of 262144 bytes/);
  });

  test('a body longer than its Content-Length is cut at the length (the checksum decides)', async () => {
    const r = await fetchInto(host, server.url('/long-body'), target(), options());
    assert.equal(r.bytes, 1000);
  });

  test('a response that is not HTTP is a clear error', async () => {
    const err = await failure(server.url('/garbage'));
    assert.match(err.message, /malformed HTTP response/);
  });

  const redirects: { name: string; path: string; message: RegExp }[] = [
    { name: 'a redirect loop', path: '/loop-a', message: /redirect loop at http:\/\/127\.0\.0\.1:\d+\/loop-a/ },
    { name: 'too many redirects', path: '/chain-0', message: /more than 5 redirects/ },
    { name: 'a redirect to another scheme', path: '/to-ftp', message: /ftp:\/\/127\.0\.0\.1\/x: only http and https URLs can be fetched/ },
    { name: 'a redirect without a Location', path: '/no-location', message: /HTTP 302 redirect without a Location/ },
  ];
  for (const r of redirects) {
    test(`${r.name} is refused for good`, async () => {
      const err = await failure(server.url(r.path));
      assert.equal(err.permanent, true);
      assert.match(err.message, r.message);
    });
  }

  test('no download above crashed the process', () => assert.deepEqual(uncaught, []));
});

describe('redirects across origins and to https', () => {
  let dir: string;
  let plain: http.Server;
  let other: http.Server;
  let secure: https.Server;
  let plainUrl: string;
  let otherUrl: string;
  let secureUrl: string;
  const host = createHost();
  const defaultCAs = tls.getCACertificates('default');

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'kubenode-https-'));
    const key = path.join(dir, 'key.pem');
    const cert = path.join(dir, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const listen = async (s: http.Server | https.Server, scheme: string): Promise<string> => {
      await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
      return `${scheme}://127.0.0.1:${(s.address() as net.AddressInfo).port}`;
    };
    other = http.createServer((_req, res) => res.end('from the other origin'));
    otherUrl = await listen(other, 'http');
    secure = https.createServer({ key: await readFile(key), cert: await readFile(cert) }, (req, res) => {
      if (req.url === '/down') res.writeHead(302, { location: `${plainUrl}/file` }).end();
      else res.end('over tls');
    });
    secureUrl = await listen(secure, 'https');
    plain = http.createServer((req, res) => {
      if (req.url === '/cross') res.writeHead(302, { location: `${otherUrl}/file` }).end();
      else if (req.url === '/up') res.writeHead(301, { location: `${secureUrl}/file` }).end();
      else res.end('plain');
    });
    plainUrl = await listen(plain, 'http');
    tls.setDefaultCACertificates([...defaultCAs, await readFile(cert, 'utf8')]);
  });
  after(async () => {
    tls.setDefaultCACertificates(defaultCAs);
    for (const s of [plain, other, secure]) await new Promise((resolve) => s.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  test('a cross-origin redirect is followed', async () => {
    const file = path.join(dir, 'cross');
    await fetchInto(host, `${plainUrl}/cross`, file, { maxBytes: 1024, idleTimeoutMs: 2_000, deadlineMs: 5_000 });
    assert.equal(await readFile(file, 'utf8'), 'from the other origin');
  });

  test('a redirect from http up to https is followed', async () => {
    const file = path.join(dir, 'up');
    await fetchInto(host, `${plainUrl}/up`, file, { maxBytes: 1024, idleTimeoutMs: 2_000, deadlineMs: 5_000 });
    assert.equal(await readFile(file, 'utf8'), 'over tls');
  });

  test('a redirect from https down to http is refused', async () => {
    const file = path.join(dir, 'down');
    await assert.rejects(fetchInto(host, `${secureUrl}/down`, file, { maxBytes: 1024, idleTimeoutMs: 2_000, deadlineMs: 5_000 }), (err: unknown) => {
      assert.ok(err instanceof FetchError && err.permanent);
      assert.match(err.message, /refusing a redirect from https down to http:/);
      return true;
    });
    assert.equal((await stat(file).catch(() => undefined))?.size ?? 0, 0);
  });

  test('an untrusted certificate is a clear error', async () => {
    tls.setDefaultCACertificates(defaultCAs);
    try {
      await assert.rejects(fetchInto(host, `${secureUrl}/file`, path.join(dir, 'untrusted'), { maxBytes: 1024, idleTimeoutMs: 2_000, deadlineMs: 5_000 }), /self-signed certificate/);
    } finally {
      tls.setDefaultCACertificates([...defaultCAs, await readFile(path.join(dir, 'cert.pem'), 'utf8')]);
    }
  });

  test('health checks get the status without following redirects, and a deadline', async () => {
    assert.equal(await httpGetStatus(`${plainUrl}/cross`, 2_000), 302);
    assert.equal(await httpGetStatus(`${secureUrl}/file`, 2_000), 200);
  });
});
