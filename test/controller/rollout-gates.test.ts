// Health gates inside a rollout, on a real apiserver with an in-process controller and agents
// played by the test: a Prometheus gate against a real Prometheus (pass → completes, fail →
// HealthGateFailed, Prometheus down → GateError, never a rollback), and HTTPS webhooks (a
// pre-batch deny holds the batch, allow releases it; an observation hook that times out pauses).
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { Controller } from '../../src/controller/index.ts';
import { createLogger } from '../../src/log.ts';
import type { Cluster } from '../harness/cluster.ts';
import { startPrometheus, type Prometheus } from '../harness/prometheus.ts';
import { listen, listMcs, MCS_PATH, must, patchSet, rolloutCluster, selfSigned, type SimulatedAgents, until } from './helpers.ts';

const log = createLogger('silent');
const NS = 'kubenode-system';
const SHA = 'e'.repeat(64);

interface Status { phase?: string; pausedReason?: string; failure?: { reason: string; message: string }; conditions?: { type: string; status: string; reason: string }[]; batches?: { gates: { name: string; phase: string; successes: number }[] }[] }
const statusOf = async (cluster: Cluster, name: string): Promise<Status> => (await must<{ status?: Status }>(cluster, 'GET', `${MCS_PATH}/${name}`)).status ?? {};

const tpl = (component: string, version: string) => ({ spec: { component, version, source: { type: 'binary', url: `https://example.com/${component}-${version}`, sha256: SHA } } });

