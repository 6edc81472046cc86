// Rules → escalation ladders. For each rule whose condition holds long enough, run the current
// step (asking the gate when it is disruptive), wait verifyAfter, and if the condition is still
// there repeat the step up to maxAttempts (cool-down between runs), then escalate; past the last
// step publish RemedyExhausted and tell a human.
import type { Logger } from 'pino';
import type { RemedyRule } from '../api/node-remedier.ts';
import { errorMessage } from '../errors.ts';
import type { Condition } from '../types.ts';
import { parseDuration } from '../util/duration.ts';
import { findAction } from './actions/index.ts';
import { afterBoot, clearIntent, readIntent } from './actions/reboot.ts';
import { uncordon } from './node-ops.ts';
import type { RemedyGate } from './gate/index.ts';
import type { RiskPolicyGate } from './gate/risk-policy.ts';
import type { RemedyMetrics } from './metrics.ts';
import type { OperationRecorder } from './record.ts';
import type { ActionContext } from './types.ts';

export interface EngineRule extends RemedyRule {
  /** NodeRemedier name, or "agent.yaml". */
  source: string;
  dryRun?: boolean;
}

export interface EngineDeps {
  ctx: ActionContext;
  gate: RemedyGate;
  /** For releasing stale permits at start-up; absent standalone. */
  policy?: RiskPolicyGate;
  recorder: OperationRecorder;
  /** Where runs are recorded while the primary (the apiserver) cannot be written: the state dir. */
  fallbackRecorder?: OperationRecorder;
  metrics?: RemedyMetrics;
  rules: () => Promise<EngineRule[]>;
  /** Receives the engine's own condition (RemedyExhausted), True or False, whenever it changes. */
  publish: (condition: Condition) => void;
  denyBackoffMs: number;
  denyBackoffMaxMs: number;
  rebootTimeoutMs: number;
  dryRun?: boolean;
}

type Phase = 'idle' | 'verifying' | 'rebooting' | 'exhausted';

interface Ladder {
  rule: string;
  step: number;
  attempts: number;
  phase: Phase;
  lastRunAt?: number;
  verifyAt?: number;
  nextAt?: number;
  operation?: string;
  holdsPermit?: boolean;
  denials?: number;
  renewedAt?: number;
}

export const EXHAUSTED = 'RemedyExhausted';

const dur = (text: string | undefined, fallback: number): number => (text === undefined ? fallback : (parseDuration(text) ?? fallback));

export class RemedyEngine {
  readonly #d: EngineDeps;
  readonly #log: Logger;
  readonly #file: string;
  /**
   * Cold start: a condition already True when the agent started counts its hold time from now, not
   * from its old transitionTime, so a restart (or a long outage of the agent) never turns a stale
   * problem into an immediate repair; it must hold for minDuration again while we watch.
   */
  readonly startedAt: number;
  #conditions: Condition[] = [];
  #ladders = new Map<string, Ladder>();
  #exhausted: string[] = [];
  #ticking: Promise<void> | undefined;
  #timer: Promise<void> | undefined;
  #abort = new AbortController();
  readonly #fallbackIds = new Set<string>();

  constructor(deps: EngineDeps) {
    this.#d = deps;
    this.#log = deps.ctx.log;
    this.#file = `${deps.ctx.stateDir.replace(/\/+$/, '')}/remedies/ladders.json`;
    this.startedAt = deps.ctx.host.clock.now();
  }

  /** The node's current conditions (ConditionStore.all()); acted on at the next tick. */
  observe(conditions: readonly Condition[]): void {
    this.#conditions = conditions.filter((c) => c.type !== EXHAUSTED).map((c) => ({ ...c }));
  }

  ladders(): ReadonlyMap<string, Readonly<Ladder>> {
    return this.#ladders;
  }

