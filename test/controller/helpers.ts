// Shared by the controller tests: an admin client for the real test apiserver (optionally
// through test/watch's TCP proxy), the controller's namespace, and small request helpers.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { UNINSTALL_FINALIZER } from '../../src/api/common.ts';
import { createKubeClient, loadKubeConfig, type KubeClient } from '../../src/kube/client.ts';
import { agentLeaseName } from '../../src/report/kube/lease.ts';
import { startCluster, type Cluster } from '../harness/cluster.ts';
import { installCrds } from '../helpers/kube-objects.ts';
import { MC_PATH, MCS_PATH, MERGE_PATCH } from '../helpers/kube-api.ts';

export { until } from '../watch/helpers.ts';
export { MCS_PATH } from '../helpers/kube-api.ts';

export async function adminKube(cluster: Cluster, server?: string): Promise<{ kc: KubeConfig; client: KubeClient }> {
  const kc = await loadKubeConfig({ kubeconfig: cluster.adminKubeconfig });
  if (server === undefined) return { kc, client: createKubeClient(kc) };
  const k8s = await import('@kubernetes/client-node');
  const current = kc.getCurrentCluster();
  if (current === null) throw new Error('no cluster in the admin kubeconfig');
  const fresh = new k8s.KubeConfig();
  fresh.loadFromOptions({ clusters: [{ ...current, server }], users: kc.getUsers(), contexts: kc.getContexts(), currentContext: kc.getCurrentContext() });
  return { kc: fresh, client: createKubeClient(fresh) };
}

export async function must<T = unknown>(cluster: Cluster, method: string, path: string, body?: unknown, ok: number[] = [200, 201]): Promise<T> {
  const r = await cluster.request(method, path, body === undefined ? {} : { body });
  if (!ok.includes(r.status)) throw new Error(`${method} ${path}: ${r.status} ${r.body.slice(0, 600)}`);
  return (r.body === '' ? undefined : JSON.parse(r.body)) as T;
}

