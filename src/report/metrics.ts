import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Condition, ProblemEvent } from '../types.ts';
import { RemedyMetrics } from '../remedies/metrics.ts';
import { RiskMetrics } from '../risk/metrics.ts';
import { commit, version } from '../version.ts';

/** NPD's problem_counter and problem_gauge, plus the agent's own health. */
export class AgentMetrics {
  readonly registry = new Registry();
  readonly #problemCounter = new Counter({ name: 'problem_counter', help: 'Number of times a specific type of problem have occurred.', labelNames: ['reason'], registers: [this.registry] });
  readonly #problemGauge = new Gauge({ name: 'problem_gauge', help: 'Whether a specific type of problem is affecting the node or not.', labelNames: ['type', 'reason'], registers: [this.registry] });
  readonly #duration = new Histogram({
    name: 'kubenode_detector_duration_seconds',
    help: 'Time one detector probe took.',
    labelNames: ['detector'],
    buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30],
    registers: [this.registry],
  });
  readonly #errors = new Counter({ name: 'kubenode_detector_errors_total', help: 'Detector probes that failed or timed out.', labelNames: ['detector'], registers: [this.registry] });
  /** Registered once per registry, whatever a reload rebuilds. */
  readonly remedies = new RemedyMetrics(this.registry);
  readonly risk = new RiskMetrics(this.registry);

  constructor() {
    new Gauge({ name: 'kubenode_build_info', help: 'Agent build; always 1.', labelNames: ['version', 'commit', 'node_version'], registers: [this.registry] })
      .set({ version, commit, node_version: process.versions.node }, 1);
  }

  observeProbe(detector: string, durationMs: number, failed: boolean): void {
    this.#duration.observe({ detector }, durationMs / 1000);
    if (failed) this.#errors.inc({ detector });
    else this.#errors.inc({ detector }, 0);
  }

  observeEvents(events: readonly ProblemEvent[]): void {
    for (const event of events) if (event.severity === 'warn') this.#problemCounter.inc({ reason: event.reason });
  }

  observeCondition(before: Condition | undefined, after: Condition): void {
    if (before !== undefined && before.reason !== after.reason) this.#problemGauge.set({ type: before.type, reason: before.reason }, 0);
    this.#problemGauge.set({ type: after.type, reason: after.reason }, after.status === 'True' ? 1 : 0);
  }
}
