// Builds the remedy engine, its operation sequence and recorder from the agent configuration,
// around the one risk gate (built by the caller, shared with the installers).
import type { Logger } from 'pino';
import type { NodeRemedierSpec } from '../api/node-remedier.ts';
import { errorMessage } from '../errors.ts';
import type { Host } from '../host/host.ts';
import type { RiskGate } from '../risk/gate.ts';
import { selectorMatches } from '../risk/policy.ts';
import type { Condition } from '../types.ts';
import type { RemediesConfig } from './config.ts';
import { RemedyEngine, type EngineRule } from './engine.ts';
import type { KubeApi } from './kube-api.ts';
import type { RemedyMetrics } from './metrics.ts';
import type { NodeObject } from './node-ops.ts';
import { RemedyOperations } from './operation.ts';
import { ClusterRecorder, FallbackRecorder, StateDirRecorder, type OperationRecorder } from './record.ts';
import type { ActionContext } from './types.ts';

export interface RemediesSetup {
  host: Host;
  config: RemediesConfig;
  stateDir: string;
  nodeName: string;
  bootId: string;
  log: Logger;
  gate: RiskGate;
  kube?: KubeApi;
  metrics?: RemedyMetrics;
  /** Replaces the recorder (a dry run by hand records nothing). */
  recorder?: OperationRecorder;
  publish?: (condition: Condition) => void;
}

export interface Remedies {
  ctx: ActionContext;
  gate: RiskGate;
  operations: RemedyOperations;
  engine: RemedyEngine;
}

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
      commandTimeoutMs: c.commandTimeout,
      drainTimeoutMs: c.drainTimeout,
      cleanPaths: c.cleanPaths.map((p) => ({ path: p.path, olderThanMs: p.olderThan })),
      journalMaxSize: c.journalMaxSize,
    },
    ...(s.kube === undefined ? {} : { kube: s.kube }),
  };
  const recorder: OperationRecorder =
    s.recorder ??
    (s.kube === undefined ? new StateDirRecorder(s.host, s.stateDir, log) : new FallbackRecorder(new ClusterRecorder(s.kube, s.nodeName, log), new StateDirRecorder(s.host, s.stateDir, log), log));
  const operations = new RemedyOperations({ ctx, gate: s.gate, recorder, log, ...(s.metrics === undefined ? {} : { metrics: s.metrics }) });
  const local: EngineRule[] = c.rules.map((r) => ({ ...r, source: 'agent.yaml' }));
  let cached: { at: number; rules: EngineRule[] } | undefined;
  const resyncMs = c.rulesResync;
  const rules = async (): Promise<EngineRule[]> => {
    if (s.kube === undefined) return local;
    const now = s.host.clock.now();
    if (cached !== undefined && now - cached.at < resyncMs) return cached.rules;
    try {
      const node = await s.kube.request<NodeObject>('GET', `/api/v1/nodes/${encodeURIComponent(s.nodeName)}`);
      const list = await s.kube.request<{ items: { metadata: { name: string }; spec: NodeRemedierSpec; status?: { stormBreaker?: { state?: string } } }[] }>('GET', '/apis/kubenode.io/v1alpha1/noderemediers');
      // A tripped storm breaker stops the rule's safe steps too (the gate refuses its disruptive ones).
      const fromCluster = list.items
        .filter((r) => r.spec.paused !== true && r.status?.stormBreaker?.state !== 'Open' && selectorMatches(r.spec.nodeSelector, node.metadata.labels ?? {}))
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
    gate: s.gate,
    operations,
    rules,
    publish: s.publish ?? (() => undefined),
    denyBackoffMs: c.denyBackoff,
    denyBackoffMaxMs: c.denyBackoffMax,
    rebootTimeoutMs: c.rebootTimeout,
    dryRun: c.dryRun,
  });
  return { ctx, gate: s.gate, operations, engine };
}
