// The harness's real kubectl against the test apiserver.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { kubectlPath } from './binaries.ts';
import { startCluster } from './cluster.ts';
import type { Cluster } from './cluster.ts';

const goMod = await readFile(new URL('../apiserver/go.mod', import.meta.url), 'utf8');
const k8sVersion = /^\s*k8s\.io\/kubernetes (v\d+\.\d+\.\d+)\s*$/m.exec(goMod)?.[1];

describe('kubectl (built with the apiserver)', () => {
  let cluster: Cluster;
  before(async () => {
    // The namespace controller finalizes deleted namespaces, which `kubectl delete ns` waits for.
    cluster = await startCluster({ agents: 1, controllerManager: { controllers: ['namespace-controller'] } });
  });
  after(async () => {
    await cluster?.stop();
  });

  test('is the release the apiserver is, on both sides of `kubectl version`', async () => {
    assert.ok(k8sVersion);
    assert.ok(existsSync(await kubectlPath()));
    const res = await cluster.kubectl(['version', '-o', 'json']);
    assert.equal(res.code, 0, res.stderr);
    const v = JSON.parse(res.stdout) as { clientVersion: { gitVersion: string }; serverVersion: { gitVersion: string } };
    assert.equal(v.clientVersion.gitVersion, k8sVersion);
    assert.equal(v.serverVersion.gitVersion, k8sVersion);
  });

  test('kubectl get ns lists the cluster namespaces', async () => {
    const res = await cluster.kubectl(['get', 'ns', '-o', 'name']);
    assert.equal(res.code, 0, res.stderr);
    const names = res.stdout.trim().split('\n').sort();
    for (const ns of ['namespace/default', 'namespace/kube-node-lease', 'namespace/kube-public', 'namespace/kube-system']) assert.ok(names.includes(ns), res.stdout);
    // Its discovery cache lives in the cluster's directory, not in the user's home.
    assert.ok(existsSync(join(cluster.dir, '.kubectl-cache')));
  });

  test('kubectl apply -f - creates what it reads, and RBAC is enforced for an agent identity', async () => {
    const manifest = JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'from-kubectl', namespace: 'default' }, data: { k: 'v' } });
    const applied = await cluster.kubectl(['apply', '-f', '-'], { input: manifest });
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, /configmap\/from-kubectl created/);
    const got = await cluster.request('GET', '/api/v1/namespaces/default/configmaps/from-kubectl');
    assert.equal((JSON.parse(got.body) as { data: Record<string, string> }).data.k, 'v');

    const denied = await cluster.kubectl(['get', 'configmaps', '-n', 'default'], { kubeconfig: cluster.agentKubeconfig(0) });
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /forbidden/i);
  });

  test('kubectl delete ns waits for the controller manager started with the cluster to finalize it', async () => {
    assert.ok(cluster.controllerManager?.pid !== undefined);
    assert.equal((await cluster.kubectl(['create', 'namespace', 'scratch'])).code, 0);
    const del = await cluster.kubectl(['delete', 'namespace', 'scratch', '--wait', '--timeout=60s'], { timeoutMs: 90_000 });
    assert.equal(del.code, 0, del.stderr);
    const gone = await cluster.kubectl(['get', 'namespace', 'scratch']);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /NotFound/);
  });
});
