// The one risk gate: built the same way for the daemon, `remedy` and `apply` by hand, so all of
// them spend one local budget and, with a cluster, ask the same RiskPolicy objects.
import type { Logger } from 'pino';
import type { Host } from '../host/host.ts';
import type { RiskConfig } from './config.ts';
import { localStage, policyStage, RiskGate, stormStage, webhookStage, type GateStage, type StormReader } from './gate.ts';
import { LocalBudget } from './local-budget.ts';
import type { RiskMetrics } from './metrics.ts';
import { RiskPolicyClient, type PolicyKube } from './policy.ts';

export interface RiskGateSetup {
  host: Host;
  config: RiskConfig;
  stateDir: string;
  log: Logger;
  /** Cluster access: RiskPolicy permits are asked for after the local budget. */
  kube?: PolicyKube;
  metrics?: RiskMetrics;
}

export function createRiskGate(s: RiskGateSetup): RiskGate {
  const c = s.config;
  const log = s.log.child({ component: 'risk-gate' });
  const budget = new LocalBudget(s.host, s.stateDir, { maxDisruptive: c.local.maxDisruptive, windowMs: c.local.window }, log);
  const policy = s.kube === undefined ? undefined : new RiskPolicyClient(s.kube, s.host.clock, log);
  // The storm breaker first: a tripped rule is refused before it takes a local grant or a cluster permit.
  const stages: GateStage[] = [
    ...(s.kube === undefined ? [] : [stormStage(remedierStorm(s.kube))]),
    localStage(budget),
    ...(policy === undefined ? [] : [policyStage(policy)]),
    ...(c.webhook.url === '' ? [] : [webhookStage(s.host, { url: c.webhook.url, timeoutMs: c.webhook.timeout, caFile: c.webhook.caFile, failOpen: c.webhook.failOpen })]),
  ];
  return new RiskGate({ host: s.host, log, stages, ...(policy === undefined ? {} : { policy }), ...(s.metrics === undefined ? {} : { metrics: s.metrics }) });
}

/** The storm breaker as the apiserver has it: one GET of the NodeRemedier per disruptive decision. */
export function remedierStorm(kube: PolicyKube): StormReader {
  return async (name) => {
    const r = await kube.request<{ status?: { stormBreaker?: { state?: 'Open' | 'Closed'; trippedAt?: string; reason?: string } } }>('GET', `/apis/kubenode.io/v1alpha1/noderemediers/${encodeURIComponent(name)}`);
    const b = r.status?.stormBreaker;
    return { state: b?.state ?? 'Closed', ...(b?.trippedAt === undefined ? {} : { trippedAt: b.trippedAt }), ...(b?.reason === undefined ? {} : { reason: b.reason }) };
  };
}
