// Machine status against a real apiserver with the generated CRDs, written with an agent identity.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { createHost } from '../../../src/host/host.ts';
import { createKubeClient, loadKubeConfig, type KubeClient } from '../../../src/kube/client.ts';
import { MachineStatusReporter } from '../../../src/report/kube/machine-status.ts';
import type { MergedCondition } from '../../../src/report/kube/node-conditions.ts';
import type { Machine } from '../../../src/api/machine.ts';
import { startCluster, type Cluster } from '../../harness/cluster.ts';
import { FakeClock } from '../../helpers/fake-clock.ts';
import type { TempRoot } from '../../helpers/host-root.ts';
import { installCrds } from '../../helpers/kube-objects.ts';
import { MACHINES_PATH, MERGE_PATCH } from '../../helpers/kube-api.ts';
import { quietLog, waitAllowed } from './helpers.ts';
import { gpuFpgaRoot } from './machine-host.ts';
import { createNode } from './rbac.ts';
import { grantAgentRbac } from '../../helpers/kube-objects.ts';


describe('Machine status (real apiserver, generated CRDs)', () => {
  let cluster: Cluster;
  const roots: TempRoot[] = [];
  const clients: KubeClient[] = [];
  const reporters: MachineStatusReporter[] = [];

  before(async () => {
    cluster = await startCluster({ agents: 2 });
    await installCrds(cluster);
    await grantAgentRbac(cluster);
    for (const i of [0, 1]) {
      await createNode(cluster, `node-${i}`);
      const res = await cluster.request('POST', MACHINES_PATH, { body: { apiVersion: 'kubenode.io/v1alpha1', kind: 'Machine', metadata: { name: `node-${i}` }, spec: {} } });
      assert.equal(res.status, 201, res.body);
    }
    await waitAllowed(cluster, 0, `${MACHINES_PATH}/node-0/status`);
  });
  after(async () => {
    await Promise.all(reporters.map((r) => r.stop()));
    for (const c of clients) c.close();
    for (const root of roots) root.remove();
    await cluster?.stop();
  });

  async function reporterFor(i: number, clock: FakeClock, root: TempRoot): Promise<MachineStatusReporter> {
    const client = createKubeClient(await loadKubeConfig({ kubeconfig: cluster.agentKubeconfig(i) }), { timeoutMs: 5000 });
    clients.push(client);
    const r = new MachineStatusReporter({ client, nodeName: `node-${i}`, host: createHost({ root: root.dir, clock }), clock, log: quietLog, agentVersion: '1.2.3', backoffBaseMs: 50, backoffMaxMs: 200 });
    reporters.push(r);
    return r;
  }

  async function machine(name: string): Promise<Machine> {
    const res = await cluster.request('GET', `${MACHINES_PATH}/${name}`);
    assert.equal(res.status, 200, res.body);
    return JSON.parse(res.body) as Machine;
  }

  test('facts of the --root host, phase and conditions land in status; unchanged state is not rewritten; resync refreshes the heartbeat', async () => {
    const clock = new FakeClock(Date.UTC(2026, 5, 1));
    const root = gpuFpgaRoot();
    roots.push(root);
    const r = await reporterFor(0, clock, root);
    await r.start();
    await r.settled();
    let m = await machine('node-0');
    assert.equal(m.status?.phase, 'Ready');
    assert.equal(m.status?.agentVersion, '1.2.3');
    assert.deepEqual(m.status?.node, {
      kernelVersion: '5.15.0-105-generic', osImage: 'Ubuntu 22.04.4 LTS', osId: 'ubuntu', osVersion: '22.04', architecture: 'amd64',
      cpus: 4, memoryBytes: 16318480 * 1024, bootId: '3f0c1a7e-6a0b-4d4e-9d61-2f7e4c8e9b10', machineId: 'b1946ac92492d2347c6235b4d2611184',
    });
    assert.deepEqual(m.status?.gpus, [{ vendor: 'NVIDIA', model: 'NVIDIA A100-SXM4-40GB', busId: '0000:3b:00.0', uuid: 'GPU-5f3c2b1a-8e7d-4c6b-9a2f-1e0d3c4b5a69' }]);
    assert.deepEqual(m.status?.fpgas, [{ vendor: 'Intel', model: 'PAC N3000', busId: '0000:af:00.0' }]);
    assert.equal(m.status?.lastHeartbeatTime, '2026-06-01T00:00:00Z');
    assert.equal(r.stats.writes, 1);

    const deadlock: MergedCondition = { type: 'KernelDeadlock', status: 'True', reason: 'DockerHung', message: 'task docker:1 blocked', transitionTime: Date.UTC(2026, 4, 31), sources: ['kernel'] };
    r.setConditions([deadlock]);
    await r.settled();
    r.setConditions([{ ...deadlock }]); // same again: nothing to write
    await r.settled();
    assert.equal(r.stats.writes, 2);
    m = await machine('node-0');
    assert.equal(m.status?.phase, 'Degraded');
    assert.deepEqual(m.status?.conditions, [{ type: 'KernelDeadlock', status: 'True', reason: 'DockerHung', message: 'task docker:1 blocked', lastTransitionTime: '2026-05-31T00:00:00Z' }]);

    // The facts loop (5 min) re-reads the host: a GPU that fell off the bus is written once.
    rmSync(root.path('/sys/bus/pci/devices/0000:3b:00.0'), { recursive: true });
    await clock.advance(5 * 60_000);
    await r.settled();
    assert.equal(r.stats.writes, 3);
    assert.deepEqual((await machine('node-0')).status?.gpus, []);

    await clock.advance(25 * 60_000); // 30 min: resync, facts unchanged
    await r.settled();
    assert.equal(r.stats.writes, 4);
    assert.equal((await machine('node-0')).status?.lastHeartbeatTime, '2026-06-01T00:30:00Z');
  });

  test('other writers\' status fields and condition types survive our server-side apply', async () => {
    // The installers (another field manager) own components and a condition type.
    const other = await cluster.request('PATCH', `${MACHINES_PATH}/node-1/status?fieldManager=installers`, {
      headers: MERGE_PATCH,
      body: { status: { phase: 'Reconciling', components: [{ name: 'kubelet', version: '1.34.4', phase: 'Installed' }], conditions: [{ type: 'ComponentsReady', status: 'True', reason: 'AllInstalled', message: '', lastTransitionTime: '2026-06-01T00:00:00Z' }] } },
    });
    assert.equal(other.status, 200, other.body);
    const clock = new FakeClock(Date.UTC(2026, 5, 2));
    const root = gpuFpgaRoot();
    roots.push(root);
    const r = await reporterFor(1, clock, root);
    await r.start();
    r.setConditions([{ type: 'KernelDeadlock', status: 'False', reason: 'KernelHasNoDeadlock', message: 'ok', transitionTime: Date.UTC(2026, 5, 1), sources: ['kernel'] }]);
    await r.settled();
    const m = await machine('node-1');
    assert.deepEqual(m.status?.components, [{ name: 'kubelet', version: '1.34.4', phase: 'Installed' }]);
    assert.deepEqual(m.status?.conditions?.map((c) => `${c.type}=${c.status}`).sort(), ['ComponentsReady=True', 'KernelDeadlock=False']);
    assert.equal(m.status?.phase, 'Ready');
    assert.equal(m.status?.node?.kernelVersion, '5.15.0-105-generic');
  });
});
