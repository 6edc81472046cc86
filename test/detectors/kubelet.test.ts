import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseClientCert, plegLines } from '../../src/detectors/kubelet.ts';
import { FIXTURES, runAgent } from '../helpers/cli.ts';

const HOSTS = path.join(FIXTURES, 'hosts');
let tmp: string;
before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'kn-kubelet-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** A real certificate and key from openssl, valid for `days` days, as kubelet-client-current.pem holds them. */
function makeClientPem(days: number): string {
  const dir = path.join(tmp, `cert-${days}-${Math.random().toString(36).slice(2)}`);
  execFileSync('mkdir', ['-p', dir]);
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
    '-days', String(days), '-subj', '/O=system:nodes/CN=system:node:worker-1',
  ], { stdio: 'ignore' });
  return execFileSync('cat', [path.join(dir, 'cert.pem'), path.join(dir, 'key.pem')], { encoding: 'utf8' });
}

describe('kubelet parsers', () => {
  test('parseClientCert: days left of a 30-day certificate, key after it ignored', () => {
    const pem = makeClientPem(30);
    const info = parseClientCert(pem, Date.now());
    assert.ok(!('error' in info));
    assert.ok(info.daysLeft > 29 && info.daysLeft <= 30, String(info.daysLeft));
    assert.match(info.subject, /CN=system:node:worker-1/);
  });

  test('parseClientCert: expired when now is past notAfter', () => {
    const info = parseClientCert(makeClientPem(1), Date.now() + 2 * 86_400_000);
    assert.ok(!('error' in info) && info.daysLeft < 0);
  });

  test('parseClientCert: no certificate block', () => {
    assert.deepEqual(parseClientCert('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n', Date.now()), { error: 'no CERTIFICATE block' });
  });

  test('plegLines: both log generations count, the start-up line does not', async () => {
    const pleg = plegLines(await readFile(path.join(HOSTS, 'kubelet-pleg/usr/bin/journalctl.out'), 'utf8'));
    assert.equal(pleg.length, 6);
    const healthy = plegLines(await readFile(path.join(HOSTS, 'kubelet-healthy/usr/bin/journalctl.out'), 'utf8'));
    assert.deepEqual(healthy, []);
  });
});

type Mode = 'ok' | 'slow' | 'never' | 'syncloop' | 'transient';

async function healthz(mode: Mode): Promise<{ url: string; requests: () => number; close: () => Promise<void> }> {
  let requests = 0;
  const server = http.createServer((req, res) => {
    requests += 1;
    assert.equal(req.url, '/healthz');
    if (mode === 'never') return;
    if (mode === 'transient' && requests === 1) return void req.socket.destroy();
    if (mode === 'syncloop') {
      // Kubelet's answer when its sync loop is stuck (kubernetes/kubernetes issue #100803).
      return void res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('[+]ping ok\n[+]log ok\n[-]syncloop failed: reason withheld\nhealthz check failed\n');
    }
    const answer = (): void => void res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('ok');
    if (mode === 'slow') setTimeout(answer, 300);
    else answer();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/healthz`,
    requests: () => requests,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<string> {
  const s = http.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return `http://127.0.0.1:${port}/healthz`;
}

interface Entry {
  status: string;
  conditions: { type: string; status: string; reason: string; message: string }[];
  error?: string;
}

let n = 0;
async function check(root: string, settings: Record<string, unknown>, silenced: string[] = []): Promise<Entry> {
  const file = path.join(tmp, `agent-${n++}.yaml`);
  await writeFile(file, JSON.stringify({ monitors: { systemLog: [], customPlugin: [] }, detection: { silencedReasons: silenced }, detectors: { kubelet: { checkRetryInterval: '100ms', ...settings } } }));
  const result = await runAgent(['check', '--json', '--root', root, '--only', 'kubelet', '--config', file]);
  assert.ok(result.stdout.startsWith('{'), `no report: ${result.stderr}`);
  const entry = (JSON.parse(result.stdout) as { results: Entry[] }).results[0] as Entry;
  assert.equal(result.code, entry.status === 'ok' ? 0 : entry.status === 'problem' ? 1 : 2);
  return entry;
}

const cond = (e: Entry, type: string) => e.conditions.find((c) => c.type === type);

describe('kubelet on fixture hosts with a real /healthz on 127.0.0.1', () => {
  const cases: { name: string; host: string; mode: Mode; deadline?: string; status: string; reason?: string }[] = [
    { name: 'healthy', host: 'kubelet-healthy', mode: 'ok', status: 'ok' },
    { name: 'slow but within the deadline', host: 'kubelet-healthy', mode: 'slow', deadline: '2s', status: 'ok' },
    { name: 'one dropped connection, then ok', host: 'kubelet-healthy', mode: 'transient', status: 'ok' },
    { name: 'syncloop failed (HTTP 500)', host: 'kubelet-healthy', mode: 'syncloop', status: 'problem', reason: 'KubeletHealthzFailed' },
    { name: 'never answers', host: 'kubelet-healthy', mode: 'never', deadline: '300ms', status: 'problem', reason: 'KubeletHealthzFailed' },
    { name: 'PLEG not healthy in the journal', host: 'kubelet-pleg', mode: 'ok', status: 'problem', reason: 'PLEGNotHealthy' },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const server = await healthz(c.mode);
      try {
        const e = await check(path.join(HOSTS, c.host), { healthzUrl: server.url, ...(c.deadline === undefined ? {} : { deadline: c.deadline }) });
        assert.equal(e.status, c.status, JSON.stringify(e));
        if (c.reason !== undefined) assert.equal(cond(e, 'KubeletUnhealthy')?.reason, c.reason);
        assert.equal(cond(e, 'KubeletCertificateExpiring')?.status, 'False');
      } finally {
        await server.close();
      }
    });
  }

  test('syncloop message is carried into the condition', async () => {
    const server = await healthz('syncloop');
    try {
      const e = await check(path.join(HOSTS, 'kubelet-healthy'), { healthzUrl: server.url });
      assert.match(cond(e, 'KubeletUnhealthy')?.message ?? '', /syncloop failed/);
      assert.equal(server.requests(), 3);
    } finally {
      await server.close();
    }
  });

  test('PLEG below plegMinCount is not a problem', async () => {
    const server = await healthz('ok');
    try {
      const e = await check(path.join(HOSTS, 'kubelet-pleg'), { healthzUrl: server.url, plegMinCount: 7 });
      assert.equal(e.status, 'ok');
    } finally {
      await server.close();
    }
  });

  test('detection.silencedReasons silences PLEGNotHealthy', async () => {
    const server = await healthz('ok');
    try {
      const e = await check(path.join(HOSTS, 'kubelet-pleg'), { healthzUrl: server.url }, ['PLEGNotHealthy']);
      assert.equal(e.status, 'ok');
    } finally {
      await server.close();
    }
  });

  test('kubelet present but refusing connections: KubeletHealthzFailed', async () => {
    const e = await check(path.join(HOSTS, 'kubelet-healthy'), { healthzUrl: await closedPort() });
    assert.equal(cond(e, 'KubeletUnhealthy')?.reason, 'KubeletHealthzFailed');
    assert.match(cond(e, 'KubeletUnhealthy')?.message ?? '', /refused/);
  });
});

