// Shared set-up for the remedy tests against the real apiserver: Node objects with Ready conditions
// (written as admin, as no kubelet runs). The CRDs and the agents' RBAC come from test/helpers/kube-objects.ts.
import type { Cluster } from '../harness/cluster.ts';

export async function must(cluster: Cluster, method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<any> {
  const r = await cluster.request(method, path, { ...(body === undefined ? {} : { body }), ...(headers === undefined ? {} : { headers }) });
  if (r.status < 200 || r.status > 299) throw new Error(`${method} ${path}: ${r.status} ${r.body}`);
  return r.body === '' ? undefined : JSON.parse(r.body);
}

export async function createNode(cluster: Cluster, name: string, labels: Record<string, string>): Promise<void> {
  await must(cluster, 'POST', '/api/v1/nodes', { metadata: { name, labels } });
  await setReady(cluster, name, true);
}

export async function setReady(cluster: Cluster, name: string, ready: boolean): Promise<void> {
  const now = new Date().toISOString();
  await must(
    cluster,
    'PATCH',
    `/api/v1/nodes/${name}/status`,
    { status: { conditions: [{ type: 'Ready', status: ready ? 'True' : 'False', reason: ready ? 'KubeletReady' : 'KubeletNotReady', message: 'set by test', lastHeartbeatTime: now, lastTransitionTime: now }] } },
    { 'content-type': 'application/strategic-merge-patch+json' },
  );
}
