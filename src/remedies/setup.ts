// Builds the remedy engine, gate and recorder from the agent configuration (and a kube client in a cluster).
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { NodeRemedierSpec } from '../api/node-remedier.ts';
import { errorMessage } from '../errors.ts';
import type { Host } from '../host/host.ts';
import type { Condition } from '../types.ts';
import { parseDuration } from '../util/duration.ts';
import type { RemediesConfig } from './config.ts';
import { RemedyEngine, type EngineRule } from './engine.ts';
import { RemedyGate } from './gate/index.ts';
import { LocalBudget } from './gate/local-budget.ts';
import { RiskPolicyGate, selectorMatches } from './gate/risk-policy.ts';
import type { KubeApi } from './kube-api.ts';
import { registerRemedyMetrics, type RemedyMetrics } from './metrics.ts';
import type { NodeObject } from './node-ops.ts';
import { ClusterRecorder, StateDirRecorder, type OperationRecorder } from './record.ts';
import type { ActionContext } from './types.ts';

export interface RemediesSetup {
  host: Host;
  config: RemediesConfig;
  stateDir: string;
  nodeName: string;
  bootId: string;
  log: Logger;
  kube?: KubeApi;
  registry?: Registry;
  publish?: (condition: Condition) => void;
}

export interface Remedies {
  ctx: ActionContext;
  gate: RemedyGate;
  policy?: RiskPolicyGate;
  recorder: OperationRecorder;
  engine: RemedyEngine;
  metrics?: RemedyMetrics;
}

const ms = (text: string, fallback: number): number => parseDuration(text) ?? fallback;

export function createRemedies(s: RemediesSetup): Remedies {
  const c = s.config;
  const log = s.log;
  const ctx: ActionContext = {
    host: s.host,
    log,
    nodeName: s.nodeName,
    stateDir: s.stateDir,
    bootId: s.bootId,
    settings: {
      commandTimeoutMs: ms(c.commandTimeout, 120_000),
      drainTimeoutMs: ms(c.drainTimeout, 300_000),
      cleanPaths: c.cleanPaths.map((p) => ({ path: p.path, olderThanMs: ms(p.olderThan, 72 * 3_600_000) })),
      journalMaxSize: c.journalMaxSize,
    },
    ...(s.kube === undefined ? {} : { kube: s.kube }),
  };
  const metrics = s.registry === undefined ? undefined : registerRemedyMetrics(s.registry);
  const policy = s.kube === undefined ? undefined : new RiskPolicyGate(s.kube, s.host.clock, log.child({ component: 'risk-policy' }));
  const gate = new RemedyGate({
    host: s.host,
    log,
    local: new LocalBudget(s.host, s.stateDir, { maxDisruptive: c.gate.local.maxDisruptive, windowMs: ms(c.gate.local.window, 3_600_000) }),
    ...(policy === undefined ? {} : { policy }),
    ...(c.gate.webhook.url === '' ? {} : { webhook: { url: c.gate.webhook.url, timeoutMs: ms(c.gate.webhook.timeout, 5000), caFile: c.gate.webhook.caFile, failOpen: c.gate.webhook.failOpen } }),
    ...(metrics === undefined ? {} : { metrics }),
  });
  const recorder: OperationRecorder = s.kube === undefined ? new StateDirRecorder(s.host, s.stateDir, log) : new ClusterRecorder(s.kube, s.nodeName, log);
  const local: EngineRule[] = c.rules.map((r) => ({ ...r, source: 'agent.yaml' }));
  let cached: { at: number; rules: EngineRule[] } | undefined;
  const resyncMs = ms(c.rulesResync, 60_000);
  const rules = async (): Promise<EngineRule[]> => {
    if (s.kube === undefined) return local;
    const now = s.host.clock.now();
    if (cached !== undefined && now - cached.at < resyncMs) return cached.rules;
    try {
      const node = await s.kube.request<NodeObject>('GET', `/api/v1/nodes/${encodeURIComponent(s.nodeName)}`);
      const list = await s.kube.request<{ items: { metadata: { name: string }; spec: NodeRemedierSpec }[] }>('GET', '/apis/kubenode.io/v1alpha1/noderemediers');
      const fromCluster = list.items
        .filter((r) => r.spec.paused !== true && selectorMatches(r.spec.nodeSelector, node.metadata.labels ?? {}))
        .flatMap((r) => r.spec.rules.map((rule) => ({ ...rule, name: `${r.metadata.name}/${rule.name}`, source: r.metadata.name, dryRun: r.spec.dryRun })));
      cached = { at: now, rules: [...local, ...fromCluster] };
    } catch (err) {
      // Keep the last rules we knew: an apiserver outage must not forget a ladder half-way.
      log.warn({ err: errorMessage(err) }, 'Cannot read NodeRemediers; keeping the last known rules');
    }
    return cached?.rules ?? local;
  };
  const engine = new RemedyEngine({
    ctx,
    gate,
    ...(policy === undefined ? {} : { policy }),
    recorder,
    ...(s.kube === undefined ? {} : { fallbackRecorder: new StateDirRecorder(s.host, s.stateDir, log) }),
    ...(metrics === undefined ? {} : { metrics }),
    rules,
    publish: s.publish ?? (() => undefined),
    denyBackoffMs: ms(c.denyBackoff, 30_000),
    denyBackoffMaxMs: ms(c.denyBackoffMax, 600_000),
    rebootTimeoutMs: ms(c.rebootTimeout, 900_000),
    dryRun: c.dryRun,
  });
  return { ctx, gate, ...(policy === undefined ? {} : { policy }), recorder, engine, ...(metrics === undefined ? {} : { metrics }) };
}