export async function ensureNamespace(cluster: Cluster, name: string): Promise<void> {
  await must(cluster, 'POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } }, [201, 409]);
}


export async function patchSet(cluster: Cluster, name: string, patch: unknown): Promise<void> {
  const r = await cluster.request('PATCH', `${MCS_PATH}/${name}`, { body: patch, headers: MERGE_PATCH });
  if (r.status !== 200) throw new Error(`PATCH ${name}: ${r.status} ${r.body.slice(0, 400)}`);
}

export interface Mc {
  metadata: { name: string; generation: number; resourceVersion: string; labels: Record<string, string>; annotations?: Record<string, string>; ownerReferences?: { uid: string }[] };
  spec: { component: string; version: string };
  status?: { phase: string; observedGeneration: number; attemptedGeneration?: number };
}

export async function listMcs(cluster: Cluster): Promise<Mc[]> {
  return (await must<{ items: Mc[] }>(cluster, 'GET', MC_PATH)).items;
}

/** A Machine, its Node (Ready) and its agent's Lease (fresh): what the controller reads about a node. */
export async function addMachine(cluster: Cluster, name: string, labels: Record<string, string> = { pool: 'a' }): Promise<void> {
  await must(cluster, 'POST', '/apis/kubenode.io/v1alpha1/machines', { apiVersion: 'kubenode.io/v1alpha1', kind: 'Machine', metadata: { name, labels }, spec: {} });
  await must(cluster, 'POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name } });
  await setNodeReady(cluster, name, 'True');
  const now = new Date().toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
  await must(cluster, 'POST', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases', {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: agentLeaseName(name) },
    spec: { holderIdentity: name, leaseDurationSeconds: 3600, renewTime: now },
  });
}

/** Renews a machine's agent Lease as the agent does (renewTime now), with the given duration. */
export async function renewLease(cluster: Cluster, machine: string, durationSeconds: number, renewMs = Date.now()): Promise<void> {
  const path = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${agentLeaseName(machine)}`;
  const lease = await must<{ spec: Record<string, unknown> }>(cluster, 'GET', path);
  await must(cluster, 'PUT', path, { ...lease, spec: { ...lease.spec, leaseDurationSeconds: durationSeconds, renewTime: new Date(renewMs).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z') } });
}

/** A merge patch of the status alone: the controller may label or taint the Node at the same time. */
export async function setNodeReady(cluster: Cluster, name: string, status: 'True' | 'False'): Promise<void> {
  const now = new Date(Math.ceil(Date.now() / 1000) * 1000).toISOString().replace('.000Z', 'Z');
  const body = { status: { conditions: [{ type: 'Ready', status, reason: status === 'True' ? 'KubeletReady' : 'KubeletNotReady', message: '', lastHeartbeatTime: now, lastTransitionTime: now }] } };
  const r = await cluster.request('PATCH', `/api/v1/nodes/${name}/status`, { body, headers: MERGE_PATCH });
  if (r.status !== 200) throw new Error(`PATCH /api/v1/nodes/${name}/status: ${r.status} ${r.body.slice(0, 600)}`);
}

/**
 * Agents played by the test: each MachineComponent whose generation the status has not observed
 * gets the status the real agent writes — Installed/Ready=True, or for a version `fail` names on
 * a machine, Failed/Ready=False RolledBack with the old observedGeneration kept and
 * attemptedGeneration at the failed one (as the engine does);
 * a deleted one held by the uninstall finalizer is let go.
 */
export class SimulatedAgents {
  writes = 0;
  #stop = false;
  #loop: Promise<void> | undefined;
  readonly #cluster: Cluster;
  fail: (machine: string, version: string) => boolean = () => false;
  /** Machines whose agent is silent. */
  silent = new Set<string>();

  constructor(cluster: Cluster) {
    this.#cluster = cluster;
  }

  start(): void {
    this.#loop = (async () => {
      while (!this.#stop) {
        await this.pass().catch(() => {});
        await new Promise((r) => setTimeout(r, 150));
      }
    })();
  }

  async pass(): Promise<void> {
    for (const mc of await listMcs(this.#cluster)) {
      const machine = mc.metadata.labels['kubenode.io/machine'] as string;
      if (this.silent.has(machine)) continue;
      const meta = mc.metadata as { deletionTimestamp?: string; finalizers?: string[] };
      if (meta.deletionTimestamp !== undefined) {
        // Uninstalled at once; the real agent lifts the finalizer the same way (installers/kube-source.ts).
        if (meta.finalizers?.includes(UNINSTALL_FINALIZER) === true) {
          const r = await this.#cluster.request('PATCH', `${MC_PATH}/${mc.metadata.name}`, { body: { metadata: { finalizers: meta.finalizers.filter((f) => f !== UNINSTALL_FINALIZER) } }, headers: MERGE_PATCH });
          if (r.status === 200) this.writes += 1;
        }
        continue;
      }
      const at = new Date().toISOString();
      const failing = this.fail(machine, mc.spec.version);
      const done = mc.status !== undefined && (failing ? mc.status.phase === 'Failed' && mc.status.attemptedGeneration === mc.metadata.generation : mc.status.observedGeneration === mc.metadata.generation && mc.status.phase === 'Installed');
      if (done) continue;
      const status = failing
        ? { phase: 'Failed', observedGeneration: mc.status?.observedGeneration ?? 0, attemptedGeneration: mc.metadata.generation, lastError: 'health check failed', updatedAt: at, history: [], conditions: [{ type: 'Ready', status: 'False', reason: 'RolledBack', message: 'health check failed', lastTransitionTime: at }] }
        : { phase: 'Installed', installedVersion: mc.spec.version, observedGeneration: mc.metadata.generation, attemptedGeneration: mc.metadata.generation, updatedAt: at, history: [], conditions: [{ type: 'Ready', status: 'True', reason: 'Installed', message: '', lastTransitionTime: at }] };
      const r = await this.#cluster.request('PUT', `${MC_PATH}/${mc.metadata.name}/status`, { body: { ...mc, status } });
      if (r.status === 200) this.writes += 1;
    }
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#loop;
  }
}

export const listen = (server: Server): Promise<number> => new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));

/** A self-signed certificate for 127.0.0.1, made by openssl in a temp dir (the caller removes dir). */
export function selfSigned(): { key: string; cert: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'kubenode-webhook-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  return { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), dir };
}

/** A test cluster ready for the controller: CRDs, its namespace, Machines (with Nodes and Leases) and agents played by the test, started. */
export async function rolloutCluster(machines: readonly string[], namespace = 'kubenode-system', options: { controllerManager?: boolean } = {}): Promise<{ cluster: Cluster; agents: SimulatedAgents }> {
  const cluster = await startCluster({ agents: 1, ...(options.controllerManager === true ? { controllerManager: true } : {}) });
  await installCrds(cluster);
  await ensureNamespace(cluster, namespace);
  for (const m of machines) await addMachine(cluster, m);
  const agents = new SimulatedAgents(cluster);
  agents.start();
  return { cluster, agents };
}
