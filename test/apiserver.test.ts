// Exercises the real kube-apiserver harness itself: if these fail, every
// test built on test/harness/cluster.ts is suspect.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { startCluster } from './harness/cluster.ts';
import type { Cluster } from './harness/cluster.ts';

// The version the binary was built from, so a bump of go.mod needs no edit here.
const goMod = readFileSync(new URL('./apiserver/go.mod', import.meta.url), 'utf8');
const k8sVersion = /^\s*k8s\.io\/kubernetes (v(\d+)\.(\d+)\.\d+)\s*$/m.exec(goMod);
assert.ok(k8sVersion, 'k8s.io/kubernetes version not found in test/apiserver/go.mod');
const [, gitVersion, major, minor] = k8sVersion;

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

describe('kubenode-testcluster (real kube-apiserver + etcd)', () => {
  let cluster: Cluster | undefined;

  // The first run in a fresh cache compiles kube-apiserver, which takes many
  // minutes; later runs start in seconds.
  before(async () => {
    cluster = await startCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  test('serves /version of the Kubernetes release it was built from, over TLS verified with the cluster CA', async () => {
    assert.ok(cluster);
    assert.match(cluster.server, /^https:\/\/127\.0\.0\.1:\d+$/);
    const res = await cluster.request('GET', '/version');
    assert.equal(res.status, 200, res.body);
    const v = JSON.parse(res.body) as { major: string; minor: string; gitVersion: string };
    assert.equal(v.gitVersion, gitVersion);
    assert.equal(v.major, major);
    assert.equal(v.minor, minor);
    assert.equal(cluster.version, gitVersion);
  });

  test('writes kubeconfigs for the admin and every agent', () => {
    assert.ok(cluster);
    assert.equal(cluster.agents, 40);
    for (const [file, user] of [
      [cluster.adminKubeconfig, 'kubenode:admin'],
      [cluster.agentKubeconfig(0), 'kubenode:agent:node-0'],
      [cluster.agentKubeconfig(39), 'kubenode:agent:node-39'],
    ] as const) {
      assert.ok(existsSync(file), file);
      const cfg = JSON.parse(readFileSync(file, 'utf8')) as {
        clusters: { cluster: { server: string } }[];
        users: { name: string; user: { token: string } }[];
      };
      assert.equal(cfg.clusters[0]?.cluster.server, cluster.server);
      assert.equal(cfg.users[0]?.name, user);
    }
    assert.throws(() => cluster?.agentKubeconfig(40), RangeError);
  });

  test('enforces RBAC: an agent may not list secrets cluster-wide, the admin may', async () => {
    assert.ok(cluster);
    const denied = await cluster.request('GET', '/api/v1/secrets', { token: cluster.agentToken(3) });
    assert.equal(denied.status, 403, denied.body);
    // Proves the token authenticated as the agent (anonymous is also a 403).
    assert.match(denied.body, /User \\"kubenode:agent:node-3\\" cannot list resource \\"secrets\\"/);

    const allowed = await cluster.request('GET', '/api/v1/secrets');
    assert.equal(allowed.status, 200, allowed.body);

    const review = await cluster.request('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {
      token: cluster.agentToken(3),
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
    });
    assert.equal(review.status, 201, review.body);
    const info = (JSON.parse(review.body) as { status: { userInfo: { username: string; groups: string[] } } }).status.userInfo;
    assert.equal(info.username, 'kubenode:agent:node-3');
    assert.ok(info.groups.includes('kubenode:agents'), JSON.stringify(info.groups));
  });

  test('restart() keeps etcd data, certificates and tokens', async () => {
    assert.ok(cluster);
    const name = `persist-${process.pid}`;
    const created = await cluster.request('POST', '/api/v1/namespaces/default/configmaps', {
      body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { answer: '42' } },
    });
    assert.equal(created.status, 201, created.body);
    const pidBefore = cluster.pid;
    const ca = cluster.ca;

    await cluster.restart();

    assert.notEqual(cluster.pid, pidBefore);
    assert.ok(pidBefore !== undefined && !isRunning(pidBefore), 'old process still running');
    assert.deepEqual(cluster.ca, ca);
    const read = await cluster.request('GET', `/api/v1/namespaces/default/configmaps/${name}`);
    assert.equal(read.status, 200, read.body);
    assert.deepEqual((JSON.parse(read.body) as { data: unknown }).data, { answer: '42' });
    // The agent tokens from before the restart still authenticate.
    const denied = await cluster.request('GET', '/api/v1/secrets', { token: cluster.agentToken(3) });
    assert.equal(denied.status, 403, denied.body);
  });

  test('stop() ends the process and removes its directory', async () => {
    assert.ok(cluster);
    const pid = cluster.pid;
    assert.ok(pid !== undefined);
    await cluster.stop();
    assert.equal(isRunning(pid), false);
    assert.equal(cluster.pid, undefined);
    assert.equal(existsSync(cluster.dir), false);
    await cluster.stop(); // idempotent
  });
});