describe('health gates in a rollout', () => {
  let cluster: Cluster;
  let controller: Controller;
  let agents: SimulatedAgents;
  let exporter: Server;
  let prom: Prometheus;
  let errors = 0;
  let hooks: Server;
  let hookUrl = '';
  let tls: ReturnType<typeof selfSigned>;
  let hookAnswer: (phase: string, res: ServerResponse) => void = (_p, res) => res.writeHead(200).end();

  before(async () => {
    ({ cluster, agents } = await rolloutCluster(Array.from({ length: 4 }, (_, i) => `g-${i}`), NS));
    exporter = createHttpServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(`# TYPE component_errors gauge\ncomponent_errors{node="g-0"} ${errors}\ncomponent_errors{node="g-1"} 0\ncomponent_errors{node="g-2"} 0\ncomponent_errors{node="g-3"} 0\n`));
    prom = await startPrometheus({ scrapeTargets: [`http://127.0.0.1:${await listen(exporter)}/metrics`] });
    await prom.waitFor('component_errors', (r) => r.length === 4, 30_000);
    tls = selfSigned();
    hooks = createHttpsServer({ key: tls.key, cert: tls.cert }, (req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => hookAnswer((JSON.parse(body) as { phase: string }).phase, res));
    });
    hookUrl = `https://127.0.0.1:${await listen(hooks)}/gate`;
    controller = new Controller({ kubeconfig: cluster.adminKubeconfig, leaderElect: false, namespace: NS, listen: '127.0.0.1:0' }, log);
    await controller.start();
  });
  after(async () => {
    await controller?.stop();
    await agents?.stop();
    await prom?.stop();
    exporter?.close();
    hooks?.closeAllConnections();
    hooks?.close();
    if (tls !== undefined) rmSync(tls.dir, { recursive: true, force: true });
    await cluster?.stop();
  });

  it('Prometheus gate: passes, fails (HealthGateFailed), and an unreachable Prometheus pauses with GateError', async () => {
    const gate = (address: string) => ({ name: 'errors', address, query: 'max(component_errors{node=~"{{nodes}}"})', successCondition: { operator: '<', value: 1 }, interval: '1s', count: 2, consecutiveErrorLimit: 1 });
    const rollout = (address: string) => ({ batches: [2], maxUnavailable: 4, bakeTime: '500ms', failurePolicy: 'Rollback', healthGate: { prometheus: [gate(address)] } });
    await must(cluster, 'POST', MCS_PATH, { apiVersion: 'kubenode.io/v1alpha1', kind: 'MachineComponentSet', metadata: { name: 'pg' }, spec: { selector: {}, template: tpl('pg', '1.0.0'), rollout: rollout(prom.url) } });
    await until('v1 completes through the gate', async () => (await statusOf(cluster, 'pg')).phase === 'Completed', 60_000);
    const passed = await statusOf(cluster, 'pg');
    assert.ok((passed.batches?.at(-1)?.gates.find((g) => g.name === 'errors')?.successes ?? 0) >= 2, 'count measurements before success');

    errors = 4;
    await prom.waitFor('component_errors{node="g-0"}', (r) => r[0]?.value[1] === '4', 30_000);
    await patchSet(cluster, 'pg', { spec: { template: tpl('pg', '2.0.0') } });
    await until('gate fails', async () => (await statusOf(cluster, 'pg')).failure?.reason === 'HealthGateFailed', 60_000);
    // failurePolicy Rollback: the updated machines go back to 1.0.0.
    await until('rolled back', async () => (await statusOf(cluster, 'pg')).conditions?.some((c) => c.type === 'RolledBack' && c.status === 'True') === true, 60_000);
    assert.ok((await listMcs(cluster)).filter((mc) => mc.spec.component === 'pg').every((mc) => mc.spec.version === '1.0.0'));
    assert.equal((await statusOf(cluster, 'pg')).phase, 'Failed');

    errors = 0;
    const dead = createHttpServer();
    const port = await listen(dead);
    await new Promise((r) => dead.close(r));
    await patchSet(cluster, 'pg', { spec: { template: tpl('pg', '3.0.0'), rollout: { healthGate: { prometheus: [gate(`http://127.0.0.1:${port}`)] } } } });
    await until('gate error pauses', async () => (await statusOf(cluster, 'pg')).pausedReason === 'GateError', 60_000);
    const s = await statusOf(cluster, 'pg');
    assert.equal(s.phase, 'Paused', 'an error pauses, it does not roll back');
    assert.match(s.failure?.message ?? '', /unreachable/);
    assert.ok((await listMcs(cluster)).filter((mc) => mc.spec.component === 'pg' && mc.spec.version === '3.0.0').length >= 1, 'the updated machines stay');
  });

  it('webhooks: a pre-batch deny holds the rollout until the hook allows; an observation timeout pauses', async () => {
    hookAnswer = (phase, res) => (phase === 'PreBatch' ? res.writeHead(403, { 'content-type': 'application/json' }).end('{"message":"change freeze"}') : res.writeHead(200).end());
    const ca = Buffer.from(tls.cert).toString('base64');
    await must(cluster, 'POST', MCS_PATH, {
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'MachineComponentSet',
      metadata: { name: 'wh' },
      spec: { selector: {}, template: tpl('wh', '1.0.0'), rollout: { batches: [4], maxUnavailable: 4, bakeTime: '300ms', healthGate: { webhooks: [{ name: 'defender', phase: 'PreBatch', url: hookUrl, caBundle: ca, interval: '1s' }, { name: 'slo', phase: 'Observation', url: hookUrl, caBundle: ca, timeout: '1s', interval: '1s' }] } } },
    });
    await until('denied', async () => (await statusOf(cluster, 'wh')).pausedReason === 'PreBatchDenied', 30_000);
    assert.equal((await listMcs(cluster)).filter((mc) => mc.spec.component === 'wh').length, 0, 'nothing written while denied');
    hookAnswer = (_phase, res) => res.writeHead(200).end();
    await until('allowed and completed', async () => (await statusOf(cluster, 'wh')).phase === 'Completed', 60_000);

    hookAnswer = (phase, res) => (phase === 'PreBatch' ? res.writeHead(200).end() : undefined);
    await patchSet(cluster, 'wh', { spec: { template: tpl('wh', '2.0.0') } });
    await until('observation timeout pauses', async () => (await statusOf(cluster, 'wh')).pausedReason === 'GateError', 60_000);
    assert.match((await statusOf(cluster, 'wh')).failure?.message ?? '', /slo: .*no answer within 1000ms/);
  });
});
