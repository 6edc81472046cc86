// Names longer than a label value (63 characters), on a real apiserver with the shipped CRDs, RBAC
// and admission policy: a MachineComponentSet with a 250-character name rolls out to Machines with
// 120-character FQDN names. The agents authenticate as kubenode:agent:<FQDN> with client
// certificates the cluster's own signer issued (a token file names only node-<i>). Each node's
// agent (the project's installer, into a sandbox root) sees its own component and reports it; the
// other node's agent is refused it by the admission policy; a component that carries a node's
// label but names another machine is neither installed nor writable by it; a deleted Machine's
// component is uninstalled by its agent and the Machine goes.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { KubeConfig } from '@kubernetes/client-node';
import { labelValueOf, MACHINE_LABEL } from '../../src/api/common.ts';
import { validateConfig } from '../../src/config/load.ts';
import { Controller } from '../../src/controller/index.ts';
import { templateHash } from '../../src/controller/rollout/plan.ts';
import { LABEL_SET } from '../../src/controller/rollout/reconciler.ts';
import { createHost } from '../../src/host/host.ts';
import { createInstallContext } from '../../src/installers/context.ts';
import { startKubeInstaller, type KubeComponentSource } from '../../src/installers/kube-source.ts';
import type { InstallReconciler } from '../../src/installers/reconciler.ts';
import { AGENT_GROUP, AGENT_USER_PREFIX, buildCsr, CLIENT_SIGNER, generateAgentKey } from '../../src/join/csr.ts';
import { createKubeClient, KubeApiError, loadKubeConfig, type KubeClient } from '../../src/kube/client.ts';
import { createLogger } from '../../src/log.ts';
import { allowAll } from '../../src/risk/gate.ts';
import { startCluster, type Cluster } from '../harness/cluster.ts';
import { grantAgentRbac, installCrds } from '../helpers/kube-objects.ts';
import { MACHINES_PATH, MC_PATH, MCS_PATH } from '../helpers/kube-api.ts';
import { makeSandbox } from '../installers/helpers.ts';
import { addMachine, ensureNamespace, must, until } from './helpers.ts';

const log = createLogger(process.env.KUBENODE_TEST_LOG === '1' ? 'debug' : 'silent');
const NS = 'kubenode-system';
const CSRS = '/apis/certificates.k8s.io/v1/certificatesigningrequests';
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** 120-character FQDNs that share more than a label value's prefix (46 characters): their label values differ only by the hash. */
const fqdn = (rack: number): string => `k8s-eu-central-1-gpu-pool-a-worker-node-000001.hall-2.row-03.rack-${rack}.eu-central-1.production.compute.internal.example.com`;
const NODE_A = fqdn(7);
const NODE_B = fqdn(8);
// 250 characters, with a dot where a 242-character prefix ends (a cut there must not leave `.-`).
const SET = `${'rollout-set-for-long-fqdn-machines-'.repeat(7).slice(0, 241)}.${'z'.repeat(8)}`;

interface McView {
  metadata: { name: string; labels: Record<string, string>; finalizers?: string[]; deletionTimestamp?: string };
  spec: { component: string; machine?: string };
  status?: { phase?: string; observedGeneration?: number };
}

/** An agent identity for any node name: a client certificate for CN=kubenode:agent:<node>, O=kubenode:agents, approved by the admin and issued by kube-controller-manager's signer. */
async function agentIdentity(cluster: Cluster, node: string): Promise<{ kc: KubeConfig; client: KubeClient }> {
  const key = generateAgentKey();
  const name = `long-names-${createHash('sha256').update(node).digest('hex').slice(0, 12)}`;
  const request = Buffer.from(buildCsr(key.privateKey, `${AGENT_USER_PREFIX}${node}`, AGENT_GROUP)).toString('base64');
  const created = await must<Record<string, unknown>>(cluster, 'POST', CSRS, { apiVersion: 'certificates.k8s.io/v1', kind: 'CertificateSigningRequest', metadata: { name }, spec: { request, signerName: CLIENT_SIGNER, usages: ['client auth'], expirationSeconds: 3600 } });
  await must(cluster, 'PUT', `${CSRS}/${name}/approval`, { ...created, status: { conditions: [{ type: 'Approved', status: 'True', reason: 'TestApproved', message: 'approved by the test' }] } });
  let cert: string | undefined;
  await until(`certificate for ${node}`, async () => (cert = (await must<{ status?: { certificate?: string } }>(cluster, 'GET', `${CSRS}/${name}`)).status?.certificate) !== undefined, 60_000);
  const admin = await loadKubeConfig({ kubeconfig: cluster.adminKubeconfig });
  const server = admin.getCurrentCluster();
  if (server === null) throw new Error('no cluster in the admin kubeconfig');
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [server],
    users: [{ name: 'agent', certData: cert, keyData: Buffer.from(key.pem).toString('base64') }],
    contexts: [{ name: 'agent', cluster: server.name, user: 'agent' }],
    currentContext: 'agent',
  });
  return { kc, client: createKubeClient(kc) };
}

