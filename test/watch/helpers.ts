// Shared by the watch and kube-source tests: the MachineComponent CRD and the agent's RBAC on a
// real test apiserver, agent kubeconfigs (optionally through a TCP proxy that can stall or cut
// connections), and MachineComponent objects.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server, type Socket, connect } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseAllDocuments } from 'yaml';
import type { KubeConfig } from '@kubernetes/client-node';
import { createKubeClient, loadKubeConfig, type KubeClient, type KubeClientOptions } from '../../src/kube/client.ts';
import type { Cluster } from '../harness/cluster.ts';
import { MC_PATH } from '../helpers/kube-api.ts';

export { MC_PATH };

const REPO = path.resolve(import.meta.dirname, '../..');
export const CRD_FILE = path.join(REPO, 'deploy/crds/machinecomponents.kubenode.io.yaml');
const RBAC_DIR = path.join(REPO, 'deploy/rbac');

/** Waits (bounded) for a condition; the assertion is on the state reached, not on the time taken. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, limitMs = 30_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await sleep(25);
  }
}

async function must(cluster: Cluster, method: string, p: string, body?: unknown, ok: number[] = [200, 201]): Promise<unknown> {
  const r = await cluster.request(method, p, body === undefined ? {} : { body });
  if (!ok.includes(r.status)) throw new Error(`${method} ${p}: ${r.status} ${r.body.slice(0, 400)}`);
  return r.body === '' ? undefined : JSON.parse(r.body);
}

/** The generated MachineComponent CRD, installed and established. */
export async function installCrd(cluster: Cluster, plural = 'machinecomponents'): Promise<void> {
  const crd = parseAllDocuments(readFileSync(path.join(REPO, `deploy/crds/${plural}.kubenode.io.yaml`), 'utf8'))[0]?.toJS() as unknown;
  await must(cluster, 'POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd, [201, 409]);
  await until('CRD established', async () => (await cluster.request('GET', `/apis/kubenode.io/v1alpha1/${plural}`)).status === 200, 60_000);
}

const COLLECTIONS: Record<string, string> = {
  ClusterRole: '/apis/rbac.authorization.k8s.io/v1/clusterroles',
  ClusterRoleBinding: '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings',
  ValidatingAdmissionPolicy: '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies',
  ValidatingAdmissionPolicyBinding: '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings',
};

/**
 * The agent identities' permissions: deploy/rbac/*.yaml when the RBAC engineer has generated it,
 * else a test-local least-privilege role for what this code needs (read MachineComponents, write
 * their status). Returns which was used.
 */
export async function grantAgents(cluster: Cluster): Promise<'deploy/rbac' | 'test-local'> {
  const files = existsSync(RBAC_DIR) ? readdirSync(RBAC_DIR).filter((f) => /\.ya?ml$/.test(f)).sort() : [];
  if (files.length > 0) {
    for (const f of files) {
      for (const doc of parseAllDocuments(readFileSync(path.join(RBAC_DIR, f), 'utf8'))) {
        const obj = doc.toJS() as { kind?: string } | null;
        const collection = obj?.kind === undefined ? undefined : COLLECTIONS[obj.kind];
        if (collection !== undefined) await must(cluster, 'POST', collection, obj, [201, 409]);
      }
    }
    return 'deploy/rbac';
  }
  await must(cluster, 'POST', COLLECTIONS.ClusterRole as string, {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: 'kubenode-agent-test' },
    rules: [
      { apiGroups: ['kubenode.io'], resources: ['machinecomponents', 'machines'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['kubenode.io'], resources: ['machinecomponents/status', 'machines/status'], verbs: ['get', 'update', 'patch'] },
    ],
  }, [201, 409]);
  await must(cluster, 'POST', COLLECTIONS.ClusterRoleBinding as string, {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: 'kubenode-agent-test' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'kubenode-agent-test' },
    subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'kubenode:agents' }],
  }, [201, 409]);
  return 'test-local';
}

