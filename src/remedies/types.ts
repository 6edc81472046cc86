import { AgentError } from '../errors.ts';
import type { Logger } from 'pino';
import type { RiskLevel } from '../api/node-remedier.ts';
import type { Host } from '../host/host.ts';
import type { KubeApi } from './kube-api.ts';

/** Free-form parameters from a rule step or the CLI; each action validates what it reads. */
export type ActionParams = Readonly<Record<string, unknown>>;

export interface ActionSettings {
  commandTimeoutMs: number;
  drainTimeoutMs: number;
  /** Host paths cleaned by clean-disk when a step gives none. */
  cleanPaths: readonly { path: string; olderThanMs: number }[];
  journalMaxSize: string;
}

export interface ActionContext {
  host: Host;
  log: Logger;
  nodeName: string;
  stateDir: string;
  bootId: string;
  settings: ActionSettings;
  /** Absent in standalone mode: node-object actions (cordon, drain…) then refuse. */
  kube?: KubeApi;
  signal?: AbortSignal;
  /** The RemedyOperation (or state-dir record) this run belongs to; the reboot journal names it. */
  operation?: string;
}

export interface ActionPlan {
  action: string;
  risk: RiskLevel;
  /** What execute() would do, in order: the dry-run output. */
  steps: string[];
  /** Why it cannot run here at all (no cluster access, bad parameters). */
  blocked?: string;
}

export interface ActionResult {
  ok: boolean;
  message: string;
  /** The machine is going down; the outcome is settled after the next boot. */
  rebooting?: boolean;
}

export interface RemedyAction {
  readonly name: string;
  readonly risk: RiskLevel;
  readonly description: string;
  plan(ctx: ActionContext, params: ActionParams): Promise<ActionPlan>;
  /** Re-checked right before acting: the node may have healed, or another actor already did it. */
  stillNeeded(ctx: ActionContext, params: ActionParams): Promise<{ needed: boolean; why: string }>;
  execute(ctx: ActionContext, params: ActionParams): Promise<ActionResult>;
}

export class ActionParamError extends AgentError {
  constructor(action: string, field: string, message: string) {
    super('INVALID', `${action}: params.${field}: ${message}`);
  }
}

export function stringParam(action: string, params: ActionParams, field: string, fallback?: string): string {
  const v = params[field] ?? fallback;
  if (typeof v !== 'string' || v === '') throw new ActionParamError(action, field, `expected a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}