  /** Start-up: restore ladders, settle a reboot we asked for, hand back permits nobody is using. */
  async resume(): Promise<void> {
    const text = await this.#d.ctx.host.tryReadText(this.#file);
    if (text !== undefined) {
      try {
        for (const l of JSON.parse(text) as Ladder[]) this.#ladders.set(l.rule, l);
      } catch (err) {
        this.#log.warn({ err: errorMessage(err) }, 'Remedy ladder state is corrupt; starting clean');
      }
    }
    const keep = new Set<string>();
    const boot = await afterBoot(this.#d.ctx).catch((err: unknown) => {
      this.#log.error({ err: errorMessage(err) }, 'Cannot settle the reboot intent; will retry at the next start');
      return undefined;
    });
    const now = this.#d.ctx.host.clock.now();
    for (const l of this.#ladders.values()) {
      if (l.phase === 'rebooting' && boot?.state === 'rebooted' && boot.intent.operation === l.operation) {
        // The reboot happened: now verify the problem is gone, holding the permit until then.
        l.phase = 'verifying';
        l.verifyAt = now + ((await this.#stepOf(l))?.verifyAfterMs ?? 60_000);
        keep.add(l.operation);
        await this.#record(l.operation, { phase: 'Verifying', message: `rebooted; node Ready: ${boot.ready}; uncordon: ${boot.uncordon}` });
      } else if (l.phase === 'rebooting' && boot?.state === 'pending' && now - boot.intent.at < this.#d.rebootTimeoutMs && l.operation !== undefined) {
        keep.add(l.operation);
      } else if (l.phase === 'rebooting' && boot?.state === 'pending') {
        await this.#abandonReboot(l, now);
      } else if (l.phase === 'verifying' || l.phase === 'rebooting') {
        // The agent stopped mid-operation: count the attempt, drop the permit, wait out the cool-down.
        l.phase = 'idle';
        l.holdsPermit = false;
        if (l.operation !== undefined) await this.#record(l.operation, { phase: 'Failed', result: 'Error', endTime: now, message: 'agent restarted before the outcome was known' });
      }
    }
    if (boot?.state === 'rebooted') await clearIntent(this.#d.ctx);
    if (this.#d.policy !== undefined) {
      try {
        const released = await this.#d.policy.releaseHeldBy(this.#d.ctx.nodeName, keep);
        if (released.length > 0) this.#log.info({ operations: released }, 'Released RiskPolicy permits left from before the restart');
      } catch (err) {
        this.#log.warn({ err: errorMessage(err) }, 'Cannot release stale permits; they expire on their own');
      }
    }
    await this.#persist();
  }

  start(intervalMs: number): void {
    const loop = async (): Promise<void> => {
      while (!this.#abort.signal.aborted) {
        await this.tick().catch((err: unknown) => this.#log.error({ err: errorMessage(err) }, 'Remedy pass failed'));
        await this.#d.ctx.host.clock.sleep(intervalMs, this.#abort.signal).catch(() => undefined);
      }
    };
    this.#timer = loop();
  }

  async stop(): Promise<void> {
    this.#abort.abort(new Error('stopping'));
    await this.#timer;
    await this.#ticking;
  }

  /** One pass over every rule; passes never overlap. */
  tick(): Promise<void> {
    this.#ticking ??= this.#pass().finally(() => (this.#ticking = undefined));
    return this.#ticking;
  }

  async #stepOf(l: Ladder): Promise<{ action: string; params: Record<string, string>; cooldownMs: number; maxAttempts: number; verifyAfterMs: number } | undefined> {
    const rule = (await this.#d.rules()).find((r) => r.name === l.rule);
    const s = rule?.steps[l.step];
    if (s === undefined) return undefined;
    return { action: s.action, params: s.params ?? {}, cooldownMs: dur(s.cooldown, 300_000), maxAttempts: s.maxAttempts ?? 1, verifyAfterMs: dur(s.verifyAfter, 60_000) };
  }

  async #pass(): Promise<void> {
    const rules = await this.#d.rules();
    const now = this.#d.ctx.host.clock.now();
    for (const rule of rules) {
      try {
        await this.#rule(rule, now);
      } catch (err) {
        this.#log.error({ err: errorMessage(err), rule: rule.name }, 'Remedy rule failed');
      }
    }
    const exhausted = [...this.#ladders.values()].filter((l) => l.phase === 'exhausted').map((l) => l.rule).sort();
    if (exhausted.join(',') !== this.#exhausted.join(',')) {
      this.#exhausted = exhausted;
      this.#d.publish({
        type: EXHAUSTED,
        status: exhausted.length > 0 ? 'True' : 'False',
        reason: exhausted.length > 0 ? 'LadderExhausted' : 'NoExhaustedRule',
        message: exhausted.length > 0 ? `every step of ${exhausted.join(', ')} was tried and the problem remains; a person must look` : 'no remedy ladder is exhausted',
        transitionTime: now,
      });
    }
    await this.#persist();
  }

  async #rule(rule: EngineRule, now: number): Promise<void> {
    const reasons = rule.condition.reasons ?? [];
    const cond = this.#conditions.find((c) => c.type === rule.condition.type && c.status === (rule.condition.status ?? 'True') && (reasons.length === 0 || reasons.includes(c.reason)));
    let l = this.#ladders.get(rule.name);
    if (cond === undefined) {
      if (l === undefined) return;
      if (l.phase === 'verifying' && l.operation !== undefined) await this.#finish(l, rule, true, 'condition cleared', now);
      if (l.phase !== 'rebooting') {
        this.#ladders.delete(rule.name);
        this.#log.info({ rule: rule.name }, 'Problem gone; remedy ladder reset');
      }
      return;
    }
    if (l === undefined) {
      const heldSince = Math.max(cond.transitionTime, this.startedAt);
      if (now - heldSince < dur(rule.minDuration, 0)) return;
      l = { rule: rule.name, step: 0, attempts: 0, phase: 'idle' };
      this.#ladders.set(rule.name, l);
    }
    if (l.phase === 'rebooting' && now - (l.lastRunAt ?? now) >= this.#d.rebootTimeoutMs) {
      const op = l.operation;
      await this.#abandonReboot(l, now);
      if (op !== undefined) await this.#d.gate.release(op).catch(() => undefined);
      l.operation = undefined;
      this.#advance(l, rule);
    }
    if (l.phase === 'rebooting' || l.phase === 'exhausted') return;
    if (l.phase === 'verifying') {
      if (now < (l.verifyAt ?? 0)) {
        await this.#renew(l, now);
        return;
      }
      await this.#finish(l, rule, false, `${cond.type}/${cond.reason} still True after verifyAfter`, now);
    }
    const step = rule.steps[l.step];
    if (step === undefined) {
      l.phase = 'exhausted';
      this.#log.warn({ rule: rule.name, node: this.#d.ctx.nodeName }, 'Remedy ladder exhausted');
      await this.#d.recorder.event('Warning', 'RemedyExhausted', `rule ${rule.name} (${rule.source}): every step tried, ${cond.type}/${cond.reason} remains; a person must look`, now);
      return;
    }
    if (l.nextAt !== undefined && now < l.nextAt) return;
    await this.#run(l, rule, step, cond, now);
  }

