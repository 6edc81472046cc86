import type { KubeConfig } from '@kubernetes/client-node';

export interface KubeOptions { kubeconfig?: string; inCluster?: boolean; }

/** Loads a kubeconfig file, or the in-cluster service account; lazily imports client-node. */
export async function loadKubeConfig(options: KubeOptions): Promise<KubeConfig> {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  if (options.inCluster === true) {
    kc.loadFromCluster();
  } else if (options.kubeconfig !== undefined) {
    kc.loadFromFile(options.kubeconfig);
  } else {
    throw new Error('loadKubeConfig: give either a kubeconfig file or inCluster');
  }
  return kc;
}
