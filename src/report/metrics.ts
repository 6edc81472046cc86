import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { NpdProblem } from '../detectors/engine/types.ts';
import type { Condition, ConditionStatus, ProblemEvent } from '../types.ts';
import { RemedyMetrics } from '../remedies/metrics.ts';
import { RiskMetrics } from '../risk/metrics.ts';
import { MAX_TIMER_MS } from '../util/duration.ts';
import { commit, version } from '../version.ts';
import { ComponentMetrics } from './component-metrics.ts';

const CONDITION_STATUSES: readonly ConditionStatus[] = ['True', 'False', 'Unknown'];

/**
 * prom-client's event-loop delay histogram (nodejs_eventloop_lag_{min,max,mean,stddev,p50,p90,p99}_seconds)
 * is fed by a timer at this period: at its default, 10 ms, it would wake an idle agent 100 times a
 * second on every node, and once a second still makes it the only thing that wakes one. It cannot
 * be left out of the default collectors, so its timer is set to the longest a Node timer holds and
 * its series are dropped; nodejs_eventloop_lag_seconds, measured when scraped, stays.
 */
const EVENT_LOOP_SAMPLE_MS = MAX_TIMER_MS;
const EVENT_LOOP_HISTOGRAM = ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99'].map((s) => `nodejs_eventloop_lag_${s}_seconds`);

/**
 * prom-client's defaults also export the sums of nodejs_active_handles, _requests and _resources
 * as gauges named *_total, which Prometheus reserves for counters (promtool refuses them); the
 * sums are one `sum()` away.
 */
const MISNAMED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export interface ConditionObservation {
  detector: string;
  before: Condition | undefined;
  after: Condition;
}

/**
 * NPD's problem_counter and problem_gauge, the agent's own series beside them, and the Node.js
 * process (prom-client's process_* and nodejs_* collectors). Remedy, risk-gate and component
 * metrics live in their own modules, registered here; cluster writes: src/report/kube/index.ts.
 */
