// The Machine's status subresource (Machine name == Node name): node facts,
// accelerators, agent version, phase and conditions. Written by server-side
// apply under our own field manager, so fields other writers own (the
// installers' components, another controller's condition types) stay theirs;
// conditions are a list-map keyed by type in the CRD. Written only when the
// desired status changed, plus a slow resync that refreshes lastHeartbeatTime.
import type { Logger } from 'pino';
import type { Clock } from '../../host/clock.ts';
import type { Host } from '../../host/host.ts';
import { GROUP, REASON_PATTERN, VERSION } from '../../api/common.ts';
import type { MachinePhase, MachineStatus } from '../../api/machine.ts';
import { errorMessage } from '../../errors.ts';
import type { KubeClient } from '../../kube/client.ts';
import { LatestWriter, type WriteObserver, type WriteStats } from './latest-writer.ts';
import { collectMachineFacts, type MachineFacts } from './machine-facts.ts';
import { kubeTime, type MergedCondition } from './node-conditions.ts';

export const MACHINE_FIELD_MANAGER = 'kubenode-agent';

/** What this reporter owns of MachineStatus. */
export type DesiredMachineStatus = Pick<MachineStatus, 'phase' | 'agentVersion' | 'node' | 'gpus' | 'fpgas' | 'conditions'>;

const REASON = new RegExp(REASON_PATTERN);

/** The CRD takes metav1.Condition's reason rule; detector reasons already follow it, this only guards. */
export function machineReason(reason: string): string {
  if (REASON.test(reason)) return reason;
  const cleaned = reason.replace(/[^A-Za-z0-9_,:]/g, '').replace(/^[^A-Za-z]+/, '').replace(/[,:]+$/, '');
  return cleaned === '' ? 'Unknown' : cleaned.slice(0, 1024);
}

/** Degraded while any problem condition is True; the daemon may say otherwise (Reconciling, Paused…). */
export function defaultPhase(conditions: readonly MergedCondition[]): MachinePhase {
  return conditions.some((c) => c.status === 'True') ? 'Degraded' : 'Ready';
}

export function desiredMachineStatus(facts: MachineFacts, conditions: readonly MergedCondition[], agentVersion: string, phase: MachinePhase | undefined): DesiredMachineStatus {
  return {
    phase: phase ?? defaultPhase(conditions),
    agentVersion,
    node: facts.node,
    gpus: facts.gpus,
    fpgas: facts.fpgas,
    conditions: conditions.map((c) => ({
      type: c.type,
      status: c.status,
      reason: machineReason(c.reason),
      message: c.message,
      lastTransitionTime: kubeTime(c.transitionTime),
    })),
  };
}

export interface MachineStatusOptions {
  client: KubeClient;
  /** The Machine's name: the Node's. */
  nodeName: string;
  host: Host;
  clock: Clock;
  log: Logger;
  agentVersion: string;
  /** Forced rewrite (lastHeartbeatTime). Default 30 min. */
  resyncMs?: number;
  /** Re-read facts from the host (cheap file reads; written only if changed). Default 5 min. */
  factsEveryMs?: number;
  /** A missing Machine is waited for, not hammered: default up to 5 min between tries. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  random?: () => number;
  observe?: WriteObserver;
}

export class MachineStatusReporter {
  readonly #o: MachineStatusOptions;
  readonly #writer: LatestWriter<DesiredMachineStatus>;
  readonly #abort = new AbortController();
  #facts: MachineFacts | undefined;
  #conditions: MergedCondition[] = [];
  #phase: MachinePhase | undefined;
  #lastDesired = '';
  #loops: Promise<void>[] = [];
  #refreshing: Promise<void> | undefined;

  constructor(options: MachineStatusOptions) {
    this.#o = options;
    const path = `/apis/${GROUP}/${VERSION}/machines/${encodeURIComponent(options.nodeName)}/status`;
    this.#writer = new LatestWriter<DesiredMachineStatus>({
      name: 'machine-status',
      clock: options.clock,
      log: options.log,
      backoffBaseMs: options.backoffBaseMs ?? 1000,
      backoffMaxMs: options.backoffMaxMs ?? 5 * 60_000,
      random: options.random,
      observe: options.observe,
      write: async (status) => {
        const body = {
          apiVersion: `${GROUP}/${VERSION}`,
          kind: 'Machine',
          metadata: { name: options.nodeName },
          status: { ...status, lastHeartbeatTime: kubeTime(options.clock.now()) },
        };
        // force: the agent is the one writer of these fields; a stale owner (an old agent build's manager) must not block it.
        await options.client.patch(path, body, 'apply', { query: { fieldManager: MACHINE_FIELD_MANAGER, force: 'true' } });
      },
    });
  }

  get stats(): Readonly<WriteStats> {
    return this.#writer.stats;
  }

  /** Reads the facts, writes the first status, starts the resync and facts loops. Never throws. */
  async start(): Promise<void> {
    await this.#refreshFacts();
    this.#loops.push(this.#every(this.#o.resyncMs ?? 30 * 60_000, () => this.#push(true)));
    this.#loops.push(this.#every(this.#o.factsEveryMs ?? 5 * 60_000, () => this.#refreshFacts()));
  }

  /** The Node's merged conditions (NodeConditionsReporter.current()). */
  setConditions(conditions: readonly MergedCondition[]): void {
    this.#conditions = [...conditions];
    this.#push(false);
  }

  /** undefined: derived from the conditions. */
  setPhase(phase: MachinePhase | undefined): void {
    this.#phase = phase;
    this.#push(false);
  }

  /** Resolves once a facts read in progress and every write it caused are done. */
  async settled(): Promise<void> {
    await this.#refreshing;
    await this.#writer.settled();
  }

  async stop(): Promise<void> {
    this.#abort.abort(new Error('stopped'));
    await Promise.all([...this.#loops, this.#writer.stop()]);
  }

  #refreshFacts(): Promise<void> {
    this.#refreshing = this.#readFacts().finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }

  async #readFacts(): Promise<void> {
    try {
      this.#facts = await collectMachineFacts(this.#o.host);
    } catch (err) {
      this.#o.log.warn({ err: errorMessage(err) }, 'Cannot read node facts; Machine status waits for them');
      return;
    }
    this.#push(false);
  }

  #push(force: boolean): void {
    if (this.#facts === undefined) return;
    const desired = desiredMachineStatus(this.#facts, this.#conditions, this.#o.agentVersion, this.#phase);
    const key = JSON.stringify(desired);
    if (!force && key === this.#lastDesired) return;
    this.#lastDesired = key;
    this.#writer.set(desired);
  }

  async #every(ms: number, fn: () => unknown): Promise<void> {
    for (;;) {
      try {
        await this.#o.clock.sleep(ms, this.#abort.signal);
      } catch {
        return;
      }
      await fn();
    }
  }
}
