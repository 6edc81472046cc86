// Every remedy run leaves a record: a RemedyOperation object in a cluster, a JSON file in the
// state dir standalone. Both carry the problem, the action, the gate's decision path, times and result.
import { fitName, GENERATE_NAME_MAX, generateNameOf, labelValueOf, NODE_LABEL } from '../api/common.ts';
import type { Logger } from 'pino';
import type { RiskLevel } from '../api/node-remedier.ts';
import type { OperationPhase } from '../api/remedy-operation.ts';
import { errorMessage } from '../errors.ts';
import { removeOlderThan } from '../host/cleanup.ts';
import type { Host } from '../host/host.ts';
import type { GateDecision } from '../risk/gate.ts';
import type { KubeApi } from './kube-api.ts';

export interface OperationInput {
  node: string;
  problem: { conditionType: string; reason: string; message: string; since?: number };
  action: string;
  params: Record<string, string>;
  risk: RiskLevel;
  rule?: string;
  remedier?: string;
  step: number;
  dryRun: boolean;
}

export type OperationResult = 'Fixed' | 'NotFixed' | 'Error' | 'DryRun' | 'NotNeeded';

export interface OperationUpdate {
  phase: OperationPhase;
  gate?: GateDecision;
  startTime?: number;
  endTime?: number;
  result?: OperationResult;
  message?: string;
  attempts?: number;
}

export interface OperationRecorder {
  create(input: OperationInput, now: number): Promise<string>;
  update(id: string, update: OperationUpdate): Promise<void>;
  /** An Event on the Node (cluster) or a log line (standalone) for humans. */
  event(type: 'Normal' | 'Warning', reason: string, message: string, now: number): Promise<void>;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** A gate decision as RemedyOperation status.gate has it (the agents' records and the controller's). */
export function gateStatus(g: GateDecision) {
  return {
    allowed: g.allowed,
    gate: g.gate,
    ...(g.policy === undefined ? {} : { policy: g.policy }),
    reasons: g.path.slice(0, 16).map((s) => `${s.gate}: ${s.allowed ? 'allowed' : 'denied'}: ${s.reason}`.slice(0, 1024)),
    decidedAt: iso(g.decidedAt),
  };
}

function statusOf(u: OperationUpdate, prev: Record<string, unknown>): Record<string, unknown> {
  return {
    ...prev,
    phase: u.phase,
    ...(u.gate === undefined ? {} : { gate: gateStatus(u.gate) }),
    ...(u.startTime === undefined ? {} : { startTime: iso(u.startTime) }),
    ...(u.endTime === undefined ? {} : { endTime: iso(u.endTime) }),
    ...(u.result === undefined ? {} : { result: u.result }),
    ...(u.message === undefined ? {} : { message: u.message.slice(0, 32768) }),
    ...(u.attempts === undefined ? {} : { attempts: u.attempts }),
  };
}

const REASON = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/;

export class ClusterRecorder implements OperationRecorder {
  readonly #kube: KubeApi;
  readonly #node: string;
  readonly #log: Logger;

  constructor(kube: KubeApi, node: string, log: Logger) {
    this.#kube = kube;
    this.#node = node;
    this.#log = log;
  }

  async create(input: OperationInput): Promise<string> {
    const spec = {
      node: input.node,
      problem: {
        conditionType: input.problem.conditionType,
        reason: REASON.test(input.problem.reason) ? input.problem.reason : 'Unspecified',
        message: input.problem.message.slice(0, 32768),
        ...(input.problem.since === undefined ? {} : { since: iso(input.problem.since) }),
      },
      action: input.action,
      ...(Object.keys(input.params).length === 0 ? {} : { params: input.params }),
      risk: input.risk,
      ...(input.remedier === undefined ? {} : { remedier: input.remedier }),
      ...(input.rule === undefined ? {} : { rule: input.rule }),
      step: input.step,
      dryRun: input.dryRun,
    };
    const created = await this.#kube.request<{ metadata: { name: string } }>('POST', '/apis/kubenode.io/v1alpha1/remedyoperations', {
      body: { apiVersion: 'kubenode.io/v1alpha1', kind: 'RemedyOperation', metadata: { generateName: generateNameOf(input.node, input.action), labels: { [NODE_LABEL]: labelValueOf(input.node) } }, spec },
    });
    return created.metadata.name;
  }

  async update(id: string, update: OperationUpdate): Promise<void> {
    // Only this agent writes this status: a merge patch of the changed fields, without resourceVersion.
    // It needs nothing remembered, so an agent after a reboot can finish an operation it started before.
    await this.#kube.request('PATCH', `/apis/kubenode.io/v1alpha1/remedyoperations/${encodeURIComponent(id)}/status`, {
      contentType: 'application/merge-patch+json',
      body: { status: statusOf(update, {}) },
    });
  }

  async event(type: 'Normal' | 'Warning', reason: string, message: string, now: number): Promise<void> {
    try {
      await this.#kube.request('POST', '/api/v1/namespaces/default/events', {
        body: {
          apiVersion: 'v1',
          kind: 'Event',
          metadata: { generateName: `${fitName(this.#node, GENERATE_NAME_MAX - 1)}.` },
          involvedObject: { apiVersion: 'v1', kind: 'Node', name: this.#node, uid: this.#node },
          reason,
          message: message.slice(0, 1024),
          type,
          source: { component: 'kubenode-agent', host: this.#node },
          firstTimestamp: iso(now),
          lastTimestamp: iso(now),
          count: 1,
        },
      });
    } catch (err) {
      this.#log.warn({ err: errorMessage(err), reason }, 'Cannot post Event');
    }
  }
}

