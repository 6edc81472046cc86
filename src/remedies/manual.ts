// `kubenode-agent remedy ACTION`: one remedy run by a person, through the same gate and record
// as the engine's. --dry-run prints the whole decision path and touches nothing.
import { Value } from '@sinclair/typebox/value';
import type { Logger } from 'pino';
import { setup } from '../cli/setup.ts';
import type { CommonOptions } from '../cli/common.ts';
import { errorMessage, UsageError } from '../errors.ts';
import { actions, findAction } from './actions/index.ts';
import { RemediesConfig } from './config.ts';
import { describePath } from './gate/index.ts';
import { createKubeApi, type KubeApi } from './kube-api.ts';
import { createRemedies } from './setup.ts';

export interface ManualOptions extends CommonOptions {
  dryRun?: boolean;
  reason?: string;
  kubeconfig?: string;
  nodeName?: string;
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

/** Returns the exit code: 0 done (or a dry run that would be allowed), 1 denied, not needed or failed. */
export async function runManualRemedy(actionName: string, o: ManualOptions, log: Logger, write: (text: string) => void): Promise<number> {
  const action = findAction(actionName);
  if (action === undefined) throw new UsageError(`unknown action ${JSON.stringify(actionName)}; one of: ${Object.keys(actions).join(', ')}`);
  const params = parseParams(o.param ?? []);
  const s = await setup(o);
  const nodeName = o.nodeName ?? s.nodeName;
  const raw = (s.config as { remedies?: unknown }).remedies ?? {};
  const config = Value.Default(RemediesConfig, structuredClone(raw)) as RemediesConfig;
  let kube: KubeApi | undefined;
  if (o.kubeconfig !== undefined) kube = await createKubeApi({ kubeconfig: o.kubeconfig });
  try {
    const bootId = (await s.host.tryReadText('/proc/sys/kernel/random/boot_id'))?.trim() ?? 'unknown';
    const r = createRemedies({ host: s.host, config, stateDir: s.config.stateDir, nodeName, bootId, log, ...(kube === undefined ? {} : { kube }) });
    const reason = o.reason ?? 'manual';
    const lines: string[] = [];
    const report: Record<string, unknown> = { node: nodeName, action: action.name, risk: action.risk, reason, dryRun: o.dryRun === true };
    const plan = await action.plan(r.ctx, params);
    lines.push(`action   ${action.name} (${action.risk}) on ${nodeName}${kube === undefined ? ' [standalone]' : ''}`, `reason   ${reason}`, 'plan');
    for (const step of plan.steps) lines.push(`  - ${step}`);
    report.plan = plan;
    if (plan.blocked !== undefined) {
      write(`${lines.join('\n')}\nblocked  ${plan.blocked}\n`);
      throw new UsageError(`${action.name}: ${plan.blocked}`);
    }
    const needed = await action.stillNeeded(r.ctx, params).catch((err: unknown) => ({ needed: true, why: `re-check failed: ${errorMessage(err)}` }));
    lines.push(`needed   ${needed.needed ? 'yes' : 'no'}: ${needed.why}`);
    report.stillNeeded = needed;
    const operation = o.dryRun === true ? 'dry-run' : await r.recorder.create({ node: nodeName, problem: { conditionType: 'Manual', reason: 'Manual', message: reason }, action: action.name, params, risk: action.risk, step: 0, dryRun: false }, s.host.clock.now());
    const decision = await r.gate.decide({ node: nodeName, action: action.name, risk: action.risk, reason, operation }, { dryRun: o.dryRun === true });
    lines.push('gate');
    for (const line of describePath(decision)) lines.push(`  ${line}`);
    lines.push(`decision ${decision.allowed ? 'ALLOWED' : 'DENIED'} by ${decision.gate}`);
    report.gate = decision;
    const finish = (code: number): number => {
      report.exitCode = code;
      write(o.json === true ? `${JSON.stringify(report, null, 2)}\n` : `${lines.join('\n')}\n`);
      return code;
    };
    if (o.dryRun === true) return finish(decision.allowed && needed.needed ? 0 : 1);
    const now = s.host.clock.now();
    if (!decision.allowed) {
      await r.recorder.update(operation, { phase: 'Denied', gate: decision, endTime: now, message: 'denied by the risk gate' });
      return finish(1);
    }
    if (!needed.needed) {
      await r.recorder.update(operation, { phase: 'Skipped', gate: decision, result: 'NotNeeded', endTime: now, message: needed.why });
      await r.gate.release(operation);
      return finish(1);
    }
    await r.recorder.update(operation, { phase: 'Running', gate: decision, startTime: now, attempts: 1 });
    let result: { ok: boolean; message: string; rebooting?: boolean };
    try {
      result = await action.execute({ ...r.ctx, operation }, params);
    } catch (err) {
      result = { ok: false, message: errorMessage(err) };
    }
    lines.push(`result   ${result.ok ? 'ok' : 'FAILED'}: ${result.message}`, `record   ${operation}`);
    report.result = result;
    report.operation = operation;
    if (result.rebooting === true) {
      // The permit stays held through the reboot; the agent settles it after boot.
      await r.recorder.update(operation, { phase: 'Running', message: result.message });
      return finish(0);
    }
    await r.recorder.update(operation, { phase: result.ok ? 'Succeeded' : 'Failed', result: result.ok ? 'Fixed' : 'Error', endTime: s.host.clock.now(), message: result.message });
    await r.gate.release(operation);
    return finish(result.ok ? 0 : 1);
  } finally {
    kube?.close();
  }
}
