// The import policy (--import-node-selector) on a real apiserver and kube-controller-manager: 50
// Nodes made by "another tool" get Machines, the rest do not; the built agent joins one of them
// with a bootstrap token and its CSR is approved because the policy imported its Machine; the
// signed certificate's expiry lands on the Machine, and a controller whose clock is past it says
// AgentCertificateValid=False CertificateExpired, with a Warning Event and a metric.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Controller } from '../../src/controller/index.ts';
import { ANNOTATION_IMPORTED_BY, parseNodeSelector } from '../../src/controller/machines/import.ts';
import { UsageError } from '../../src/errors.ts';
import { createLogger } from '../../src/log.ts';
import { BOOTSTRAP_APISERVER_ARGS, BOOTSTRAP_CONTROLLERS, caCertHash, createBootstrapToken, publishClusterInfo, startCluster, waitForClusterInfoSignature, type BootstrapToken, type Cluster } from '../harness/index.ts';
import { runAgent } from '../helpers/cli.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { TempRoot } from '../helpers/host-root.ts';
import { installCrds } from '../helpers/kube-objects.ts';
import { conditionOf, CSRS_PATH, MACHINES_PATH, MERGE_PATCH, type Condition } from '../helpers/kube-api.ts';
import { ensureNamespace, must, until } from './helpers.ts';

const log = createLogger(process.env.KUBENODE_TEST_LOG === '1' ? 'debug' : 'silent');
const NS = 'kubenode-system';
const N = 50;

interface MachineView {
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  status?: { agentCertificateExpiry?: string; conditions?: Condition[] };
}

describe('parseNodeSelector', () => {
  it('reads equality and set requirements as kubectl -l does', () => {
    const s = parseNodeSelector('karpenter.sh/nodepool=gpu, kubernetes.io/arch in (amd64, arm64),!node-role.kubernetes.io/control-plane,tier!=db,zone');
    assert.deepEqual(s.matchLabels, { 'karpenter.sh/nodepool': 'gpu' });
    assert.deepEqual(s.matchExpressions, [
      { key: 'kubernetes.io/arch', operator: 'In', values: ['amd64', 'arm64'] },
      { key: 'node-role.kubernetes.io/control-plane', operator: 'DoesNotExist' },
      { key: 'tier', operator: 'NotIn', values: ['db'] },
      { key: 'zone', operator: 'Exists' },
    ]);
  });
  for (const [bad, why] of [
    ['', /an empty requirement/],
    ['a=b,,c', /an empty requirement/],
    ['a in (x,y', /unbalanced parentheses/],
    ['-bad=x', /not a label key/],
    ['a=b c', /not a label value|not a requirement/],
    ['a=1,a=2', /two values/],
  ] as const) {
    it(`refuses ${JSON.stringify(bad)}, naming the flag`, () => {
      assert.throws(() => parseNodeSelector(bad), (err: Error) => err instanceof UsageError && /--import-node-selector/.test(err.message) && why.test(err.message));
    });
  }
});

