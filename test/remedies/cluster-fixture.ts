// Shared set-up for the remedy tests against the real apiserver: our CRDs, the RBAC the agent
// identities need for remedies, and Node objects with Ready conditions (written as admin).
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import type { Cluster } from '../harness/cluster.ts';
import { applyDir } from '../helpers/kube-objects.ts';

export async function must(cluster: Cluster, method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<any> {
  const r = await cluster.request(method, path, { ...(body === undefined ? {} : { body }), ...(headers === undefined ? {} : { headers }) });
  if (r.status < 200 || r.status > 299) throw new Error(`${method} ${path}: ${r.status} ${r.body}`);
  return r.body === '' ? undefined : JSON.parse(r.body);
}

export async function installCrds(cluster: Cluster): Promise<void> {
  for (const name of ['riskpolicies', 'remedyoperations', 'noderemediers']) {
    const crd = parse(readFileSync(new URL(`../../deploy/crds/${name}.kubenode.io.yaml`, import.meta.url), 'utf8'));
    await must(cluster, 'POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd);
  }
  for (const name of ['riskpolicies', 'remedyoperations', 'noderemediers']) {
    for (let i = 0; ; i++) {
      const crd = await must(cluster, 'GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}.kubenode.io`);
      if (crd.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Established' && c.status === 'True')) break;
      if (i > 100) throw new Error(`${name} not Established`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  // Serving lags Established by a moment (429 "storage is (re)initializing").
  for (const name of ['riskpolicies', 'remedyoperations', 'noderemediers']) {
    for (let i = 0; ; i++) {
      const r = await cluster.request('GET', `/apis/kubenode.io/v1alpha1/${name}`);
      if (r.status === 200) break;
      if (i > 200) throw new Error(`${name} not served: ${r.status}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  }
}

/** The agent identities get exactly what ships: deploy/rbac's role and its admission policy. */
export async function grantRemedyRbac(cluster: Cluster): Promise<void> {
  await applyDir(cluster, new URL('../../deploy/rbac/', import.meta.url));
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
