// Member clusters as the pipeline controller sees them: one Secret each in the controller's
// namespace, labelled kubenode.io/member-cluster=<name>, with a kubeconfig under `kubeconfig`.
// One client per cluster, built once per Secret version and reused (keep-alive sockets, parsed
// credentials); its health is what its last answer said, and a cluster not heard from for a
// probe interval is asked /readyz before it is trusted again — the ClusterCache pattern of
// Cluster API. A set whose rollout a release is following is watched (one informer per cluster
// and set, field-selected to that set, started when a release starts the cluster and stopped
// when no release needs it), so hundreds of members cost nothing while no release runs there.
// A cluster that stops answering has its watches stopped; the first look after it answers again
// starts each afresh with one list and one watch, instead of reconnect attempts against a dead
// address while it is away and, once it is back, a reconnect racing a restart.
import type { KubeConfig } from '@kubernetes/client-node';
import type { MachineComponentSetStatus } from '../../api/machine-component-set.ts';
import { MEMBER_CLUSTER_LABEL, MEMBER_KUBECONFIG_KEY } from '../../api/release-pipeline.ts';
import { AgentError, errorMessage } from '../../errors.ts';
import type { Clock } from '../../host/clock.ts';
import { classifyKubeError, createKubeClient, kubeModule, type KubeClient, type RequestObserver } from '../../kube/client.ts';
import { judgeRefusal, probeReadyz } from '../../kube/readyz.ts';
import type { Logger } from '../../log.ts';
import { Informer, type KubeObject } from '../../watch/informer.ts';

export interface SecretObject extends KubeObject {
  metadata: KubeObject['metadata'] & { namespace?: string };
  data?: Record<string, string>;
}

export interface MemberHealth {
  reachable: 'True' | 'False' | 'Unknown';
  lastSeen: number | undefined;
  /** When it last failed to answer: the next probe of an unreachable cluster is a probe interval after it. */
  lastFailed?: number;
  message: string;
}

export interface Member {
  name: string;
  labels: Readonly<Record<string, string>>;
  client: KubeClient;
  kubeConfig: KubeConfig;
}

/** A member's MachineComponentSet as the pipeline reads it. */
export interface MemberSet extends KubeObject {
  metadata: KubeObject['metadata'] & { uid?: string; annotations?: Record<string, string> };
  spec: { template: unknown; paused?: boolean };
  status?: Partial<MachineComponentSetStatus>;
}

/** What the watch of a member's set says: nothing until its first list, then the set or its absence. */
export type SetView = { synced: false } | { synced: true; set: MemberSet | undefined };

/** A member Secret that cannot be used: named in status, never thrown past the reconcile. */
export class MemberConfigError extends AgentError {
  constructor(message: string) {
    super('CONFIG', message);
  }
}

interface Entry {
  secretKey: string;
  resourceVersion: string;
  member: Member | MemberConfigError;
  health: MemberHealth;
}

interface Watched {
  cluster: string;
  set: string;
  informer: Informer<MemberSet>;
  client: KubeClient;
  /** The object our last write returned: newer than the cache until the watch catches up. */
  written: MemberSet | undefined;
}

export interface MemberClustersOptions {
  secrets: Informer<SecretObject>;
  clock: Clock;
  /** A cluster whose last answer is older than this is probed before use. */
  probeIntervalMs: number;
  /** Deadline of one request to a member (a stopped apiserver must not hold a reconcile long). */
  requestTimeoutMs: number;
  userAgent: string;
  log: Logger;
  observe?: RequestObserver;
  /** A watched set changed (or its watch listed): the releases following it look again. */
  onSetChange?: (cluster: string, set: string) => void;
}

const MCS = { group: 'kubenode.io', version: 'v1alpha1', plural: 'machinecomponentsets' };
const watchKey = (cluster: string, set: string): string => `${cluster}/${set}`;

/** etcd's revisions order the writes of one cluster; the apiserver hands them out as decimal strings. */
function notOlder(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined || !/^\d+$/.test(a) || !/^\d+$/.test(b)) return false;
  return BigInt(a) >= BigInt(b);
}

export class MemberClusters {
  readonly #o: MemberClustersOptions;
  readonly #entries = new Map<string, Entry>();
  readonly #watched = new Map<string, Watched>();
  /** Which watches each release needs: a watch no release names is stopped. */
  readonly #wanted = new Map<string, Set<string>>();

  constructor(options: MemberClustersOptions) {
    this.#o = options;
  }

