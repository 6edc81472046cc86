// The cluster as the installers' source, against a real kube-apiserver: the agent identity (RBAC
// from deploy/rbac when present) watches its node's MachineComponents, the same reconciler and
// engine install them into a sandbox root, and status lands on the status subresource, with 409
// conflicts retried without dropping another writer's fields.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { MachineComponentStatus } from '../../src/api/machine-component.ts';
import { validateConfig } from '../../src/config/load.ts';
import { createHost } from '../../src/host/host.ts';
import { createInstallContext } from '../../src/installers/context.ts';
import { mergeStatus, startKubeInstaller, type KubeComponentSource } from '../../src/installers/kube-source.ts';
import type { InstallReconciler } from '../../src/installers/reconciler.ts';
import { allowAll } from '../../src/risk/gate.ts';
import { createLogger } from '../../src/log.ts';
import { startCluster, type Cluster } from '../harness/cluster.ts';
import { agentKube, createMc, getMc, grantAgents, installCrd, MC_PATH, patchMc, until } from '../watch/helpers.ts';
import { makeSandbox, sha256, startArtifactServer, demoRelease, type ArtifactServer } from './helpers.ts';

const T = '2026-01-01T00:00:00.000Z';
const ours: MachineComponentStatus = {
  phase: 'Installed',
  installedVersion: '1.0.0',
  observedGeneration: 2,
  conditions: [{ type: 'Ready', status: 'True', reason: 'Installed', message: 'ok', lastTransitionTime: T }],
  history: [],
};

describe('mergeStatus', () => {
  const cases: { name: string; current: Record<string, unknown> | undefined; want: Record<string, unknown> }[] = [
    { name: 'no status yet', current: undefined, want: { ...ours } },
    {
      name: 'keeps another writer’s condition, replaces ours',
      current: { phase: 'Pending', observedGeneration: 0, history: [], conditions: [{ type: 'RolloutHealthy', status: 'True', reason: 'x', message: '', lastTransitionTime: T }, { type: 'Ready', status: 'False', reason: 'old', message: '', lastTransitionTime: T }] },
      want: { ...ours, conditions: [{ type: 'RolloutHealthy', status: 'True', reason: 'x', message: '', lastTransitionTime: T }, ...ours.conditions] },
    },
    { name: 'drops a lastError we no longer have', current: { phase: 'Failed', observedGeneration: 1, lastError: 'boom', conditions: [], history: [] }, want: { ...ours } },
    { name: 'keeps fields we do not own', current: { phase: 'Failed', observedGeneration: 1, conditions: [], history: [], rollout: { batch: 3 } }, want: { ...ours, rollout: { batch: 3 } } },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const got = mergeStatus(c.current, ours);
      assert.deepEqual(Object.fromEntries(Object.entries(got).sort()), Object.fromEntries(Object.entries(c.want).sort()));
    });
  }
});

interface Mc {
  metadata: { generation: number; resourceVersion: string };
  status?: MachineComponentStatus;
}

