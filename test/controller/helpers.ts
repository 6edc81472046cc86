// Shared by the controller tests: an admin client for the real test apiserver (optionally
// through test/watch's TCP proxy), the controller's namespace, and small request helpers.
import type { KubeConfig } from '@kubernetes/client-node';
import { createKubeClient, loadKubeConfig, type KubeClient } from '../../src/kube/client.ts';
import type { Cluster } from '../harness/cluster.ts';

export { until } from '../watch/helpers.ts';

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