  /** Every member cluster by name with its Secret's labels; a name two Secrets claim is refused for both. */
  list(): Map<string, { labels: Readonly<Record<string, string>>; secret: string; duplicate: boolean }> {
    const out = new Map<string, { labels: Readonly<Record<string, string>>; secret: string; duplicate: boolean }>();
    for (const [key, s] of this.#o.secrets.snapshot()) {
      const name = s.metadata.labels?.[MEMBER_CLUSTER_LABEL];
      if (name === undefined || name === '') continue;
      const seen = out.get(name);
      if (seen !== undefined) seen.duplicate = true;
      else out.set(name, { labels: s.metadata.labels ?? {}, secret: key, duplicate: false });
    }
    return out;
  }

  /** The cluster's client, built from its Secret when the Secret is new or changed. */
  async member(name: string): Promise<Member | MemberConfigError> {
    const found = this.list().get(name);
    if (found === undefined) {
      this.#close(name);
      return new MemberConfigError(`no Secret labelled ${MEMBER_CLUSTER_LABEL}=${name} in the controller's namespace`);
    }
    if (found.duplicate) return new MemberConfigError(`more than one Secret is labelled ${MEMBER_CLUSTER_LABEL}=${name}`);
    const secret = this.#o.secrets.get(found.secret) as SecretObject;
    const rv = secret.metadata.resourceVersion ?? '';
    const cached = this.#entries.get(name);
    if (cached !== undefined && cached.secretKey === found.secret && cached.resourceVersion === rv) return cached.member;
    this.#close(name);
    const member = await this.#build(name, found.secret, secret);
    this.#entries.set(name, { secretKey: found.secret, resourceVersion: rv, member, health: cached?.health ?? { reachable: 'Unknown', lastSeen: undefined, message: '' } });
    return member;
  }

  async #build(name: string, key: string, secret: SecretObject): Promise<Member | MemberConfigError> {
    const raw = secret.data?.[MEMBER_KUBECONFIG_KEY];
    if (raw === undefined) return new MemberConfigError(`Secret ${key} has no data.${MEMBER_KUBECONFIG_KEY}`);
    const k8s = await kubeModule();
    const kc: KubeConfig = new k8s.KubeConfig();
    try {
      kc.loadFromString(Buffer.from(raw, 'base64').toString('utf8'));
    } catch (err) {
      return new MemberConfigError(`Secret ${key}: data.${MEMBER_KUBECONFIG_KEY} is not a kubeconfig: ${errorMessage(err)}`);
    }
    if (kc.getCurrentCluster() === null) return new MemberConfigError(`Secret ${key}: data.${MEMBER_KUBECONFIG_KEY}: current-context names no cluster`);
    const client = createKubeClient(kc, this.#clientOptions());
    return { name, labels: secret.metadata.labels ?? {}, client, kubeConfig: kc };
  }

  #clientOptions(): Parameters<typeof createKubeClient>[1] {
    return { timeoutMs: this.#o.requestTimeoutMs, userAgent: this.#o.userAgent, ...(this.#o.observe === undefined ? {} : { observe: this.#o.observe }) };
  }

