import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, test } from 'node:test';
import { ConfigError } from '../../src/errors.ts';
import { classifyKubeError, createKubeClient, KubeApiError, loadKubeConfig } from '../../src/kube/client.ts';
import { backoffDelay } from '../../src/util/backoff.ts';
import { TempRoot } from '../helpers/host-root.ts';

const root = new TempRoot();
after(() => root.remove());

test('loadKubeConfig: a missing file, a context naming nothing, and no source at all are ConfigErrors naming the file and field', async () => {
  await assert.rejects(loadKubeConfig({ kubeconfig: root.path('/nope.yaml') }), (err: unknown) => err instanceof ConfigError && err.file.endsWith('/nope.yaml'));
  const bad = root.write('/bad.kubeconfig', JSON.stringify({ apiVersion: 'v1', kind: 'Config', clusters: [], users: [], contexts: [], 'current-context': 'gone' }));
  await assert.rejects(loadKubeConfig({ kubeconfig: bad }), (err: unknown) => err instanceof ConfigError && err.file === bad && err.field === 'current-context');
  await assert.rejects(loadKubeConfig({}), ConfigError);
  const saved = process.env.KUBERNETES_SERVICE_HOST;
  delete process.env.KUBERNETES_SERVICE_HOST;
  try {
    await assert.rejects(loadKubeConfig({ inCluster: true }), /KUBERNETES_SERVICE_HOST/);
  } finally {
    if (saved !== undefined) process.env.KUBERNETES_SERVICE_HOST = saved;
  }
});

const kinds: [string, unknown, string][] = [
  ['404', new KubeApiError('GET', '/x', 'not-found', 404, 'NotFound', 'x'), 'not-found'],
  ['client-node ApiException 409', Object.assign(new Error('HTTP-Code: 409'), { code: 409 }), 'conflict'],
  ['410 via statusCode', { statusCode: 410 }, 'gone'],
  ['403', { code: 403 }, 'forbidden'],
  ['ECONNREFUSED', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'network'],
  ['wrapped ECONNRESET', new Error('fetch failed', { cause: Object.assign(new Error('reset'), { code: 'ECONNRESET' }) }), 'network'],
  ['503', { code: 503 }, 'server'],
  ['string', 'boom', 'other'],
];
for (const [name, err, want] of kinds) test(`classifyKubeError: ${name}`, () => assert.equal(classifyKubeError(err), want));

test('backoffDelay: doubles, stays within [d/2, d], caps at max', () => {
  assert.equal(backoffDelay(0, 100, 1000, () => 0), 50);
  assert.equal(backoffDelay(0, 100, 1000, () => 1), 100);
  assert.equal(backoffDelay(3, 100, 1000, () => 1), 800);
  assert.equal(backoffDelay(10, 100, 1000, () => 1), 1000);
  assert.equal(backoffDelay(10, 100, 1000, () => 0), 500);
});

test('a refused connection is a network KubeApiError, not a crash', async () => {
  // A port that was just free: nothing listens there.
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  const file = root.write('/refused.kubeconfig', JSON.stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'c',
    clusters: [{ name: 'k', cluster: { server: `https://127.0.0.1:${port}`, 'insecure-skip-tls-verify': true } }],
    users: [{ name: 'u', user: { token: 't' } }], contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }],
  }));
  const client = createKubeClient(await loadKubeConfig({ kubeconfig: file }), { timeoutMs: 2000 });
  await assert.rejects(client.get('/api/v1/nodes/x'), (err: unknown) => err instanceof KubeApiError && err.kind === 'network' && err.status === undefined);
  client.close();
});
