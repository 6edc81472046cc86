// The harness's real kube-controller-manager: the garbage collector, the disruption controller
// and the CSR signer/approver each do their job against the test apiserver.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { clone, goodObjects, installCrds } from '../helpers/kube-objects.ts';
import { startCluster } from './cluster.ts';
import type { Cluster } from './cluster.ts';
import { KUBENODE_API, MERGE_PATCH } from '../helpers/kube-api.ts';


async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs}ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function json<T>(body: string): T {
  return JSON.parse(body) as T;
}

describe('kube-controller-manager in the test cluster', () => {
  let cluster: Cluster;
  const scratch = mkdtempSync(join(tmpdir(), 'kubenode-kcm-test-'));

  before(async () => {
    cluster = await startCluster({ agents: 1 });
    // The collector discovers resource types at start and then only every 30 s: CRDs first.
    await installCrds(cluster);
    await cluster.startControllerManager();
  });
  after(async () => {
    await cluster?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  test('runs as system:kube-controller-manager, each controller as its own service account', async () => {
    const cm = cluster.controllerManager;
    assert.ok(cm?.pid !== undefined);
    // The collector's own service account exists only because the controller manager made it
    // for --use-service-account-credentials.
    await until('serviceaccount generic-garbage-collector', async () => {
      const res = await cluster.request('GET', '/api/v1/namespaces/kube-system/serviceaccounts/generic-garbage-collector');
      return res.status === 200 ? true : undefined;
    });
    assert.match(readFileSync(cluster.dir + '/controller-manager.kubeconfig', 'utf8'), /system:kube-controller-manager/);
    await assert.rejects(cluster.startControllerManager(), /already running/);
  });

  test('garbage collector: deleting a MachineComponentSet cascades to the MachineComponents and ConfigMaps it owns', async () => {
    const objs = goodObjects();
    const set = clone(objs.machinecomponentsets!);
    const created = await cluster.request('POST', `${KUBENODE_API}/machinecomponentsets`, { body: set });
    assert.equal(created.status, 201, created.body);
    const owner = json<{ metadata: { uid: string; name: string } }>(created.body).metadata;
    const ownerRef = { apiVersion: 'kubenode.io/v1alpha1', kind: 'MachineComponentSet', name: owner.name, uid: owner.uid, controller: true, blockOwnerDeletion: true };

    const mc = clone(objs.machinecomponents!) as { metadata: Record<string, unknown> };
    mc.metadata.ownerReferences = [ownerRef];
    const mcRes = await cluster.request('POST', `${KUBENODE_API}/machinecomponents`, { body: mc });
    assert.equal(mcRes.status, 201, mcRes.body);
    const cmRes = await cluster.request('POST', '/api/v1/namespaces/default/configmaps', {
      body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'owned-by-set', ownerReferences: [ownerRef] }, data: { a: 'b' } },
    });
    assert.equal(cmRes.status, 201, cmRes.body);
    // An object that the set does not own must survive.
    const bystander = await cluster.request('POST', '/api/v1/namespaces/default/configmaps', {
      body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'bystander' } },
    });
    assert.equal(bystander.status, 201, bystander.body);

    // Foreground: the owner stays, with the collector's finalizer, until its dependents are gone.
    const del = await cluster.request('DELETE', `${KUBENODE_API}/machinecomponentsets/${owner.name}?propagationPolicy=Foreground`);
    assert.ok(del.status === 200 || del.status === 202, del.body);
    assert.deepEqual(json<{ metadata: { finalizers?: string[] } }>(del.body).metadata.finalizers, ['foregroundDeletion']);

    const mcName = (mc.metadata as { name: string }).name;
    for (const path of [`${KUBENODE_API}/machinecomponents/${mcName}`, '/api/v1/namespaces/default/configmaps/owned-by-set', `${KUBENODE_API}/machinecomponentsets/${owner.name}`]) {
      await until(`${path} deleted by the garbage collector`, async () => ((await cluster.request('GET', path)).status === 404 ? true : undefined));
    }
    assert.equal((await cluster.request('GET', '/api/v1/namespaces/default/configmaps/bystander')).status, 200);
  });

  test('garbage collector: background deletion removes a dependent whose owner is gone', async () => {
    const parent = await cluster.request('POST', '/api/v1/namespaces/default/configmaps', { body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'parent' } } });
    assert.equal(parent.status, 201, parent.body);
    const uid = json<{ metadata: { uid: string } }>(parent.body).metadata.uid;
    const child = await cluster.request('POST', '/api/v1/namespaces/default/configmaps', {
      body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'child', ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'parent', uid }] } },
    });
    assert.equal(child.status, 201, child.body);
    const del = await cluster.request('DELETE', '/api/v1/namespaces/default/configmaps/parent?propagationPolicy=Background');
    assert.equal(del.status, 200, del.body);
    assert.equal((await cluster.request('GET', '/api/v1/namespaces/default/configmaps/parent')).status, 404);
    await until('child deleted', async () => ((await cluster.request('GET', '/api/v1/namespaces/default/configmaps/child')).status === 404 ? true : undefined));
  });

  test('disruption controller: a PodDisruptionBudget gets status from the ready pods it selects', async () => {
    const ns = '/api/v1/namespaces/default';
    for (const name of ['web-0', 'web-1', 'web-2']) {
      const pod = await cluster.request('POST', `${ns}/pods`, {
        body: { apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image: 'registry.invalid/web:1' }] } },
      });
      assert.equal(pod.status, 201, pod.body);
    }
    // No kubelet runs here: say two pods are up, as a kubelet would, through the status subresource.
    const now = new Date().toISOString();
    for (const name of ['web-0', 'web-1']) {
      const res = await cluster.request('PATCH', `${ns}/pods/${name}/status`, {
        headers: MERGE_PATCH,
        body: { status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now }] } },
      });
      assert.equal(res.status, 200, res.body);
    }
    const pdb = await cluster.request('POST', '/apis/policy/v1/namespaces/default/poddisruptionbudgets', {
      body: { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name: 'web' }, spec: { minAvailable: 1, selector: { matchLabels: { app: 'web' } } } },
    });
    assert.equal(pdb.status, 201, pdb.body);
    type PdbStatus = { observedGeneration?: number; expectedPods?: number; currentHealthy?: number; desiredHealthy?: number; disruptionsAllowed?: number };
    const status = await until('PDB status', async () => {
      const res = await cluster.request('GET', '/apis/policy/v1/namespaces/default/poddisruptionbudgets/web');
      const s = json<{ status?: PdbStatus }>(res.body).status;
      return s?.observedGeneration === 1 && s.expectedPods === 3 ? s : undefined;
    });
    assert.equal(status.currentHealthy, 2);
    assert.equal(status.desiredHealthy, 1);
    assert.equal(status.disruptionsAllowed, 1);
  });

  function csr(name: string, subject: string): string {
    const key = join(scratch, `${name}.key`);
    const req = join(scratch, `${name}.csr`);
    execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', req, '-subj', subject], { stdio: 'ignore' });
    return readFileSync(req).toString('base64');
  }

  type Csr = { status?: { certificate?: string; conditions?: { type: string; status: string; reason?: string }[] } };

  async function issued(name: string): Promise<{ cert: X509Certificate; csr: Csr }> {
    return until(`CSR ${name} signed`, async () => {
      const res = await cluster.request('GET', `/apis/certificates.k8s.io/v1/certificatesigningrequests/${name}`);
      const obj = json<Csr>(res.body);
      const pem = obj.status?.certificate;
      return pem ? { cert: new X509Certificate(Buffer.from(pem, 'base64')), csr: obj } : undefined;
    });
  }

  test('CSR signer: an approved kube-apiserver-client request is signed by the cluster CA', async () => {
    const body = {
      apiVersion: 'certificates.k8s.io/v1',
      kind: 'CertificateSigningRequest',
      metadata: { name: 'kubenode-client' },
      spec: { request: csr('client', '/O=kubenode:agents/CN=kubenode:agent:node-0'), signerName: 'kubernetes.io/kube-apiserver-client', usages: ['digital signature', 'client auth'], expirationSeconds: 3600 },
    };
    const created = await cluster.request('POST', '/apis/certificates.k8s.io/v1/certificatesigningrequests', { body });
    assert.equal(created.status, 201, created.body);
    // The approver leaves this signer alone: nothing is signed until a person approves.
    await new Promise((r) => setTimeout(r, 2000));
    const pending = json<Csr>((await cluster.request('GET', '/apis/certificates.k8s.io/v1/certificatesigningrequests/kubenode-client')).body);
    assert.equal(pending.status?.certificate, undefined);

    const approved = json<Record<string, unknown>>(created.body);
    approved.status = { conditions: [{ type: 'Approved', status: 'True', reason: 'TestApproved', message: 'approved by the test' }] };
    const res = await cluster.request('PUT', '/apis/certificates.k8s.io/v1/certificatesigningrequests/kubenode-client/approval', { body: approved });
    assert.equal(res.status, 200, res.body);

    const { cert } = await issued('kubenode-client');
    const ca = new X509Certificate(readFileSync(cluster.caFile));
    assert.ok(cert.verify(ca.publicKey), 'certificate not signed by the cluster CA');
    assert.equal(cert.issuer, ca.subject);
    assert.match(cert.subject, /CN=kubenode:agent:node-0/);
    const lifetime = Date.parse(cert.validTo) - Date.parse(cert.validFrom);
    assert.ok(lifetime <= 3600_000 + 5 * 60_000, `lifetime ${lifetime} ms longer than expirationSeconds asked`);
  });

  test('CSR approver: a node client certificate request is approved automatically and signed', async () => {
    const body = {
      apiVersion: 'certificates.k8s.io/v1',
      kind: 'CertificateSigningRequest',
      metadata: { name: 'node-client' },
      spec: { request: csr('node', '/O=system:nodes/CN=system:node:node-0'), signerName: 'kubernetes.io/kube-apiserver-client-kubelet', usages: ['digital signature', 'client auth'] },
    };
    const created = await cluster.request('POST', '/apis/certificates.k8s.io/v1/certificatesigningrequests', { body });
    assert.equal(created.status, 201, created.body);
    const { cert, csr: obj } = await issued('node-client');
    assert.ok(obj.status?.conditions?.some((c) => c.type === 'Approved' && c.status === 'True' && c.reason === 'AutoApproved'), JSON.stringify(obj.status));
    assert.ok(cert.verify(new X509Certificate(readFileSync(cluster.caFile)).publicKey));
    assert.match(cert.subject, /CN=system:node:node-0/);
  });

  test('stop() ends the controller manager with the cluster', async () => {
    const pid = cluster.controllerManager?.pid;
    assert.ok(pid !== undefined);
    const dir = cluster.dir;
    await cluster.stop();
    assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' });
    assert.equal(existsSync(dir), false);
  });
});