  /**
   * The member's set as its watch has it, started on first use. A set this controller wrote
   * more recently than the watch has caught up with is answered from the write.
   */
  async watchedSet(cluster: string, set: string): Promise<SetView> {
    const member = await this.member(cluster);
    if (member instanceof MemberConfigError) throw member;
    const key = watchKey(cluster, set);
    let w = this.#watched.get(key);
    if (w === undefined) {
      // A client of its own: after a stall the informer drops its client's sockets.
      const client = createKubeClient(member.kubeConfig, this.#clientOptions());
      const informer = new Informer<MemberSet>({
        client,
        kubeConfig: member.kubeConfig,
        resource: MCS,
        fieldSelector: `metadata.name=${set}`,
        log: this.#o.log.child({ cluster, set }),
        clock: this.#o.clock,
        listTimeoutMs: this.#o.requestTimeoutMs,
      });
      w = { cluster, set, informer, client, written: undefined };
      this.#watched.set(key, w);
      informer.on(() => {
        const entry = this.#entries.get(cluster);
        // An event or a completed list is an answer from the apiserver.
        if (entry !== undefined) entry.health = { reachable: 'True', lastSeen: this.#o.clock.now(), message: '' };
        this.#o.onSetChange?.(cluster, set);
      });
      informer.start();
    }
    if (!w.informer.hasSynced) return { synced: false };
    const cached = w.informer.get(set);
    const written = w.written;
    if (written !== undefined) {
      if (notOlder(w.informer.resourceVersion, written.metadata.resourceVersion)) w.written = undefined;
      else if (cached === undefined || !notOlder(cached.metadata.resourceVersion, written.metadata.resourceVersion)) return { synced: true, set: written };
    }
    return { synced: true, set: cached };
  }

  /** Records what a write into the member returned, for watchedSet until the watch has it. */
  wrote(cluster: string, set: MemberSet): void {
    const w = this.#watched.get(watchKey(cluster, set.metadata.name));
    if (w !== undefined) w.written = set;
  }

  /** The watches this release needs now (cluster, set); the rest that no release needs stop. */
  want(release: string, pairs: readonly (readonly [string, string])[]): void {
    if (pairs.length === 0) this.#wanted.delete(release);
    else this.#wanted.set(release, new Set(pairs.map(([c, s]) => watchKey(c, s))));
    const needed = new Set<string>();
    for (const keys of this.#wanted.values()) for (const k of keys) needed.add(k);
    for (const [key, w] of this.#watched) if (!needed.has(key)) this.#unwatch(key, w);
  }

  #unwatch(key: string, w: Watched): void {
    this.#watched.delete(key);
    void this.#stopWatch(w);
  }

  async #stopWatch(w: Watched): Promise<void> {
    await w.informer.stop().catch(() => {});
    w.client.close();
  }

  health(name: string): MemberHealth {
    return this.#entries.get(name)?.health ?? { reachable: 'Unknown', lastSeen: undefined, message: 'not contacted yet' };
  }

  /**
   * Runs fn against the cluster and records what the answer says about its health: any HTTP
   * answer means reachable; no answer (refused, reset, timeout) means not. A cluster last heard
   * from more than a probe interval ago answers /readyz first, and a refusal (401, 403) is taken
   * as one only when /readyz answers after it; otherwise the cluster is not ready.
   */
  async call<T>(name: string, fn: (client: KubeClient) => Promise<T>): Promise<T> {
    const member = await this.check(name);
    const entry = this.#entries.get(name) as Entry;
    return this.#record(name, entry, async () => {
      try {
        return await fn(member.client);
      } catch (err) {
        // A refusal counts only from a cluster that is ready (src/kube/readyz.ts).
        throw await judgeRefusal(member.client, err, this.#o.requestTimeoutMs);
      }
    });
  }

  /**
   * Throws unless the cluster answers: it did within the probe interval (a request or a watch
   * event), or it answers /readyz now. A watch alone cannot say: a stopped apiserver leaves its
   * connections open and silent.
   */
  async check(name: string): Promise<Member> {
    const member = await this.member(name);
    if (member instanceof MemberConfigError) throw member;
    const entry = this.#entries.get(name) as Entry;
    const now = this.#o.clock.now();
    if (entry.health.reachable !== 'True' || entry.health.lastSeen === undefined || now - entry.health.lastSeen >= this.#o.probeIntervalMs) {
      await this.#record(name, entry, () => probeReadyz(member.client, this.#o.requestTimeoutMs));
    }
    return member;
  }

  /**
   * When the cluster's health is next in question: its last answer plus the probe interval, or,
   * unreachable, its last failure plus the interval (a refused connection fails at once, and
   * the last answer of an unreachable cluster is always past: that asked again at once, without end).
   */
  nextProbe(name: string): number {
    const h = this.#entries.get(name)?.health;
    const at = h?.reachable === 'False' ? h.lastFailed : h?.lastSeen;
    return at === undefined ? Number.NaN : at + this.#o.probeIntervalMs;
  }

  async #record<T>(name: string, entry: Entry, fn: () => Promise<T>): Promise<T> {
    try {
      const out = await fn();
      entry.health = { reachable: 'True', lastSeen: this.#o.clock.now(), message: '' };
      return out;
    } catch (err) {
      const kind = classifyKubeError(err);
      if (kind === 'network' || kind === 'server') {
        entry.health = { reachable: 'False', lastSeen: entry.health.lastSeen, lastFailed: this.#o.clock.now(), message: errorMessage(err) };
        // Its watches would reconnect against a dead address with backoff, and may sit on a dead
        // connection that has not stalled out yet (a hung apiserver), caches as old as the outage.
        for (const [key, w] of this.#watched) if (w.cluster === name) this.#unwatch(key, w);
      } else entry.health = { reachable: 'True', lastSeen: this.#o.clock.now(), message: '' };
      throw err;
    }
  }

  #close(name: string): void {
    const e = this.#entries.get(name);
    if (e !== undefined && !(e.member instanceof MemberConfigError)) e.member.client.close();
    this.#entries.delete(name);
    // Its watches hold the old credentials: the next look starts them on the new ones.
    for (const [key, w] of this.#watched) if (w.cluster === name) this.#unwatch(key, w);
  }

  async close(): Promise<void> {
    const stopping = [...this.#watched.values()].map((w) => this.#stopWatch(w));
    this.#watched.clear();
    for (const name of [...this.#entries.keys()]) this.#close(name);
    await Promise.all(stopping);
  }
}
