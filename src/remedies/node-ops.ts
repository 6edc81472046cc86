// Node-object operations shared by cordon, taint, drain, uncordon and reboot.
import type { Clock } from '../host/clock.ts';
import { errorMessage } from '../errors.ts';
import { isConflict, isNotFound, isTooManyRequests, type KubeApi } from './kube-api.ts';

export const CORDONED_BY = 'kubenode.io/cordoned-by';
export const CORDONED_AT = 'kubenode.io/cordoned-at';
export const AGENT_ID = 'kubenode-agent';

export interface NodeObject {
  metadata: { name: string; uid?: string; resourceVersion?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: { unschedulable?: boolean; taints?: Taint[] };
  status?: { conditions?: { type: string; status: string; lastTransitionTime?: string }[] };
}

export interface Taint {
  key: string;
  value?: string;
  effect: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
  timeAdded?: string;
}

const MERGE = 'application/merge-patch+json';

export function getNode(kube: KubeApi, name: string): Promise<NodeObject> {
  return kube.request<NodeObject>('GET', `/api/v1/nodes/${encodeURIComponent(name)}`);
}

export function cordonedByAgent(node: NodeObject): boolean {
  return node.spec?.unschedulable === true && node.metadata.annotations?.[CORDONED_BY] === AGENT_ID;
}

/** Retries read-modify-write on 409: every node write carries the resourceVersion it was computed from. */
async function withNode<T>(kube: KubeApi, name: string, fn: (node: NodeObject) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(await getNode(kube, name));
    } catch (err) {
      if (!isConflict(err) || attempt >= 8) throw err;
    }
  }
}

export type CordonOutcome = 'cordoned' | 'already-ours' | 'already-cordoned-by-other';

/**
 * Marks the node unschedulable and records that the agent did it. A node someone else already
 * cordoned is left unmarked, so that our uncordon never undoes a person's decision.
 */
export function cordon(kube: KubeApi, name: string, clock: Clock): Promise<CordonOutcome> {
  return withNode(kube, name, async (node) => {
    if (node.spec?.unschedulable === true) return cordonedByAgent(node) ? 'already-ours' : 'already-cordoned-by-other';
    await kube.request('PATCH', `/api/v1/nodes/${encodeURIComponent(name)}`, {
      contentType: MERGE,
      body: {
        metadata: { resourceVersion: node.metadata.resourceVersion, annotations: { [CORDONED_BY]: AGENT_ID, [CORDONED_AT]: new Date(clock.now()).toISOString() } },
        spec: { unschedulable: true },
      },
    });
    return 'cordoned';
  });
}

export type UncordonOutcome = 'uncordoned' | 'not-cordoned' | 'cordoned-by-other';

/** Uncordons only a node whose cordon carries the agent's mark; anything else is left as found. */
export function uncordon(kube: KubeApi, name: string): Promise<UncordonOutcome> {
  return withNode(kube, name, async (node) => {
    if (node.spec?.unschedulable !== true) {
      if (node.metadata.annotations?.[CORDONED_BY] !== undefined) await clearMark(kube, node);
      return 'not-cordoned';
    }
    if (!cordonedByAgent(node)) return 'cordoned-by-other';
    await kube.request('PATCH', `/api/v1/nodes/${encodeURIComponent(name)}`, {
      contentType: MERGE,
      body: { metadata: { resourceVersion: node.metadata.resourceVersion, annotations: { [CORDONED_BY]: null, [CORDONED_AT]: null } }, spec: { unschedulable: null } },
    });
    return 'uncordoned';
  });
}

async function clearMark(kube: KubeApi, node: NodeObject): Promise<void> {
  await kube.request('PATCH', `/api/v1/nodes/${encodeURIComponent(node.metadata.name)}`, {
    contentType: MERGE,
    body: { metadata: { resourceVersion: node.metadata.resourceVersion, annotations: { [CORDONED_BY]: null, [CORDONED_AT]: null } } },
  });
}

export function addTaint(kube: KubeApi, name: string, taint: Taint, clock: Clock): Promise<'added' | 'present'> {
  return withNode(kube, name, async (node) => {
    const taints = node.spec?.taints ?? [];
    if (taints.some((t) => t.key === taint.key && t.effect === taint.effect && (t.value ?? '') === (taint.value ?? ''))) return 'present';
    const next = [...taints.filter((t) => !(t.key === taint.key && t.effect === taint.effect)), { ...taint, ...(taint.effect === 'NoExecute' ? { timeAdded: new Date(clock.now()).toISOString() } : {}) }];
    await kube.request('PATCH', `/api/v1/nodes/${encodeURIComponent(name)}`, {
      contentType: MERGE,
      body: { metadata: { resourceVersion: node.metadata.resourceVersion }, spec: { taints: next } },
    });
    return 'added';
  });
}

