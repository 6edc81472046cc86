// The risk gate, asked before anything disruptive: the node's local budget, then every
// RiskPolicy selecting the node (permits on the apiserver), then an optional webhook. The first
// "no" wins; permits taken by an earlier gate are handed back when a later one refuses.
import type { Logger } from 'pino';
import type { Host } from '../../host/host.ts';
import type { RiskDecision as InstallerDecision, RiskGate as InstallerGate, RiskRequest as InstallerRequest } from '../../installers/risk.ts';
import { errorMessage } from '../../errors.ts';
import type { RemedyMetrics } from '../metrics.ts';
import type { Risk } from '../types.ts';
import type { LocalBudget } from './local-budget.ts';
import type { RiskPolicyGate } from './risk-policy.ts';
import { askWebhook, type WebhookOptions } from './webhook.ts';

export type GateName = 'none' | 'local' | 'policy' | 'webhook';

export interface GateRequest {
  node: string;
  action: string;
  risk: Risk;
  reason: string;
  operation: string;
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

export interface GateParts {
  host: Host;
  log: Logger;
  local?: LocalBudget;
  /** Set in cluster mode; when it cannot reach the apiserver, disruptive actions are refused. */
  policy?: RiskPolicyGate;
  webhook?: WebhookOptions;
  metrics?: RemedyMetrics;
}

export class RemedyGate {
  readonly #p: GateParts;
  readonly #held = new Set<string>();

  constructor(parts: GateParts) {
    this.#p = parts;
  }

  get permitsHeld(): number {
    return this.#held.size;
  }

  async decide(req: GateRequest, options: { dryRun?: boolean } = {}): Promise<GateDecision> {
    const dryRun = options.dryRun === true;
    const now = this.#p.host.clock.now();
    const path: GateStep[] = [];
    const finish = (gate: GateName, allowed: boolean, policy?: string): GateDecision => {
      for (const s of path) this.#p.metrics?.gateDecision(s.gate, s.allowed);
      if (allowed && !dryRun && this.#p.policy !== undefined) this.#held.add(req.operation);
      this.#p.metrics?.setPermitsHeld(this.#held.size);
      return { allowed, gate, path, decidedAt: now, ...(policy === undefined ? {} : { policy }) };
    };
    if (req.risk === 'safe') {
      path.push({ gate: 'none', allowed: true, reason: 'safe action: no permit needed' });
      return finish('none', true);
    }
    if (this.#p.local !== undefined) {
      // Only checked here; spent last, once every other gate has said yes.
      const v = await this.#p.local.check(now);
      path.push({ gate: 'local', ...v });
      if (!v.allowed) return finish('local', false);
    } else {
      path.push({ gate: 'local', allowed: true, reason: 'no local budget configured' });
    }
    let policyName: string | undefined;
    if (this.#p.policy !== undefined) {
      try {
        const r = await this.#p.policy.acquire(req, { dryRun });
        for (const v of r.verdicts) path.push({ gate: 'policy', allowed: v.allowed, reason: v.reason, ...(v.policy === undefined ? {} : { policy: v.policy }) });
        policyName = r.verdicts.at(-1)?.policy;
        if (!r.allowed) return finish('policy', false, policyName);
      } catch (err) {
        path.push({ gate: 'policy', allowed: false, reason: `cannot reach the apiserver for RiskPolicy permits (${errorMessage(err)}): only safe actions run` });
        return finish('policy', false);
      }
    }
    if (this.#p.webhook !== undefined && this.#p.webhook.url !== '') {
      const v = await askWebhook(this.#p.host, this.#p.webhook, req);
      path.push({ gate: 'webhook', ...v });
      if (!v.allowed) {
        if (!dryRun) await this.#releasePolicy(req.operation);
        return finish('webhook', false, policyName);
      }
    }
    if (this.#p.local !== undefined && !dryRun) {
      // Taken last so that a refusal further on does not spend the node's budget.
      const v = await this.#p.local.take(now, req.action, req.operation);
      if (!v.allowed) {
        path.push({ gate: 'local', ...v });
        await this.#releasePolicy(req.operation);
        return finish('local', false);
      }
    }
    const last = path.at(-1);
    return finish(last?.gate ?? 'none', true, policyName);
  }

  async #releasePolicy(operation: string): Promise<void> {
    try {
      await this.#p.policy?.release(operation);
    } catch (err) {
      // It expires on its own; the next decision does not wait for us.
      this.#p.log.warn({ err: errorMessage(err), operation }, 'Cannot release RiskPolicy permit; it will expire');
    }
  }

  /** Hands the permits of a finished operation back. */
  async release(operation: string): Promise<void> {
    this.#held.delete(operation);
    this.#p.metrics?.setPermitsHeld(this.#held.size);
    await this.#releasePolicy(operation);
  }

  async renew(operation: string): Promise<void> {
    await this.#p.policy?.renew(operation);
  }

  /**
   * The installers' RiskGate: a restart of a disruptive component goes through the same budget,
   * policies and webhook, and hands its permit back when the restart step is over.
   */
  forInstallers(node: string): InstallerGate {
    return {
      ask: async (request: InstallerRequest): Promise<InstallerDecision> => {
        const operation = `install-${request.component}-${request.step}-${this.#p.host.clock.now().toString(36)}`.toLowerCase().replace(/[^a-z0-9.-]/g, '-').slice(0, 253);
        const d = await this.decide({ node, action: 'restart-unit', risk: 'disruptive', reason: request.action, operation });
        const reason = d.path.map((s) => `${s.gate}: ${s.reason}`).join('; ');
        return d.allowed ? { allowed: true, reason, release: () => this.release(operation) } : { allowed: false, reason };
      },
    };
  }
}

export function describePath(d: GateDecision): string[] {
  return d.path.map((s) => `${s.allowed ? 'ALLOW' : 'DENY '} ${s.gate.padEnd(7)} ${s.reason}`);
}
