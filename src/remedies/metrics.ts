import { Counter, Gauge, type Registry } from 'prom-client';

/** Remedy and gate metrics, registered on the agent's registry (AgentMetrics.registry). */
export class RemedyMetrics {
  readonly #attempts: Counter;
  readonly #results: Counter;
  readonly #gate: Counter;
  readonly #permits: Gauge;

  constructor(registry: Registry) {
    const registers = [registry];
    this.#attempts = new Counter({ name: 'kubenode_remedy_attempts_total', help: 'Remedy actions started (after the gate allowed them).', labelNames: ['action'], registers });
    this.#results = new Counter({ name: 'kubenode_remedy_results_total', help: 'Remedy actions finished, by result (succeeded: the problem cleared; failed: it did not, or the action failed).', labelNames: ['action', 'result'], registers });
    this.#gate = new Counter({ name: 'kubenode_remedy_gate_decisions_total', help: 'Risk gate answers, by gate and outcome.', labelNames: ['gate', 'outcome'], registers });
    this.#permits = new Gauge({ name: 'kubenode_remedy_permits_held', help: 'RiskPolicy permits this agent holds now.', registers });
  }

  attempted(action: string): void {
    this.#attempts.inc({ action });
  }

  finished(action: string, succeeded: boolean): void {
    this.#results.inc({ action, result: succeeded ? 'succeeded' : 'failed' });
  }

  gateDecision(gate: string, allowed: boolean): void {
    this.#gate.inc({ gate, outcome: allowed ? 'allowed' : 'denied' });
  }

  setPermitsHeld(n: number): void {
    this.#permits.set(n);
  }
}

export function registerRemedyMetrics(registry: Registry): RemedyMetrics {
  return new RemedyMetrics(registry);
}