describe('auto-import of 50 Nodes by label selector', () => {
  let cluster: Cluster;
  let controller: Controller;
  let token: BootstrapToken;
  const roots: TempRoot[] = [];
  const selector = parseNodeSelector('kubenode.io/pool=auto');
  const machine = async (name: string): Promise<MachineView | undefined> => {
    const r = await cluster.request('GET', `${MACHINES_PATH}/${name}`);
    return r.status === 404 ? undefined : (JSON.parse(r.body) as MachineView);
  };

  before(async () => {
    cluster = await startCluster({ agents: 1, apiserverArgs: BOOTSTRAP_APISERVER_ARGS, controllerManager: { controllers: BOOTSTRAP_CONTROLLERS } });
    await installCrds(cluster);
    await ensureNamespace(cluster, NS);
    for (const file of ['deploy/rbac/bootstrap-rbac.yaml', 'deploy/rbac/agent-rbac.yaml']) {
      const r = await cluster.kubectl(['apply', '-f', file]);
      assert.equal(r.code, 0, r.stderr);
    }
    await publishClusterInfo(cluster);
    token = await createBootstrapToken(cluster);
    await waitForClusterInfoSignature(cluster, token.id);
    controller = new Controller({ kubeconfig: cluster.adminKubeconfig, leaderElect: false, namespace: NS, listen: '127.0.0.1:0', importNodeSelector: selector }, log);
    await controller.start();
  });
  after(async () => {
    await controller?.stop();
    await cluster?.stop();
    for (const r of roots) r.remove();
  });

  it('creates a Machine for each matching Node (labels copied, annotated), none for the others, none for a Node kubenode cordoned', async () => {
    const labels = (i: number): Record<string, string> => ({ 'kubenode.io/pool': 'auto', 'node.kubernetes.io/instance-type': i % 2 === 0 ? 'm7i.2xlarge' : 'm7g.2xlarge' });
    await Promise.all(Array.from({ length: N }, (_, i) => must(cluster, 'POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: `auto-${i}`, labels: labels(i) } })));
    for (const [name, extra] of [
      ['manual-0', { labels: { 'kubenode.io/pool': 'manual' } }],
      ['manual-1', {}],
      ['retired-0', { labels: { 'kubenode.io/pool': 'auto' }, annotations: { 'kubenode.io/cordoned-by': 'kubenode-agent' } }],
    ] as const) {
      const spec = name === 'retired-0' ? { unschedulable: true } : {};
      await must(cluster, 'POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name, ...extra }, spec });
    }
    const imported = async (): Promise<MachineView[]> => (await must<{ items: MachineView[] }>(cluster, 'GET', MACHINES_PATH)).items;
    await until(`${N} Machines`, async () => (await imported()).length >= N, 120_000);
    // Passes still running would show up as extra Machines: give them time to.
    await new Promise((r) => setTimeout(r, 2000));
    const ms = await imported();
    assert.deepEqual(ms.map((m) => m.metadata.name).sort(), Array.from({ length: N }, (_, i) => `auto-${i}`).sort());
    for (const m of ms) {
      const i = Number(m.metadata.name.split('-')[1]);
      assert.deepEqual(m.metadata.labels, labels(i), `${m.metadata.name} carries its Node's labels`);
      assert.equal(m.metadata.annotations?.[ANNOTATION_IMPORTED_BY], 'import-node-selector');
    }

    // A Node relabelled into the policy is imported; a Machine someone made by hand is left as it is.
    await must(cluster, 'POST', MACHINES_PATH, { apiVersion: 'kubenode.io/v1alpha1', kind: 'Machine', metadata: { name: 'manual-1', labels: { mine: 'yes' } }, spec: {} });
    const relabel = await cluster.request('PATCH', '/api/v1/nodes/manual-1', { body: { metadata: { labels: { 'kubenode.io/pool': 'auto' } } }, headers: MERGE_PATCH });
    assert.equal(relabel.status, 200, relabel.body);
    await cluster.request('PATCH', '/api/v1/nodes/manual-0', { body: { metadata: { labels: { 'kubenode.io/pool': 'auto' } } }, headers: MERGE_PATCH });
    await until('manual-0 imported', async () => (await machine('manual-0')) !== undefined, 30_000);
    assert.deepEqual((await machine('manual-1'))?.metadata.labels, { mine: 'yes' });
    assert.equal(await machine('retired-0'), undefined, 'a Node kubenode cordoned is not imported');
  });

  it("approves the agent's bootstrap CSR of an imported Node; the certificate's expiry goes on the Machine; past it, a loud condition, Event and metric", async () => {
    const root = new TempRoot();
    roots.push(root);
    const r = await runAgent(['join', '--server', cluster.server, '--token', token.token, '--ca-cert-hash', caCertHash(cluster.ca), '--node-name', 'auto-7', '--root', root.dir, '--timeout', '60s'], { timeoutMs: 90_000 });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const csr = (await must<{ items: { spec: { username: string }; status?: { conditions?: { type: string; reason?: string; message?: string }[] } }[] }>(cluster, 'GET', CSRS_PATH)).items.find((c) => c.spec.username === `system:bootstrap:${token.id}`);
    assert.deepEqual(csr?.status?.conditions?.map((c) => [c.type, c.reason]), [['Approved', 'AgentBootstrap']]);
    assert.match(csr?.status?.conditions?.[0]?.message ?? '', /importing Machine auto-7/);

    const pem = readFileSync(join(root.dir, 'etc/kubenode/pki/kubenode-agent-client-current.pem'), 'utf8');
    const notAfter = new Date(new X509Certificate(pem).validTo).toISOString().replace(/\.\d+Z$/, 'Z');
    await until('expiry recorded', async () => (await machine('auto-7'))?.status?.agentCertificateExpiry === notAfter, 30_000);
    await until('AgentCertificateValid=True', async () => (await machine('auto-7'))?.status?.conditions?.some((c) => c.type === 'AgentCertificateValid' && c.status === 'True') === true, 30_000);

    // The same cluster seen by a controller whose clock is an hour past the certificate's end, no renewal signed.
    await controller.stop();
    const clock = new FakeClock(Date.parse(notAfter) + 3600_000);
    controller = new Controller({ kubeconfig: cluster.adminKubeconfig, leaderElect: false, namespace: NS, listen: '127.0.0.1:0', importNodeSelector: selector, clock }, log);
    await controller.start();
    await until('CertificateExpired', async () => (await machine('auto-7'))?.status?.conditions?.some((c) => c.type === 'AgentCertificateValid' && c.reason === 'CertificateExpired') === true, 30_000);
    const m = await machine('auto-7');
    const c = conditionOf(m, 'AgentCertificateValid');
    assert.equal(c?.status, 'False');
    assert.match(c?.message ?? '', new RegExp(`expired at ${notAfter}.*kubenode-agent join`));
    assert.equal(conditionOf(m, 'Ready')?.status, 'False', 'not Ready: its agent cannot reach the cluster');
    const events = (await must<{ items: { reason: string; type: string; involvedObject: { kind: string; name: string } }[] }>(cluster, 'GET', '/api/v1/namespaces/default/events')).items;
    await until('Warning AgentCertificateExpired', async () => (await must<{ items: typeof events }>(cluster, 'GET', '/api/v1/namespaces/default/events')).items.some((e) => e.involvedObject.name === 'auto-7' && e.reason === 'AgentCertificateExpired' && e.type === 'Warning'), 30_000);
    const metrics = await controller.registry.metrics();
    assert.match(metrics, /^kubenode_controller_machines_agent_certificate_expired 1$/m);
  });
});
