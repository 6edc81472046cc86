// Good objects of every kubenode.io kind, for tests against the real apiserver, and a way to
// install deploy/crds/ into one. Tests copy and break them.
import { readdirSync, readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { AGENT_GROUP, AGENT_USER_PREFIX } from '../../src/join/csr.ts';
import { createKubeClient, loadKubeConfig, type KubeClient } from '../../src/kube/client.ts';
import type { Cluster } from '../harness/cluster.ts';

const SHA = 'a'.repeat(64);

export function goodObjects(node = 'node-0'): Record<string, Record<string, unknown>> {
  const apiVersion = 'kubenode.io/v1alpha1';
  return {
    machines: {
      apiVersion,
      kind: 'Machine',
      metadata: { name: node },
      spec: { labels: { 'kubenode.io/pool': 'gpu' }, taints: [{ key: 'kubenode.io/new', effect: 'NoSchedule' }], components: ['containerd', 'kubelet'] },
    },
    machinecomponents: {
      apiVersion,
      kind: 'MachineComponent',
      metadata: { name: `${node}-node-exporter`, labels: { 'kubenode.io/machine': node } },
      spec: {
        component: 'node-exporter',
        version: '1.8.2',
        source: { type: 'tarball', url: 'https://example.com/node_exporter-1.8.2.tar.gz', sha256: SHA, stripComponents: 1 },
        unit: { name: 'node-exporter.service' },
      },
    },
    machinecomponentsets: {
      apiVersion,
      kind: 'MachineComponentSet',
      metadata: { name: 'node-exporter' },
      spec: {
        selector: { matchLabels: { 'kubenode.io/pool': 'gpu' } },
        template: { spec: { component: 'node-exporter', version: '1.8.2', source: { type: 'binary', url: 'https://example.com/ne', sha256: SHA } } },
      },
    },
    noderemediers: {
      apiVersion,
      kind: 'NodeRemedier',
      metadata: { name: 'runtime' },
      spec: {
        rules: [
          {
            name: 'runtime-down',
            condition: { type: 'ContainerRuntimeUnhealthy', reasons: ['ContainerdDown'] },
            minDuration: '2m',
            steps: [
              { action: 'restart-unit', params: { unit: 'containerd.service' }, maxAttempts: 2 },
              { action: 'reboot', cooldown: '30m' },
            ],
          },
        ],
      },
    },
    remedyoperations: {
      apiVersion,
      kind: 'RemedyOperation',
      metadata: { name: `${node}-runtime-down-1` },
      spec: { node, problem: { conditionType: 'ContainerRuntimeUnhealthy', reason: 'ContainerdDown' }, action: 'restart-runtime', risk: 'disruptive' },
    },
    riskpolicies: {
      apiVersion,
      kind: 'RiskPolicy',
      metadata: { name: 'fleet' },
      spec: {
        maxInFlight: 2,
        maxPerWindow: { count: 10, window: '1h' },
        minHealthyShare: 0.9,
        circuitBreaker: { cordonedShare: 0.1 },
        blackoutWindows: [{ cron: '0 8 * * 1-5', duration: '10h', timeZone: 'Europe/Berlin' }],
      },
    },
  };
}

export function clone<T>(value: T): T {
  return structuredClone(value);
}

/** Creates every CRD in deploy/crds/ and waits until each is Established and served. */
export async function installCrds(cluster: Cluster): Promise<string[]> {
  const dir = new URL('../../deploy/crds/', import.meta.url);
  const names: string[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()) {
    for (const doc of parseAllDocuments(readFileSync(new URL(file, dir), 'utf8'))) {
      const crd = doc.toJS() as { metadata: { name: string } };
      const res = await cluster.request('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', { body: crd });
      if (res.status !== 201) throw new Error(`creating ${file}: ${res.status} ${res.body}`);
      names.push(crd.metadata.name);
    }
  }
  for (const name of names) await waitEstablished(cluster, name);
  return names;
}

async function waitEstablished(cluster: Cluster, name: string): Promise<void> {
  const plural = name.split('.')[0];
  for (let i = 0; i < 300; i++) {
    const res = await cluster.request('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`);
    const conditions = (JSON.parse(res.body) as { status?: { conditions?: { type: string; status: string }[] } }).status?.conditions ?? [];
    if (conditions.some((c) => c.type === 'Established' && c.status === 'True')) {
      // Established can precede the REST handler by a moment.
      const list = await cluster.request('GET', `/apis/kubenode.io/v1alpha1/${plural}`);
      if (list.status === 200) return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`CRD ${name} not Established and served within 30 s`);
}

/** Gives the agent identities what ships: deploy/rbac's role and admission policy, so tests prove it is enough. */
export async function grantAgentRbac(cluster: Cluster): Promise<void> {
  await applyDir(cluster, new URL('../../deploy/rbac/', import.meta.url));
}

/** Applies every document of every YAML file in a directory as the admin (create, or replace if it exists). */
export async function applyDir(cluster: Cluster, dirUrl: URL): Promise<void> {
  for (const file of readdirSync(dirUrl).filter((f) => f.endsWith('.yaml')).sort()) {
    for (const doc of parseAllDocuments(readFileSync(new URL(file, dirUrl), 'utf8'))) {
      const obj = doc.toJS() as { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } } | null;
      if (obj === null) continue;
      const path = collectionPath(obj);
      const res = await cluster.request('POST', path, { body: obj });
      if (res.status !== 201) throw new Error(`applying ${file} ${obj.kind}/${obj.metadata.name}: ${res.status} ${res.body}`);
    }
  }
}

const RESOURCES: Record<string, string> = {
  ClusterRole: 'clusterroles',
  ClusterRoleBinding: 'clusterrolebindings',
  Role: 'roles',
  RoleBinding: 'rolebindings',
  ValidatingAdmissionPolicy: 'validatingadmissionpolicies',
  ValidatingAdmissionPolicyBinding: 'validatingadmissionpolicybindings',
};

function collectionPath(obj: { apiVersion: string; kind: string; metadata: { namespace?: string } }): string {
  const resource = RESOURCES[obj.kind];
  if (resource === undefined) throw new Error(`applyDir: no resource known for kind ${obj.kind}`);
  const base = obj.apiVersion.includes('/') ? `/apis/${obj.apiVersion}` : `/api/${obj.apiVersion}`;
  return obj.metadata.namespace ? `${base}/namespaces/${obj.metadata.namespace}/${resource}` : `${base}/${resource}`;
}

/** The two bindings that let every authenticated user read /readyz: without them it answers 403, as an apiserver just started does until its RBAC caches fill. */
export const READYZ_BINDINGS = ['system:public-info-viewer', 'system:discovery'] as const;

/** Deletes ClusterRoleBindings (as the admin); the function returned puts them back as they were. */
export async function takeClusterRoleBindings(cluster: Cluster, names: readonly string[]): Promise<() => Promise<void>> {
  const CRB = '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings';
  type Binding = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> }; roleRef: unknown; subjects?: unknown };
  const kept: Binding[] = [];
  for (const name of names) {
    const res = await cluster.request('GET', `${CRB}/${name}`);
    if (res.status !== 200) throw new Error(`GET clusterrolebinding ${name}: ${res.status} ${res.body}`);
    kept.push(JSON.parse(res.body) as Binding);
  }
  for (const b of kept) {
    const res = await cluster.request('DELETE', `${CRB}/${b.metadata.name}`);
    if (res.status !== 200) throw new Error(`DELETE clusterrolebinding ${b.metadata.name}: ${res.status} ${res.body}`);
  }
  return async () => {
    for (const b of kept) {
      const res = await cluster.request('POST', CRB, { body: { apiVersion: b.apiVersion, kind: b.kind, metadata: { name: b.metadata.name, labels: b.metadata.labels, annotations: b.metadata.annotations }, roleRef: b.roleRef, subjects: b.subjects } });
      if (res.status !== 201) throw new Error(`POST clusterrolebinding ${b.metadata.name}: ${res.status} ${res.body}`);
    }
  };
}

/**
 * A client that is the agent of any node, whatever its name: the admin impersonating user
 * kubenode:agent:<node> in group kubenode:agents, which is what RBAC and the admission policy see
 * of an agent's certificate (CN and O). The token file names only node-<i>; a certificate needs
 * kube-controller-manager's signer (test/controller/long-names.test.ts goes that way).
 */
export async function impersonatedAgentClient(cluster: Cluster, node: string): Promise<KubeClient> {
  const kc = await loadKubeConfig({ kubeconfig: cluster.adminKubeconfig });
  const apply = kc.applyToHTTPSOptions.bind(kc);
  kc.applyToHTTPSOptions = async (opts) => {
    await apply(opts);
    opts.headers = { ...opts.headers, 'Impersonate-User': `${AGENT_USER_PREFIX}${node}`, 'Impersonate-Group': AGENT_GROUP };
  };
  return createKubeClient(kc, { timeoutMs: 5000 });
}
