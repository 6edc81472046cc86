// Certificate rotation under a fake clock against the real apiserver and kube-controller-manager:
// at ~80% of the lifetime the agent asks with its own identity, our controller approves the
// renewal, kcm signs, the credential file is swapped and a client made before keeps working on
// the new certificate; with no approver, a certificate past its end is reported loudly.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join as joinPath } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { Controller } from '../../src/controller/index.ts';
import { createHost } from '../../src/host/host.ts';
import { credentialPath } from '../../src/join/identity.ts';
import { join } from '../../src/join/join.ts';
import { CertificateRotator } from '../../src/join/rotate.ts';
import { createKubeClient, loadKubeConfig } from '../../src/kube/client.ts';
import { createLogger } from '../../src/log.ts';
import { BOOTSTRAP_APISERVER_ARGS, BOOTSTRAP_CONTROLLERS, caCertHash, createBootstrapToken, publishClusterInfo, startCluster, waitForClusterInfoSignature, type Cluster } from '../harness/index.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { TempRoot } from '../helpers/host-root.ts';
import { installCrds } from '../helpers/kube-objects.ts';
import { ensureNamespace, must } from '../controller/helpers.ts';

const log = createLogger(process.env.KUBENODE_TEST_LOG === '1' ? 'debug' : 'silent');
const KUBECONFIG = '/etc/kubenode/kubeconfig';
const NODE = 'node-r';

interface Csr { spec: { username: string }; status?: { conditions?: { type: string; reason?: string }[] } }

const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('client certificate rotation (fake clock, real apiserver and kcm)', () => {
  let cluster: Cluster;
  let controller: Controller;
  const root = new TempRoot();

  before(async () => {
    cluster = await startCluster({ agents: 1, apiserverArgs: BOOTSTRAP_APISERVER_ARGS, controllerManager: { controllers: BOOTSTRAP_CONTROLLERS } });
    await installCrds(cluster);
    await ensureNamespace(cluster, 'kubenode-system');
    for (const file of ['deploy/rbac/bootstrap-rbac.yaml', 'deploy/rbac/agent-rbac.yaml']) assert.equal((await cluster.kubectl(['apply', '-f', file])).code, 0);
    await publishClusterInfo(cluster);
    const token = await createBootstrapToken(cluster);
    await waitForClusterInfoSignature(cluster, token.id);
    await must(cluster, 'POST', '/apis/kubenode.io/v1alpha1/machines', { apiVersion: 'kubenode.io/v1alpha1', kind: 'Machine', metadata: { name: NODE }, spec: {} });
    controller = new Controller({ kubeconfig: cluster.adminKubeconfig, leaderElect: false, namespace: 'kubenode-system', listen: '127.0.0.1:0' }, log);
    await controller.start();
    await join({ server: cluster.server, token: token.token, caCertHashes: [caCertHash(cluster.ca)], nodeName: NODE, kubeconfig: KUBECONFIG, timeoutMs: 60_000, host: createHost({ root: root.dir }), log });
  });
  after(async () => {
    await controller?.stop();
    await cluster?.stop();
    root.remove();
  });

  const whoami = async (client: ReturnType<typeof createKubeClient>): Promise<string> =>
    (await client.request<{ status: { userInfo: { username: string } } }>('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', { body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } })).status.userInfo.username;

  it('renews at ~80% of the lifetime with its own identity and switches without a restart', async () => {
    const pemFile = joinPath(root.dir, credentialPath(KUBECONFIG));
    const first = new X509Certificate(readFileSync(pemFile));
    // The daemon's client: made once, before the rotation.
    const kc = await loadKubeConfig({ kubeconfig: joinPath(root.dir, KUBECONFIG) });
    const client = createKubeClient(kc);
    assert.equal(await whoami(client), `kubenode:agent:${NODE}`);

    const clock = new FakeClock(Date.now());
    const registry = new Registry();
    const rotator = new CertificateRotator({ host: createHost({ root: root.dir, clock }), kubeconfig: KUBECONFIG, nodeName: NODE, log, registry, clock, random: () => 0.5 });
    rotator.start();
    try {
      await tick(200);
      const { rotateAt, notAfter } = rotator.state();
      const notBefore = Date.parse(first.validFrom);
      assert.ok(Math.abs((rotateAt - notBefore) / (notAfter - notBefore) - 0.8) < 1e-6, `rotateAt at ${(rotateAt - notBefore) / (notAfter - notBefore)} of the lifetime`);
      // Just before: nothing happens.
      await clock.advance(rotateAt - clock.now() - 60_000);
      await tick(300);
      assert.equal(rotator.state().rotations, 0);
      await clock.advance(60_001);
      for (let i = 0; i < 300 && rotator.state().rotations === 0; i++) {
        await tick(50);
        await clock.advance(1000);
      }
      assert.equal(rotator.state().rotations, 1, JSON.stringify(rotator.state()));
    } finally {
      await rotator.stop();
    }
    const second = new X509Certificate(readFileSync(pemFile));
    assert.notEqual(second.serialNumber, first.serialNumber);
    assert.ok(!second.publicKey.equals(first.publicKey), 'a new key');
    assert.equal(statSync(pemFile).mode & 0o777, 0o600);
    const renewals = (await must<{ items: Csr[] }>(cluster, 'GET', '/apis/certificates.k8s.io/v1/certificatesigningrequests')).items.filter((c) => c.spec.username === `kubenode:agent:${NODE}`);
    assert.deepEqual(renewals.map((c) => c.status?.conditions?.[0]?.reason), ['AgentRenewal']);
    // The same client, no restart: its next request presents the new certificate.
    assert.equal(await whoami(client), `kubenode:agent:${NODE}`);
    const opts: { cert?: Buffer } = {};
    await kc.applyToHTTPSOptions(opts);
    assert.equal(new X509Certificate(opts.cert as Buffer).serialNumber, second.serialNumber);
    client.close();
  });

  it('past its end with nobody to approve the renewal: expired is a metric and an error, and it keeps trying', async () => {
    await controller.stop();
    const pem = readFileSync(joinPath(root.dir, credentialPath(KUBECONFIG)));
    const clock = new FakeClock(Date.parse(new X509Certificate(pem).validTo) + 1000);
    const registry = new Registry();
    const rotator = new CertificateRotator({ host: createHost({ root: root.dir, clock }), kubeconfig: KUBECONFIG, nodeName: NODE, log, registry, clock, random: () => 0.5, requestTimeoutMs: 5000 });
    rotator.start();
    try {
      for (let i = 0; i < 300 && !rotator.state().expired; i++) {
        await tick(50);
        await clock.advance(1000);
      }
      assert.equal(rotator.state().expired, true);
      assert.match(rotator.state().lastError ?? '', /was not approved and signed within 5s/);
      assert.match(await registry.metrics(), /^kubenode_client_certificate_expired 1$/m);
      assert.match(await registry.metrics(), /^kubenode_client_certificate_renewal_failures_total [1-9]/m);
    } finally {
      await rotator.stop();
    }
  });
});
