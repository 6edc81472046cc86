import { pino, type Logger } from 'pino';
import type { Cluster } from '../../harness/cluster.ts';

export const quietLog: Logger = pino({ level: 'silent' });

/** RBAC bindings reach the authorizer's cache a moment after they are created. */
export async function waitAllowed(cluster: Cluster, agent: number, path: string): Promise<void> {
  for (let i = 0; ; i++) {
    const res = await cluster.request('GET', path, { token: cluster.agentToken(agent) });
    if (res.status !== 403) return;
    if (i > 100) throw new Error(`agent ${agent} still forbidden GET ${path}: ${res.body}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface NodeConditionJson {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastHeartbeatTime?: string;
  lastTransitionTime?: string;
}

export async function nodeConditions(cluster: Cluster, node: string): Promise<Map<string, NodeConditionJson>> {
  const res = await cluster.request('GET', `/api/v1/nodes/${node}`);
  if (res.status !== 200) throw new Error(`GET node ${node}: ${res.status} ${res.body}`);
  const conditions = (JSON.parse(res.body) as { status?: { conditions?: NodeConditionJson[] } }).status?.conditions ?? [];
  return new Map(conditions.map((c) => [c.type, c]));
}
