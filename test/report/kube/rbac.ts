import type { Cluster } from '../../harness/cluster.ts';

/** What the kubelet would have done: register the Node. Returns its uid. */
export async function createNode(cluster: Cluster, name: string): Promise<string> {
  const res = await cluster.request('POST', '/api/v1/nodes', { body: { apiVersion: 'v1', kind: 'Node', metadata: { name } } });
  if (res.status !== 201) throw new Error(`create node ${name}: ${res.status} ${res.body}`);
  return (JSON.parse(res.body) as { metadata: { uid: string } }).metadata.uid;
}
