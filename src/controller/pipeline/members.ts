// Member clusters as the pipeline controller sees them: one Secret each in the controller's
// namespace, labelled kubenode.io/member-cluster=<name>, with a kubeconfig under `kubeconfig`.
// One client per cluster, built once per Secret version and reused (keep-alive sockets, parsed
// credentials); its health is what its last request said, and a cluster not heard from for a
// probe interval is asked /readyz before it is trusted again — the ClusterCache pattern of
// Cluster API, without a watch per member (hundreds of clusters, few of them active at once).
import type { KubeConfig } from '@kubernetes/client-node';
import { MEMBER_CLUSTER_LABEL, MEMBER_KUBECONFIG_KEY } from '../../api/release-pipeline.ts';
import { AgentError, errorMessage } from '../../errors.ts';
import type { Clock } from '../../host/clock.ts';
import { classifyKubeError, createKubeClient, KubeApiError, kubeModule, type KubeClient, type RequestObserver } from '../../kube/client.ts';
import type { Informer, KubeObject } from '../../watch/informer.ts';

export interface SecretObject extends KubeObject {
  metadata: KubeObject['metadata'] & { namespace?: string };
  data?: Record<string, string>;
}

export interface MemberHealth {
  reachable: 'True' | 'False' | 'Unknown';
  lastSeen: number | undefined;
  message: string;
}

export interface Member {
  name: string;
  labels: Readonly<Record<string, string>>;
  client: KubeClient;
}

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

export interface MemberClustersOptions {
  secrets: Informer<SecretObject>;
  clock: Clock;
  /** A cluster whose last answer is older than this is probed before use. */
  probeIntervalMs: number;
  /** Deadline of one request to a member (a stopped apiserver must not hold a reconcile long). */
  requestTimeoutMs: number;
  userAgent: string;
  observe?: RequestObserver;
}

export class MemberClusters {
  readonly #o: MemberClustersOptions;
  readonly #entries = new Map<string, Entry>();

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
    const client = createKubeClient(kc, { timeoutMs: this.#o.requestTimeoutMs, userAgent: this.#o.userAgent, ...(this.#o.observe === undefined ? {} : { observe: this.#o.observe }) });
    return { name, labels: secret.metadata.labels ?? {}, client };
  }

  health(name: string): MemberHealth {
    return this.#entries.get(name)?.health ?? { reachable: 'Unknown', lastSeen: undefined, message: 'not contacted yet' };
  }

  /**
   * Runs fn against the cluster and records what the answer says about its health: any HTTP
   * answer means reachable; no answer (refused, reset, timeout) means not. A cluster last heard
   * from more than a probe interval ago answers /readyz first.
   */
  async call<T>(name: string, fn: (client: KubeClient) => Promise<T>): Promise<T> {
    const member = await this.member(name);
    if (member instanceof MemberConfigError) throw member;
    const entry = this.#entries.get(name) as Entry;
    const now = this.#o.clock.now();
    if (entry.health.reachable !== 'True' || entry.health.lastSeen === undefined || now - entry.health.lastSeen > this.#o.probeIntervalMs) {
      await this.#record(entry, () => probe(member.client, this.#o.requestTimeoutMs));
    }
    return this.#record(entry, () => fn(member.client));
  }

  async #record<T>(entry: Entry, fn: () => Promise<T>): Promise<T> {
    try {
      const out = await fn();
      entry.health = { reachable: 'True', lastSeen: this.#o.clock.now(), message: '' };
      return out;
    } catch (err) {
      const kind = classifyKubeError(err);
      if (kind === 'network' || kind === 'server') entry.health = { reachable: 'False', lastSeen: entry.health.lastSeen, message: errorMessage(err) };
      else entry.health = { reachable: 'True', lastSeen: this.#o.clock.now(), message: '' };
      throw err;
    }
  }

  #close(name: string): void {
    const e = this.#entries.get(name);
    if (e !== undefined && !(e.member instanceof MemberConfigError)) e.member.client.close();
    this.#entries.delete(name);
  }

  close(): void {
    for (const name of [...this.#entries.keys()]) this.#close(name);
  }
}

/** /readyz answers 200 with the text "ok", which the JSON client reports as a non-JSON answer: that is the healthy case. */
async function probe(client: KubeClient, timeoutMs: number): Promise<void> {
  try {
    await client.request('GET', '/readyz', { timeoutMs });
  } catch (err) {
    if (!(err instanceof KubeApiError && err.status === 200)) throw err;
  }
}
