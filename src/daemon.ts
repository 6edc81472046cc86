import type { Server } from 'node:http';
import type { Logger } from 'pino';
import type { Bootstrap, Configuration, HostOptions } from './bootstrap.ts';
import type { CertificateRotator } from './join/rotate.ts';
import { buildInstances } from './detectors/engine/instances.ts';
import type { ProbeOutcome } from './detectors/engine/run.ts';
import type { ProblemEvent } from './types.ts';
import type { ClusterReporter } from './report/kube/index.ts';
import type { Remedies } from './remedies/setup.ts';
import type { KubeApi } from './remedies/kube-api.ts';
import { RecoveryHold, silence } from './detectors/engine/filters.ts';
import { Scheduler } from './detectors/engine/scheduler.ts';
import type { DetectorInstance } from './detectors/engine/types.ts';
import type { AgentConfig } from './config/schema.ts';
import { errorMessage, hostWriteError } from './errors.ts';
import { startInstallReconciler, type InstallReconciler } from './installers/reconciler.ts';
import type { Host } from './host/host.ts';
import { ConditionStore } from './report/condition-store.ts';
import type { InstallerGate, RiskGate } from './risk/gate.ts';
import { AgentMetrics } from './report/metrics.ts';
import { startServer, type HealthSource } from './report/server.ts';
import { isLoopback, parseListen } from './config/listen.ts';
import { version } from './version.ts';
import { armedFile, hostArgs } from './installers/self-upgrade-paths.ts';
import type { ConfirmOptions } from './installers/self-upgrade.ts';

export interface DaemonOptions extends HostOptions {
  listen?: string;
  /** Report to the cluster with this kubeconfig, or with the pod's service account (inCluster). */
  kubeconfig?: string;
  inCluster?: boolean;
  /** From --log-level; when absent, logLevel in the configuration applies. */
  logLevel?: string;
}

interface Running {
  scheduler: Scheduler;
  instances: DetectorInstance[];
}

interface Filters {
  silenced: ReadonlySet<string>;
  hold: RecoveryHold;
}

function filtersFor(config: AgentConfig): Filters {
  return { silenced: new Set(config.detection.silencedReasons), hold: new RecoveryHold(config.detection.recoveryHold) };
}

/** `kubenode-agent run`: detectors on their intervals, state in the state dir, metrics and health on loopback. */
export class Daemon {
  #options: DaemonOptions;
  readonly #boot: Bootstrap;
  readonly #log: Logger;
  readonly #metrics = new AgentMetrics();
  #host: Host | undefined;
  #store: ConditionStore | undefined;
  #server: Server | undefined;
  #running: Running | undefined;
  #installers: InstallReconciler | undefined;
  #cluster: ClusterReporter | undefined;
  #rotator: CertificateRotator | undefined;
  #remedies: Remedies | undefined;
  /** The cluster client of the risk gate and the remedies; absent standalone. */
  #kube: KubeApi | undefined;
  /**
   * The one risk gate: remedies and installer restarts spend the same budget and permits. Built
   * on first use, so a node with remedies off and nothing to install never loads it.
   */
  #risk: Promise<RiskGate> | undefined;
  #stopping = false;
  #filters: Filters | undefined;
  readonly #lastOutcome = new Map<string, { at: string; ok: boolean; error?: string }>();
  /**
   * Per detector, the newest timestamp already reported and how many of each event were reported
   * at it. A detector restarted by a reload (or a watch restarted after a failure) reads its log's
   * lookback again; what it finds there was counted and sent before and is not reported twice.
   * Older events are dropped by their timestamp; at the newest one, a pass from the start drops as
   * many of each event as were reported, and no more: syslog stamps have one-second resolution,
   * and two faults in one second, even with the same text, read in two batches, are two events.
   */
  readonly #reported = new Map<string, { at: number; counts: Map<string, number>; replayed: Map<string, number> }>();
  #current: Configuration | undefined;
  #bootId = 'unknown';
  #address = '';
  /** Reloads run one at a time; a SIGHUP while starting or reloading is kept and applied after. */
  #reloading: Promise<boolean> | undefined;
  #reloadAgain = false;
  #starting: Promise<string> | undefined;
  /** Confirms a self-upgrade in progress once this agent is healthy (src/installers/self-upgrade.ts). */
  #confirm: { abort: AbortController; done: Promise<void> } | undefined;

