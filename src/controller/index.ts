// `kubenode-agent controller`: the central side. One leader at a time (a Lease in the
// leader-election namespace); the leader lists and watches what the rollouts need and runs a
// bounded pool of workers over the MachineComponentSets; any object change queues the sets it
// concerns. A replica that loses its lease stops writing at once and ends (its supervisor starts
// it again as a candidate), as client-go's controllers do.
//
// The API access this needs (deploy/controller/rbac.yaml grants exactly this):
//   kubenode.io            machinecomponentsets          get list watch
//   kubenode.io            machinecomponentsets/status   get update patch
//   kubenode.io            machinecomponentsets/finalizers update   (blockOwnerDeletion on what it owns)
//   kubenode.io            machinecomponents             get list watch create update patch delete
//   kubenode.io            machines                      get list watch create patch  (deletion finalizer; auto-import)
//   kubenode.io            machines/status               get patch                 (lifecycle conditions)
//   ""                     nodes                         get list watch patch delete  (Machine labels and taints; spec.deleteNode)
//   ""                     pods; pods/eviction           list; create              (draining a retired Machine's Node)
//   coordination.k8s.io    leases (kube-node-lease)      get list watch            (agent liveness)
//   coordination.k8s.io    leases (leader namespace)     get list watch create update  (leader election; per-node coordination Leases)
//   kubenode.io            noderemediers                 get list watch            (central remedies)
//   kubenode.io            noderemediers/status          get update                (counts, storm breaker)
//   kubenode.io            remedyoperations              get list watch create patch
//   kubenode.io            remedyoperations/status       patch
//   kubenode.io            riskpolicies                  get list; /status update  (permits for central steps)
//   kubenode.io            machines                      patch                     (replacement annotation)
//   ""                     secrets (leader namespace)    get                       (BMC credentials)
//   apps                   controllerrevisions (leader namespace)  get list watch create update patch delete
//   ""                     events (default)              create patch
//   certificates.k8s.io    certificatesigningrequests    get list watch; /approval update;
//                          signers kubernetes.io/kube-apiserver-client approve   (machines/csr.ts)
import type { Re2Regex } from '../util/re2.ts';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Server } from 'node:http';
import type { KubeConfig } from '@kubernetes/client-node';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { errorMessage } from '../errors.ts';
import { systemClock, type Clock } from '../host/clock.ts';
import { createKubeClient, loadKubeConfig, type KubeClient, type KubeOptions } from '../kube/client.ts';
import type { Logger } from '../log.ts';
import { startServer } from '../report/server.ts';
import { commit, version } from '../version.ts';
import { Informer, type KubeObject, type ResourceRef } from '../watch/informer.ts';
import { EventRecorder } from './events.ts';
import { LeaderElector, LEADER_DEFAULTS } from './leader.ts';
import { CSR_FIELD_SELECTOR, CSR_RESOURCE, CsrApprover, type Csr } from './machines/csr.ts';
import { MachineLifecycle, nodeFingerprint, type LifecycleCaches, type NodeObject } from './machines/lifecycle.ts';
import { NodeImporter, type NodeSelector } from './machines/import.ts';
import { WorkQueue } from './queue.ts';
import { machineOf, MACHINE_LABEL } from '../api/common.ts';
import { agentLeaseNode, LEASE_NAMESPACE } from '../report/kube/lease.ts';
import { LeaseClock } from './rollout/lease-clock.ts';
import { LABEL_SET, RolloutReconciler, setOf, type RolloutCaches } from './rollout/reconciler.ts';
import { createPipelineController, type PipelineController, type PipelineSettings } from './pipeline/index.ts';
import { CentralRemedies, type RemedyCaches } from './remedy/central.ts';
import { COORDINATION_SELECTOR, isRolloutHolder, NodeCoordinator, type CoordinationLease } from './remedy/coordination.ts';
import { createHost, type Host } from '../host/host.ts';
import { policyStage, RiskGate, stormStage } from '../risk/gate.ts';
import { remedierStorm } from '../risk/index.ts';
import { RiskPolicyClient } from '../risk/policy.ts';
import { labelValue } from '../report/label-value.ts';

export const LEADER_LEASE_NAME = 'kubenode-controller';

