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

/** The other way round: a binding taken away stops applying a moment later. */
export async function waitForbidden(cluster: Cluster, agent: number, path: string): Promise<void> {
  for (let i = 0; ; i++) {
    const res = await cluster.request('GET', path, { token: cluster.agentToken(agent) });
    if (res.status === 403) return;
    if (i > 100) throw new Error(`agent ${agent} still allowed GET ${path}: ${res.status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Log lines as JSON objects, for a test to read what a component said. */
export function captureLog(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { lines, log: pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) }) };
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
