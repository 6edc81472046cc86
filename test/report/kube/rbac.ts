// Grants the agent identities what the cluster reporters need: deploy/rbac/ when
// it exists (so these tests also prove the shipped role is enough), else a
// test-local ClusterRole with the same rules.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { Cluster } from '../../harness/cluster.ts';

const RBAC_DIR = new URL('../../../deploy/rbac/', import.meta.url);

const LOCAL_ROLE = {
  apiVersion: 'rbac.authorization.k8s.io/v1',
  kind: 'ClusterRole',
  metadata: { name: 'kubenode-agent-test-reporting' },
  rules: [
    { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: [''], resources: ['nodes/status'], verbs: ['patch'] },
    { apiGroups: ['', 'events.k8s.io'], resources: ['events'], verbs: ['create', 'patch', 'update'] },
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
    { apiGroups: ['kubenode.io'], resources: ['machines'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: ['kubenode.io'], resources: ['machines/status'], verbs: ['get', 'patch', 'update'] },
  ],
};

const LOCAL_BINDING = {
  apiVersion: 'rbac.authorization.k8s.io/v1',
  kind: 'ClusterRoleBinding',
  metadata: { name: 'kubenode-agent-test-reporting' },
  roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'kubenode-agent-test-reporting' },
  subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'kubenode:agents' }],
};

const PLURAL: Record<string, string> = {
  ClusterRole: 'clusterroles',
  ClusterRoleBinding: 'clusterrolebindings',
  Role: 'roles',
  RoleBinding: 'rolebindings',
  ValidatingAdmissionPolicy: 'validatingadmissionpolicies',
  ValidatingAdmissionPolicyBinding: 'validatingadmissionpolicybindings',
};

export async function createObject(cluster: Cluster, obj: { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } }): Promise<void> {
  const plural = PLURAL[obj.kind];
  if (plural === undefined) throw new Error(`rbac helper: no REST path known for kind ${obj.kind}`);
  const base = obj.apiVersion.includes('/') ? `/apis/${obj.apiVersion}` : `/api/${obj.apiVersion}`;
  const ns = obj.metadata.namespace === undefined ? '' : `/namespaces/${obj.metadata.namespace}`;
  const res = await cluster.request('POST', `${base}${ns}/${plural}`, { body: obj });
  if (res.status !== 201 && res.status !== 409) throw new Error(`create ${obj.kind}/${obj.metadata.name}: ${res.status} ${res.body}`);
}

/** Returns where the rules came from, for test names and failure messages. */
export async function grantAgentRbac(cluster: Cluster): Promise<string> {
  if (existsSync(RBAC_DIR)) {
    const files = readdirSync(RBAC_DIR).filter((f) => /\.ya?ml$/.test(f)).sort();
    if (files.length > 0) {
      for (const file of files) {
        for (const doc of parseAllDocuments(readFileSync(new URL(file, RBAC_DIR), 'utf8'))) {
          const obj = doc.toJSON() as Parameters<typeof createObject>[1] | null;
          if (obj !== null) await createObject(cluster, obj);
        }
      }
      return 'deploy/rbac';
    }
  }
  await createObject(cluster, LOCAL_ROLE);
  await createObject(cluster, LOCAL_BINDING);
  return 'test-local ClusterRole';
}

/** What the kubelet would have done: register the Node. Returns its uid. */
export async function createNode(cluster: Cluster, name: string): Promise<string> {
  const res = await cluster.request('POST', '/api/v1/nodes', { body: { apiVersion: 'v1', kind: 'Node', metadata: { name } } });
  if (res.status !== 201) throw new Error(`create node ${name}: ${res.status} ${res.body}`);
  return (JSON.parse(res.body) as { metadata: { uid: string } }).metadata.uid;
}
