// The cluster half of the risk gate: RiskPolicy objects. A permit is an entry in
// status.permits written with the resourceVersion the decision was computed from, so of two
// agents racing for the last slot one gets 409, re-reads and finds no slot left.
import { Value } from '@sinclair/typebox/value';
import type { Logger } from 'pino';
import type { LabelSelector } from '../api/common.ts';
import { OperationActions, type RiskLevel } from '../api/node-remedier.ts';
import { RiskPolicySpec, type Permit, type RiskPolicyStatus } from '../api/risk-policy.ts';
import type { Clock } from '../host/clock.ts';
import { errorMessage } from '../errors.ts';
import { classifyKubeError, type KubeClient } from '../kube/client.ts';
import { CORDONED_AT, type NodeObject } from '../remedies/node-ops.ts';
import { backoffDelay } from '../util/backoff.ts';
import { durationMs } from '../util/duration.ts';
import { CronError, parseCron, windowStartContaining } from './cron.ts';

const BASE = '/apis/kubenode.io/v1alpha1/riskpolicies';
/** Actions that take the node out of scheduling: what the circuit breaker counts. */
const CORDONING = new Set(['cordon', 'drain', 'reboot', 'power-cycle']);

export interface RiskPolicyObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; resourceVersion?: string; annotations?: Record<string, string> };
  spec: RiskPolicySpec;
  status?: Partial<RiskPolicyStatus>;
}

export interface PolicyRequest {
  node: string;
  action: string;
  risk: RiskLevel;
  operation: string;
}

export interface PolicyVerdict {
  allowed: boolean;
  policy?: string;
  reason: string;
}

const iso = (ms: number): string => new Date(ms).toISOString();
/**
 * A policy as read from the apiserver, with the schema's defaults filled in (the apiserver fills
 * them too; this covers objects stored before a default was added), so no default is repeated here.
 */
function withDefaults(p: RiskPolicyObject): RiskPolicyObject {
  return { ...p, spec: Value.Default(RiskPolicySpec, structuredClone(p.spec ?? {})) as RiskPolicySpec };
}