export interface ControllerOptions extends KubeOptions {
  leaderElect: boolean;
  namespace: string;
  listen: string;
  workers?: number;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  identity?: string;
  clock?: Clock;
  /** Node names (anchored) whose agents' first certificates are approved without an importing Machine. */
  csrImportNodes?: Pick<Re2Regex, 'test'>;
  /** Run the release pipeline controller (management clusters only; src/controller/pipeline/). */
  pipelines?: PipelineSettings;
  /** The import policy: Nodes matching it get a Machine (machines/import.ts). */
  importNodeSelector?: NodeSelector;
  /** The command runner of central remedies (ipmitool); default: this machine. */
  host?: Host;
  /** How often the nodes are looked over for unreachable ones (in memory, from the caches). */
  remedySweepMs?: number;
  /** How soon a central step refused by the risk gate, or deferred by a rollout, is asked again. */
  remedyRetryMs?: number;
  /** The least time between two writes of one NodeRemedier's counts (default 2 s). */
  remedyStatusEveryMs?: number;
  /** How long after it ended a finished RemedyOperation is deleted (default 14 days, at least 168h). */
  remedyOperationRetentionMs?: number;
}

type Ended = 'lost' | 'stopped';

export class Controller {
  readonly registry = new Registry();
  readonly #o: ControllerOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #identity: string;
  #kc: KubeConfig | undefined;
  #client: KubeClient | undefined;
  #elector: LeaderElector | undefined;
  #informers: Informer<KubeObject>[] = [];
  #queue: WorkQueue | undefined;
  #csrApprover: CsrApprover | undefined;
  #machineQueue: WorkQueue | undefined;
  #leaseClock: LeaseClock | undefined;
  #pipeline: PipelineController | undefined;
  #importQueue: WorkQueue | undefined;
  #machinesCache: Informer<KubeObject> | undefined;
  #importAll: (() => void) | undefined;
  #remedyQueue: WorkQueue | undefined;
  /** The central remedies, once leading (tests and the bench read their counters). */
  remedies: CentralRemedies | undefined;
  #server: Server | undefined;
  #address = '';
  #leading = false;
  #synced = false;
  #ended: Promise<Ended> | undefined;
  #stopLeading: (() => void) | undefined;
  readonly #leaderGauge: Gauge;
  readonly #reconciles: Histogram;
  readonly #requests: Counter;
  readonly #depth: Gauge;
  readonly #memberRequests: Counter;

