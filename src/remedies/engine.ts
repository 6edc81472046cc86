// Rules → escalation ladders. For each rule whose condition holds long enough, run the current
// step (asking the gate when it is disruptive), wait verifyAfter, and if the condition is still
// there repeat the step up to maxAttempts (cool-down between runs), then escalate; past the last
// step publish RemedyExhausted and tell a human.
import { Type, type Static } from '@sinclair/typebox';
import type { Logger } from 'pino';
import type { RemedyRule } from '../api/node-remedier.ts';
import { errorMessage } from '../errors.ts';
import { removeTempSiblings } from '../host/files.ts';
import { readStateFile, removeStateTemps } from '../host/state-file.ts';
import type { RiskGate } from '../risk/gate.ts';
import type { Condition } from '../types.ts';
import { backoffDelay } from '../util/backoff.ts';
import { durationMs } from '../util/duration.ts';
import { afterBoot, clearIntent, intentFile, readIntent } from './actions/reboot.ts';
import { uncordon } from './node-ops.ts';
import type { RemedyOperations } from './operation.ts';
import { operationsDir } from './record.ts';
import type { ActionContext } from './types.ts';

export interface EngineRule extends RemedyRule {
  /** NodeRemedier name, or "agent.yaml". */
  source: string;
  dryRun?: boolean;
}

export interface EngineDeps {
  ctx: ActionContext;
  gate: RiskGate;
  /** The one remedy sequence, shared with `kubenode-agent remedy`. */
  operations: RemedyOperations;
  rules: () => Promise<EngineRule[]>;
  /** Receives the engine's own condition (RemedyExhausted), True or False, whenever it changes. */
  publish: (condition: Condition) => void;
  denyBackoffMs: number;
  denyBackoffMaxMs: number;
  rebootTimeoutMs: number;
  dryRun?: boolean;
}

const Ladder = Type.Object({
  rule: Type.String(),
  step: Type.Integer({ minimum: 0 }),
  attempts: Type.Integer({ minimum: 0 }),
  phase: Type.Union([Type.Literal('idle'), Type.Literal('verifying'), Type.Literal('rebooting'), Type.Literal('exhausted')]),
  lastRunAt: Type.Optional(Type.Number()),
  verifyAt: Type.Optional(Type.Number()),
  nextAt: Type.Optional(Type.Number()),
  operation: Type.Optional(Type.String()),
  /** The action of the operation in flight, for its metrics after a restart. */
  action: Type.Optional(Type.String()),
  holdsPermit: Type.Optional(Type.Boolean()),
  denials: Type.Optional(Type.Integer({ minimum: 0 })),
  renewedAt: Type.Optional(Type.Number()),
});
type Ladder = Static<typeof Ladder>;
const LadderFile = Type.Array(Ladder, { maxItems: 10_000 });

