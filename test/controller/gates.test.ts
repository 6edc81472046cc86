// The external health gates against real servers: a real Prometheus (Debian's package, via the
// harness) scraping a test exporter on 127.0.0.1, and a real HTTPS webhook server with a CA made
// by openssl for this test. Each call's outcome is one of success, failure, error — and the
// error cases (unreachable, timeout, empty result, untrusted certificate) never read as failure.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import { PrometheusGate, WebhookGate } from '../../src/api/machine-component-set.ts';
import { callWebhook, measurePrometheus, nodesRegex, renderQuery, type WebhookReview } from '../../src/controller/rollout/gates.ts';
import { startPrometheus, type Prometheus } from '../harness/prometheus.ts';
import { listen, selfSigned } from './helpers.ts';


const promGate = (address: string, query: string, extra: Record<string, unknown> = {}): PrometheusGate =>
  Value.Default(PrometheusGate, { name: 'errors', address, query, successCondition: { operator: '<', value: 1 }, ...extra }) as PrometheusGate;

describe('Prometheus gate against a real Prometheus', () => {
  let exporter: Server;
  let prom: Prometheus;
  let value = 0;
  before(async () => {
    exporter = createHttpServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(`# HELP kubenode_test_errors Errors a test node reports.\n# TYPE kubenode_test_errors gauge\nkubenode_test_errors{node="m-1"} ${value}\nkubenode_test_errors{node="m-2"} 0\nkubenode_test_errors{node="other"} 99\n`);
    });
    const port = await listen(exporter);
    prom = await startPrometheus({ scrapeTargets: [`http://127.0.0.1:${port}/metrics`] });
    await prom.waitFor('kubenode_test_errors', (r) => r.length === 3, 30_000);
  });
  after(async () => {
    await prom?.stop();
    exporter?.close();
  });

  it('passes, fails and errors by the answer', async () => {
    const q = renderQuery('kubenode_test_errors{node=~"{{nodes}}"}', { nodes: ['m-1', 'm-2'], set: 's', batch: 0 });
    const pass = await measurePrometheus(promGate(prom.url, 'x'), q);
    assert.equal(pass.outcome, 'success', pass.message);
    value = 3;
    await prom.waitFor('kubenode_test_errors{node="m-1"}', (r) => r[0]?.value[1] === '3', 30_000);
    const fail = await measurePrometheus(promGate(prom.url, 'x'), q);
    assert.equal(fail.outcome, 'failure');
    assert.match(fail.message, /1 of 2 samples not < 1/);
    const empty = await measurePrometheus(promGate(prom.url, 'x'), 'kubenode_test_errors{node="nobody"}');
    assert.equal(empty.outcome, 'error');
    assert.match(empty.message, /empty result/);
    const bad = await measurePrometheus(promGate(prom.url, 'x'), 'sum(');
    assert.equal(bad.outcome, 'error');
    const scalar = await measurePrometheus(promGate(prom.url, 'x', { successCondition: { operator: '==', value: 2 } }), 'scalar(count(kubenode_test_errors{node=~"m-.*"}))');
    assert.equal(scalar.outcome, 'success', scalar.message);
  });

  it('an unreachable Prometheus is an error, not a failure', async () => {
    const dead = createHttpServer();
    const port = await listen(dead);
    await new Promise((r) => dead.close(r));
    const r = await measurePrometheus(promGate(`http://127.0.0.1:${port}`, 'x'), 'up');
    assert.equal(r.outcome, 'error');
    assert.match(r.message, /unreachable/);
  });

  it('machine names are escaped in {{nodes}}', () => {
    assert.equal(nodesRegex(['a.b', 'c+d']), 'a\\.b|c\\+d');
  });
});

describe('webhook gate against a real HTTPS server', () => {
  let tls: ReturnType<typeof selfSigned>;
  let server: Server;
  let url = '';
  let answer: (body: WebhookReview, res: import('node:http').ServerResponse) => void = (_b, res) => res.writeHead(200).end();
  const seen: WebhookReview[] = [];
  before(async () => {
    tls = selfSigned();
    server = createHttpsServer({ key: tls.key, cert: tls.cert }, (req, res) => {
      let text = '';
      req.on('data', (d: Buffer) => (text += d.toString()));
      req.on('end', () => {
        const body = JSON.parse(text) as WebhookReview;
        seen.push(body);
        answer(body, res);
      });
    });
    url = `https://127.0.0.1:${await listen(server)}/gate`;
  });
  after(() => {
    server?.closeAllConnections();
    server?.close();
    if (tls !== undefined) rmSync(tls.dir, { recursive: true, force: true });
  });

  const review: WebhookReview = { apiVersion: 'kubenode.io/v1alpha1', kind: 'RolloutGateReview', set: 's', revision: 's-abc', version: '2.0.0', batch: 1, phase: 'PreBatch', machines: ['m-1'] };
  const gate = (extra: Record<string, unknown> = {}): WebhookGate => Value.Default(WebhookGate, { name: 'defender', phase: 'PreBatch', url, caBundle: Buffer.from(tls.cert).toString('base64'), ...extra }) as WebhookGate;

  it('allows on 2xx, denies on 4xx with the message, errors on 5xx', async () => {
    answer = (_b, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"message":"ok by defender"}');
    const allow = await callWebhook(gate(), review);
    assert.equal(allow.outcome, 'success');
    assert.match(allow.message, /ok by defender/);
    assert.deepEqual(seen.at(-1), review);
    answer = (_b, res) => res.writeHead(403, { 'content-type': 'application/json' }).end('{"message":"change freeze"}');
    const deny = await callWebhook(gate(), review);
    assert.equal(deny.outcome, 'failure');
    assert.match(deny.message, /denied \(403\): change freeze/);
    answer = (_b, res) => res.writeHead(503).end('busy');
    assert.equal((await callWebhook(gate(), review)).outcome, 'error');
  });

  it('a timeout and an untrusted certificate are errors', async () => {
    answer = () => {};
    const slow = await callWebhook(gate({ timeout: '1s' }), review);
    assert.equal(slow.outcome, 'error');
    assert.match(slow.message, /no answer within 1000ms/);
    answer = (_b, res) => res.writeHead(200).end();
    const untrusted = await callWebhook(gate({ caBundle: undefined }), review);
    assert.equal(untrusted.outcome, 'error');
    assert.match(untrusted.message, /certificate/);
  });
});