  constructor(options: ControllerOptions, log: Logger) {
    this.#o = options;
    this.#log = log;
    this.#clock = options.clock ?? systemClock;
    this.#identity = options.identity ?? `${hostname()}_${randomBytes(4).toString('hex')}`;
    const r = this.registry;
    new Gauge({ name: 'kubenode_controller_build_info', help: 'Controller build; always 1.', labelNames: ['version', 'commit'], registers: [r] }).set({ version, commit }, 1);
    this.#leaderGauge = new Gauge({ name: 'kubenode_controller_leader', help: '1 while this replica leads.', registers: [r] });
    this.#reconciles = new Histogram({
      name: 'kubenode_controller_reconcile_duration_seconds',
      help: 'Time one MachineComponentSet reconcile took.',
      labelNames: ['result'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10],
      registers: [r],
    });
    this.#requests = new Counter({ name: 'kubenode_controller_api_requests_total', help: 'Apiserver requests by verb and outcome.', labelNames: ['verb', 'result'], registers: [r] });
    this.#memberRequests = new Counter({ name: 'kubenode_controller_member_requests_total', help: 'HTTP requests of the pipeline controller to member clusters by verb and outcome: reads, applies, /readyz probes and the list pages of set watches. Watch connections are not counted.', labelNames: ['verb', 'result'], registers: [r] });
    this.#depth = new Gauge({ name: 'kubenode_controller_queue_depth', help: 'Sets waiting for a worker.', registers: [r], collect: () => this.#depth.set(this.#queue?.depth ?? 0) });
    const expired = new Gauge({
      name: 'kubenode_controller_machines_agent_certificate_expired',
      help: "Machines whose agent's newest client certificate has expired unrenewed (condition AgentCertificateValid=False).",
      registers: [r],
      collect: () => {
        const now = this.#clock.now();
        let n = 0;
        for (const m of this.#machinesCache?.snapshot().values() ?? []) if (Date.parse((m as { status?: { agentCertificateExpiry?: string } }).status?.agentCertificateExpiry ?? '') <= now) n += 1;
        expired.set(n);
      },
    });
  }

  get address(): string {
    return this.#address;
  }

  get identity(): string {
    return this.#identity;
  }

  isLeader(): boolean {
    return this.#leading && (this.#elector === undefined || this.#elector.isLeader());
  }

  /** Starts the health server and the election; resolves at once. `ended` says how it ends. */
  async start(): Promise<void> {
    this.#kc = await loadKubeConfig(this.#o);
    this.#client = createKubeClient(this.#kc, { observe: (verb, _path, kind) => this.#requests.inc({ verb, result: labelValue(kind ?? 'ok') }) });
    const { server, address } = await startServer(
      this.#o.listen,
      this.registry,
      { healthy: () => ({ ok: true, detail: { leader: this.isLeader() } }) },
      // Ready: leading with synced caches, or a healthy candidate standing by.
      { readiness: { healthy: () => ({ ok: !this.#leading || this.#synced, detail: { leader: this.isLeader(), synced: this.#synced } }) } },
    );
    this.#server = server;
    this.#address = address;
    this.#log.info({ listen: address, identity: this.#identity, leaderElect: this.#o.leaderElect }, 'Controller started');
    if (!this.#o.leaderElect) {
      let stop!: () => void;
      this.#ended = new Promise<Ended>((resolve) => (stop = () => resolve('stopped')));
      this.#stopLeading = stop;
      this.#lead(new AbortController().signal);
      return;
    }
    this.#elector = new LeaderElector({
      client: this.#client,
      namespace: this.#o.namespace,
      name: LEADER_LEASE_NAME,
      identity: this.#identity,
      log: this.#log.child({ component: 'leader-election' }),
      leaseDurationMs: this.#o.leaseDurationMs ?? LEADER_DEFAULTS.leaseDurationMs,
      renewDeadlineMs: this.#o.renewDeadlineMs ?? LEADER_DEFAULTS.renewDeadlineMs,
      retryPeriodMs: this.#o.retryPeriodMs ?? LEADER_DEFAULTS.retryPeriodMs,
      clock: this.#clock,
    });
    this.#ended = this.#elector.run((signal) => this.#lead(signal));
  }

  /** Resolves `lost` when leadership was lost (the process should end non-zero), `stopped` after stop(). */
  ended(): Promise<Ended> {
    return this.#ended ?? Promise.resolve('stopped');
  }

  #lead(signal: AbortSignal): void {
    this.#leading = true;
    this.#leaderGauge.set(1);
    signal.addEventListener('abort', () => void this.#standDown(), { once: true });
    void this.#startWork(signal).catch((err: unknown) => this.#log.error({ err: errorMessage(err) }, 'Controller could not start its watches'));
  }

  async #standDown(): Promise<void> {
    this.#leading = false;
    this.#leaderGauge.set(0);
    this.#leaseClock?.stop();
    await Promise.all([this.#queue?.stop(), this.#csrApprover?.queue.stop(), this.#machineQueue?.stop(), this.#importQueue?.stop(), this.#pipeline?.queue.stop(), this.#remedyQueue?.stop()]);
    await this.#pipeline?.members.close();
    await Promise.all(this.#informers.map((i) => i.stop()));
  }

  async #startWork(signal: AbortSignal): Promise<void> {
    const kc = this.#kc as KubeConfig;
    const log = this.#log;
    const inf = <T extends KubeObject>(resource: ResourceRef, extra: { labelSelector?: string; fieldSelector?: string } = {}): Informer<T> => {
      const i = new Informer<T>({ client: createKubeClient(kc), kubeConfig: kc, resource, log: log.child({ component: 'watch', resource: resource.plural }), ...extra });
      this.#informers.push(i as unknown as Informer<KubeObject>);
      return i;
    };
    const caches: RolloutCaches = {
      sets: inf({ group: 'kubenode.io', version: 'v1alpha1', plural: 'machinecomponentsets' }),
      components: inf({ group: 'kubenode.io', version: 'v1alpha1', plural: 'machinecomponents' }, { labelSelector: MACHINE_LABEL }),
      revisions: inf({ group: 'apps', version: 'v1', plural: 'controllerrevisions', namespace: this.#o.namespace }, { labelSelector: LABEL_SET }),
      machines: inf({ group: 'kubenode.io', version: 'v1alpha1', plural: 'machines' }),
      nodes: inf({ group: '', version: 'v1', plural: 'nodes' }),
      leases: inf({ group: 'coordination.k8s.io', version: 'v1', plural: 'leases', namespace: LEASE_NAMESPACE }),
    };
    const mayWrite = (): boolean => !signal.aborted && this.isLeader();
    const events = new EventRecorder(this.#client as KubeClient, this.#clock, log.child({ component: 'events' }), this.#identity, mayWrite);
    const nodeLeases = inf<CoordinationLease>({ group: 'coordination.k8s.io', version: 'v1', plural: 'leases', namespace: this.#o.namespace }, { labelSelector: COORDINATION_SELECTOR });
    const coordinator = new NodeCoordinator(this.#client as KubeClient, this.#o.namespace, this.#clock, log.child({ component: 'node-lease' }), nodeLeases);
    const reconciler = new RolloutReconciler({ client: this.#client as KubeClient, caches, namespace: this.#o.namespace, events, clock: this.#clock, log: log.child({ component: 'rollout' }), mayWrite, coordinator });
    this.#startRemedies(caches, inf, events, coordinator, mayWrite, signal);
    const queue = new WorkQueue({
      workers: this.#o.workers ?? 4,
      log: log.child({ component: 'queue' }),
      handle: (key, s) => reconciler.reconcile(key, s),
      observe: (_key, ms, failed) => this.#reconciles.observe({ result: failed ? 'error' : 'ok' }, ms / 1000),
    });
    this.#queue = queue;
    this.#csrApprover = new CsrApprover({
      client: this.#client as KubeClient,
      csrs: inf<Csr>(CSR_RESOURCE, { fieldSelector: CSR_FIELD_SELECTOR }),
      machines: caches.machines,
      events,
      log: log.child({ component: 'csr' }),
      mayWrite,
      synced: () => this.#synced,
      policy: this.#o.csrImportNodes === undefined ? {} : { importNodeNames: this.#o.csrImportNodes },
    });
    const lifecycle = new MachineLifecycle({ client: this.#client as KubeClient, caches: caches as unknown as LifecycleCaches, clock: this.#clock, log: log.child({ component: 'machines' }), mayWrite, events });
    const machineQueue = new WorkQueue({ workers: this.#o.workers ?? 4, log: log.child({ component: 'machine-queue' }), handle: (key) => lifecycle.reconcile(key) });
    this.#machineQueue = machineQueue;
    const touch = (name: string | undefined): void => {
      if (this.#synced && name !== undefined) machineQueue.add(name);
    };
    const allMachines = (): void => {
      for (const name of caches.machines.snapshot().keys()) touch(name);
    };
    caches.machines.on((e) => (e.type === 'synced' ? allMachines() : e.type === 'delete' ? machineQueue.forget(e.object.metadata.name) : touch(e.object.metadata.name)));
    this.#machinesCache = caches.machines;
    const selector = this.#o.importNodeSelector;
    if (selector !== undefined) {
      const importer = new NodeImporter({ client: this.#client as KubeClient, machines: caches.machines as unknown as LifecycleCaches['machines'], nodes: caches.nodes as unknown as LifecycleCaches['nodes'], selector, log: log.child({ component: 'import' }), mayWrite });
      const importQueue = new WorkQueue({ workers: this.#o.workers ?? 4, log: log.child({ component: 'import-queue' }), handle: (key) => importer.reconcile(key) });
      this.#importQueue = importQueue;
      const consider = (node: KubeObject): void => {
        if (this.#synced && importer.matches(node as NodeObject)) importQueue.add(node.metadata.name);
      };
      caches.nodes.on((e) => {
        if (e.type === 'synced') for (const n of caches.nodes.snapshot().values()) consider(n);
        else if (e.type === 'add' || (e.type === 'update' && importView(e.old) !== importView(e.object))) consider(e.object);
      });
      this.#importAll = () => {
        for (const n of caches.nodes.snapshot().values()) consider(n);
      };
    }
    caches.nodes.on((e) => {
      if (e.type === 'synced') return allMachines();
      if (e.type === 'delete') lifecycle.nodeDeleted(e.object.metadata.name);
      // Heartbeats again: only what the lifecycle reads makes a Machine look.
      if (e.type !== 'update' || nodeFingerprint(e.old) !== nodeFingerprint(e.object)) touch(e.object.metadata.name);
    });
    caches.components.on((e) => {
      if (e.type === 'synced') {
        lifecycle.componentsSynced();
        return allMachines();
      }
      for (const m of lifecycle.componentEvent(e.type, e.object, e.type === 'update' ? e.old : undefined)) touch(m);
    });
    // Nothing runs before every cache has synced: a pass over a half-listed cache would take
    // machines not listed yet for machines that left, and delete their components.
    const enqueue = (name: string): void => {
      if (this.#synced) queue.add(name);
    };
    const all = (): void => {
      for (const name of caches.sets.snapshot().keys()) enqueue(name);
    };
    caches.sets.on((e) => {
      if (e.type === 'synced') return all();
      // Our own status writes come back too: only spec, labels or deletion matter.
      if (e.type === 'update' && e.old.metadata.generation === e.object.metadata.generation && e.object.metadata.deletionTimestamp === undefined) return;
      // A deleted set gets one more pass too: it hands back its node Leases.
      if (e.type === 'delete') queue.forget(e.object.metadata.name);
      enqueue(e.object.metadata.name);
      // A set that goes or changes its component frees machines other sets were refused on.
      for (const name of caches.sets.snapshot().keys()) if (name !== e.object.metadata.name) enqueue(name);
    });
    caches.components.on((e) => {
      if (e.type === 'synced') return all();
      const set = setOf(e.object);
      if (set !== undefined) enqueue(set);
      else for (const s of reconciler.setsForMachine(machineOf(e.object) ?? '')) enqueue(s);
    });
    caches.revisions.on((e) => {
      if (e.type !== 'synced') {
        const set = setOf(e.object);
        if (set !== undefined) enqueue(set);
      }
    });
    caches.machines.on((e) => {
      if (e.type === 'synced') return all();
      if (e.type === 'update' && JSON.stringify(e.old.metadata.labels ?? {}) === JSON.stringify(e.object.metadata.labels ?? {}) && e.old.metadata.deletionTimestamp === e.object.metadata.deletionTimestamp) return;
      // The old labels may have matched sets the new ones do not: every set looks.
      all();
    });
    caches.nodes.on((e) => {
      if (e.type === 'synced') return all();
      // Heartbeats change nothing a rollout reads; a condition's status does.
      if (e.type === 'update' && conditionStatuses(e.old) === conditionStatuses(e.object)) return;
      for (const s of reconciler.setsForMachine(e.object.metadata.name)) enqueue(s);
    });
    // A remedy handing a node back lets the rollouts that deferred the machine go on at once.
    coordinator.onRelease((node, holder) => {
      if (!isRolloutHolder(holder)) for (const s of reconciler.setsForMachine(node)) enqueue(s);
    });
    // Leases renew every few seconds on every node: only an agent turning fresh or stale queues its sets.
    const leaseClock = new LeaseClock({ clock: this.#clock, changed: (machine) => { for (const s of reconciler.setsForMachine(machine)) enqueue(s); } });
    this.#leaseClock = leaseClock;
    caches.leases.on((e) => leaseClock.observe(e));
    if (this.#o.pipelines !== undefined) {
      this.#pipeline = createPipelineController(
        {
          ...this.#o.pipelines,
          client: this.#client as KubeClient,
          kubeConfig: kc,
          namespace: this.#o.namespace,
          events,
          clock: this.#clock,
          log: log.child({ component: 'pipeline' }),
          mayWrite,
          workers: this.#o.workers ?? 4,
          informer: inf,
          observeMember: (verb, _path, kind) => this.#memberRequests.inc({ verb, result: labelValue(kind ?? 'ok') }),
        },
        () => this.#synced,
      );
    }
    for (const i of this.#informers) i.start();
    await Promise.all(this.#informers.map((i) => i.waitForSync()));
    if (signal.aborted) return;
    lifecycle.componentsSynced();
    this.#synced = true;
    allMachines();
    log.info({ sets: caches.sets.snapshot().size, machines: caches.machines.snapshot().size }, 'Caches synced; reconciling');
    all();
    this.#pipeline?.all();
    this.#csrApprover.addAll();
    this.#importAll?.();
  }

  #startRemedies(caches: RolloutCaches, inf: <T extends KubeObject>(resource: ResourceRef) => Informer<T>, events: EventRecorder, coordinator: NodeCoordinator, mayWrite: () => boolean, signal: AbortSignal): void {
    const log = this.#log.child({ component: 'remedy' });
    const client = this.#client as KubeClient;
    const host = this.#o.host ?? createHost({ clock: this.#clock });
    const rc: RemedyCaches = {
      remediers: inf({ group: 'kubenode.io', version: 'v1alpha1', plural: 'noderemediers' }),
      operations: inf({ group: 'kubenode.io', version: 'v1alpha1', plural: 'remedyoperations' }),
      nodes: caches.nodes as unknown as RemedyCaches['nodes'],
      leases: caches.leases,
      machines: caches.machines as unknown as RemedyCaches['machines'],
    };
    // The agents' gate, less the node-local budget: the same RiskPolicies and storm breakers.
    const policy = new RiskPolicyClient(client, this.#clock, log);
    const gate = new RiskGate({ host, log, stages: [policyStage(policy), stormStage(remedierStorm(client))], policy });
    const central = new CentralRemedies({ client, caches: rc, host, gate, coordinator, events, clock: this.#clock, log, mayWrite, ...(this.#o.remedyRetryMs === undefined ? {} : { retryMs: this.#o.remedyRetryMs }), ...(this.#o.remedyStatusEveryMs === undefined ? {} : { statusEveryMs: this.#o.remedyStatusEveryMs }), ...(this.#o.remedyOperationRetentionMs === undefined ? {} : { retentionMs: this.#o.remedyOperationRetentionMs }) });
    this.remedies = central;
    const queue = new WorkQueue({ workers: this.#o.workers ?? 4, log: log.child({ component: 'remedy-queue' }), handle: (key) => central.reconcile(key) });
    this.#remedyQueue = queue;
    const add = (key: string): void => {
      if (this.#synced) queue.add(key);
    };
    rc.remediers.on((e) => (e.type === 'synced' ? undefined : add(`remedier/${e.object.metadata.name}`)));
    rc.operations.on((e) => central.keysForOperation(e).forEach(add));
    rc.nodes.on((e) => central.keysForNode(e).forEach(add));
    caches.leases.on((e) => {
      const node = e.type === 'synced' ? undefined : agentLeaseNode(e.object);
      if (node !== undefined && central.active.has(node)) add(`node/${node}`);
    });
    const every = this.#o.remedySweepMs ?? 2000;
    const timer = setInterval(() => {
      if (!this.#synced || signal.aborted) return;
      for (const key of central.sweep()) queue.add(key);
      void central.prune().catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'Pruning RemedyOperations failed'));
    }, every);
    timer.unref();
    signal.addEventListener('abort', () => clearInterval(timer), { once: true });
  }

  async stop(): Promise<void> {
    this.#elector?.stop();
    await this.#standDown();
    await this.#elector?.release();
    this.#stopLeading?.();
    await new Promise<void>((resolve) => (this.#server === undefined ? resolve() : this.#server.close(() => resolve())));
    this.#client?.close();
  }
}

/** What of a Node the import policy reads: its labels and whether it is cordoned. */
function importView(o: KubeObject): string {
  return JSON.stringify([o.metadata.labels ?? {}, (o as { spec?: { unschedulable?: boolean } }).spec?.unschedulable === true]);
}

function conditionStatuses(o: KubeObject): string {
  const conditions = ((o as { status?: { conditions?: { type: string; status: string }[] } }).status?.conditions ?? []).map((c) => `${c.type}=${c.status}`);
  return conditions.sort().join(',');
}
