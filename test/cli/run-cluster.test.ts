// The built agent against a real kube-apiserver: a fault appearing in the kernel log of the
// node it speaks for becomes that Node's condition and an Event, under the agent's own
// least-privilege identity (deploy/rbac and the admission policy applied).
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { startCluster, type Cluster } from '../harness/cluster.ts';
import { agentRoot, spawnAgent, waitFor } from '../helpers/daemon.ts';
import { applyDir, goodObjects, installCrds } from '../helpers/kube-objects.ts';
import { createNode } from '../report/kube/rbac.ts';
import { nodeConditions } from '../report/kube/helpers.ts';

let cluster: Cluster;

before(async () => {
  cluster = await startCluster({ agents: 2 });
  await installCrds(cluster);
  await applyDir(cluster, new URL('../../deploy/rbac/', import.meta.url));
  await createNode(cluster, 'node-0');
  const machine = goodObjects('node-0').machines;
  const res = await cluster.request('POST', '/apis/kubenode.io/v1alpha1/machines', { body: machine });
  assert.equal(res.status, 201, res.body);
});

after(() => cluster?.stop());

test('a kernel fault on the node becomes its Node condition and an Event; the agent holds its Lease and writes its Machine status', async () => {
  const root = agentRoot('node-0');
  // The node facts of this very machine, for Machine status.
  for (const file of ['/proc/sys/kernel/osrelease', '/etc/os-release', '/proc/cpuinfo', '/proc/meminfo']) root.write(file, readFileSync(file, 'utf8'));
  const config = root.write('/agent.yaml', 'listen: 127.0.0.1:0\n');
  const child = spawnAgent(['run', '--root', root.dir, '--config', config, '--kubeconfig', cluster.agentKubeconfig(0), '--node-name', 'node-0']);
  let stderr = '';
  let stdout = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));

  const healthy = await waitFor(async () => (await nodeConditions(cluster, 'node-0')).get('ReadonlyFilesystem'), () => `the healthy condition never reached the Node; ${stderr}`);
  assert.equal(healthy.status, 'False');

  appendFileSync(root.path('/dev/kmsg'), '3,2,99000000,-;EXT4-fs (dm-4): Remounting filesystem read-only\n');
  const turned = await waitFor(async () => {
    const c = (await nodeConditions(cluster, 'node-0')).get('ReadonlyFilesystem');
    return c?.status === 'True' ? c : undefined;
  }, () => 'ReadonlyFilesystem never turned True on the Node');
  assert.equal(turned.reason, 'FilesystemIsReadOnly');
  assert.match(turned.message ?? '', /EXT4-fs \(dm-4\): Remounting filesystem read-only/);

  const event = await waitFor(async () => {
    const res = await cluster.request('GET', '/api/v1/namespaces/default/events?fieldSelector=involvedObject.name=node-0');
    const items = (JSON.parse(res.body) as { items: { reason: string; type: string; source?: { component?: string } }[] }).items;
    return items.find((e) => e.reason === 'FilesystemIsReadOnly');
  }, () => 'no Event for the fault');
  assert.equal(event.type, 'Warning');
  assert.equal(event.source?.component, 'kubenode-agent');

  const lease = await cluster.request('GET', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/kubenode-agent-node-0');
  assert.equal(lease.status, 200, lease.body);
  assert.equal((JSON.parse(lease.body) as { spec: { holderIdentity: string } }).spec.holderIdentity, 'node-0');

  const machine = await waitFor(async () => {
    const res = await cluster.request('GET', '/apis/kubenode.io/v1alpha1/machines/node-0');
    const m = JSON.parse(res.body) as { status?: { phase?: string } };
    return m.status?.phase === 'Degraded' ? m : undefined;
  }, () => `Machine status never showed the fault; agent log:\n${stdout.split('\n').filter((l) => /machine|warn|error/i.test(l)).slice(-10).join('\n')}`);
  assert.equal(machine.status?.phase, 'Degraded');

  child.kill('SIGTERM');
  assert.equal(await exited, 0, stderr);
});

test('run refuses --kubeconfig together with --in-cluster', async () => {
  const child = spawnAgent(['run', '--kubeconfig', cluster.agentKubeconfig(0), '--in-cluster']);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise((resolve) => child.on('exit', resolve));
  assert.equal(code, 64);
  assert.match(stderr, /--kubeconfig and --in-cluster exclude each other/);
});
