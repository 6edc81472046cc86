// The agent's liveness, as the kubelet's node lease: a coordination.k8s.io/v1
// Lease kubenode-agent-<node> in kube-node-lease (agentLeaseName: shortened for a node name
// over 238 characters), renewed every 10 s with a 40 s duration. Like the kubelet's lease controller it keeps the last Lease it saw
// and PUTs that (optimistic concurrency on resourceVersion): a 409 means someone
// else wrote it, so it re-reads and tries again on top of their change.
import type { Logger } from 'pino';
import { fitName } from '../../api/common.ts';
import type { Clock } from '../../host/clock.ts';
import { errorMessage } from '../../errors.ts';
import { classifyKubeError, type KubeClient } from '../../kube/client.ts';
import { judgeRefusal } from '../../kube/readyz.ts';
import type { WriteObserver } from './latest-writer.ts';
import { backoffDelay } from '../../util/backoff.ts';

export const LEASE_NAMESPACE = 'kube-node-lease';
/** What every agent Lease's name starts with. */
export const AGENT_LEASE_PREFIX = 'kubenode-agent-';

/**
 * The name of a node's agent Lease: the prefix and the node name, or, for a node name over 238
 * characters (the name would pass the 253 an object name may have), fitName's shortened form:
 * the prefix, the node name's first characters and a hash of the whole. Only holderIdentity says
 * which node a shortened name is for (agentLeaseNode); the admission policy lets an agent write
 * one only with its own node there.
 */
export function agentLeaseName(node: string): string {
  return fitName(`${AGENT_LEASE_PREFIX}${node}`, 253);
}

/** The informer's key (namespace/name) of a node's agent Lease. */
export function agentLeaseKey(node: string): string {
  return `${LEASE_NAMESPACE}/${agentLeaseName(node)}`;
}

/**
 * The node an agent Lease is for: its holderIdentity where that node's Lease has this name (the
 * only way back from a shortened name; the agent always writes it), else the name less the
 * prefix. Undefined for a Lease that is no agent's.
 */
export function agentLeaseNode(lease: { metadata: { name: string }; spec?: { holderIdentity?: string } }): string | undefined {
  const name = lease.metadata.name;
  if (!name.startsWith(AGENT_LEASE_PREFIX)) return undefined;
  const holder = lease.spec?.holderIdentity;
  if (holder !== undefined && holder !== '' && agentLeaseName(holder) === name) return holder;
  return name.slice(AGENT_LEASE_PREFIX.length);
}

/**
 * A node's agent Lease from a cache of kube-node-lease, or undefined where there is none or the
 * Lease of that name is another node's (a node whose name is another one's shortened form).
 */
export function agentLeaseOf<L extends { metadata: { name: string }; spec?: { holderIdentity?: string } }>(cache: { get(key: string): L | undefined }, node: string): L | undefined {
  const lease = cache.get(agentLeaseKey(node));
  return lease === undefined || agentLeaseNode(lease) !== node ? undefined : lease;
}

export interface LeaseObject {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: {
    name: string;
    namespace: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string }[];
    [k: string]: unknown;
  };
  spec: { holderIdentity?: string; leaseDurationSeconds?: number; renewTime?: string; [k: string]: unknown };
}

export interface LeaseStats {
  creates: number;
  renewals: number;
  conflicts: number;
  failures: number;
}

export interface LeaseOptions {
  client: KubeClient;
  nodeName: string;
  clock: Clock;
  log: Logger;
  renewMs?: number;
  durationSeconds?: number;
  /** Tries of one renewal (a 409 re-read counts as one) before waiting for the next. */
  maxTries?: number;
  random?: () => number;
  observe?: WriteObserver;
}

