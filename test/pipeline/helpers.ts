// A member cluster's credentials as an operator sets them up (README, "Release pipelines"): the
// ClusterRole kubenode:pipeline-member from deploy/controller/pipeline-rbac.yaml, bound in the
// member to the ServiceAccount kubenode-system/kubenode-pipeline, whose token goes into the
// kubeconfig that the management cluster's Secret holds. Requests under that identity are the
// pipeline controller's alone, which is how a member's audit log tells them apart.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { Controller } from '../../src/controller/index.ts';
import type { Logger } from '../../src/log.ts';
import type { Cluster } from '../harness/cluster.ts';
import { installCrds } from '../helpers/kube-objects.ts';
import { addMachine, ensureNamespace, must, SimulatedAgents } from '../controller/helpers.ts';

export const PIPELINE_RBAC = new URL('../../deploy/controller/pipeline-rbac.yaml', import.meta.url);
export const MEMBER_ROLE = 'kubenode:pipeline-member';
export const MEMBER_SA = 'kubenode-pipeline';
export const MEMBER_USER = `system:serviceaccount:kubenode-system:${MEMBER_SA}`;

/** The documents of deploy/controller/pipeline-rbac.yaml, by kind/name. */
export function pipelineRbac(): Map<string, Record<string, unknown> & { kind: string; metadata: { name: string; namespace?: string } }> {
  const out = new Map<string, Record<string, unknown> & { kind: string; metadata: { name: string; namespace?: string } }>();
  for (const doc of parseAllDocuments(readFileSync(PIPELINE_RBAC, 'utf8'))) {
    const o = doc.toJS() as Record<string, unknown> & { kind: string; metadata: { name: string } };
    out.set(`${o.kind}/${o.metadata.name}`, o);
  }
  return out;
}

/** Sets the member up and returns the kubeconfig (JSON) for its Secret in the management cluster. */
export async function memberKubeconfig(member: Cluster): Promise<string> {
  await ensureNamespace(member, 'kubenode-system');
  const role = pipelineRbac().get(`ClusterRole/${MEMBER_ROLE}`);
  if (role === undefined) throw new Error(`${PIPELINE_RBAC.pathname} has no ClusterRole ${MEMBER_ROLE}`);
  // A member that had deploy/ applied has the role already.
  await must(member, 'POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', role, [201, 409]);
  await must(member, 'POST', '/api/v1/namespaces/kubenode-system/serviceaccounts', { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: MEMBER_SA } });
  await must(member, 'POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: MEMBER_ROLE },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: MEMBER_ROLE },
    subjects: [{ kind: 'ServiceAccount', name: MEMBER_SA, namespace: 'kubenode-system' }],
  });
  const token = await must<{ status: { token: string } }>(member, 'POST', `/api/v1/namespaces/kubenode-system/serviceaccounts/${MEMBER_SA}/token`, {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: { expirationSeconds: 86_400 },
  });
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'member', cluster: { server: member.server, 'certificate-authority-data': member.ca.toString('base64') } }],
    users: [{ name: MEMBER_SA, user: { token: token.status.token } }],
    contexts: [{ name: 'member', context: { cluster: 'member', user: MEMBER_SA } }],
    'current-context': 'member',
  });
}

export interface AuditEntry {
  stage: string;
  verb: string;
  requestURI: string;
  user: { username: string };
  responseStatus?: { code?: number };
}

/** Requests of the pipeline controller in a member's audit log (written with omitStages [RequestReceived]): a watch counts when it starts. */
export function pipelineRequests(auditLog: string): AuditEntry[] {
  return readFileSync(auditLog, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as AuditEntry)
    .filter((e) => e.user.username === MEMBER_USER && (e.verb === 'watch' ? e.stage === 'ResponseStarted' : e.stage === 'ResponseComplete'));
}

export const AUDIT_POLICY = 'apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n  - level: Metadata\n';

/**
 * Makes the cluster a member `name` of the management cluster: the CRDs, Machines
 * `<name>-node-0..2` labelled pool=<pool>, agents played by the caller's process, its own
 * in-cluster controller, and its kubeconfig Secret (labelled kubenode.io/member-cluster=<name>
 * and `labels`) in the management cluster's namespace `ns`.
 */
export async function addMember(mgmt: Cluster, cluster: Cluster, o: { name: string; ns: string; pool: string; labels?: Record<string, string>; log: Logger }): Promise<{ agents: SimulatedAgents; controller: Controller }> {
  await installCrds(cluster);
  await ensureNamespace(cluster, o.ns);
  for (let m = 0; m < 3; m++) await addMachine(cluster, `${o.name}-node-${m}`, { pool: o.pool });
  const agents = new SimulatedAgents(cluster);
  agents.start();
  const controller = new Controller({ kubeconfig: cluster.adminKubeconfig, leaderElect: false, namespace: o.ns, listen: '127.0.0.1:0' }, o.log);
  await controller.start();
  await must(mgmt, 'POST', `/api/v1/namespaces/${o.ns}/secrets`, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: `cluster-${o.name}`, labels: { 'kubenode.io/member-cluster': o.name, ...o.labels } },
    data: { kubeconfig: Buffer.from(await memberKubeconfig(cluster)).toString('base64') },
  });
  return { agents, controller };
}