export const EXHAUSTED = 'RemedyExhausted';


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
  /** First seen, for conditions whose transitionTime lies in the future (the clock went back). */
  readonly #futureSince = new Map<string, number>();

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
    const { host, stateDir } = this.#d.ctx;
    // What a kill -9 in the middle of an atomic write left: ladders, the reboot intent, operation records.
    await Promise.all([removeStateTemps(host, this.#file), removeStateTemps(host, intentFile(stateDir)), removeTempSiblings(host, operationsDir(stateDir))]).catch((err: unknown) =>
      this.#log.warn({ err: errorMessage(err) }, 'Removing temporary files of interrupted writes failed'),
    );
    const read = await readStateFile(this.#d.ctx.host, this.#file, LadderFile);
    if (read.state === 'ok') for (const l of read.value) this.#ladders.set(l.rule, l);
    if (read.state === 'corrupt') {
      // Ladders restart at their first step; the risk gate's budget still bounds what that can do.
      this.#log.error({ file: this.#d.ctx.host.path(this.#file), err: read.reason, setAsideAs: read.setAsideAs }, 'Remedy ladder state is corrupt; set aside, ladders start clean');
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
        await this.#d.operations.record(l.operation, { phase: 'Verifying', message: `rebooted; node Ready: ${boot.ready}; uncordon: ${boot.uncordon}` });
      } else if (l.phase === 'rebooting' && boot?.state === 'pending' && now - boot.intent.at < this.#d.rebootTimeoutMs && l.operation !== undefined) {
        keep.add(l.operation);
      } else if (l.phase === 'rebooting' && boot?.state === 'pending') {
        await this.#abandonReboot(l);
      } else if (l.phase === 'verifying' || l.phase === 'rebooting') {
        // The agent stopped mid-operation: count the attempt, drop the permit, wait out the cool-down.
        l.phase = 'idle';
        l.holdsPermit = false;
        if (l.operation !== undefined) await this.#d.operations.fail(l.operation, l.action ?? 'unknown', 'agent restarted before the outcome was known', l.lastRunAt);
      }
    }
    if (boot?.state === 'rebooted') await clearIntent(this.#d.ctx);
    try {
      const released = await this.#d.gate.releaseStale(this.#d.ctx.nodeName, keep);
      if (released.length > 0) this.#log.info({ operations: released }, 'Released RiskPolicy permits left from before the restart');
    } catch (err) {
      this.#log.warn({ err: errorMessage(err) }, 'Cannot release stale permits; they expire on their own');
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
    return { action: s.action, params: s.params ?? {}, cooldownMs: durationMs(s.cooldown), maxAttempts: s.maxAttempts ?? 1, verifyAfterMs: durationMs(s.verifyAfter) };
  }

  async #pass(): Promise<void> {
    const rules = await this.#d.rules();
    const now = this.#d.ctx.host.clock.now();
    for (const rule of rules) {
      const l = this.#ladders.get(rule.name);
      if (l !== undefined) this.#undoFuture(l, rule, now);
    }
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
      if (l.phase === 'verifying' && l.operation !== undefined) await this.#finish(l, rule, true, 'condition cleared');
      if (l.phase !== 'rebooting') {
        this.#ladders.delete(rule.name);
        this.#log.info({ rule: rule.name }, 'Problem gone; remedy ladder reset');
      }
      return;
    }
    if (l === undefined) {
      const key = `${rule.name}/${cond.type}`;
      if (cond.transitionTime <= now) this.#futureSince.delete(key);
      else if (!this.#futureSince.has(key)) this.#futureSince.set(key, now);
      const heldSince = Math.max(this.#futureSince.get(key) ?? cond.transitionTime, this.startedAt);
      if (now - heldSince < durationMs(rule.minDuration)) return;
      l = { rule: rule.name, step: 0, attempts: 0, phase: 'idle' };
      this.#ladders.set(rule.name, l);
    }
    if (l.phase === 'rebooting' && now - (l.lastRunAt ?? now) >= this.#d.rebootTimeoutMs) {
      const op = l.operation;
      await this.#abandonReboot(l);
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
      await this.#finish(l, rule, false, `${cond.type}/${cond.reason} still True after verifyAfter`);
    }
    const step = rule.steps[l.step];
    if (step === undefined) {
      l.phase = 'exhausted';
      this.#log.warn({ rule: rule.name, node: this.#d.ctx.nodeName }, 'Remedy ladder exhausted');
      await this.#d.operations.recorder.event('Warning', 'RemedyExhausted', `rule ${rule.name} (${rule.source}): every step tried, ${cond.type}/${cond.reason} remains; a person must look`, now);
      return;
    }
    if (l.nextAt !== undefined && now < l.nextAt) return;
    await this.#run(l, rule, step, cond, now);
  }

  async #finish(l: Ladder, rule: EngineRule, fixed: boolean, message: string): Promise<void> {
    const op = l.operation;
    const action = l.action ?? rule.steps[l.step]?.action ?? 'unknown';
    l.phase = 'idle';
    l.operation = undefined;
    if (op !== undefined) await this.#d.operations.finish(op, action, { fixed, message, holdsPermit: l.holdsPermit === true, ...(l.lastRunAt === undefined ? {} : { startedAt: l.lastRunAt }) });
    l.holdsPermit = false;
    if (!fixed) this.#advance(l, rule);
  }

  /**
   * After the clock was stepped back, a ladder's times lie in the future: a cool-down or a
   * verification would wait for as long as the clock was wrong. Past events are taken as now;
   * waits are cut to the longest the ladder's current step could ask for.
   */
  #undoFuture(l: Ladder, rule: EngineRule, now: number): void {
    const step = rule.steps[l.step];
    const horizon = Math.max(
      this.#d.denyBackoffMaxMs * 1.25,
      step === undefined ? 0 : Math.max(durationMs(step.cooldown), durationMs(step.verifyAfter)),
      l.phase === 'rebooting' ? this.#d.rebootTimeoutMs : 0,
    );
    const moved: string[] = [];
    for (const k of ['lastRunAt', 'renewedAt'] as const) {
      const t = l[k];
      if (t !== undefined && t > now) {
        l[k] = now;
        moved.push(k);
      }
    }
    for (const k of ['nextAt', 'verifyAt'] as const) {
      const t = l[k];
      if (t !== undefined && t > now + horizon) {
        l[k] = now + horizon;
        moved.push(k);
      }
    }
    if (moved.length > 0) this.#log.warn({ rule: rule.name, fields: moved }, 'Remedy ladder times from the future discarded: the clock went back');
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
    const dryRun = this.#d.dryRun === true || rule.dryRun === true;
    const cooldownMs = durationMs(step.cooldown);
    const denials = (l.denials ?? 0) + 1;
    // Jitter spreads agents denied together so they do not all come back in the same instant.
    const backoff = backoffDelay(denials - 1, this.#d.denyBackoffMs, this.#d.denyBackoffMaxMs);
    const outcome = await this.#d.operations.run({
      action: step.action,
      params: step.params ?? {},
      problem: { conditionType: cond.type, reason: cond.reason, message: cond.message, since: cond.transitionTime },
      reason: `${cond.type}/${cond.reason}`,
      rule: rule.name,
      ...(rule.source === 'agent.yaml' ? {} : { remedier: rule.source }),
      step: l.step,
      attempt: l.attempts + 1,
      dryRun,
      retryInMs: backoff,
    });
    switch (outcome.kind) {
      case 'unknown-action':
        l.attempts = step.maxAttempts ?? 1;
        this.#advance(l, rule);
        return;
      case 'not-needed':
        // Someone (or something) already did it: give it verifyAfter to show, like a run of ours.
        l.phase = 'verifying';
        l.verifyAt = now + durationMs(step.verifyAfter);
        l.attempts += 1;
        l.lastRunAt = now;
        return;
      case 'denied':
        l.denials = denials;
        l.nextAt = now + backoff;
        return;
      case 'dry-run':
        l.denials = 0;
        l.nextAt = now + cooldownMs;
        return;
    }
    l.denials = 0;
    l.attempts += 1;
    l.lastRunAt = now;
    l.nextAt = now + cooldownMs;
    l.operation = outcome.id;
    l.action = outcome.action.name;
    l.holdsPermit = outcome.action.risk === 'disruptive';
    if (outcome.kind === 'rebooting') {
      l.phase = 'rebooting';
      await this.#persist();
      return;
    }
    if (outcome.kind === 'failed') {
      l.holdsPermit = false;
      l.operation = undefined;
      this.#advance(l, rule);
      return;
    }
    l.phase = 'verifying';
    l.verifyAt = this.#d.ctx.host.clock.now() + durationMs(step.verifyAfter);
  }

  /**
   * systemctl reboot said yes but the machine never went down: undo our cordon, drop the intent,
   * count the attempt as failed. The permit is released by the caller (or by resume's sweep).
   */
  async #abandonReboot(l: Ladder): Promise<void> {
    const intent = await readIntent(this.#d.ctx);
    let undone = 'nothing to undo';
    if (intent?.cordonedHere === true && this.#d.ctx.kube !== undefined) {
      undone = await uncordon(this.#d.ctx.kube, this.#d.ctx.nodeName).catch((err: unknown) => `uncordon failed: ${errorMessage(err)}`);
    }
    await clearIntent(this.#d.ctx);
    if (l.operation !== undefined) await this.#d.operations.fail(l.operation, l.action ?? 'reboot', `reboot did not happen within ${Math.round(this.#d.rebootTimeoutMs / 1000)}s; uncordon: ${undone}`, l.lastRunAt);
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

  async #persist(): Promise<void> {
    try {
      await this.#d.ctx.host.writeFileAtomic(this.#file, JSON.stringify([...this.#ladders.values()]), 0o600);
    } catch (err) {
      this.#log.error({ err: errorMessage(err) }, 'Cannot persist remedy ladders');
    }
  }
}
