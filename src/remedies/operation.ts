// The one sequence every remedy runs, whether the engine chose it or a person typed it:
// record → re-check → gate → act → verify → record. The engine verifies later (the condition
// clears within verifyAfter), a person's run at once (the action's own check); both end in
// finish(), which records the result, hands the permit back and counts it.
import type { Logger } from 'pino';
import { errorMessage } from '../errors.ts';
import type { GateDecision, RiskGate } from '../risk/gate.ts';
import { findAction } from './actions/index.ts';
import type { OperationEnd, RemedyMetrics } from './metrics.ts';
import type { OperationInput, OperationRecorder, OperationUpdate } from './record.ts';
import type { ActionContext, ActionPlan, RemedyAction } from './types.ts';

export interface OperationRequest {
  action: string;
  params: Record<string, string>;
  problem: OperationInput['problem'];
  /** Why, for the gate and the webhook. */
  reason: string;
  rule?: string;
  remedier?: string;
  step: number;
  /** This is the attempt'th run of the step (recorded). */
  attempt: number;
  dryRun: boolean;
  /** When a denied request will be asked again, for the record; absent: not retried. */
  retryInMs?: number;
}

interface Started {
  id: string;
  action: RemedyAction;
  decision: GateDecision;
  startedAt: number;
}

export type OperationOutcome =
  | { kind: 'unknown-action'; id: string; message: string }
  | { kind: 'not-needed'; id: string; action: RemedyAction; why: string }
  | { kind: 'denied'; id: string; action: RemedyAction; decision: GateDecision; needed: { needed: boolean; why: string }; why: string }
  | { kind: 'dry-run'; id: string; action: RemedyAction; decision: GateDecision; needed: { needed: boolean; why: string }; plan: ActionPlan }
  | (Started & { kind: 'failed'; message: string })
  /** The machine is going down; the permit stays held and the outcome is settled after boot. */
  | (Started & { kind: 'rebooting'; message: string })
  /** The action ran; its verification is pending: finish() says how it ended. */
  | (Started & { kind: 'acted'; message: string; holdsPermit: boolean });

export interface OperationDeps {
  ctx: ActionContext;
  gate: RiskGate;
  recorder: OperationRecorder;
  log: Logger;
  metrics?: RemedyMetrics;
}

export class RemedyOperations {
  readonly #d: OperationDeps;

  constructor(deps: OperationDeps) {
    this.#d = deps;
  }

  get recorder(): OperationRecorder {
    return this.#d.recorder;
  }

