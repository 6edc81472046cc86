// `kubenode-agent join` end to end: a real apiserver with bootstrap token auth, a real
// kube-controller-manager (bootstrap signer, token cleaner, CSR signer), our controller approving,
// the built agent joining, and the real kubectl saying who the written kubeconfig authenticates as.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { join } from 'node:path';
import { Controller } from '../../src/controller/index.ts';
import { createLogger } from '../../src/log.ts';
import { BOOTSTRAP_APISERVER_ARGS, BOOTSTRAP_CONTROLLERS, caCertHash, createBootstrapToken, publishClusterInfo, startCluster, waitForClusterInfoSignature, type BootstrapToken, type Cluster } from '../harness/index.ts';
import { runAgent } from '../helpers/cli.ts';
import { TempRoot } from '../helpers/host-root.ts';
import { installCrds } from '../helpers/kube-objects.ts';
import { CSRS_PATH, MACHINES_PATH } from '../helpers/kube-api.ts';
import { ensureNamespace, listen, must, selfSigned, until } from '../controller/helpers.ts';

const log = createLogger(process.env.KUBENODE_TEST_LOG === '1' ? 'debug' : 'silent');

interface Csr { metadata: { name: string; uid: string }; spec: { username: string; usages: string[] }; status?: { conditions?: { type: string; reason?: string }[]; certificate?: string } }
interface Event { involvedObject: { kind: string; name: string }; reason: string; message: string }

const addMachine = (cluster: Cluster, name: string): Promise<unknown> =>
  must(cluster, 'POST', MACHINES_PATH, { apiVersion: 'kubenode.io/v1alpha1', kind: 'Machine', metadata: { name }, spec: {} });

const csrEvents = async (cluster: Cluster, name: string): Promise<Event[]> =>
  (await must<{ items: Event[] }>(cluster, 'GET', '/api/v1/namespaces/default/events')).items.filter((e) => e.involvedObject.kind === 'CertificateSigningRequest' && e.involvedObject.name === name);

/** Everything under the root: a refused join writes nothing. */
const filesUnder = (dir: string): string[] => readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => statSync(join(dir, f)).isFile());

