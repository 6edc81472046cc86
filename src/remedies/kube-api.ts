// Cluster access for remedies: the shared REST client from src/kube/client.ts. The gate lives on
// status codes (409 conflict, 429 from a PodDisruptionBudget) and resourceVersions, so it talks
// REST rather than client-node's generated models.
import { classifyKubeError, createKubeClient, loadKubeConfig, type KubeClient, type KubeOptions } from '../kube/client.ts';

export type KubeApi = Pick<KubeClient, 'request' | 'close'>;

export async function createKubeApi(options: KubeOptions & { timeoutMs?: number }): Promise<KubeApi> {
  const kc = await loadKubeConfig(options);
  return createKubeClient(kc, { timeoutMs: options.timeoutMs ?? 15_000 });
}

export const isConflict = (err: unknown): boolean => classifyKubeError(err) === 'conflict';
export const isNotFound = (err: unknown): boolean => classifyKubeError(err) === 'not-found';
/** 429: for an eviction, a PodDisruptionBudget saying "not now". */
export const isTooManyRequests = (err: unknown): boolean => classifyKubeError(err) === 'throttled';