  async run(req: OperationRequest): Promise<OperationOutcome> {
    const { ctx, gate, recorder } = this.#d;
    const now = ctx.host.clock.now();
    const action = findAction(req.action);
    const input: OperationInput = {
      node: ctx.nodeName,
      problem: req.problem,
      action: req.action,
      params: req.params,
      risk: action?.risk ?? 'disruptive',
      step: req.step,
      dryRun: req.dryRun,
      ...(req.rule === undefined ? {} : { rule: req.rule }),
      ...(req.remedier === undefined ? {} : { remedier: req.remedier }),
    };
    const id = await recorder.create(input, now);
    if (action === undefined) {
      const message = `unknown action ${req.action}: not one this agent version can run`;
      await this.record(id, { phase: 'Failed', result: 'Error', endTime: now, message });
      this.#count(req.action, 'error');
      return { kind: 'unknown-action', id, message };
    }
    const actx: ActionContext = { ...ctx, operation: id };
    const needed = await action.stillNeeded(actx, req.params).catch((err: unknown) => ({ needed: true, why: `re-check failed (${errorMessage(err)}); acting` }));
    if (!needed.needed && !req.dryRun) {
      // Someone (or something) already did it: nothing to ask the gate for.
      await this.record(id, { phase: 'Skipped', result: 'NotNeeded', endTime: now, message: needed.why });
      this.#count(action.name, 'not_needed');
      return { kind: 'not-needed', id, action, why: needed.why };
    }
    const decision = await gate.decide({ node: ctx.nodeName, action: action.name, risk: action.risk, reason: req.reason, operation: id, ...(req.remedier === undefined ? {} : { remedier: req.remedier }) }, { dryRun: req.dryRun });
    const rlog = this.#d.log.child({ remedy: action.name, operation: id, ...(req.rule === undefined ? {} : { rule: req.rule }) });
    if (!decision.allowed) {
      const why = decision.path.filter((s) => !s.allowed).map((s) => s.reason).join('; ');
      const retry = req.retryInMs === undefined ? '' : `; retry in ${Math.round(req.retryInMs / 1000)}s`;
      await this.record(id, { phase: 'Denied', gate: decision, endTime: now, message: `${why}${retry}` });
      if (!req.dryRun) await recorder.event('Warning', 'RemedyDenied', `${action.name} for ${req.problem.conditionType}/${req.problem.reason} denied by the ${decision.gate} gate: ${why}`, now);
      this.#count(action.name, 'denied');
      rlog.info({ decision: 'denied', gate: decision.gate }, 'Risk gate denied the remedy');
      return { kind: 'denied', id, action, decision, needed, why };
    }
    if (req.dryRun) {
      const plan = await action.plan(actx, req.params);
      await this.record(id, { phase: 'Skipped', gate: decision, result: 'DryRun', endTime: now, message: `dry run: ${plan.steps.join('; ')}` });
      this.#count(action.name, 'dry_run');
      return { kind: 'dry-run', id, action, decision, needed, plan };
    }
    await this.record(id, { phase: 'Running', gate: decision, startTime: now, attempts: req.attempt });
    rlog.info({ decision: 'allowed', gate: decision.gate }, 'Running remedy');
    this.#d.metrics?.started(action.name);
    let result: { ok: boolean; message: string; rebooting?: boolean };
    try {
      result = await action.execute(actx, req.params);
    } catch (err) {
      result = { ok: false, message: errorMessage(err) };
    }
    const started = { id, action, decision, startedAt: now };
    if (result.rebooting === true) {
      await this.record(id, { phase: 'Running', message: result.message });
      return { ...started, kind: 'rebooting', message: result.message };
    }
    if (!result.ok) {
      const end = ctx.host.clock.now();
      await this.record(id, { phase: 'Failed', result: 'Error', endTime: end, message: result.message });
      if (action.risk === 'disruptive') await gate.release(id);
      this.#count(action.name, 'error', end - now);
      rlog.warn({ err: result.message }, 'Remedy failed');
      return { ...started, kind: 'failed', message: result.message };
    }
    await this.record(id, { phase: 'Verifying', message: result.message });
    return { ...started, kind: 'acted', message: result.message, holdsPermit: action.risk === 'disruptive' };
  }

  /** The verified end of an operation that acted (or whose reboot came back). */
  async finish(id: string, action: string, outcome: { fixed: boolean; message: string; startedAt?: number; holdsPermit: boolean }): Promise<void> {
    const end = this.#d.ctx.host.clock.now();
    await this.record(id, { phase: outcome.fixed ? 'Succeeded' : 'Failed', result: outcome.fixed ? 'Fixed' : 'NotFixed', endTime: end, message: outcome.message });
    if (outcome.holdsPermit) await this.#d.gate.release(id);
    this.#count(action, outcome.fixed ? 'fixed' : 'not_fixed', outcome.startedAt === undefined ? undefined : end - outcome.startedAt);
  }

  /** An operation that ended without a verified outcome (the agent restarted, a reboot never happened). */
  async fail(id: string, action: string, message: string, startedAt?: number): Promise<void> {
    const end = this.#d.ctx.host.clock.now();
    await this.record(id, { phase: 'Failed', result: 'Error', endTime: end, message });
    this.#count(action, 'error', startedAt === undefined ? undefined : end - startedAt);
  }

  /** Records are best effort once the operation exists: a failed write must not strand a permit or a ladder. */
  async record(id: string, update: OperationUpdate): Promise<void> {
    try {
      await this.#d.recorder.update(id, update);
    } catch (err) {
      this.#d.log.warn({ err: errorMessage(err), operation: id, phase: update.phase }, 'Cannot record remedy operation status');
    }
  }

  #count(action: string, result: OperationEnd, durationMs?: number): void {
    this.#d.metrics?.ended(action, result, durationMs);
  }
}