  constructor(options: DaemonOptions, boot: Bootstrap) {
    this.#options = options;
    this.#boot = boot;
    this.#log = boot.log;
  }

  /** Throws ConfigError when the configuration is bad: a daemon must not start half-configured. */
  start(): Promise<string> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<string> {
    const s = this.#boot;
    const startedAt = s.host.clock.now();
    this.#current = s;
    this.#applyLogLevel(s.config);
    // cluster.kubeconfig (what `join` wrote) makes cluster mode need no flag in the unit.
    const joined = this.#options.kubeconfig === undefined && this.#options.inCluster !== true && s.config.cluster.kubeconfig !== '';
    if (joined) this.#options = { ...this.#options, kubeconfig: s.host.path(s.config.cluster.kubeconfig) };
    const instances = await buildInstances(s.host, { detectors: s.config.detectors, monitors: s.config.monitors }, s.monitors);
    this.#host = s.host;
    const bootId = (await s.host.tryReadText('/proc/sys/kernel/random/boot_id'))?.trim() ?? 'unknown';
    this.#bootId = bootId;
    // A state directory the agent cannot write (read-only, full, not a directory) stops the start
    // with the host's reason, rather than a daemon that forgets every condition it reports.
    const probe = `${s.config.stateDir}/.writable`;
    await s.host.writeFileAtomic(probe, `${process.pid}\n`).catch((err: unknown) => {
      throw hostWriteError(s.host.path(probe), err);
    });
    this.#store = new ConditionStore(s.host, s.config.stateDir, bootId, this.#log.child({ component: 'state' }));
    await this.#store.load();
    // Gauges live in this process: restored conditions must show before any detector reports.
    for (const i of instances) if (i.metricsReporting) for (const after of this.#store.previous(i.name)) this.#metrics.observeCondition({ detector: i.name, before: undefined, after });
    const { server, address } = await startServer(this.#options.listen ?? s.config.listen, this.#metrics.registry, this.#health());
    this.#server = server;
    this.#address = address;
    if (!isLoopback(parseListen(address).host)) this.#log.warn({ listen: address }, 'Listening beyond loopback: /metrics and /healthz are reachable from the network');
    if (this.#options.kubeconfig !== undefined || this.#options.inCluster === true) {
      // Loaded only with a cluster: a standalone agent never pays for the Kubernetes client.
      const { startClusterReporter } = await import('./report/kube/index.ts');
      this.#cluster = await startClusterReporter({
        kube: { ...(this.#options.kubeconfig === undefined ? {} : { kubeconfig: this.#options.kubeconfig }), inCluster: this.#options.inCluster === true },
        nodeName: s.nodeName,
        host: s.host,
        log: this.#log,
        agentVersion: version,
        registry: this.#metrics.registry,
      });
      for (const instance of instances) this.#cluster.setConditions(instance.name, this.#store.previous(instance.name));
    }
    if (joined) {
      const [{ CertificateRotator }, { credentialPath }] = await Promise.all([import('./join/rotate.ts'), import('./join/identity.ts')]);
      // Only a certificate identity that join made rotates; a token kubeconfig has nothing to renew.
      if (await s.host.exists(credentialPath(s.config.cluster.kubeconfig))) {
        this.#rotator = new CertificateRotator({ host: s.host, kubeconfig: s.config.cluster.kubeconfig, nodeName: s.nodeName, log: this.#log.child({ component: 'certificate' }), registry: this.#metrics.registry });
        this.#rotator.start();
      }
    }
    if (this.#options.kubeconfig !== undefined || this.#options.inCluster === true) {
      this.#kube = await (await import('./remedies/kube-api.ts')).createKubeApi({ ...(this.#options.kubeconfig === undefined ? {} : { kubeconfig: this.#options.kubeconfig }), inCluster: this.#options.inCluster === true });
    }
    if (s.config.remedies.enabled) this.#remedies = await this.#startRemedies(s.host, s.config, s.nodeName, bootId);
    this.#installers = await this.#startInstallers(s.host, s.config, s.nodeName);
    this.#filters = filtersFor(s.config);
    this.#running = this.#startScheduler(instances, s.config.detection.maxConcurrent, s.nodeName);
    const abort = new AbortController();
    const cluster = this.#cluster;
    const done = this.#confirmSelfUpgrade({ host: s.host, stateDir: s.config.stateDir, address, agentVersion: version, startedAt, log: this.#log.child({ component: 'self-upgrade' }), signal: abort.signal, ...(cluster === undefined ? {} : { leaseRenewed: () => cluster.leaseRenewed() }) }).catch((err: unknown) =>
      this.#log.error({ err: errorMessage(err) }, 'Self-upgrade: could not confirm this agent is healthy'),
    );
    this.#confirm = { abort, done };
    this.#log.info({ node: s.nodeName, config: s.configSource, listen: address, detectors: instances.map((i) => i.name) }, 'Agent started');
    return address;
  }

  /**
   * SIGHUP, at any moment: while starting or reloading, the request waits and is applied once
   * after. A new configuration replaces the old only when all of it loads.
   */
  requestReload(): Promise<boolean> {
    if (this.#reloading !== undefined) {
      this.#reloadAgain = true;
      return this.#reloading;
    }
    const run = async (): Promise<boolean> => {
      let applied = false;
      try {
        await this.#starting?.catch(() => undefined);
        do {
          this.#reloadAgain = false;
          applied = await this.reload();
        } while (this.#reloadAgain && !this.#stopping);
      } finally {
        this.#reloading = undefined;
      }
      return applied;
    };
    this.#reloading = run();
    return this.#reloading;
  }

  /** Applies every section of a new configuration; what needs a restart (stateDir, nodeName, cluster.kubeconfig) is refused. */
  async reload(): Promise<boolean> {
    if (this.#running === undefined || this.#stopping || this.#current === undefined) return false;
    const host = this.#host as Host;
    let next: Configuration;
    let instances: DetectorInstance[];
    try {
      next = await this.#boot.reload();
      instances = await buildInstances(host, { detectors: next.config.detectors, monitors: next.config.monitors }, next.monitors);
      for (const [field, was, now] of [
        ['stateDir', this.#current.config.stateDir, next.config.stateDir],
        ['nodeName', this.#current.nodeName, next.nodeName],
        // The cluster client is built once, at start.
        ['cluster.kubeconfig', this.#current.config.cluster.kubeconfig, next.config.cluster.kubeconfig],
      ] as const) {
        if (was !== now) throw new Error(`${field} changed from ${JSON.stringify(was)} to ${JSON.stringify(now)}: that takes a restart`);
      }
    } catch (err) {
      this.#log.error({ err: errorMessage(err) }, 'Configuration reload refused; keeping the running configuration');
      return false;
    }
    await Promise.all([this.#running.scheduler.stop(), this.#installers?.stop({ finish: true }), this.#remedies?.engine.stop()]);
    this.#remedies = undefined;
    const previous = this.#current;
    this.#current = next;
    this.#applyLogLevel(next.config);
    await this.#rebind(previous.config.listen, next.config.listen);
    this.#risk = undefined;
    if (next.config.remedies.enabled) this.#remedies = await this.#startRemedies(host, next.config, next.nodeName, this.#bootId);
    this.#installers = await this.#startInstallers(host, next.config, next.nodeName);
    this.#filters = filtersFor(next.config);
    this.#running = this.#startScheduler(instances, next.config.detection.maxConcurrent, next.nodeName);
    this.#metrics.retainDetectors(instances.map((i) => i.name));
    this.#log.info({ detectors: instances.map((i) => i.name), listen: this.#address, remedies: next.config.remedies.enabled }, 'Configuration reloaded');
    return true;
  }

  /** A new listen address (not pinned by --listen): bind it first, then let the old one go. */
  async #rebind(was: string, wanted: string): Promise<void> {
    if (this.#options.listen !== undefined || wanted === was) return;
    const old = this.#server;
    try {
      const { server, address } = await startServer(wanted, this.#metrics.registry, this.#health());
      this.#server = server;
      this.#address = address;
      old?.close();
      old?.closeAllConnections();
    } catch (err) {
      this.#log.error({ err: errorMessage(err), listen: wanted }, 'Cannot listen on the new address; keeping the old one');
    }
  }

  #health(): HealthSource {
    return {
      healthy: () => ({
        ok: !this.#stopping && this.#running !== undefined,
        detail: { node: this.#current?.nodeName, detectors: Object.fromEntries(this.#lastOutcome) },
      }),
    };
  }

  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    // A stop during start-up lets the start finish first, so nothing is left half-started.
    await this.#starting?.catch(() => undefined);
    await this.#reloading;
    this.#confirm?.abort.abort(new Error('stopped'));
    await this.#confirm?.done;
    // One part failing to stop must not keep the others, or the state, from being put away.
    const stopped = await Promise.allSettled([this.#running?.scheduler.stop(), this.#installers?.stop(), this.#cluster?.stop(), this.#remedies?.engine.stop(), this.#rotator?.stop()]);
    this.#kube?.close();
    for (const s of stopped) if (s.status === 'rejected') this.#log.error({ err: errorMessage(s.reason) }, 'Part of the agent did not stop cleanly');
    await this.#store?.flush();
    await new Promise<void>((resolve) => {
      if (this.#server === undefined) resolve();
      else this.#server.close(() => resolve());
      this.#server?.closeAllConnections();
    });
    this.#log.info({}, 'Agent stopped');
  }

  /** The risk gate of the running configuration (a reload drops it, so the next use takes the new one). */
  #gate(): Promise<RiskGate> {
    const host = this.#host as Host;
    const { config } = this.#current as Configuration;
    const kube = this.#kube;
    this.#risk ??= import('./risk/index.ts').then(({ createRiskGate }) =>
      createRiskGate({ host, config: config.risk, stateDir: config.stateDir, log: this.#log, metrics: this.#metrics.risk, ...(kube === undefined ? {} : { kube }) }),
    );
    return this.#risk;
  }

  /** Builds the gate only when an installer restart asks it: most passes restart nothing. */
  #installerGate(nodeName: string): InstallerGate {
    return { ask: async (request) => (await this.#gate()).forInstallers(nodeName).ask(request) };
  }

  /** The upgrade code is loaded only when an upgrade is armed: nothing else on a start needs it. */
  async #confirmSelfUpgrade(o: ConfirmOptions): Promise<void> {
    if (!(await o.host.exists(armedFile(o.stateDir)))) return;
    await (await import('./installers/self-upgrade.ts')).confirmSelfUpgrade(o);
  }

  /** The remedy engine: rules over the node's conditions, every disruptive step behind the risk gate. */
  async #startRemedies(host: Host, config: AgentConfig, nodeName: string, bootId: string): Promise<Remedies> {
    const { createRemedies } = await import('./remedies/setup.ts');
    const kube = this.#kube;
    const store = this.#store as ConditionStore;
    const remedies = createRemedies({
      host,
      config: config.remedies,
      stateDir: config.stateDir,
      nodeName,
      bootId,
      log: this.#log.child({ component: 'remedies' }),
      gate: await this.#gate(),
      metrics: this.#metrics.remedies,
      ...(kube === undefined ? {} : { kube }),
      publish: (condition) => {
        store.update('remedy-engine', [condition], false);
        this.#cluster?.setConditions('remedy-engine', [condition]);
      },
    });
    // Settles a reboot it asked for and releases permits a previous run left held.
    await remedies.engine.resume();
    remedies.engine.observe(store.all());
    remedies.engine.start(config.remedies.interval);
    return remedies;
  }

  /** Desired state: the cluster's MachineComponents with a kubeconfig, else the manifest directory. */
  async #startInstallers(host: Host, config: AgentConfig, nodeName: string): Promise<InstallReconciler> {
    const log = this.#log.child({ component: 'installers', node: nodeName });
    // Disruptive installer restarts ask the same gate as remedies.
    const options = { risk: this.#installerGate(nodeName), metrics: this.#metrics.components, selfUpgrade: { mode: 'hand-off' as const, agentArgs: hostArgs(this.#options) } };
    const slice = { installers: config.installers, stateDir: config.stateDir, nodeName };
    if (this.#options.kubeconfig === undefined && this.#options.inCluster !== true) return startInstallReconciler(host, slice, log, options);
    const [{ loadKubeConfig, createKubeClient }, { startKubeInstaller }, { createInstallContext }] = await Promise.all([
      import('./kube/client.ts'),
      import('./installers/kube-source.ts'),
      import('./installers/context.ts'),
    ]);
    const kc = await loadKubeConfig({ ...(this.#options.kubeconfig === undefined ? {} : { kubeconfig: this.#options.kubeconfig }), inCluster: this.#options.inCluster === true });
    // Its own client: the informer drops its client's pooled connections after a stall.
    return startKubeInstaller(createInstallContext(host, slice, log, options), {
      client: createKubeClient(kc),
      kubeConfig: kc,
      intervalMs: config.installers.reconcileInterval,
    }).reconciler;
  }

  #applyLogLevel(config: AgentConfig): void {
    if (this.#options.logLevel === undefined) this.#log.level = config.logLevel;
  }

  #startScheduler(instances: DetectorInstance[], maxConcurrent: number, nodeName: string): Running {
    const host = this.#host as Host;
    const store = this.#store as ConditionStore;
    const byName = new Map(instances.map((i) => [i.name, i]));
    this.#metrics.loadNpdMonitors(instances.flatMap((i) => (i.metricsReporting && i.problems !== undefined ? [{ detector: i.name, problems: i.problems }] : [])));
    const scheduler = new Scheduler({
      maxConcurrent,
      clock: host.clock,
      log: this.#log,
      context: (instance) => ({
        host,
        log: this.#log.child({ detector: instance.name }),
        nodeName,
        mode: 'run',
        previous: store.previous(instance.name),
        silenced: (this.#filters as Filters).silenced,
      }),
      onOutcome: (detector, outcome, durationMs, fromStart) => this.#onOutcome(byName.get(detector) as DetectorInstance, outcome, durationMs, fromStart),
    });
    scheduler.start(instances);
    return { scheduler, instances };
  }

  #freshEvents(detector: string, events: readonly ProblemEvent[], fromStart: boolean): ProblemEvent[] {
    const key = (e: ProblemEvent): string => `${e.reason}\u0000${e.message}`;
    const seen = this.#reported.get(detector) ?? { at: Number.NEGATIVE_INFINITY, counts: new Map<string, number>(), replayed: new Map<string, number>() };
    if (fromStart) seen.replayed = new Map(seen.counts);
    const { at } = seen;
    const fresh = events.filter((e) => {
      if (e.timestamp !== at) return e.timestamp > at;
      const left = seen.replayed.get(key(e)) ?? 0;
      if (left > 0) seen.replayed.set(key(e), left - 1);
      return left === 0;
    });
    for (const e of fresh) {
      if (e.timestamp > seen.at) Object.assign(seen, { at: e.timestamp, counts: new Map(), replayed: new Map() });
      if (e.timestamp === seen.at) seen.counts.set(key(e), (seen.counts.get(key(e)) ?? 0) + 1);
    }
    if (Number.isFinite(seen.at)) this.#reported.set(detector, seen);
    return fresh;
  }

  #onOutcome(instance: DetectorInstance, outcome: ProbeOutcome, durationMs: number, fromStart: boolean): void {
    const detector = instance.name;
    const store = this.#store as ConditionStore;
    this.#metrics.observeProbe(detector, durationMs, !outcome.ok);
    this.#lastOutcome.set(detector, {
      at: new Date((this.#host as Host).clock.now()).toISOString(),
      ok: outcome.ok,
      ...(outcome.ok ? {} : { error: outcome.error }),
    });
    if (!outcome.ok) {
      this.#log.warn({ detector, err: outcome.error, durationMs: Math.round(durationMs) }, 'Detector failed');
      return;
    }
    const filters = this.#filters as Filters;
    const fresh = this.#freshEvents(detector, outcome.result.events, fromStart);
    const result = silence({ ...outcome.result, events: fresh }, filters.silenced);
    const now = (this.#host as Host).clock.now();
    const conditions = filters.hold.apply(detector, result.conditions, store.previous(detector), now);
    for (const event of result.events) {
      this.#log[event.severity === 'warn' ? 'warn' : 'info']({ detector, reason: event.reason, message: event.message, at: new Date(event.timestamp).toISOString() }, 'Event');
    }
    if (instance.metricsReporting) this.#metrics.observeEvents(detector, result.events);
    for (const change of store.update(detector, conditions, instance.logDerived)) {
      if (instance.metricsReporting) this.#metrics.observeCondition(change);
      const { type, status, reason, message } = change.after;
      // Only a new status or reason is news; a message with fresh figures in it is not.
      const news = change.before === undefined || change.before.status !== status || change.before.reason !== reason;
      this.#log[!news ? 'debug' : status === 'True' ? 'warn' : 'info']({ detector, type, status, reason, message }, 'Condition');
    }
    this.#cluster?.setConditions(detector, conditions);
    this.#cluster?.recordEvents(detector, result.events);
    this.#remedies?.engine.observe(store.all());
  }
}
