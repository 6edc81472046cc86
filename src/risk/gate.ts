// The risk gate, asked before anything disruptive, by remedies and installers alike: a chain of
// stages — the storm breaker of the NodeRemedier that asked, the node's local budget, every
// RiskPolicy selecting the node (permits on the apiserver), an optional webhook. The first "no"
// wins, and whatever earlier stages hold for the request is handed back.
import type { Logger } from 'pino';
import type { RiskLevel } from '../api/node-remedier.ts';
import type { Gates } from '../api/remedy-operation.ts';
import { errorMessage } from '../errors.ts';
import { classifyKubeError } from '../kube/client.ts';
import type { Host } from '../host/host.ts';
import type { LocalBudget } from './local-budget.ts';
import type { RiskMetrics } from './metrics.ts';
import type { RiskPolicyClient } from './policy.ts';
import { askWebhook, type WebhookOptions } from './webhook.ts';

/** The gates of the RemedyOperation record's enum: the chain and the record cannot name different ones. */
export type GateName = (typeof Gates)[number];

export interface RiskRequest {
  node: string;
  action: string;
  risk: RiskLevel;
  reason: string;
  /** Names the permits: what release and renew hand back or extend. */
  operation: string;
  /** The NodeRemedier whose rule asked: its storm breaker is a gate. */
  remedier?: string;
}

export interface GateStep {
  gate: GateName;
  allowed: boolean;
  reason: string;
  policy?: string;
}

export interface GateDecision {
  allowed: boolean;
  /** The gate that refused, or the last that allowed. */
  gate: GateName;
  policy?: string;
  /** Every gate asked, in order: what --dry-run prints and the RemedyOperation records. */
  path: GateStep[];
  decidedAt: number;
}

/**
 * One gate of the chain. ask() may take something (a permit) that release() hands back;
 * commit() spends what must only be spent once every stage said yes (the local budget).
 */
export interface GateStage {
  readonly name: GateName;
  ask(req: RiskRequest, dryRun: boolean): Promise<GateStep[]>;
  commit?(req: RiskRequest): Promise<GateStep | undefined>;
  release?(operation: string): Promise<void>;
  renew?(operation: string): Promise<void>;
}

export function localStage(budget: LocalBudget): GateStage {
  const failed = (err: unknown): GateStep => ({ gate: 'local', allowed: false, reason: `local budget unusable: ${errorMessage(err)}` });
  return {
    name: 'local',
    // Only checked on the way in; spent last, once every other gate has said yes.
    ask: async () => [await budget.check().then((v) => ({ gate: 'local' as const, ...v }), failed)],
    commit: async (req) => {
      const v = await budget.take(req.action, req.operation).then((x) => ({ gate: 'local' as const, ...x }), failed);
      return v.allowed ? undefined : v;
    },
  };
}

export function policyStage(policy: RiskPolicyClient): GateStage {
  return {
    name: 'policy',
    async ask(req, dryRun) {
      try {
        const r = await policy.acquire(req, { dryRun });
        return r.verdicts.map((v) => ({ gate: 'policy' as const, allowed: v.allowed, reason: v.reason, ...(v.policy === undefined ? {} : { policy: v.policy }) }));
      } catch (err) {
        // Fail closed: without the policies nobody can count what the fleet is doing.
        const kind = classifyKubeError(err);
        const why =
          kind === 'not-found'
            ? `Node ${req.node} or a RiskPolicy is not on the apiserver`
            : kind === 'forbidden' || kind === 'unauthorized'
              ? 'not allowed to read RiskPolicy objects or the Node (credentials, RBAC)'
              : 'cannot reach the apiserver for RiskPolicy permits';
        return [{ gate: 'policy', allowed: false, reason: `${why} (${errorMessage(err)}): only safe actions run` }];
      }
    },
    release: (operation) => policy.release(operation),
    renew: (operation) => policy.renew(operation),
  };
}

/** Reads a NodeRemedier's storm breaker: the controller opens it, a person closes it. */
export type StormReader = (remedier: string) => Promise<{ state: 'Open' | 'Closed'; trippedAt?: string; reason?: string }>;

export function stormStage(read: StormReader): GateStage {
  return {
    name: 'storm',
    async ask(req) {
      if (req.remedier === undefined) return [{ gate: 'storm', allowed: true, reason: 'not asked by a NodeRemedier rule' }];
      try {
        const b = await read(req.remedier);
        if (b.state === 'Open') {
          return [{ gate: 'storm', allowed: false, reason: `NodeRemedier ${req.remedier}: storm breaker open since ${b.trippedAt ?? '?'} (${b.reason ?? 'no reason recorded'}); a person closes it by setting status.stormBreaker.state=Closed` }];
        }
        return [{ gate: 'storm', allowed: true, reason: `NodeRemedier ${req.remedier}: storm breaker closed` }];
      } catch (err) {
        // Fail closed, as the policy stage: a breaker nobody can read may be open.
        return [{ gate: 'storm', allowed: false, reason: `cannot read the storm breaker of NodeRemedier ${req.remedier} (${errorMessage(err)}): only safe actions run` }];
      }
    },
  };
}