export function selectorMatches(selector: LabelSelector | undefined, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector?.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector?.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const inValues = has && (e.values ?? []).includes(labels[e.key] as string);
    if (e.operator === 'In' && !inValues) return false;
    if (e.operator === 'NotIn' && inValues) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

function selectorQuery(selector: LabelSelector | undefined): string {
  const parts = Object.entries(selector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of selector?.matchExpressions ?? []) {
    if (e.operator === 'In') parts.push(`${e.key} in (${(e.values ?? []).join(',')})`);
    else if (e.operator === 'NotIn') parts.push(`${e.key} notin (${(e.values ?? []).join(',')})`);
    else if (e.operator === 'Exists') parts.push(e.key);
    else parts.push(`!${e.key}`);
  }
  return parts.join(',');
}

export const isHeld = (p: Permit, now: number): boolean => p.releasedAt === undefined && Date.parse(p.expiresAt) > now;

/** Blackout windows: the first one containing now, described; undefined when none does. */
export function activeBlackout(spec: RiskPolicySpec, now: number): string | undefined {
  for (const [i, w] of spec.blackoutWindows.entries()) {
    try {
      const duration = durationMs(w.duration);
      const start = windowStartContaining(parseCron(w.cron), duration, w.timeZone, now);
      if (start !== undefined) return `blackout window ${i} ("${w.cron}" ${w.timeZone} for ${w.duration}) began ${iso(start)}`;
    } catch (err) {
      // A window the agent cannot read is treated as in force: refusing is the safe reading.
      const why = err instanceof CronError || err instanceof RangeError || err instanceof TypeError ? err.message : String(err);
      return `blackout window ${i} unreadable (${why}); treated as active`;
    }
  }
  return undefined;
}

export type PolicyKube = Pick<KubeClient, 'request'>;
const isConflict = (err: unknown): boolean => classifyKubeError(err) === 'conflict';
const isNotFound = (err: unknown): boolean => classifyKubeError(err) === 'not-found';

/**
 * The numeric limits of a policy at `now`: maxInFlight, lowered by every budget whose schedule is
 * active (the most restrictive wins, as Karpenter's disruption budgets). A budget whose schedule
 * cannot be read counts as active with 0: refusing is the safe reading.
 */
export function limitsOf(spec: RiskPolicySpec, now: number): { maxInFlight: number; budget?: string; perWindow?: { count: number; window: string; windowMs: number } } {
  let maxInFlight = spec.maxInFlight;
  let budget: string | undefined;
  for (const [i, b] of spec.budgets.entries()) {
    let limit: number;
    let active: boolean;
    try {
      active = windowStartContaining(parseCron(b.cron), durationMs(b.duration), b.timeZone, now) !== undefined;
      limit = b.maxInFlight;
    } catch (err) {
      active = true;
      limit = 0;
      budget = `budget ${i} unreadable (${errorMessage(err)}); treated as 0`;
    }
    if (active && limit < maxInFlight) {
      maxInFlight = limit;
      budget ??= `budget ${i} ("${b.cron}" ${b.timeZone} for ${b.duration})`;
    }
  }
  const w = spec.maxPerWindow;
  return { maxInFlight, ...(budget === undefined ? {} : { budget }), ...(w === undefined ? {} : { perWindow: { count: w.count, window: w.window, windowMs: durationMs(w.window) } }) };
}

/** The RiskPolicy client: takes, renews and releases permits for one agent (or for the controller, on a node's behalf). */
export class RiskPolicyClient {
  readonly #kube: PolicyKube;
  readonly #clock: Clock;
  readonly #log: Logger;
  /** Conflict retries before giving up on one decision. */
  readonly #maxRetries: number;

  constructor(kube: PolicyKube, clock: Clock, log: Logger, options: { maxRetries?: number } = {}) {
    this.#kube = kube;
    this.#clock = clock;
    this.#log = log;
    this.#maxRetries = options.maxRetries ?? 50;
  }

  async #list(): Promise<{ items: RiskPolicyObject[] }> {
    const list = await this.#kube.request<{ items: RiskPolicyObject[] }>('GET', BASE);
    return { items: list.items.map(withDefaults) };
  }

  async #get(name: string): Promise<RiskPolicyObject> {
    return withDefaults(await this.#kube.request<RiskPolicyObject>('GET', `${BASE}/${encodeURIComponent(name)}`));
  }

  async #applicable(req: PolicyRequest): Promise<{ node: NodeObject; policies: RiskPolicyObject[] }> {
    const node = await this.#kube.request<NodeObject>('GET', `/api/v1/nodes/${encodeURIComponent(req.node)}`);
    const list = await this.#list();
    const labels = node.metadata.labels ?? {};
    const policies = list.items
      .filter((p) => selectorMatches(p.spec.nodeSelector, labels))
      .filter((p) => (p.spec.actions.length === 0 ? req.risk === 'disruptive' : (p.spec.actions as readonly string[]).includes(req.action)))
      .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    return { node, policies };
  }

  /**
   * Takes a permit from every RiskPolicy selecting the node (all or none). dryRun evaluates
   * without writing. Throws when the apiserver cannot be asked: the caller fails closed.
   */
  async acquire(req: PolicyRequest, options: { dryRun?: boolean } = {}): Promise<{ allowed: boolean; verdicts: PolicyVerdict[] }> {
    const { policies } = await this.#applicable(req);
    if (policies.length === 0) return { allowed: true, verdicts: [{ allowed: true, reason: 'no RiskPolicy selects this node for this action' }] };
    const verdicts: PolicyVerdict[] = [];
    const taken: string[] = [];
    for (const p of policies) {
      const v = await this.#take(p.metadata.name, req, options.dryRun === true);
      verdicts.push(v);
      if (!v.allowed) {
        for (const name of taken) await this.#release(name, req.operation).catch(() => undefined);
        return { allowed: false, verdicts };
      }
      if (options.dryRun !== true) taken.push(p.metadata.name);
    }
    return { allowed: true, verdicts };
  }

  async #take(name: string, req: PolicyRequest, dryRun: boolean): Promise<PolicyVerdict> {
    for (let attempt = 1; ; attempt++) {
      const policy = await this.#get(name);
      const now = this.#clock.now();
      const decision = await this.#decide(policy, req, now);
      if (dryRun || decision.write === undefined) return decision.verdict;
      try {
        await this.#kube.request('PUT', `${BASE}/${encodeURIComponent(name)}/status`, { body: { ...policy, status: decision.write } });
        return decision.verdict;
      } catch (err) {
        if (!isConflict(err) || attempt >= this.#maxRetries) throw err;
        this.#log.debug({ policy: name, attempt }, 'RiskPolicy changed under us; re-reading');
        // Jittered, so that racing agents do not collide in lockstep again.
        await this.#clock.sleep(backoffDelay(attempt - 1, 10, 200));
      }
    }
  }

  async #decide(policy: RiskPolicyObject, req: PolicyRequest, now: number): Promise<{ verdict: PolicyVerdict; write?: Partial<RiskPolicyStatus> }> {
    const name = policy.metadata.name;
    const spec = policy.spec;
    const status = policy.status ?? {};
    const permits = status.permits ?? [];
    const breaker = status.circuitBreaker ?? { state: 'Closed' as const };
    const deny = (reason: string, write?: Partial<RiskPolicyStatus>) => ({ verdict: { allowed: false, policy: name, reason: `RiskPolicy ${name}: ${reason}` }, ...(write === undefined ? {} : { write }) });

    const mine = permits.find((p) => p.operation === req.operation && isHeld(p, now));
    if (mine !== undefined) return { verdict: { allowed: true, policy: name, reason: `RiskPolicy ${name}: permit already held until ${mine.expiresAt}` } };
    if (spec.paused) return deny('paused');
    const blackout = activeBlackout(spec, now);
    if (blackout !== undefined) return deny(blackout);
    if (breaker.state === 'Open') {
      return deny(`circuit breaker open since ${breaker.trippedAt ?? '?'} (${breaker.reason ?? 'no reason recorded'}); a person closes it by setting status.circuitBreaker.state=Closed`);
    }
    const held = permits.filter((p) => isHeld(p, now));
    const { maxInFlight, perWindow, budget } = limitsOf(spec, now);
    if (held.length >= maxInFlight) return deny(`${held.length} of ${maxInFlight} permits in flight${budget === undefined ? '' : ` under ${budget}`} (${held.map((p) => `${p.holder}:${p.action ?? '?'}`).join(', ')})`);
    if (perWindow !== undefined) {
      const recent = permits.filter((p) => Date.parse(p.acquiredAt) > now - perWindow.windowMs).length;
      if (recent >= perWindow.count) return deny(`${recent} of ${perWindow.count} permits granted in the last ${perWindow.window}`);
    }

    const selector = selectorQuery(spec.nodeSelector);
    const nodes = (await this.#kube.request<{ items: NodeObject[] }>('GET', '/api/v1/nodes', selector === '' ? {} : { query: { labelSelector: selector } })).items;
    const total = nodes.length;
    if (total === 0) return deny('selects no Node objects');
    const isReady = (n: NodeObject): boolean => n.spec?.unschedulable !== true && n.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
    const holders = new Set(held.map((p) => p.holder));
    // What the fleet looks like once this node is out too: Ready nodes, less those already out under a permit.
    const readyAfter = nodes.filter((n) => isReady(n) && !holders.has(n.metadata.name) && n.metadata.name !== req.node).length;
    const minShare = spec.minHealthyShare;
    if (readyAfter / total < minShare) {
      return deny(`only ${readyAfter} of ${total} selected nodes would stay Ready and not under a permit (${(readyAfter / total).toFixed(2)} < minHealthyShare ${minShare})`);
    }

    if (spec.circuitBreaker !== undefined) {
      // A reset from the future (a clock stepped back, here or where it was written) is discarded:
      // honoured, it would keep the breaker from counting anything until the clocks agree again.
      const resetAt = breaker.resetAt === undefined ? 0 : Date.parse(breaker.resetAt);
      const since = Math.max(now - durationMs(spec.circuitBreaker.window), resetAt <= now ? resetAt : 0);
      const cordoned = new Set<string>();
      for (const n of nodes) {
        const at = Date.parse(n.metadata.annotations?.[CORDONED_AT] ?? '');
        if (n.spec?.unschedulable === true && at > since) cordoned.add(n.metadata.name);
      }
      for (const p of permits) if (CORDONING.has(p.action ?? '') && Date.parse(p.acquiredAt) > since) cordoned.add(p.holder);
      const share = cordoned.size / total;
      if (share >= spec.circuitBreaker.cordonedShare) {
        const reason = `${cordoned.size} of ${total} selected nodes cordoned within ${spec.circuitBreaker.window} (${share.toFixed(2)} >= ${spec.circuitBreaker.cordonedShare})`;
        return deny(`circuit breaker tripped: ${reason}`, { ...status, circuitBreaker: { ...breaker, state: 'Open', trippedAt: iso(now), trippedBy: req.node, reason } });
      }
    }

    const ttl = durationMs(spec.permitTTL);
    const keepMs = Math.max(spec.maxPerWindow === undefined ? 0 : durationMs(spec.maxPerWindow.window), spec.circuitBreaker === undefined ? 0 : durationMs(spec.circuitBreaker.window));
    const permit: Permit = { holder: req.node, operation: req.operation, acquiredAt: iso(now), expiresAt: iso(now + ttl), ...(knownAction(req.action) ? { action: req.action } : {}) };
    const next = [...prune(permits.filter((p) => p.operation !== req.operation), req.node, now, keepMs), permit];
    return {
      verdict: { allowed: true, policy: name, reason: `RiskPolicy ${name}: permit ${held.length + 1} of ${maxInFlight}, expires ${permit.expiresAt}` },
      write: { ...status, permits: next, circuitBreaker: breaker },
    };
  }

  /** Marks this operation's permits released in every policy (kept while they count for a window). */
  async release(operation: string): Promise<void> {
    const list = await this.#list();
    for (const p of list.items) {
      if ((p.status?.permits ?? []).some((x) => x.operation === operation && x.releasedAt === undefined)) await this.#release(p.metadata.name, operation);
    }
  }

  /** Releases every permit the node holds except `keep`: an agent that restarted holds nothing it is still using. */
  async releaseHeldBy(node: string, keep: ReadonlySet<string> = new Set()): Promise<string[]> {
    const list = await this.#list();
    const released: string[] = [];
    for (const p of list.items) {
      for (const x of p.status?.permits ?? []) {
        if (x.holder === node && x.releasedAt === undefined && !keep.has(x.operation)) {
          await this.#release(p.metadata.name, x.operation);
          released.push(x.operation);
        }
      }
    }
    return released;
  }

  async #release(name: string, operation: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      let policy: RiskPolicyObject;
      try {
        policy = await this.#get(name);
      } catch (err) {
        if (isNotFound(err)) return;
        throw err;
      }
      const now = this.#clock.now();
      const permits = policy.status?.permits ?? [];
      if (!permits.some((p) => p.operation === operation && p.releasedAt === undefined)) return;
      const next = permits.map((p) => (p.operation === operation && p.releasedAt === undefined ? { ...p, releasedAt: iso(Math.max(now, Date.parse(p.acquiredAt) + 1)) } : p));
      try {
        await this.#kube.request('PUT', `${BASE}/${encodeURIComponent(name)}/status`, { body: { ...policy, status: { ...policy.status, permits: next } } });
        return;
      } catch (err) {
        if (!isConflict(err) || attempt >= this.#maxRetries) throw err;
        await this.#clock.sleep(backoffDelay(attempt - 1, 10, 200));
      }
    }
  }

  /** Pushes expiresAt forward for a permit still in use (long drains, verification after a reboot). */
  async renew(operation: string): Promise<void> {
    const list = await this.#list();
    for (const p of list.items) {
      for (let attempt = 1; ; attempt++) {
        const policy = attempt === 1 ? p : await this.#get(p.metadata.name);
        const now = this.#clock.now();
        const ttl = durationMs(policy.spec.permitTTL);
        const permits = policy.status?.permits ?? [];
        if (!permits.some((x) => x.operation === operation && isHeld(x, now))) break;
        const next = permits.map((x) => (x.operation === operation && isHeld(x, now) ? { ...x, expiresAt: iso(now + ttl) } : x));
        try {
          await this.#kube.request('PUT', `${BASE}/${encodeURIComponent(p.metadata.name)}/status`, { body: { ...policy, status: { ...policy.status, permits: next } } });
          break;
        } catch (err) {
          if (!isConflict(err) || attempt >= this.#maxRetries) throw err;
        }
      }
    }
  }
}

const KNOWN: ReadonlySet<string> = new Set(OperationActions);
const knownAction = (a: string): a is NonNullable<Permit['action']> => KNOWN.has(a);

/**
 * Drops this node's permits that are no longer held and too old to count for any window. Other
 * nodes' entries are never touched: the admission policy lets an agent write only its own permits,
 * and an expired one of a dead node no longer counts anyway (an admin or controller prunes it).
 */
function prune(permits: readonly Permit[], node: string, now: number, keepMs: number): Permit[] {
  return permits.filter((p) => p.holder !== node || isHeld(p, now) || Date.parse(p.acquiredAt) > now - keepMs);
}