describe('kubenode-agent join against a real apiserver and kube-controller-manager', () => {
  let cluster: Cluster;
  let controller: Controller;
  let token: BootstrapToken;
  let hash: string;
  const roots: TempRoot[] = [];
  const newRoot = (): TempRoot => {
    const r = new TempRoot();
    roots.push(r);
    return r;
  };
  const joinArgs = (root: TempRoot, node: string, extra: { server?: string; token?: string; hash?: string } = {}): string[] => [
    'join', '--server', extra.server ?? cluster.server, '--token', extra.token ?? token.token, '--ca-cert-hash', extra.hash ?? hash, '--node-name', node, '--root', root.dir, '--timeout', '60s',
  ];

  before(async () => {
    cluster = await startCluster({ agents: 1, apiserverArgs: BOOTSTRAP_APISERVER_ARGS, controllerManager: { controllers: BOOTSTRAP_CONTROLLERS } });
    await installCrds(cluster);
    await ensureNamespace(cluster, 'kubenode-system');
    for (const file of ['deploy/rbac/bootstrap-rbac.yaml', 'deploy/rbac/agent-rbac.yaml']) {
      const r = await cluster.kubectl(['apply', '-f', file]);
      assert.equal(r.code, 0, r.stderr);
    }
    await publishClusterInfo(cluster);
    token = await createBootstrapToken(cluster);
    await waitForClusterInfoSignature(cluster, token.id);
    hash = caCertHash(cluster.ca);
    controller = new Controller({ kubeconfig: cluster.adminKubeconfig, leaderElect: false, namespace: 'kubenode-system', listen: '127.0.0.1:0' }, log);
    await controller.start();
  });
  after(async () => {
    await controller?.stop();
    await cluster?.stop();
    for (const r of roots) r.remove();
  });

  it('joins an importing Machine: CSR approved by the controller, signed by kcm, kubeconfig 0600, authenticates as kubenode:agent:<node>', async () => {
    await addMachine(cluster, 'node-a');
    const root = newRoot();
    const r = await runAgent(joinArgs(root, 'node-a'), { timeoutMs: 90_000 });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /Joined as kubenode:agent:node-a/);
    const kubeconfig = join(root.dir, 'etc/kubenode/kubeconfig');
    const pem = join(root.dir, 'etc/kubenode/pki/kubenode-agent-client-current.pem');
    assert.equal(statSync(kubeconfig).mode & 0o777, 0o600);
    assert.equal(statSync(pem).mode & 0o777, 0o600);
    const who = await cluster.kubectl(['auth', 'whoami', '-o', 'json'], { kubeconfig });
    assert.equal(who.code, 0, who.stderr);
    const user = (JSON.parse(who.stdout) as { status: { userInfo: { username: string; groups: string[] } } }).status.userInfo;
    assert.equal(user.username, 'kubenode:agent:node-a');
    assert.ok(user.groups.includes('kubenode:agents'), JSON.stringify(user.groups));
    // The agent's RBAC applies to it: it may read its Machine.
    const get = await cluster.kubectl(['get', 'machine', 'node-a', '-o', 'name'], { kubeconfig });
    assert.equal(get.code, 0, get.stderr);
    const csrs = (await must<{ items: Csr[] }>(cluster, 'GET', CSRS_PATH)).items.filter((c) => c.spec.username === `system:bootstrap:${token.id}`);
    assert.equal(csrs.length, 1);
    assert.deepEqual(csrs[0]?.status?.conditions?.map((c) => [c.type, c.reason]), [['Approved', 'AgentBootstrap']]);
    // Joining twice is refused and changes nothing.
    const before = statSync(pem).mtimeMs;
    const again = await runAgent(joinArgs(root, 'node-a'));
    assert.equal(again.code, 1);
    assert.match(again.stderr, /has joined already/);
    assert.equal(statSync(pem).mtimeMs, before);
  });

  it('refuses a wrong CA hash, an unknown token, a wrong secret and a server that is no apiserver: exit 1, a message naming it, nothing written', async () => {
    const tls = selfSigned();
    const plain: Server = createServer({ key: tls.key, cert: tls.cert }, (_req, res) => res.writeHead(404, { 'content-type': 'text/html' }).end('<h1>Not Found</h1>'));
    const port = await listen(plain as never);
    try {
      const cases: [string, Parameters<typeof joinArgs>[2], RegExp][] = [
        ['wrong CA hash', { hash: `sha256:${createHash('sha256').update('another CA').digest('hex')}` }, /--ca-cert-hash: the cluster's CA has public key hash sha256:[0-9a-f]{64}, not/],
        ['unknown token', { token: 'zzzzzz.0123456789abcdef' }, /no signature for token id zzzzzz: the token is unknown, expired/],
        ['wrong secret', { token: `${token.id}.${randomBytes(8).toString('hex')}` }, /does not verify with this token's secret/],
        ['not an apiserver', { server: `https://127.0.0.1:${port}` }, /reading kube-public\/cluster-info failed: is this a Kubernetes apiserver/],
      ];
      for (const [name, extra, message] of cases) {
        const root = newRoot();
        const r = await runAgent(joinArgs(root, 'node-refused', extra));
        assert.equal(r.code, 1, `${name}: ${r.stderr}`);
        assert.match(r.stderr, message, name);
        assert.deepEqual(filesUnder(root.dir), [], name);
      }
    } finally {
      plain.close();
      rmSync(tls.dir, { recursive: true, force: true });
    }
  });

  it('refuses malformed flags with exit 64 before any request', async () => {
    const cases: [Parameters<typeof joinArgs>[2], RegExp][] = [
      [{ token: 'not-a-token' }, /--token: expected a bootstrap token ID.SECRET/],
      [{ hash: 'md5:abc' }, /--ca-cert-hash: expected sha256:<64 hex digits>/],
      [{ server: 'http://127.0.0.1:1' }, /--server: expected an https:\/\/ URL/],
    ];
    for (const [extra, message] of cases) {
      const root = newRoot();
      const r = await runAgent(joinArgs(root, 'node-x', extra));
      assert.equal(r.code, 64, r.stderr);
      assert.match(r.stderr, message);
      assert.deepEqual(filesUnder(root.dir), []);
    }
  });

  it('an expired token: the token cleaner removes it, cluster-info loses its signature, join says so', async () => {
    const short = await createBootstrapToken(cluster, { expiration: new Date(Date.now() + 3000) });
    await waitForClusterInfoSignature(cluster, short.id);
    await until('the token cleaner and the signer to drop the expired token', async () => {
      const cm = await must<{ data: Record<string, string> }>(cluster, 'GET', '/api/v1/namespaces/kube-public/configmaps/cluster-info');
      return cm.data[`jws-kubeconfig-${short.id}`] === undefined;
    }, 60_000);
    const root = newRoot();
    const r = await runAgent(joinArgs(root, 'node-late', { token: short.token }));
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`no signature for token id ${short.id}: the token is unknown, expired`));
    assert.deepEqual(filesUnder(root.dir), []);
  });

  it('a CN that matches no Machine stays pending with an Event saying why; denied by a person, join exits 1 and writes nothing', async () => {
    const root = newRoot();
    const joining = runAgent(joinArgs(root, 'node-nomachine'), { timeoutMs: 90_000 });
    let csr: Csr | undefined;
    await until('a pending CSR with an Event', async () => {
      csr = (await must<{ items: Csr[] }>(cluster, 'GET', CSRS_PATH)).items.find((c) => c.metadata.name.startsWith('kubenode-agent-node-nomachine-'));
      return csr !== undefined && (await csrEvents(cluster, csr.metadata.name)).length > 0;
    }, 30_000);
    const name = (csr as Csr).metadata.name;
    const [event] = await csrEvents(cluster, name);
    assert.equal(event?.reason, 'CertificateNotApproved');
    assert.match(event?.message ?? '', /no Machine node-nomachine exists/);
    const deny = await cluster.kubectl(['certificate', 'deny', name]);
    assert.equal(deny.code, 0, deny.stderr);
    const r = await joining;
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`CertificateSigningRequest ${name} was denied`));
    assert.deepEqual(filesUnder(root.dir), []);
  });

  it('a bootstrap CSR with extra key usages, for an importing Machine, stays pending with an Event', async () => {
    await addMachine(cluster, 'node-usages');
    const { buildCsr, generateAgentKey } = await import('../../src/join/csr.ts');
    const key = generateAgentKey();
    const created = await cluster.request('POST', CSRS_PATH, {
      token: token.token,
      body: {
        apiVersion: 'certificates.k8s.io/v1',
        kind: 'CertificateSigningRequest',
        metadata: { generateName: 'usages-' },
        spec: { request: Buffer.from(buildCsr(key.privateKey, 'kubenode:agent:node-usages', 'kubenode:agents')).toString('base64'), signerName: 'kubernetes.io/kube-apiserver-client', usages: ['client auth', 'digital signature'] },
      },
    });
    assert.equal(created.status, 201, created.body);
    const name = (JSON.parse(created.body) as Csr).metadata.name;
    await until('an Event on the CSR', async () => (await csrEvents(cluster, name)).length > 0, 30_000);
    const [event] = await csrEvents(cluster, name);
    assert.match(event?.message ?? '', /key usages must be exactly \[client auth\]/);
    const now = await must<Csr>(cluster, 'GET', `${CSRS_PATH}/${name}`);
    assert.equal(now.status?.conditions, undefined);
  });
});
