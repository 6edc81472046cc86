// Gate parts that need no apiserver: cron blackout windows, the local budget, the HTTPS webhook
// (a real server on 127.0.0.1 with a certificate made by openssl here), and the installers' view.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createHost } from '../../src/host/host.ts';
import { parseCron, windowStartContaining } from '../../src/risk/cron.ts';
import { LocalBudget } from '../../src/risk/local-budget.ts';
import { askWebhook } from '../../src/risk/webhook.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { TempRoot } from '../helpers/host-root.ts';
import { readdirSync } from 'node:fs';
import { recordingRoot, riskGate, silent } from '../remedies/helpers.ts';
import { decodeSection } from '../../src/config/decode.ts';

describe('cron blackout windows', () => {
  const cases = [
    { cron: '0 22 * * *', tz: 'Europe/Berlin', duration: 8 * 3_600_000, at: '2026-01-01T23:30:00Z', start: '2026-01-01T21:00:00.000Z' },
    { cron: '0 22 * * *', tz: 'Europe/Berlin', duration: 8 * 3_600_000, at: '2026-01-02T04:59:00Z', start: '2026-01-01T21:00:00.000Z' },
    { cron: '0 22 * * *', tz: 'Europe/Berlin', duration: 8 * 3_600_000, at: '2026-01-02T05:00:00Z', start: undefined },
    // Summer time: 22:00 in Berlin is 20:00Z.
    { cron: '0 22 * * *', tz: 'Europe/Berlin', duration: 3_600_000, at: '2026-07-01T20:30:00Z', start: '2026-07-01T20:00:00.000Z' },
    { cron: '0 8 * * 1-5', tz: 'America/New_York', duration: 3_600_000, at: '2026-03-07T13:30:00Z', start: undefined }, // a Saturday
    { cron: '0 8 * * mon-fri', tz: 'America/New_York', duration: 3_600_000, at: '2026-03-06T13:30:00Z', start: '2026-03-06T13:00:00.000Z' },
    { cron: '*/15 * * * *', tz: 'UTC', duration: 5 * 60_000, at: '2026-01-01T10:47:00Z', start: '2026-01-01T10:45:00.000Z' },
    { cron: '*/15 * * * *', tz: 'UTC', duration: 5 * 60_000, at: '2026-01-01T10:51:00Z', start: undefined },
    // Vixie cron: both day fields restricted → either matches (the 1st, or any Sunday).
    { cron: '0 0 1 * 0', tz: 'UTC', duration: 3_600_000, at: '2026-01-04T00:10:00Z', start: '2026-01-04T00:00:00.000Z' },
    { cron: '@daily', tz: 'Asia/Kolkata', duration: 30 * 60_000, at: '2026-01-01T18:40:00Z', start: '2026-01-01T18:30:00.000Z' },
  ];
  for (const c of cases) {
    test(`${c.cron} ${c.tz} at ${c.at}`, () => {
      const start = windowStartContaining(parseCron(c.cron), c.duration, c.tz, Date.parse(c.at));
      assert.equal(start === undefined ? undefined : new Date(start).toISOString(), c.start);
    });
  }
  for (const [bad, why] of [['0 8 * *', /expected 5 fields/], ['61 * * * *', /minute: "61" is not in 0-59/], ['0 8 L * *', /not supported/], ['0 9-8 * * *', /runs backwards/]] as const) {
    test(`refuses ${JSON.stringify(bad)}`, () => assert.throws(() => parseCron(bad), why));
  }
  test('an unknown time zone is an error', () => assert.throws(() => windowStartContaining(parseCron('* * * * *'), 60_000, 'Mars/Olympus', 0), RangeError));
});

describe('local budget and the installers', () => {
  test('at most N disruptive actions per window, shared with installer restarts, kept across instances', async () => {
    const root = new TempRoot();
    try {
      const clock = new FakeClock();
      const host = createHost({ root: root.dir, clock });
      const gate = riskGate(host, { local: { maxDisruptive: 2 } });
      const req = (op: string) => ({ node: 'n', action: 'restart-kubelet', risk: 'disruptive' as const, reason: 'test', operation: op });
      assert.equal((await gate.decide(req('a'))).allowed, true);
      const installers = gate.forInstallers('n');
      assert.equal((await installers.ask({ component: 'containerd', step: 'restart', action: 'restart containerd' })).allowed, true);
      const third = await gate.decide(req('c'));
      assert.equal(third.allowed, false);
      assert.equal(third.gate, 'local');
      assert.match(third.path[0]?.reason ?? '', /local budget spent: 2 of 2/);
      // A dry run asks but does not spend.
      const again = riskGate(host, { local: { maxDisruptive: 3 } });
      assert.equal((await again.decide(req('d'), { dryRun: true })).allowed, true);
      assert.equal((await again.decide(req('d'))).allowed, true);
      assert.equal((await again.decide(req('e'))).allowed, false);
      await clock.advance(3_600_001);
      assert.equal((await again.decide(req('f'))).allowed, true);
      // Safe actions never ask.
      const safe = await gate.decide({ ...req('g'), risk: 'safe' });
      assert.deepEqual([safe.allowed, safe.gate], [true, 'none']);
    } finally {
      root.remove();
    }
  });
});