export class AgentMetrics {
  readonly registry = new Registry();
  readonly components = new ComponentMetrics(this.registry);
  /**
   * NPD's two series keep queries written for NPD working, and their names break two Prometheus
   * naming rules (promtool flags them), so they are on the registry only while an NPD monitor
   * that reports metrics is loaded (see loadNpdMonitors). They count all along, so a counter that
   * appears after a reload still counts from the agent's start.
   */
  readonly #problemCounter = new Counter({ name: 'problem_counter', help: 'Number of times a specific type of problem have occurred.', labelNames: ['reason'], registers: [] });
  readonly #problemGauge = new Gauge({ name: 'problem_gauge', help: 'Whether a specific type of problem is affecting the node or not.', labelNames: ['type', 'reason'], registers: [] });
  #npdExported = false;
  readonly #problemEvents = new Counter({
    name: 'kubenode_problem_events_total',
    help: "Warning events, by the detector that raised them and reason; NPD's problem_counter, there while an NPD monitor is loaded, is the sum over detectors.",
    labelNames: ['detector', 'reason'],
    registers: [this.registry],
  });
  readonly #conditionStatus = new Gauge({
    name: 'kubenode_condition_status',
    help: "A detector's condition: 1 on the series of its current status (True, False or Unknown), 0 on the other two.",
    labelNames: ['detector', 'type', 'status'],
    registers: [this.registry],
  });
  readonly #duration = new Histogram({
    name: 'kubenode_detector_duration_seconds',
    help: 'Time one detector probe took.',
    labelNames: ['detector'],
    buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30],
    registers: [this.registry],
  });
  readonly #errors = new Counter({ name: 'kubenode_detector_errors_total', help: 'Detector probes that failed or timed out.', labelNames: ['detector'], registers: [this.registry] });
  readonly #lastSuccess = new Gauge({
    name: 'kubenode_detector_last_success_timestamp_seconds',
    help: 'When a probe of the detector last completed without an error (Unix time); absent until the first one does.',
    labelNames: ['detector'],
    registers: [this.registry],
  });
  /** Registered once per registry, whatever a reload rebuilds. */
  readonly remedies = new RemedyMetrics(this.registry);
  readonly risk = new RiskMetrics(this.registry);

  constructor() {
    new Gauge({ name: 'kubenode_build_info', help: 'Agent build; always 1.', labelNames: ['version', 'commit', 'node_version'], registers: [this.registry] })
      .set({ version, commit, node_version: process.versions.node }, 1);
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    for (const name of [...MISNAMED_DEFAULTS, ...EVENT_LOOP_HISTOGRAM]) this.registry.removeSingleMetric(name);
  }

  /** Each detector seen, with the condition types it reported: what a reload that drops it must forget. */
  readonly #detectors = new Map<string, Set<string>>();

  #typesOf(detector: string): Set<string> {
    let types = this.#detectors.get(detector);
    if (types === undefined) this.#detectors.set(detector, (types = new Set()));
    return types;
  }

  observeProbe(detector: string, durationMs: number, failed: boolean): void {
    this.#typesOf(detector);
    this.#duration.observe({ detector }, durationMs / 1000);
    if (failed) this.#errors.inc({ detector });
    else {
      this.#errors.inc({ detector }, 0);
      this.#lastSuccess.set({ detector }, Date.now() / 1000);
    }
  }

  observeEvents(detector: string, events: readonly ProblemEvent[]): void {
    for (const event of events) {
      if (event.severity !== 'warn') continue;
      this.#own(`counter\0${event.reason}`, detector);
      this.#problemCounter.inc({ reason: event.reason });
      this.#problemEvents.inc({ detector, reason: event.reason });
    }
  }

  /**
   * NPD's series (`counter\0reason`, `gauge\0type\0reason`) → the detectors that raised them or
   * whose monitor's rules pre-created them. problem_* sum over detectors, so a series leaves the
   * scrape when a reload drops the last of its detectors (retainDetectors), not before. A gauge
   * series present here is never reset by pre-creating it again.
   */
  readonly #owners = new Map<string, Set<string>>();

  #own(key: string, detector: string): void {
    let owners = this.#owners.get(key);
    if (owners === undefined) this.#owners.set(key, (owners = new Set()));
    owners.add(detector);
  }

  #setGauge(detector: string, type: string, reason: string, value: number): void {
    this.#own(`gauge\0${type}\0${reason}`, detector);
    this.#problemGauge.set({ type, reason }, value);
  }

  /**
   * At start and on every reload, the rules of each loaded NPD monitor that reports metrics: with
   * none, NPD's series leave the scrape; with some, they are in it and, as NPD does when it loads
   * a monitor, problem_counter{reason} is at 0 for every rule and problem_gauge{type,reason} at 0
   * for every permanent rule, so queries see the series before the first problem. Existing values
   * are kept (a reload).
   */
  loadNpdMonitors(monitors: readonly { detector: string; problems: readonly NpdProblem[] }[]): void {
    const wanted = monitors.length > 0;
    if (wanted !== this.#npdExported) {
      for (const [name, metric] of [['problem_counter', this.#problemCounter], ['problem_gauge', this.#problemGauge]] as const) {
        if (wanted) this.registry.registerMetric(metric);
        else this.registry.removeSingleMetric(name);
      }
      this.#npdExported = wanted;
    }
    for (const { detector, problems } of monitors) {
      for (const { reason, condition } of problems) {
        this.#own(`counter\0${reason}`, detector);
        this.#problemCounter.inc({ reason }, 0);
        if (condition === undefined) continue;
        if (this.#owners.has(`gauge\0${condition}\0${reason}`)) this.#own(`gauge\0${condition}\0${reason}`, detector);
        else this.#setGauge(detector, condition, reason, 0);
      }
    }
  }

  observeCondition({ detector, before, after }: ConditionObservation): void {
    if (before !== undefined && before.reason !== after.reason) this.#setGauge(detector, before.type, before.reason, 0);
    this.#setGauge(detector, after.type, after.reason, after.status === 'True' ? 1 : 0);
    for (const status of CONDITION_STATUSES) this.#conditionStatus.set({ detector, type: after.type, status }, status === after.status ? 1 : 0);
    this.#typesOf(detector).add(after.type);
  }

  /**
   * After a reload: drops the condition and last-success series of detectors no longer configured,
   * which would otherwise read as conditions that never change and a detector that stopped working,
   * and the problem_counter and problem_gauge series that only they had.
   */
  retainDetectors(names: Iterable<string>): void {
    const keep = new Set(names);
    for (const [key, owners] of this.#owners) {
      for (const detector of owners) if (!keep.has(detector)) owners.delete(detector);
      if (owners.size > 0) continue;
      const [metric, a, b] = key.split('\0') as [string, string, string | undefined];
      if (metric === 'counter') this.#problemCounter.remove({ reason: a });
      else this.#problemGauge.remove({ type: a, reason: b as string });
      this.#owners.delete(key);
    }
    for (const [detector, types] of this.#detectors) {
      if (keep.has(detector)) continue;
      for (const type of types) for (const status of CONDITION_STATUSES) this.#conditionStatus.remove({ detector, type, status });
      this.#lastSuccess.remove({ detector });
      this.#detectors.delete(detector);
    }
  }
}