describe('names longer than a label value: a long-named set on long-named Machines', () => {
  let cluster: Cluster;
  let controller: Controller | undefined;
  const agents = new Map<string, { client: KubeClient; reconciler: InstallReconciler; source: KubeComponentSource; root: string }>();

  const mcs = async (): Promise<McView[]> => (await must<{ items: McView[] }>(cluster, 'GET', MC_PATH)).items;
  const get = async <T>(p: string): Promise<T | undefined> => {
    const r = await cluster.request('GET', p);
    if (r.status === 404) return undefined;
    if (r.status !== 200) throw new Error(`GET ${p}: ${r.status} ${r.body.slice(0, 300)}`);
    return JSON.parse(r.body) as T;
  };
  const agent = (node: string): NonNullable<ReturnType<typeof agents.get>> => {
    const a = agents.get(node);
    if (a === undefined) throw new Error(`no agent for ${node}`);
    return a;
  };
  /** The agent's own status write of a component, as the installer sends it; the apiserver's status code. */
  const writeStatusAs = async (node: string, mcName: string): Promise<{ status: number; message: string }> => {
    const mc = await must<McView>(cluster, 'GET', `${MC_PATH}/${mcName}`);
    try {
      await agent(node).client.request('PUT', `${MC_PATH}/${mcName}/status`, { body: { ...mc, status: { ...(mc.status ?? {}), phase: 'Installing', observedGeneration: 0, conditions: [], history: [] } } });
      return { status: 200, message: '' };
    } catch (err) {
      if (!(err instanceof KubeApiError)) throw err;
      return { status: err.status ?? 0, message: err.message };
    }
  };

  before(async () => {
    cluster = await startCluster({ agents: 1, controllerManager: true });
    await installCrds(cluster);
    await grantAgentRbac(cluster);
    await ensureNamespace(cluster, NS);
    for (const node of [NODE_A, NODE_B]) {
      await addMachine(cluster, node);
      const { kc, client } = await agentIdentity(cluster, node);
      const root = makeSandbox();
      const config = validateConfig('test', { nodeName: node, installers: { downloadBackoff: '20ms', lockTimeout: '2s' } });
      const ctx = createInstallContext(createHost({ root }), { installers: config.installers, stateDir: config.stateDir, nodeName: node }, log, { risk: allowAll });
      // The source owns (and closes) its client; the test writes as the agent on another.
      const { reconciler, source } = startKubeInstaller(ctx, { client: createKubeClient(kc), kubeConfig: kc, intervalMs: 600_000 });
      agents.set(node, { client, reconciler, source, root });
    }
    controller = new Controller({ kubeconfig: cluster.adminKubeconfig, leaderElect: false, namespace: NS, listen: '127.0.0.1:0' }, log);
    await controller.start();
  });
  after(async () => {
    for (const a of agents.values()) {
      await a.reconciler.stop();
      a.client.close();
    }
    await controller?.stop();
    await cluster?.stop();
  });

  it('the rollout creates each Machine its component, labelled with shortened names and spec.machine in full; each agent installs its own and reports it', async () => {
    assert.deepEqual([NODE_A.length, NODE_B.length, SET.length], [120, 120, 250]);
    await must(cluster, 'POST', MCS_PATH, {
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'MachineComponentSet',
      metadata: { name: SET },
      spec: {
        selector: { matchLabels: { pool: 'a' } },
        template: { spec: { component: 'demo', version: '1.0.0', source: { type: 'none' }, files: [{ path: '/etc/demo/demo.conf', template: 'node={{nodeName}}\n' }] } },
        rollout: { batches: ['100%'] },
      },
    });
    await until('the rollout Completed', async () => (await get<{ status?: { phase?: string } }>(`${MCS_PATH}/${SET}`))?.status?.phase === 'Completed', 90_000);

    const all = await mcs();
    assert.deepEqual(all.map((mc) => mc.spec.machine).sort(), [NODE_A, NODE_B].sort(), 'one component per Machine, each naming its Machine in full');
    for (const node of [NODE_A, NODE_B]) {
      const mc = all.find((m) => m.spec.machine === node) as McView;
      assert.ok(mc.metadata.name.length <= 253 && DNS_SUBDOMAIN.test(mc.metadata.name), mc.metadata.name);
      assert.equal(mc.metadata.labels[MACHINE_LABEL], labelValueOf(node));
      assert.equal(mc.metadata.labels[LABEL_SET], labelValueOf(SET));
      assert.equal(mc.status?.phase, 'Installed', `${node}'s agent reported its component`);
      assert.ok(existsSync(path.join(agent(node).root, 'etc/demo/demo.conf')), `installed on ${node}`);
      // What the agent's informer holds: exactly its own component.
      assert.deepEqual([...agent(node).source.informer.snapshot().values()].map((o) => o.metadata.name), [mc.metadata.name]);
    }
    assert.notEqual(all[0]?.metadata.name, all[1]?.metadata.name);
    assert.notEqual(labelValueOf(NODE_A), labelValueOf(NODE_B));
    const revisions = (await must<{ items: { metadata: { name: string; labels: Record<string, string> } }[] }>(cluster, 'GET', `/apis/apps/v1/namespaces/${NS}/controllerrevisions`)).items;
    const set = await must<{ spec: { template: unknown } }>(cluster, 'GET', `${MCS_PATH}/${SET}`);
    assert.deepEqual(revisions.map((r) => r.metadata.labels[LABEL_SET]), [labelValueOf(SET)], 'one revision, labelled with the shortened set name');
    const [revision] = revisions.map((r) => r.metadata.name);
    assert.ok(revision !== undefined && revision.length <= 253 && DNS_SUBDOMAIN.test(revision) && revision.endsWith(`-${templateHash(set.spec.template)}`), revision);
  });

  it("another node's agent is refused by the admission policy; its own agent is allowed", async () => {
    const a = (await mcs()).find((m) => m.spec.machine === NODE_A) as McView;
    const refused = await writeStatusAs(NODE_B, a.metadata.name);
    assert.equal(refused.status, 403, refused.message);
    assert.match(refused.message, /kubenode-agent-restriction|may only modify MachineComponents for its machine/);
    const allowed = await writeStatusAs(NODE_A, a.metadata.name);
    assert.equal(allowed.status, 200, allowed.message);
  });

  it("a component with a node's label that names another machine: that node's agent ignores it and may not write it", async () => {
    const name = 'imposter-demo2';
    await must(cluster, 'POST', MC_PATH, {
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'MachineComponent',
      metadata: { name, labels: { [MACHINE_LABEL]: labelValueOf(NODE_A) } },
      spec: { component: 'demo2', version: '1.0.0', machine: NODE_B, source: { type: 'none' }, files: [{ path: '/etc/demo2/demo2.conf', content: 'x\n' }] },
    });
    const source = agent(NODE_A).source;
    await until("in agent A's informer", () => source.informer.get(name) !== undefined, 30_000);
    const desired = await source.load();
    assert.deepEqual(desired?.targets.map((t) => t.spec.component), ['demo'], 'only its own component is declared');
    assert.deepEqual(desired?.errors, []);
    const refused = await writeStatusAs(NODE_A, name);
    assert.equal(refused.status, 403, refused.message);
    assert.equal(existsSync(path.join(agent(NODE_A).root, 'etc/demo2/demo2.conf')), false);
    await must(cluster, 'DELETE', `${MC_PATH}/${name}`);
  });

  it("deleting a Machine: its component is found, uninstalled by its agent, finalized, and the Machine goes; the other Machine's stays", async () => {
    assert.equal((await cluster.request('DELETE', `${MACHINES_PATH}/${NODE_A}`)).status, 200);
    await until('Machine A gone', async () => (await get(`${MACHINES_PATH}/${NODE_A}`)) === undefined, 120_000);
    assert.equal(existsSync(path.join(agent(NODE_A).root, 'etc/demo/demo.conf')), false, 'uninstalled by its agent');
    const left = await mcs();
    assert.deepEqual(left.map((mc) => mc.spec.machine), [NODE_B], "only B's component is left");
    assert.ok(existsSync(path.join(agent(NODE_B).root, 'etc/demo/demo.conf')));
  });
});
