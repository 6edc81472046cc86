import { Counter, Histogram, type Registry } from 'prom-client';

/** How a remedy operation ended, as the RemedyOperation records it (plus a denial by the gate). */
export type OperationEnd = 'fixed' | 'not_fixed' | 'error' | 'dry_run' | 'not_needed' | 'denied';

/** Remedy metrics, registered once on the agent's registry (src/report/metrics.ts). */
export class RemedyMetrics {
  readonly #started: Counter;
  readonly #operations: Counter;
  readonly #duration: Histogram;

  constructor(registry: Registry) {
    const registers = [registry];
    this.#started = new Counter({ name: 'kubenode_remedy_actions_started_total', help: 'Remedy actions started, after the risk gate allowed them, by action.', labelNames: ['action'], registers });
    this.#operations = new Counter({
      name: 'kubenode_remedy_operations_total',
      help: 'Remedy operations ended, by action and result (fixed: the problem cleared; not_fixed: it did not; error: the action failed; denied: the risk gate refused; not_needed: the re-check found nothing to do; dry_run).',
      labelNames: ['action', 'result'],
      registers,
    });
    this.#duration = new Histogram({
      name: 'kubenode_remedy_operation_duration_seconds',
      help: 'From the start of a remedy action to its verified outcome, by action and result.',
      labelNames: ['action', 'result'],
      buckets: [1, 5, 15, 60, 300, 900, 1800, 3600],
      registers,
    });
  }

  started(action: string): void {
    this.#started.inc({ action });
  }

  ended(action: string, result: OperationEnd, durationMs?: number): void {
    this.#operations.inc({ action, result });
    if (durationMs !== undefined) this.#duration.observe({ action, result }, Math.max(0, durationMs) / 1000);
  }
}