/** metav1.MicroTime. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class LeaseHeartbeat {
  readonly stats: LeaseStats = { creates: 0, renewals: 0, conflicts: 0, failures: 0 };
  readonly name: string;
  readonly #o: LeaseOptions;
  readonly #path: string;
  readonly #abort = new AbortController();
  #latest: LeaseObject | undefined;
  #loop: Promise<void> | undefined;

  constructor(options: LeaseOptions) {
    this.#o = options;
    this.name = agentLeaseName(options.nodeName);
    this.#path = `/apis/coordination.k8s.io/v1/namespaces/${LEASE_NAMESPACE}/leases`;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#abort.abort(new Error('stopped'));
    await this.#loop;
  }

  /** One renewal (create when missing). Throws when it could not renew. */
  async renew(): Promise<LeaseObject> {
    const maxTries = this.#o.maxTries ?? 5;
    for (let attempt = 1; ; attempt++) {
      try {
        const lease = await this.#renewOnce();
        this.#o.observe?.('lease', true);
        return lease;
      } catch (err) {
        this.#o.observe?.('lease', false);
        const kind = classifyKubeError(err);
        // The cached copy is stale or gone: read again before the next try.
        this.#latest = undefined;
        if (kind === 'conflict') this.stats.conflicts++;
        if ((kind !== 'conflict' && kind !== 'not-found') || attempt >= maxTries) throw err;
      }
    }
  }

  async #renewOnce(): Promise<LeaseObject> {
    const now = this.#o.clock.now();
    let current = this.#latest;
    if (current === undefined) {
      try {
        current = await this.#o.client.get<LeaseObject>(`${this.#path}/${this.name}`);
      } catch (err) {
        if (classifyKubeError(err) !== 'not-found') throw err;
        const created = await this.#o.client.request<LeaseObject>('POST', this.#path, { body: await this.#fresh(now) });
        this.stats.creates++;
        this.#latest = created;
        return created;
      }
    }
    const next: LeaseObject = {
      ...current,
      spec: { ...current.spec, holderIdentity: this.#o.nodeName, leaseDurationSeconds: this.#o.durationSeconds ?? 40, renewTime: microTime(now) },
    };
    // PUT carries metadata.resourceVersion: a write by anyone since our read is a 409.
    const updated = await this.#o.client.request<LeaseObject>('PUT', `${this.#path}/${this.name}`, { body: next });
    this.stats.renewals++;
    this.#latest = updated;
    return updated;
  }

  async #fresh(now: number): Promise<LeaseObject> {
    const lease: LeaseObject = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: this.name, namespace: LEASE_NAMESPACE, labels: { 'app.kubernetes.io/name': 'kubenode-agent' } },
      spec: { holderIdentity: this.#o.nodeName, leaseDurationSeconds: this.#o.durationSeconds ?? 40, renewTime: microTime(now) },
    };
    // Owned by the Node, as the kubelet's lease is: deleting the Node deletes it.
    try {
      const node = await this.#o.client.get<{ metadata: { uid: string } }>(`/api/v1/nodes/${encodeURIComponent(this.#o.nodeName)}`);
      lease.metadata.ownerReferences = [{ apiVersion: 'v1', kind: 'Node', name: this.#o.nodeName, uid: node.metadata.uid }];
    } catch (err) {
      // No Node yet (or no right to read it): an unowned lease still tells liveness. A refusal from
      // an apiserver that is not ready yet says neither, and the Lease would stay unowned for good:
      // this renewal fails and the next one asks again.
      const judged = await judgeRefusal(this.#o.client, err);
      if (judged !== err) throw judged;
    }
    return lease;
  }

  async #run(): Promise<void> {
    const every = this.#o.renewMs ?? 10_000;
    let failures = 0;
    while (!this.#abort.signal.aborted) {
      let wait = every;
      try {
        await this.renew();
        if (failures > 0) this.#o.log.info({ lease: this.name, failures }, 'Lease renewed again');
        failures = 0;
      } catch (err) {
        this.stats.failures++;
        // The kubelet's lease controller backs off 200 ms → 7 s; never past the renew interval.
        wait = Math.min(every, backoffDelay(failures, 200, 7000, this.#o.random));
        failures++;
        const level = failures === 1 || failures % 30 === 0 ? 'warn' : 'debug';
        this.#o.log[level]({ lease: this.name, err: errorMessage(err), kind: classifyKubeError(err), failures }, 'Cannot renew lease');
      }
      try {
        await this.#o.clock.sleep(wait, this.#abort.signal);
      } catch {
        return;
      }
    }
  }
}