/** Agent i's kubeconfig and client, optionally pointed at another server address (a proxy). */
export async function agentKube(cluster: Cluster, i: number, options: { server?: string } & KubeClientOptions = {}): Promise<{ kc: KubeConfig; client: KubeClient }> {
  const kc = await loadKubeConfig({ kubeconfig: cluster.agentKubeconfig(i) });
  if (options.server !== undefined) {
    const k8s = await import('@kubernetes/client-node');
    const cluster0 = kc.getCurrentCluster();
    if (cluster0 === null) throw new Error('no cluster in the agent kubeconfig');
    const fresh = new k8s.KubeConfig();
    fresh.loadFromOptions({
      clusters: [{ ...cluster0, server: options.server }],
      users: kc.getUsers(),
      contexts: kc.getContexts(),
      currentContext: kc.getCurrentContext(),
    });
    return { kc: fresh, client: createKubeClient(fresh, options) };
  }
  return { kc, client: createKubeClient(kc, options) };
}

export interface MachineComponentInput {
  name: string;
  node: string;
  version: string;
  spec?: Record<string, unknown>;
}

export function machineComponent({ name, node, version, spec }: MachineComponentInput): Record<string, unknown> {
  return {
    apiVersion: 'kubenode.io/v1alpha1',
    kind: 'MachineComponent',
    metadata: { name, labels: { 'kubenode.io/machine': node } },
    spec: { component: name, version, source: { type: 'none' }, ...spec },
  };
}

export async function createMc(cluster: Cluster, input: MachineComponentInput): Promise<{ metadata: { resourceVersion: string; generation: number } }> {
  return (await must(cluster, 'POST', MC_PATH, machineComponent(input), [201])) as { metadata: { resourceVersion: string; generation: number } };
}

/** Merge-patches the spec (the admin's write). */
export async function patchMc(cluster: Cluster, name: string, spec: Record<string, unknown>): Promise<{ metadata: { resourceVersion: string; generation: number } }> {
  const r = await cluster.request('PATCH', `${MC_PATH}/${name}`, { body: { spec }, headers: { 'content-type': 'application/merge-patch+json' } });
  if (r.status !== 200) throw new Error(`PATCH ${name}: ${r.status} ${r.body.slice(0, 300)}`);
  return JSON.parse(r.body) as { metadata: { resourceVersion: string; generation: number } };
}

export async function deleteMc(cluster: Cluster, name: string): Promise<void> {
  await must(cluster, 'DELETE', `${MC_PATH}/${name}`, undefined, [200, 202, 404]);
}

export async function getMc<T = Record<string, unknown>>(cluster: Cluster, name: string): Promise<T> {
  return (await must(cluster, 'GET', `${MC_PATH}/${name}`)) as T;
}

/**
 * A TCP proxy in front of the apiserver (TLS passes through untouched). freeze() makes every open
 * connection go silent without closing (a half-dead connection, as after a NAT or load balancer
 * drops state); partition() cuts all connections and refuses new ones until heal().
 */
export class TcpProxy {
  readonly #server: Server;
  readonly #target: { host: string; port: number };
  readonly #pairs = new Set<{ a: Socket; b: Socket; frozen: boolean }>();
  #partitioned = false;
  port = 0;
  connections = 0;

  constructor(target: string) {
    const u = new URL(target);
    this.#target = { host: u.hostname, port: Number(u.port) };
    this.#server = createServer((a) => this.#accept(a));
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    const addr = this.#server.address();
    this.port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  }

  #accept(a: Socket): void {
    if (this.#partitioned) {
      a.destroy();
      return;
    }
    this.connections += 1;
    const b = connect(this.#target.port, this.#target.host);
    const pair = { a, b, frozen: false };
    this.#pairs.add(pair);
    // Frozen pairs drop what they read: the peer sees a silent but open connection.
    a.on('data', (d) => {
      if (!pair.frozen) b.write(d);
    });
    b.on('data', (d) => {
      if (!pair.frozen) a.write(d);
    });
    const close = (): void => {
      this.#pairs.delete(pair);
      a.destroy();
      b.destroy();
    };
    a.on('close', close).on('error', close);
    b.on('close', close).on('error', close);
  }

  /** Open connections go silent (kept open); new ones work. Returns how many were frozen. */
  freeze(): number {
    for (const p of this.#pairs) p.frozen = true;
    return this.#pairs.size;
  }

  partition(): void {
    this.#partitioned = true;
    for (const p of this.#pairs) {
      p.a.destroy();
      p.b.destroy();
    }
    this.#pairs.clear();
  }

  heal(): void {
    this.#partitioned = false;
  }

  async close(): Promise<void> {
    this.partition();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