describe('kubelet client certificate', () => {
  test('3 days left: KubeletClientCertExpiring; 60 days left: ok', async () => {
    const server = await healthz('ok');
    try {
      for (const [days, status] of [[3, 'True'], [60, 'False']] as const) {
        const root = path.join(tmp, `certhost-${days}`);
        await cp(path.join(HOSTS, 'kubelet-healthy'), root, { recursive: true });
        await writeFile(path.join(root, 'var/lib/kubelet/pki/kubelet-client-current.pem'), makeClientPem(days));
        const e = await check(root, { healthzUrl: server.url });
        const c = cond(e, 'KubeletCertificateExpiring');
        assert.equal(c?.status, status, JSON.stringify(e));
        if (status === 'True') assert.equal(c?.reason, 'KubeletClientCertExpiring');
      }
    } finally {
      await server.close();
    }
  });
});

describe('a node without kubelet', () => {
  test('nothing listening, no unit, no cert: ok (auto); problem when expected', async () => {
    const root = path.join(tmp, 'no-kubelet');
    await mkdir(path.join(root, 'proc'), { recursive: true });
    const url = await closedPort();
    const auto = await check(root, { healthzUrl: url });
    assert.equal(auto.status, 'ok', JSON.stringify(auto));
    const expected = await check(root, { healthzUrl: url, expected: 'true' });
    assert.equal(expected.status, 'problem');
    assert.equal(cond(expected, 'KubeletUnhealthy')?.reason, 'KubeletNotRunning');
  });

  test('auto: no /healthz request while no kubelet is there; one as soon as a kubelet process runs', async () => {
    const root = path.join(tmp, 'kubelet-appears');
    await mkdir(path.join(root, 'proc'), { recursive: true });
    const server = await healthz('syncloop');
    try {
      const absent = await check(root, { healthzUrl: server.url });
      assert.equal(absent.status, 'ok', JSON.stringify(absent));
      assert.equal(server.requests(), 0, 'nothing to look at: no request');

      // A real process named kubelet (a copy of sleep): its /proc/PID/stat, copied into the root.
      const bin = path.join(tmp, 'kubelet');
      await cp('/bin/sleep', bin);
      const child = spawn(bin, ['30'], { stdio: 'ignore' });
      try {
        const pid = String(child.pid);
        // The kernel renames the child in exec, which may finish just after spawn returns.
        let stat = await readFile(`/proc/${pid}/stat`, 'utf8');
        while (!stat.includes('(kubelet)')) {
          await new Promise((resolve) => setTimeout(resolve, 10));
          stat = await readFile(`/proc/${pid}/stat`, 'utf8');
        }
        await mkdir(path.join(root, 'proc', pid), { recursive: true });
        await writeFile(path.join(root, 'proc', pid, 'stat'), stat);
      } finally {
        child.kill();
      }
      const running = await check(root, { healthzUrl: server.url, failuresToTrip: 1 });
      assert.ok(server.requests() >= 1, 'a kubelet process is looked at');
      assert.equal(cond(running, 'KubeletUnhealthy')?.reason, 'KubeletHealthzFailed', JSON.stringify(running));
    } finally {
      await server.close();
    }
  });
});