/** Where StateDirRecorder keeps one JSON file per operation. */
export const operationsDir = (stateDir: string): string => `${stateDir.replace(/\/+$/, '')}/remedies/operations`;

/**
 * How long a local record stays after its last write. The cluster's RemedyOperations have the
 * controller's retention; these files have nobody else to remove them.
 */
export const LOCAL_RECORD_RETENTION_MS = 14 * 24 * 3_600_000;

export class StateDirRecorder implements OperationRecorder {
  readonly #host: Host;
  readonly #dir: string;
  readonly #log: Logger;
  readonly #records = new Map<string, Record<string, unknown>>();

  constructor(host: Host, stateDir: string, log: Logger) {
    this.#host = host;
    this.#dir = operationsDir(stateDir);
    this.#log = log;
  }

  async create(input: OperationInput, now: number): Promise<string> {
    const id = `${input.node}-${input.action}-${now.toString(36)}-${Math.random().toString(36).slice(2, 7)}`;
    const record = { id, spec: input, status: { phase: 'Pending' } };
    this.#records.set(id, record);
    await this.#host.writeFileAtomic(`${this.#dir}/${id}.json`, JSON.stringify(record, null, 1), 0o600);
    await removeOlderThan(this.#host, this.#dir, LOCAL_RECORD_RETENTION_MS, now).catch((err: unknown) => this.#log.warn({ err: errorMessage(err), dir: this.#host.path(this.#dir) }, 'Cannot remove old remedy records'));
    return id;
  }

  async update(id: string, update: OperationUpdate): Promise<void> {
    const record = this.#records.get(id) ?? JSON.parse((await this.#host.tryReadText(`${this.#dir}/${id}.json`)) ?? '{"status":{}}');
    record.status = statusOf(update, (record.status as Record<string, unknown> | undefined) ?? {});
    this.#records.set(id, record);
    await this.#host.writeFileAtomic(`${this.#dir}/${id}.json`, JSON.stringify(record, null, 1), 0o600);
    if (['Succeeded', 'Failed', 'Skipped', 'Denied'].includes(update.phase)) this.#records.delete(id);
  }

  async event(type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    this.#log[type === 'Warning' ? 'warn' : 'info']({ reason }, message);
  }
}

/**
 * Records in the cluster, and in the state dir while the apiserver cannot be written, so that
 * safe repairs still run and leave a record (the gate refuses the rest without the apiserver).
 */
export class FallbackRecorder implements OperationRecorder {
  readonly #primary: OperationRecorder;
  readonly #fallback: OperationRecorder;
  readonly #log: Logger;
  readonly #local = new Set<string>();

  constructor(primary: OperationRecorder, fallback: OperationRecorder, log: Logger) {
    this.#primary = primary;
    this.#fallback = fallback;
    this.#log = log;
  }

  async create(input: OperationInput, now: number): Promise<string> {
    try {
      return await this.#primary.create(input, now);
    } catch (err) {
      this.#log.warn({ err: errorMessage(err) }, 'Cannot create RemedyOperation; recording in the state dir');
      const id = await this.#fallback.create(input, now);
      this.#local.add(id);
      return id;
    }
  }

  update(id: string, update: OperationUpdate): Promise<void> {
    return (this.#local.has(id) ? this.#fallback : this.#primary).update(id, update);
  }

  event(type: 'Normal' | 'Warning', reason: string, message: string, now: number): Promise<void> {
    return this.#primary.event(type, reason, message, now);
  }
}

/** Records nothing: a dry run by hand leaves no trace. */
export const noRecord: OperationRecorder = {
  create: async (input, now) => `dry-run-${input.action}-${now.toString(36)}`,
  update: async () => undefined,
  event: async () => undefined,
};
