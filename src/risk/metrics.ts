import { Counter, Gauge, type Registry } from 'prom-client';

/** The risk gate's metrics, registered once on the agent's registry (src/report/metrics.ts). */
export class RiskMetrics {
  readonly #decisions: Counter;
  readonly #permits: Gauge;

  constructor(registry: Registry) {
    const registers = [registry];
    this.#decisions = new Counter({ name: 'kubenode_risk_gate_decisions_total', help: 'Answers of each risk gate asked (local budget, RiskPolicy, webhook; none for safe actions), by decision.', labelNames: ['gate', 'decision'], registers });
    this.#permits = new Gauge({ name: 'kubenode_risk_permits_held', help: 'Disruptive operations of this agent holding RiskPolicy permits now.', registers });
  }

  decision(gate: string, allowed: boolean): void {
    this.#decisions.inc({ gate, decision: allowed ? 'allowed' : 'denied' });
  }

  setPermitsHeld(n: number): void {
    this.#permits.set(n);
  }
}