export function webhookStage(host: Host, options: WebhookOptions): GateStage {
  return { name: 'webhook', ask: async (req) => [{ gate: 'webhook', ...(await askWebhook(host, options, req)) }] };
}

export interface RiskGateParts {
  host: Host;
  log: Logger;
  /** In order of asking. */
  stages: readonly GateStage[];
  /** Set in cluster mode: what resume() uses to hand back permits a previous run left. */
  policy?: RiskPolicyClient;
  metrics?: RiskMetrics;
}

export class RiskGate {
  readonly #p: RiskGateParts;
  readonly #held = new Set<string>();

  constructor(parts: RiskGateParts) {
    this.#p = parts;
  }

  async decide(req: RiskRequest, options: { dryRun?: boolean } = {}): Promise<GateDecision> {
    const dryRun = options.dryRun === true;
    const now = this.#p.host.clock.now();
    const path: GateStep[] = [];
    const holding = this.#p.stages.some((s) => s.release !== undefined);
    const finish = (allowed: boolean, gate: GateName): GateDecision => {
      for (const s of path) this.#p.metrics?.decision(s.gate, s.allowed);
      if (allowed && !dryRun && holding) this.#held.add(req.operation);
      this.#p.metrics?.setPermitsHeld(this.#held.size);
      const policy = path.filter((s) => s.gate === 'policy').at(-1)?.policy;
      return { allowed, gate, path, decidedAt: now, ...(policy === undefined ? {} : { policy }) };
    };
    if (req.risk === 'safe') {
      path.push({ gate: 'none', allowed: true, reason: 'safe action: no permit needed' });
      return finish(true, 'none');
    }
    if (this.#p.stages.length === 0) {
      path.push({ gate: 'none', allowed: true, reason: 'no risk gate configured' });
      return finish(true, 'none');
    }
    const asked: GateStage[] = [];
    for (const stage of this.#p.stages) {
      const steps = await stage.ask(req, dryRun);
      path.push(...steps);
      if (steps.some((s) => !s.allowed)) {
        // A stage that refuses holds nothing for the request; those before it may.
        if (!dryRun) await this.#handBack(asked, req.operation);
        return finish(false, stage.name);
      }
      asked.push(stage);
    }
    if (!dryRun) {
      for (const stage of this.#p.stages) {
        const refused = await stage.commit?.(req);
        if (refused !== undefined) {
          path.push(refused);
          await this.#handBack(asked, req.operation);
          return finish(false, stage.name);
        }
      }
    }
    return finish(true, path.at(-1)?.gate ?? 'none');
  }

  async #handBack(stages: readonly GateStage[], operation: string): Promise<void> {
    for (const stage of stages) {
      try {
        await stage.release?.(operation);
      } catch (err) {
        // It expires on its own; the next decision does not wait for us.
        this.#p.log.warn({ err: errorMessage(err), operation, gate: stage.name }, 'Cannot release permit; it will expire');
      }
    }
  }

  /** Hands the permits of a finished operation back. */
  async release(operation: string): Promise<void> {
    this.#held.delete(operation);
    this.#p.metrics?.setPermitsHeld(this.#held.size);
    await this.#handBack(this.#p.stages, operation);
  }

  /** Pushes the expiry of a permit still in use forward (a long drain, verification after a reboot). */
  async renew(operation: string): Promise<void> {
    for (const stage of this.#p.stages) await stage.renew?.(operation);
  }

  /** At start-up: releases every permit this node holds except `keep` (an agent that restarted uses nothing else). */
  async releaseStale(node: string, keep: ReadonlySet<string>): Promise<string[]> {
    return (await this.#p.policy?.releaseHeldBy(node, keep)) ?? [];
  }

  /**
   * The installers' view: a restart of a disruptive component goes through the same budget,
   * policies and webhook, and hands its permit back when the restart step is over.
   */
  forInstallers(node: string): InstallerGate {
    return {
      ask: async (request) => {
        const operation = `install-${request.component}-${request.step}-${this.#p.host.clock.now().toString(36)}`.toLowerCase().replace(/[^a-z0-9.-]/g, '-').slice(0, 253);
        const d = await this.decide({ node, action: 'restart-unit', risk: 'disruptive', reason: request.action, operation });
        const reason = d.path.map((s) => `${s.gate}: ${s.reason}`).join('; ');
        return d.allowed ? { allowed: true, reason, release: () => this.release(operation) } : { allowed: false, reason };
      },
    };
  }
}

export interface InstallerRiskRequest {
  component: string;
  step: string;
  /** What the step does, for the record. */
  action: string;
}

export interface InstallerRiskDecision {
  allowed: boolean;
  reason: string;
  /** Hands a permit back once the disruptive step is over; gates that hold nothing leave it out. */
  release?: () => Promise<void>;
}

/** What the installers' engine asks before a disruptive step. */
export interface InstallerGate {
  ask(request: InstallerRiskRequest): Promise<InstallerRiskDecision>;
}

/** Allows everything: tests of the installers that are not about the gate. */
export const allowAll: InstallerGate = { ask: async () => ({ allowed: true, reason: 'risk gate disabled' }) };

export function describePath(d: GateDecision): string[] {
  return d.path.map((s) => `${s.allowed ? 'ALLOW' : 'DENY '} ${s.gate.padEnd(7)} ${s.reason}`);
}
