// `kubenode-agent remedy ACTION`: one remedy run by a person, through the same gate and record
// as the engine's. --dry-run prints the whole decision path and touches nothing.
import type { HostOptions } from '../bootstrap.ts';
import type { Host } from '../host/host.ts';
import type { Logger } from '../log.ts';
import type { RiskConfig } from '../risk/config.ts';
import type { RemediesConfig } from './config.ts';
import { UsageError } from '../errors.ts';
import { describePath } from '../risk/gate.ts';
import { createRiskGate } from '../risk/index.ts';
import { actions, findAction } from './actions/index.ts';
import { createKubeApi, type KubeApi } from './kube-api.ts';
import { noRecord } from './record.ts';
import { createRemedies } from './setup.ts';

export interface ManualOptions extends HostOptions {
  dryRun?: boolean;
  reason?: string;
  kubeconfig?: string;
  param?: string[];
  json?: boolean;
}

function parseParams(list: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new UsageError(`--param: expected KEY=VALUE, got ${JSON.stringify(item)}`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

/**
 * How a run by hand ended: done, rebooting, would-run (a dry run the gate allows), not-needed, denied,
 * failed, or blocked (the plan refused the params or the node).
 */
export type ManualVerdict = 'done' | 'rebooting' | 'would-run' | 'not-needed' | 'denied' | 'failed' | 'blocked';

export interface ManualResult {
  action: string;
  verdict: ManualVerdict;
  /** The decision path, one line each, as a person reads it. */
  lines: string[];
  /** The same for --json. */
  report: Record<string, unknown>;
  /** Why the plan refused, when blocked. */
  blocked?: string;
}

/** What a remedy by hand needs of the command's bootstrap: the remedies' and the risk gate's slices. */
export interface ManualRemedySetup {
  host: Host;
  log: Logger;
  nodeName: string;
  stateDir: string;
  remedies: RemediesConfig;
  risk: RiskConfig;
}

export async function runManualRemedy(actionName: string, o: ManualOptions, s: ManualRemedySetup): Promise<ManualResult> {
  const log = s.log;
  const action = findAction(actionName);
  if (action === undefined) throw new UsageError(`unknown action ${JSON.stringify(actionName)}; one of: ${Object.keys(actions).join(', ')}`);
  const params = parseParams(o.param ?? []);
  const nodeName = s.nodeName;
  const config = s.remedies;
  const dryRun = o.dryRun === true;
  let kube: KubeApi | undefined;
  if (o.kubeconfig !== undefined) kube = await createKubeApi({ kubeconfig: o.kubeconfig });
  try {
    const bootId = (await s.host.tryReadText('/proc/sys/kernel/random/boot_id'))?.trim() ?? 'unknown';
    const gate = createRiskGate({ host: s.host, config: s.risk, stateDir: s.stateDir, log, ...(kube === undefined ? {} : { kube }) });
    const r = createRemedies({ host: s.host, config, stateDir: s.stateDir, nodeName, bootId, log, gate, ...(kube === undefined ? {} : { kube }), ...(dryRun ? { recorder: noRecord } : {}) });
    const reason = o.reason ?? 'manual';
    const lines: string[] = [];
    const report: Record<string, unknown> = { node: nodeName, action: action.name, risk: action.risk, reason, dryRun };
    const plan = await action.plan(r.ctx, params);
    lines.push(`action   ${action.name} (${action.risk}) on ${nodeName}${kube === undefined ? ' [standalone]' : ''}`, `reason   ${reason}`, 'plan');
    for (const step of plan.steps) lines.push(`  - ${step}`);
    report.plan = plan;
    const finish = (verdict: ManualVerdict): ManualResult => ({ action: action.name, verdict, lines, report });
    if (plan.blocked !== undefined) return { ...finish('blocked'), blocked: plan.blocked };
    const outcome = await r.operations.run({ action: action.name, params, problem: { conditionType: 'Manual', reason: 'Manual', message: reason }, reason, step: 0, attempt: 1, dryRun });
    const needed = outcome.kind === 'not-needed' ? { needed: false, why: outcome.why } : 'needed' in outcome ? outcome.needed : { needed: true, why: 'checked before acting' };
    lines.push(`needed   ${needed.needed ? 'yes' : 'no'}: ${needed.why}`);
    report.stillNeeded = needed;
    if ('decision' in outcome) {
      lines.push('gate');
      for (const line of describePath(outcome.decision)) lines.push(`  ${line}`);
      lines.push(`decision ${outcome.decision.allowed ? 'ALLOWED' : 'DENIED'} by ${outcome.decision.gate}`);
      report.gate = outcome.decision;
    }
    if (!dryRun) report.operation = outcome.id;
    switch (outcome.kind) {
      case 'unknown-action':
        throw new UsageError(outcome.message);
      case 'not-needed':
        lines.push(`record   ${outcome.id} (skipped: not needed)`);
        return finish('not-needed');
      case 'denied':
        if (!dryRun) lines.push(`record   ${outcome.id}`);
        return finish('denied');
      case 'dry-run':
        return finish(needed.needed ? 'would-run' : 'not-needed');
      case 'failed':
        lines.push(`result   FAILED: ${outcome.message}`, `record   ${outcome.id}`);
        report.result = { ok: false, message: outcome.message };
        return finish('failed');
      case 'rebooting':
        // The permit stays held through the reboot; the agent settles it after boot.
        lines.push(`result   ok: ${outcome.message}`, `record   ${outcome.id}`);
        report.result = { ok: true, message: outcome.message, rebooting: true };
        return finish('rebooting');
    }
    // A person's run is verified by the action's own check (a restarted unit is active, a node uncordoned).
    await r.operations.finish(outcome.id, action.name, { fixed: true, message: outcome.message, startedAt: outcome.startedAt, holdsPermit: outcome.holdsPermit });
    lines.push(`result   ok: ${outcome.message}`, `record   ${outcome.id}`);
    report.result = { ok: true, message: outcome.message };
    return finish('done');
  } finally {
    kube?.close();
  }
}