interface PodObject {
  metadata: { name: string; namespace: string; uid: string; annotations?: Record<string, string>; ownerReferences?: { kind: string; controller?: boolean }[]; deletionTimestamp?: string };
  status?: { phase?: string };
}

export interface DrainOptions {
  timeoutMs: number;
  clock: Clock;
  /** First retry delay after a 429 (a PodDisruptionBudget says not now); doubles up to 5 s. */
  retryMs?: number;
  signal?: AbortSignal;
}

export interface DrainResult {
  ok: boolean;
  evicted: string[];
  skipped: string[];
  /** Pods still there at the deadline, with the last reason. */
  blocked: { pod: string; reason: string }[];
}

/** Pods a drain leaves alone: the kubelet recreates mirror pods, and DaemonSet pods tolerate unschedulable. */
export function skipReason(pod: PodObject): string | undefined {
  if (pod.metadata.annotations?.['kubernetes.io/config.mirror'] !== undefined) return 'mirror pod';
  if (pod.metadata.ownerReferences?.some((o) => o.kind === 'DaemonSet' && o.controller !== false)) return 'DaemonSet pod';
  if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') return 'finished';
  return undefined;
}

export async function listNodePods(kube: KubeApi, name: string): Promise<PodObject[]> {
  const list = await kube.request<{ items: PodObject[] }>('GET', '/api/v1/pods', { query: { fieldSelector: `spec.nodeName=${name}` } });
  return list.items;
}

/**
 * Evicts every pod through the Eviction API, so PodDisruptionBudgets are honoured (429 = not now),
 * and waits for them to be gone, all within timeoutMs.
 */
export async function drain(kube: KubeApi, name: string, options: DrainOptions): Promise<DrainResult> {
  const deadline = options.clock.now() + options.timeoutMs;
  const evicted = new Set<string>();
  const skipped: string[] = [];
  const lastReason = new Map<string, string>();
  let delay = options.retryMs ?? 500;
  const initial = await listNodePods(kube, name);
  for (const pod of initial) {
    const why = skipReason(pod);
    if (why !== undefined) skipped.push(`${pod.metadata.namespace}/${pod.metadata.name} (${why})`);
  }
  const skippedUids = new Set(initial.filter((p) => skipReason(p) !== undefined).map((p) => p.metadata.uid));
  // The first round works on the list just read; later ones read again.
  let listed: PodObject[] | undefined = initial;
  for (;;) {
    const pods = (listed ?? (await listNodePods(kube, name))).filter((p) => !skippedUids.has(p.metadata.uid) && skipReason(p) === undefined);
    listed = undefined;
    if (pods.length === 0) return { ok: true, evicted: [...evicted], skipped, blocked: [] };
    let changed = false;
    for (const pod of pods) {
      const id = `${pod.metadata.namespace}/${pod.metadata.name}`;
      if (pod.metadata.deletionTimestamp !== undefined) {
        lastReason.set(id, 'terminating');
        continue;
      }
      try {
        await kube.request('POST', `/api/v1/namespaces/${encodeURIComponent(pod.metadata.namespace)}/pods/${encodeURIComponent(pod.metadata.name)}/eviction`, {
          body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: pod.metadata.name, namespace: pod.metadata.namespace } },
        });
        evicted.add(id);
        lastReason.set(id, 'evicted; terminating');
        changed = true;
      } catch (err) {
        if (isNotFound(err)) {
          changed = true;
          continue;
        }
        if (isTooManyRequests(err)) lastReason.set(id, `PodDisruptionBudget: ${errorMessage(err)}`);
        else throw err;
      }
    }
    if (options.clock.now() + delay > deadline) {
      // Nothing evicted or gone this round: the list just read is still where the node stands.
      const left = changed ? (await listNodePods(kube, name)).filter((p) => !skippedUids.has(p.metadata.uid) && skipReason(p) === undefined) : pods;
      if (left.length === 0) return { ok: true, evicted: [...evicted], skipped, blocked: [] };
      const blocked = left.map((p) => {
        const id = `${p.metadata.namespace}/${p.metadata.name}`;
        return { pod: id, reason: lastReason.get(id) ?? 'not evicted' };
      });
      return { ok: false, evicted: [...evicted], skipped, blocked };
    }
    await options.clock.sleep(delay, options.signal);
    delay = Math.min(delay * 2, 5000);
  }
}
