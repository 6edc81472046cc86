// The agent upgrading itself in a cluster, on the real test apiserver: the agent (a tarball source:
// the bundle, the Kubernetes client and a wrapper, in a sandbox root) runs in cluster mode on its own identity, its
// MachineComponent comes from the apiserver, and a new version confirms only once its /healthz is
// ok and it has renewed its node Lease there. A new version that answers /healthz but never renews
// (its cluster client cannot reach the apiserver) is rolled back at the deadline. systemctl and
// systemd-run are the stand-ins of test/installers/self-sandbox.ts.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { startCluster, type Cluster } from '../harness/cluster.ts';
import { goodObjects, grantAgentRbac, installCrds } from '../helpers/kube-objects.ts';
import { createNode } from '../report/kube/rbac.ts';
import { createMc, patchMc } from '../watch/helpers.ts';
import { readJson, sha256, startArtifactServer, type ArtifactServer } from './helpers.ts';
import { agentBundleFile, agentTarball, makeSelfSandbox, stopSandboxUnits, type SelfSandbox } from './self-sandbox.ts';

const NODE = 'node-0';
const STATE = 'var/lib/kubenode';
const LEASE = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/kubenode-agent-${NODE}`;
const TIMEOUT = '20s';

interface Status {
  phase: string;
  installedVersion?: string;
  lastError?: string;
  conditions: { type: string; status: string; reason: string }[];
}

describe('the agent upgrades itself in a cluster: the new version confirms by renewing its node Lease', () => {
  let cluster: Cluster;
  let server: ArtifactServer;
  let box: SelfSandbox;
  const file = (rel: string): string => path.join(box.root, rel);
  const status = (): Status | undefined => (existsSync(file(`${STATE}/installers/status/kubenode-agent.json`)) ? readJson<Status>(file(`${STATE}/installers/status/kubenode-agent.json`)) : undefined);
  const journaled = (): boolean => existsSync(file(`${STATE}/installers/journal/kubenode-agent.json`));
  const armed = (): boolean => existsSync(file(`${STATE}/installers/self-upgrade`));
  const agentLog = (): Record<string, unknown>[] => box.jsonLog('kubenode-agent.log');
  const settled = (version: string, phase: 'Installed' | 'Failed'): boolean => {
    const s = status();
    return s?.phase === phase && s.installedVersion === version && !journaled() && !armed() && box.installedVersion() === version;
  };
  const diagnostics = (): string =>
    [
      `status: ${JSON.stringify(status())}`,
      `installed: ${box.installedVersion()}, journal: ${journaled()}, armed: ${armed()}`,
      `unit log (tail):\n${box.log('kubenode-agent-self-upgrade.service.log').slice(-10).join('\n')}`,
      `agent log (tail):\n${box.log('kubenode-agent.log').slice(-15).join('\n')}`,
    ].join('\n');
  async function waitFor(what: string, ok: () => boolean | Promise<boolean>, limitMs = 120_000): Promise<void> {
    const until = Date.now() + limitMs;
    while (!(await ok())) {
      if (Date.now() > until) assert.fail(`${what}: not reached\n${diagnostics()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const lease = async (): Promise<{ spec: { holderIdentity?: string; renewTime?: string } }> => {
    const r = await cluster.request('GET', LEASE);
    assert.equal(r.status, 200, r.body);
    return JSON.parse(r.body) as { spec: { holderIdentity?: string; renewTime?: string } };
  };

  /** The agent's MachineComponent spec at `version`, its artifact served from 127.0.0.1. */
  function spec(version: string, body: Buffer): Record<string, unknown> {
    const name = `kubenode-agent-${version}`;
    server.put(name, body);
    return {
      component: 'kubenode-agent',
      version,
      source: { type: 'tarball', url: server.url(name), sha256: sha256(body), stripComponents: 1 },
      install: { links: [{ path: '/usr/bin/kubenode-agent', target: 'bin/kubenode-agent' }] },
      unit: { name: 'kubenode-agent.service' },
      versionProbe: { argv: ['/usr/bin/kubenode-agent', '--version'], regex: '^([0-9][^\\s]*)' },
    };
  }

  /**
   * A release whose cluster client cannot reach the apiserver (the bundle, run with a kubeconfig
   * naming a closed port): it starts, answers /healthz and --version, and never renews its Lease.
   */
  async function unreachable(version: string): Promise<Buffer> {
    const kc = parse(readFileSync(file('etc/kubenode/kubeconfig'), 'utf8')) as { clusters: { cluster: { server: string } }[] };
    for (const c of kc.clusters) c.cluster.server = 'https://127.0.0.1:1';
    writeFileSync(file('etc/kubenode/unreachable.kubeconfig'), stringify(kc));
    return agentTarball(version, { runFlags: `--kubeconfig "${file('etc/kubenode/unreachable.kubeconfig')}"` });
  }

  before(async () => {
    cluster = await startCluster({ agents: 1 });
    await installCrds(cluster);
    await grantAgentRbac(cluster);
    await createNode(cluster, NODE);
    const m = await cluster.request('POST', '/apis/kubenode.io/v1alpha1/machines', { body: goodObjects(NODE).machines });
    assert.equal(m.status, 201, m.body);
    server = await startArtifactServer();
    box = makeSelfSandbox('tarball', {
      nodeName: NODE,
      cluster: { kubeconfig: '/etc/kubenode/kubeconfig' },
      listen: '127.0.0.1:0',
      monitors: { systemLog: [], customPlugin: [] },
      installers: { selfUpgradeTimeout: TIMEOUT, reconcileDebounce: '100ms', reconcileInterval: '2s', lockTimeout: '2s', downloadBackoff: '20ms' },
      risk: { local: { maxDisruptive: 100 } },
    });
    // The identity join would have written: the harness's agent kubeconfig for node-0.
    writeFileSync(file('etc/kubenode/kubeconfig'), readFileSync(cluster.agentKubeconfig(0), 'utf8'));
    const first = spec('1.0.0', await agentTarball('1.0.0'));
    await createMc(cluster, { name: `${NODE}-kubenode-agent`, node: NODE, version: '1.0.0', spec: first });
    // The first install, by hand, from the same spec (nothing to roll back to yet); it starts the service.
    writeFileSync(file('etc/kubenode/components/kubenode-agent.yaml'), stringify({ apiVersion: 'kubenode.io/v1alpha1', kind: 'MachineComponent', metadata: { name: `${NODE}-kubenode-agent` }, spec: first }));
    await promisify(execFile)(process.execPath, [await agentBundleFile('1.0.0'), 'apply', '--root', box.root], { timeout: 120_000 });
    rmSync(file('etc/kubenode/components/kubenode-agent.yaml'));
    await waitFor('1.0.0 installed and reporting to the cluster', async () => settled('1.0.0', 'Installed') && agentLog().some((l) => l.msg === 'Reporting to the cluster'));
  });

  after(async () => {
    if (box !== undefined) {
      stopSandboxUnits(box.root);
      rmSync(box.root, { recursive: true, force: true });
    }
    await server?.close();
    await cluster?.stop();
  });

  it('a healthy new version renews the Lease, and only then confirms', async () => {
    const since = Date.now();
    await patchMc(cluster, `${NODE}-kubenode-agent`, spec('1.1.0', await agentTarball('1.1.0')));
    await waitFor('1.1.0 installed', () => settled('1.1.0', 'Installed'));
    const confirmed = agentLog().find((l) => l.msg === 'Self-upgrade: confirmed healthy') as { version?: string; lease?: boolean } | undefined;
    assert.equal(confirmed?.version, '1.1.0');
    assert.equal(confirmed?.lease, true, 'confirmed with its Lease renewed');
    const l = await lease();
    assert.equal(l.spec.holderIdentity, NODE);
    assert.ok(Date.parse(l.spec.renewTime ?? '') >= since - 1000, `the Lease was renewed since the upgrade began: ${l.spec.renewTime}`);
    assert.equal(execFileSync(file('usr/bin/kubenode-agent'), ['--version'], { encoding: 'utf8' }).trim(), '1.1.0');
  });

  it('a new version that answers /healthz but never renews its Lease is rolled back at the deadline', async () => {
    rmSync(file('var/log/kubenode-agent.log'), { force: true });
    await patchMc(cluster, `${NODE}-kubenode-agent`, spec('1.2.0', await unreachable('1.2.0')));
    await waitFor('rolled back to 1.1.0', () => settled('1.1.0', 'Failed'), 180_000);
    const s = status() as Status;
    assert.equal(s.conditions.find((c) => c.type === 'Ready')?.reason, 'RolledBack');
    assert.match(s.lastError ?? '', new RegExp(`no kubenode-agent 1\\.2\\.0 reported healthy within ${TIMEOUT} .*Lease renewed.*rolled back to 1\\.1\\.0`));
    const log = agentLog();
    // The 1.2.0 agent ran, answered, and waited on its Lease: the Lease is what held it back.
    const waited = log.find((l) => l.msg === 'Self-upgrade: /healthz ok, waiting for the node Lease to be renewed before confirming') as { version?: string } | undefined;
    assert.equal(waited?.version, '1.2.0', diagnostics());
    assert.ok(!log.some((l) => l.msg === 'Self-upgrade: confirmed healthy' && l.version === '1.2.0'), '1.2.0 never confirmed');
    assert.equal(execFileSync(file('usr/bin/kubenode-agent'), ['--version'], { encoding: 'utf8' }).trim(), '1.1.0');
    // The restored agent holds its Lease again.
    const rolledBackAt = Date.now();
    await waitFor('the Lease renewed by the restored agent', async () => Date.parse((await lease()).spec.renewTime ?? '') >= rolledBackAt - 1000, 60_000);
  });
});