describe('MachineComponents from a real apiserver', () => {
  let cluster: Cluster;
  let artifacts: ArtifactServer;
  let root: string;
  let reconciler: InstallReconciler;
  let source: KubeComponentSource;
  let rbac: string;
  let raceWriter: ((name: string, attempt: number) => Promise<void>) | undefined;

  before(async () => {
    cluster = await startCluster();
    await installCrd(cluster);
    rbac = await grantAgents(cluster);
    artifacts = await startArtifactServer();
    root = makeSandbox();
    const config = validateConfig('test', { nodeName: 'node-0', installers: { downloadBackoff: '20ms', lockTimeout: '2s' } });
    const log = createLogger('silent');
    const ctx = createInstallContext(createHost({ root }), { installers: config.installers, stateDir: config.stateDir, nodeName: 'node-0' }, log, { risk: allowAll });
    const { kc, client } = await agentKube(cluster, 0);
    ({ reconciler, source } = startKubeInstaller(ctx, {
      client,
      kubeConfig: kc,
      intervalMs: 600_000,
      beforeStatusWrite: async (name, attempt) => raceWriter?.(name, attempt),
    }));
  });
  after(async () => {
    await reconciler?.stop();
    await artifacts?.close();
    await cluster?.stop();
  });

  it(`installs a MachineComponent created for node-0 as the agent identity and reports Installed with observedGeneration`, async () => {
    process.stdout.write(`# agent permissions from ${rbac}\n`);
    await createMc(cluster, {
      name: 'motd',
      node: 'node-0',
      version: '1.0.0',
      spec: { files: [{ path: '/etc/motd', template: 'node {{nodeName}} at {{version}}\n' }] },
    });
    // Another node's component is not this agent's business.
    await createMc(cluster, { name: 'elsewhere', node: 'node-1', version: '1.0.0', spec: { files: [{ path: '/etc/elsewhere', content: 'x' }] } });
    const motd = path.join(root, 'etc/motd');
    await until('installed', async () => (await getMc<Mc>(cluster, 'motd')).status?.phase === 'Installed', 60_000);
    assert.equal(readFileSync(motd, 'utf8'), 'node node-0 at 1.0.0\n');
    let mc = await getMc<Mc>(cluster, 'motd');
    assert.equal(mc.status?.observedGeneration, mc.metadata.generation);
    assert.equal(mc.status?.installedVersion, '1.0.0');
    assert.match(mc.status?.configHash ?? '', /^[a-f0-9]{64}$/);
    assert.equal(mc.status?.conditions.find((c) => c.type === 'Ready')?.status, 'True');

    const patched = await patchMc(cluster, 'motd', { version: '1.1.0' });
    await until('upgraded', async () => (await getMc<Mc>(cluster, 'motd')).status?.observedGeneration === patched.metadata.generation, 60_000);
    mc = await getMc<Mc>(cluster, 'motd');
    assert.equal(readFileSync(motd, 'utf8'), 'node node-0 at 1.1.0\n');
    assert.equal(mc.status?.installedVersion, '1.1.0');
    assert.deepEqual(mc.status?.history.map((h) => [h.version, h.result]), [['1.1.0', 'Installed'], ['1.0.0', 'Installed']]);
    assert.equal(existsSync(path.join(root, 'etc/elsewhere')), false);
    assert.equal((await getMc<Mc>(cluster, 'elsewhere')).status, undefined);
  });

  it('installs a tarball served from 127.0.0.1 and reports its probed version', async () => {
    const release = demoRelease('2.0.0');
    artifacts.put('demo-2.0.0.tar.gz', release);
    await createMc(cluster, {
      name: 'demo',
      node: 'node-0',
      version: '2.0.0',
      spec: {
        source: { type: 'tarball', url: artifacts.url('demo-2.0.0.tar.gz'), sha256: sha256(release), stripComponents: 1 },
        install: { links: [{ path: '/usr/local/bin/demo', target: 'bin/demo' }] },
        healthCheck: { exec: { argv: ['/usr/local/bin/demo', '--health'] } },
      },
    });
    await until('installed', async () => (await getMc<Mc>(cluster, 'demo')).status?.phase === 'Installed', 60_000);
    const mc = await getMc<Mc>(cluster, 'demo');
    assert.equal(mc.status?.installedVersion, '2.0.0');
    assert.equal(mc.status?.observedGeneration, mc.metadata.generation);
    assert.ok(existsSync(path.join(root, 'opt/kubenode/demo/2.0.0/bin/demo')));
  });

  it('a failed upgrade: observedGeneration stays on the good generation, attemptedGeneration names the failed one', async () => {
    const broken = demoRelease('2.1.0', { healthy: false });
    artifacts.put('demo-2.1.0.tar.gz', broken);
    const good = await getMc<Mc>(cluster, 'demo');
    const patched = await patchMc(cluster, 'demo', { version: '2.1.0', source: { type: 'tarball', url: artifacts.url('demo-2.1.0.tar.gz'), sha256: sha256(broken), stripComponents: 1 } });
    await until('failed', async () => (await getMc<Mc>(cluster, 'demo')).status?.phase === 'Failed', 60_000);
    const mc = await getMc<Mc>(cluster, 'demo');
    assert.equal(mc.status?.attemptedGeneration, patched.metadata.generation);
    assert.equal(mc.status?.observedGeneration, good.metadata.generation);
    assert.equal(mc.status?.installedVersion, '2.0.0');
    assert.equal(mc.status?.conditions.find((c) => c.type === 'Ready')?.reason, 'RolledBack');
  });

  it('a competing status writer makes the first write a 409; the agent re-reads, keeps the other writer’s condition and writes again', async () => {
    const conflictsBefore = source.stats.statusConflicts;
    let raced = false;
    raceWriter = async (name, attempt) => {
      if (name !== 'race' || attempt !== 1 || raced) return;
      raced = true;
      // The other writer (a rollout controller) wins between our read and our write.
      const current = await getMc<Mc & Record<string, unknown>>(cluster, 'race');
      const r = await cluster.request('PUT', `${MC_PATH}/race/status`, {
        body: { ...current, status: { phase: 'Pending', observedGeneration: 0, history: [], conditions: [{ type: 'RolloutHealthy', status: 'True', reason: 'BatchPassed', message: 'batch 3 healthy', lastTransitionTime: T }] } },
      });
      assert.equal(r.status, 200, r.body);
    };
    try {
      await createMc(cluster, { name: 'race', node: 'node-0', version: '1.0.0', spec: { files: [{ path: '/etc/race', content: 'r\n' }] } });
      await until('installed', async () => (await getMc<Mc>(cluster, 'race')).status?.phase === 'Installed', 60_000);
    } finally {
      raceWriter = undefined;
    }
    assert.ok(raced, 'the competing write ran');
    assert.ok(source.stats.statusConflicts > conflictsBefore, JSON.stringify(source.stats));
    const mc = await getMc<Mc>(cluster, 'race');
    assert.deepEqual(mc.status?.conditions.map((c) => [c.type, c.status]).sort(), [['Ready', 'True'], ['RolloutHealthy', 'True']]);
    assert.equal(mc.status?.observedGeneration, mc.metadata.generation);
  });

  it('at steady state, passes write nothing', async () => {
    await until('quiet', async () => (await getMc<Mc>(cluster, 'race')).status?.phase === 'Installed');
    const writes = source.stats.statusWrites;
    const passes = reconciler.passes;
    reconciler.trigger();
    await until('a pass', () => reconciler.passes > passes);
    reconciler.trigger();
    await until('another pass', () => reconciler.passes > passes + 1);
    assert.equal(source.stats.statusWrites, writes);
  });

  it('a MachineComponent deleted: the agent uninstalls what it installed for it', async () => {
    assert.ok(existsSync(path.join(root, 'etc/race')));
    const r = await cluster.request('DELETE', `${MC_PATH}/race`);
    assert.equal(r.status, 200, r.body);
    await until('removed', async () => !existsSync(path.join(root, 'etc/race')), 60_000);
    await until('forgotten', async () => !existsSync(path.join(root, 'var/lib/kubenode/installers/status/race.json')), 60_000);
    assert.ok(existsSync(path.join(root, 'etc/motd')), 'the other components stay');
  });
});