  async #finish(l: Ladder, rule: EngineRule, fixed: boolean, message: string, now: number): Promise<void> {
    const step = rule.steps[l.step];
    const op = l.operation;
    l.phase = 'idle';
    l.operation = undefined;
    if (op !== undefined) {
      await this.#record(op, { phase: fixed ? 'Succeeded' : 'Failed', result: fixed ? 'Fixed' : 'NotFixed', endTime: now, message });
      if (l.holdsPermit === true) await this.#d.gate.release(op);
    }
    l.holdsPermit = false;
    if (step !== undefined) this.#d.metrics?.finished(step.action, fixed);
    if (!fixed) this.#advance(l, rule);
  }

  #advance(l: Ladder, rule: EngineRule): void {
    const step = rule.steps[l.step];
    if (step !== undefined && l.attempts >= (step.maxAttempts ?? 1)) {
      l.step += 1;
      l.attempts = 0;
      this.#log.info({ rule: rule.name, step: l.step }, 'Escalating to the next remedy step');
    }
  }

  async #run(l: Ladder, rule: EngineRule, step: EngineRule['steps'][number], cond: Condition, now: number): Promise<void> {
    const ctx = this.#d.ctx;
    const action = findAction(step.action);
    const params = step.params ?? {};
    const dryRun = this.#d.dryRun === true || rule.dryRun === true;
    const cooldownMs = dur(step.cooldown, 300_000);
    const risk = action?.risk ?? 'disruptive';
    const input = { node: ctx.nodeName, problem: { conditionType: cond.type, reason: cond.reason, message: cond.message, since: cond.transitionTime }, action: step.action, params, risk, rule: rule.name, ...(rule.source === 'agent.yaml' ? {} : { remedier: rule.source }), step: l.step, dryRun };
    let id: string;
    try {
      id = await this.#d.recorder.create(input, now);
    } catch (err) {
      // The apiserver is away: record locally and go on, so safe repairs still run (the gate refuses the rest).
      if (this.#d.fallbackRecorder === undefined) throw err;
      this.#log.warn({ err: errorMessage(err) }, 'Cannot create RemedyOperation; recording in the state dir');
      id = await this.#d.fallbackRecorder.create(input, now);
      this.#fallbackIds.add(id);
    }
    const rlog = this.#log.child({ remedy: step.action, rule: rule.name, operation: id });
    if (action === undefined) {
      await this.#record(id, { phase: 'Failed', result: 'Error', endTime: now, message: `unknown action ${step.action}` });
      l.attempts = step.maxAttempts ?? 1;
      this.#advance(l, rule);
      return;
    }
    const actx: ActionContext = { ...ctx, operation: id };
    const needed = await action.stillNeeded(actx, params).catch((err: unknown) => ({ needed: true, why: `re-check failed (${errorMessage(err)}); acting` }));
    if (!needed.needed) {
      // Someone (or something) already did it: give it verifyAfter to show, like a run of ours.
      await this.#record(id, { phase: 'Skipped', result: 'NotNeeded', endTime: now, message: needed.why });
      l.phase = 'verifying';
      l.verifyAt = now + dur(step.verifyAfter, 60_000);
      l.attempts += 1;
      l.lastRunAt = now;
      return;
    }
    const decision = await this.#d.gate.decide({ node: ctx.nodeName, action: action.name, risk: action.risk, reason: `${cond.type}/${cond.reason}`, operation: id }, { dryRun });
    if (!decision.allowed) {
      const denials = (l.denials ?? 0) + 1;
      // Jitter spreads agents denied together so they do not all come back in the same instant.
      const backoff = Math.round(Math.min(this.#d.denyBackoffMs * 2 ** Math.min(denials - 1, 20), this.#d.denyBackoffMaxMs) * (0.75 + Math.random() * 0.5));
      l.denials = denials;
      l.nextAt = now + backoff;
      const why = decision.path.filter((s) => !s.allowed).map((s) => s.reason).join('; ');
      await this.#record(id, { phase: 'Denied', gate: decision, endTime: now, message: `${why}; retry in ${Math.round(backoff / 1000)}s` });
      await this.#d.recorder.event('Warning', 'RemedyDenied', `${action.name} for ${cond.type}/${cond.reason} denied by the ${decision.gate} gate: ${why}`, now);
      rlog.info({ decision: 'denied', gate: decision.gate }, 'Risk gate denied the remedy');
      return;
    }
    l.denials = 0;
    if (dryRun) {
      const plan = await action.plan(actx, params);
      await this.#record(id, { phase: 'Skipped', gate: decision, result: 'DryRun', endTime: now, message: `dry run: ${plan.steps.join('; ')}` });
      l.nextAt = now + cooldownMs;
      return;
    }
    const holdsPermit = action.risk === 'disruptive';
    await this.#record(id, { phase: 'Running', gate: decision, startTime: now, attempts: l.attempts + 1 });
    this.#d.metrics?.attempted(action.name);
    rlog.info({ decision: 'allowed', gate: decision.gate }, 'Running remedy');
    let result: { ok: boolean; message: string; rebooting?: boolean };
    try {
      result = await action.execute(actx, params);
    } catch (err) {
      result = { ok: false, message: errorMessage(err) };
    }
    const end = ctx.host.clock.now();
    l.attempts += 1;
    l.lastRunAt = now;
    l.nextAt = now + cooldownMs;
    l.operation = id;
    l.holdsPermit = holdsPermit;
    if (result.rebooting === true) {
      l.phase = 'rebooting';
      await this.#record(id, { phase: 'Running', message: result.message });
      await this.#persist();
      return;
    }
    if (!result.ok) {
      await this.#record(id, { phase: 'Failed', result: 'Error', endTime: end, message: result.message });
      if (holdsPermit) await this.#d.gate.release(id);
      l.holdsPermit = false;
      l.operation = undefined;
      this.#d.metrics?.finished(action.name, false);
      rlog.warn({ err: result.message }, 'Remedy failed');
      this.#advance(l, rule);
      return;
    }
    l.phase = 'verifying';
    l.verifyAt = end + dur(step.verifyAfter, 60_000);
    await this.#record(id, { phase: 'Verifying', message: result.message });
  }

  /**
   * systemctl reboot said yes but the machine never went down: undo our cordon, drop the intent,
   * count the attempt as failed. The permit is released by the caller (or by resume's sweep).
   */
  async #abandonReboot(l: Ladder, now: number): Promise<void> {
    const intent = await readIntent(this.#d.ctx);
    let undone = 'nothing to undo';
    if (intent?.cordonedHere === true && this.#d.ctx.kube !== undefined) {
      undone = await uncordon(this.#d.ctx.kube, this.#d.ctx.nodeName).catch((err: unknown) => `uncordon failed: ${errorMessage(err)}`);
    }
    await clearIntent(this.#d.ctx);
    if (l.operation !== undefined) await this.#record(l.operation, { phase: 'Failed', result: 'Error', endTime: now, message: `reboot did not happen within ${Math.round(this.#d.rebootTimeoutMs / 1000)}s; uncordon: ${undone}` });
    this.#log.error({ operation: l.operation, node: this.#d.ctx.nodeName }, 'Requested reboot did not happen; undone');
    l.phase = 'idle';
    l.holdsPermit = false;
  }

  /** A permit outlives a long verifyAfter only if renewed; at most once a minute per ladder. */
  async #renew(l: Ladder, now: number): Promise<void> {
    if (l.holdsPermit !== true || l.operation === undefined || now - (l.renewedAt ?? l.lastRunAt ?? now) < 60_000) return;
    l.renewedAt = now;
    try {
      await this.#d.gate.renew(l.operation);
    } catch (err) {
      this.#log.warn({ err: errorMessage(err), operation: l.operation }, 'Cannot renew RiskPolicy permit');
    }
  }

  /** Records are best effort once the operation exists: a failed write must not strand a permit or a ladder. */
  async #record(id: string, update: Parameters<OperationRecorder['update']>[1]): Promise<void> {
    try {
      await (this.#fallbackIds.has(id) ? (this.#d.fallbackRecorder as OperationRecorder) : this.#d.recorder).update(id, update);
    } catch (err) {
      this.#log.warn({ err: errorMessage(err), operation: id, phase: update.phase }, 'Cannot record remedy operation status');
    }
  }

  async #persist(): Promise<void> {
    try {
      await this.#d.ctx.host.writeFileAtomic(this.#file, JSON.stringify([...this.#ladders.values()]), 0o600);
    } catch (err) {
      this.#log.error({ err: errorMessage(err) }, 'Cannot persist remedy ladders');
    }
  }
}