describe('webhook gate (real HTTPS on 127.0.0.1)', () => {
  let dir: string;
  let server: Server;
  let url: string;
  let mode: 'allow' | 'deny' | 'hang' | 'garbage' = 'allow';
  const seen: unknown[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kubenode-webhook-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    server = createServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        seen.push(JSON.parse(body));
        if (mode === 'hang') return;
        res.setHeader('content-type', 'application/json');
        res.end(mode === 'garbage' ? 'not json' : JSON.stringify({ allowed: mode === 'allow', reason: mode === 'allow' ? 'change window open' : 'freeze: quarterly close' }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `https://127.0.0.1:${(server.address() as { port: number }).port}/review`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  const ask = (overrides: Partial<{ timeoutMs: number; failOpen: boolean; caFile: string }> = {}) => {
    // The CA file is a host path: the test's root is /, where the PEM was written.
    const host = createHost();
    return askWebhook(host, { url, timeoutMs: 2000, caFile: join(dir, 'cert.pem'), failOpen: false, ...overrides }, { node: 'n', action: 'reboot', risk: 'disruptive', reason: 'KernelDeadlock/TaskHung', operation: 'op' });
  };

  const cases = [
    { name: 'allow', mode: 'allow' as const, opts: {}, allowed: true, reason: /webhook: change window open/ },
    { name: 'deny', mode: 'deny' as const, opts: {}, allowed: false, reason: /webhook: freeze: quarterly close/ },
    { name: 'timeout fails closed', mode: 'hang' as const, opts: { timeoutMs: 300 }, allowed: false, reason: /no answer within 300ms; failing closed/ },
    { name: 'timeout with failOpen', mode: 'hang' as const, opts: { timeoutMs: 300, failOpen: true }, allowed: true, reason: /failing open/ },
    { name: 'garbage fails closed', mode: 'garbage' as const, opts: {}, allowed: false, reason: /not JSON; failing closed/ },
    { name: 'unknown CA fails closed', mode: 'allow' as const, opts: { caFile: '' }, allowed: false, reason: /self-signed|certificate/ },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      mode = c.mode;
      const v = await ask(c.opts);
      assert.equal(v.allowed, c.allowed, v.reason);
      assert.match(v.reason, c.reason);
    });
  }

  test('the request names node, action, risk, reason and operation', () => {
    assert.deepEqual((seen[0] as { request: unknown }).request, { node: 'n', action: 'reboot', risk: 'disruptive', reason: 'KernelDeadlock/TaskHung', operation: 'op' });
  });

  test('in the chain, a webhook denial refuses the action after the local budget allowed it, and spends nothing', async () => {
    mode = 'deny';
    const root = new TempRoot();
    try {
      const host = createHost({ root: root.dir });
      root.write(join(dir, 'cert.pem'), readFileSync(join(dir, 'cert.pem'), 'utf8'));
      const gate = riskGate(host, { local: { maxDisruptive: 1 }, webhook: { url, timeout: '2s', caFile: join(dir, 'cert.pem') } });
      const d = await gate.decide({ node: 'n', action: 'drain', risk: 'disruptive', reason: 'r', operation: 'op' });
      assert.deepEqual([d.allowed, d.gate, d.path.map((s) => s.gate)], [false, 'webhook', ['local', 'webhook']]);
      const local = new LocalBudget(host, '/var/lib/kubenode', { maxDisruptive: 1, windowMs: 3_600_000 }, silent);
      assert.equal((await local.check()).allowed, true, 'budget not spent on a denial');
    } finally {
      root.remove();
    }
  });
});

describe('apiserver unreachable', () => {
  test('disruptive actions are refused, safe ones still run and are recorded in the state dir', async () => {
    const { createServer: createNetServer } = await import('node:net');
    // A port that was free a moment ago and is closed now: connection refused.
    const probe = createNetServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r));
    const root = recordingRoot();
    const kubeconfig = root.write('/kubeconfig', JSON.stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'c',
      clusters: [{ name: 'c', cluster: { server: `https://127.0.0.1:${port}`, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'u', user: { token: 't' } }],
      contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
    }));
    const { createKubeApi } = await import('../../src/remedies/kube-api.ts');
    const { createRemedies } = await import('../../src/remedies/setup.ts');
    const { RemediesConfig } = await import('../../src/remedies/config.ts');
    const kube = await createKubeApi({ kubeconfig, timeoutMs: 2000 });
    try {
      const config = decodeSection('test', RemediesConfig, {
        rulesResync: '1h',
        rules: [
          { name: 'runtime', condition: { type: 'KernelDeadlock', reasons: [] }, steps: [{ action: 'restart-runtime' }] },
          { name: 'pressure', condition: { type: 'MemoryPressure', reasons: [] }, steps: [{ action: 'drop-caches' }] },
        ],
      });
      const host = createHost({ root: root.dir });
      const r = createRemedies({ host, config, stateDir: '/var/lib/kubenode', nodeName: 'n', bootId: 'b', log: silent, kube, gate: riskGate(host, {}, kube) });
      await r.engine.resume();
      r.engine.observe([
        { type: 'KernelDeadlock', status: 'True', reason: 'TaskHung', message: '', transitionTime: Date.now() },
        { type: 'MemoryPressure', status: 'True', reason: 'PageCacheBloat', message: '', transitionTime: Date.now() },
      ]);
      await r.engine.tick();
      assert.deepEqual(root.calls().filter((c) => c.startsWith('systemctl restart')), [], 'no disruptive action without the apiserver');
      assert.equal(readFileSync(root.path('/proc/sys/vm/drop_caches'), 'utf8'), '3\n', 'the safe action ran');
      const records = readdirSync(root.path('/var/lib/kubenode/remedies/operations')).map((f) => JSON.parse(readFileSync(root.path(`/var/lib/kubenode/remedies/operations/${f}`), 'utf8')));
      const denied = records.find((x) => x.spec.action === 'restart-runtime');
      assert.equal(denied?.status.phase, 'Denied');
      assert.match(denied?.status.gate.reasons.join(), /cannot reach the apiserver .*only safe actions run/);
      assert.equal(records.find((x) => x.spec.action === 'drop-caches')?.status.phase, 'Verifying');
    } finally {
      kube.close();
      root.remove();
    }
  });
});
