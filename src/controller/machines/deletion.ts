// Retiring a Machine: the controller's finalizer holds the Machine while, in order, its Node is
// cordoned and drained (the remedies' drain: the Eviction API, so PodDisruptionBudgets hold), its
// MachineComponents are deleted with the uninstall finalizer the node's agent lifts once each is
// uninstalled, the Node is deleted if spec.deleteNode asks, and then the finalizer goes.
//
// Nothing is remembered between passes: each pass reads where the world is (Node cordoned? pods
// left? components left?) and takes the next step, so a controller restart resumes where it was.
// Every wait has one deadline, deletionTimestamp + spec.deletionTimeout: past it the step waiting
// says so (DrainTimeout, RemovalTimeout, a Warning Event) and the controller keeps waiting, since
// going on would break a PodDisruptionBudget or leave software on a node nobody manages any more.
// An operator who accepts that annotates the Machine kubenode.io/force-delete=true.
import { GROUP, machineOf, UNINSTALL_FINALIZER, VERSION } from '../../api/common.ts';
import { systemClock } from '../../host/clock.ts';
import { classifyKubeError, type KubeClient } from '../../kube/client.ts';
import type { Logger } from '../../log.ts';
import { cordon, drain } from '../../remedies/node-ops.ts';
import { agentLeaseName } from '../../report/kube/lease.ts';
import { durationMs } from '../../util/duration.ts';
import type { EventRecorder } from '../events.ts';
import type { ComponentObject, MachineObject, NodeObject } from './lifecycle.ts';

/** Holds a Machine until its node is retired. */
export const MACHINE_FINALIZER = 'kubenode.io/machine-deletion';
/** "true": drain and uninstall are not waited for any more (components may stay on the node). */
export const ANNOTATION_FORCE_DELETE = 'kubenode.io/force-delete';
const DEFAULT_DELETION_TIMEOUT = '20m';
/** A pass that waits looks again this soon (pods terminating, PDBs, the agent uninstalling)... */
export const DELETION_POLL_MS = 5000;
/** ...and, a deletion that waits long, a tenth of how long it has waited, up to this. */
export const DELETION_POLL_MAX_MS = 30_000;

/**
 * When a waiting deletion looks again: every 5 s at first, then less often the longer it waits (a
 * PDB that holds for an hour, an agent that is down), so a hundred stuck deletions do not cost
 * the apiserver a pod list each every 5 s. Stateless: from the deletionTimestamp alone.
 */
export function deletionPollMs(deletingForMs: number): number {
  return Math.min(DELETION_POLL_MAX_MS, Math.max(DELETION_POLL_MS, Math.floor(deletingForMs / 10)));
}

const MC_PATH = `/apis/${GROUP}/${VERSION}/machinecomponents`;
const MACHINE_PATH = `/apis/${GROUP}/${VERSION}/machines`;

export interface Step {
  status: 'True' | 'False';
  reason: string;
  message: string;
}

export interface DeletionPass {
  drained: Step;
  removed: Step;
  /** Every step done and the finalizer gone. */
  done: boolean;
  wakeIn?: number;
}

export interface DeletionOptions {
  client: KubeClient;
  log: Logger;
  now: () => number;
  events?: EventRecorder;
}

type Finalized = { metadata: { finalizers?: string[]; uid?: string; deletionTimestamp?: string; annotations?: Record<string, string> } };
const finalizers = (o: unknown): string[] => (o as Finalized).metadata.finalizers ?? [];

export const hasMachineFinalizer = (m: MachineObject): boolean => finalizers(m).includes(MACHINE_FINALIZER);

/** Adds the finalizer to a live Machine (merge patch on the list as read, resourceVersion-checked). */
export async function addMachineFinalizer(client: KubeClient, m: MachineObject): Promise<'added' | 'conflict'> {
  try {
    await client.patch(`${MACHINE_PATH}/${encodeURIComponent(m.metadata.name)}`, { metadata: { resourceVersion: m.metadata.resourceVersion, finalizers: [...finalizers(m), MACHINE_FINALIZER] } }, 'merge');
    return 'added';
  } catch (err) {
    if (classifyKubeError(err) === 'conflict') return 'conflict';
    if (classifyKubeError(err) === 'not-found') return 'added';
    throw err;
  }
}

/** The Drained condition a past pass of this deletion recorded True, if any. */
function drainedBefore(m: MachineObject): Step | undefined {
  const c = m.status?.conditions?.find((x) => x.type === 'Drained');
  return c?.status === 'True' && c.reason === 'Drained' ? { status: 'True', reason: c.reason, message: c.message } : undefined;
}

export class MachineDeletion {
  readonly #o: DeletionOptions;

  constructor(o: DeletionOptions) {
    this.#o = o;
  }

  /** One pass over a Machine with a deletionTimestamp: the next step, and where it stands. */
  async step(machine: MachineObject, node: NodeObject | undefined, components: readonly ComponentObject[]): Promise<DeletionPass> {
    const name = machine.metadata.name;
    const meta = (machine as unknown as Finalized).metadata;
    const timeout = machine.spec.deletionTimeout ?? DEFAULT_DELETION_TIMEOUT;
    const deadline = Date.parse(meta.deletionTimestamp ?? '') + durationMs(timeout);
    const now = this.#o.now();
    const late = Number.isFinite(deadline) && now >= deadline;
    const forced = meta.annotations?.[ANNOTATION_FORCE_DELETE] === 'true';
    const target = { name, uid: meta.uid ?? '', apiVersion: `${GROUP}/${VERSION}`, kind: 'Machine' };
    const waited = now - Date.parse(meta.deletionTimestamp ?? '');
    const poll = deletionPollMs(Number.isFinite(waited) ? waited : 0);
    const waitIn = late ? poll : Math.min(poll, Math.max(1, deadline - now));
    const stalled = (reason: string, message: string): void => {
      this.#o.events?.record(target, 'Warning', 'DeletionStalled', message, `stalled/${reason}`);
      this.#o.log.warn({ machine: name, reason }, message);
    };

    const drained = await this.#drain(name, node, { late, forced, timeout, recorded: drainedBefore(machine) });
    if (drained.status !== 'True') {
      if (drained.reason === 'DrainTimeout') stalled('DrainTimeout', drained.message);
      return { drained, removed: { status: 'False', reason: 'WaitingForDrain', message: 'components are uninstalled once the node is drained' }, done: false, wakeIn: waitIn };
    }

    const removed = await this.#uninstall(name, node, components, { late, forced, timeout });
    if (removed.status !== 'True') {
      if (removed.reason === 'RemovalTimeout') stalled('RemovalTimeout', removed.message);
      return { drained, removed, done: false, wakeIn: waitIn };
    }

    if (node !== undefined && machine.spec.deleteNode === true) {
      await this.#deleteNode(node);
      this.#o.events?.record(target, 'Normal', 'NodeDeleted', `Node ${name} deleted (spec.deleteNode)`, 'node-deleted');
      // The Node's delete event brings the Machine back; the finalizer goes on that pass.
      return { drained, removed, done: false, wakeIn: DELETION_POLL_MS };
    }
    await this.#dropFinalizer(machine);
    this.#o.log.info({ machine: name, nodeKept: node !== undefined }, 'Machine retired');
    return { drained, removed, done: true };
  }

  async #drain(name: string, node: NodeObject | undefined, w: { late: boolean; forced: boolean; timeout: string; recorded: Step | undefined }): Promise<Step> {
    if (node === undefined) return { status: 'True', reason: 'NodeGone', message: `no Node ${name}: nothing to drain` };
    if (w.forced) return { status: 'True', reason: 'Forced', message: `drain not waited for: annotation ${ANNOTATION_FORCE_DELETE}=true` };
    // Drained once, the cordoned node stays so (only DaemonSet and mirror pods come, which a drain
    // leaves anyway): the passes that wait for the uninstall list no pods.
    if (w.recorded !== undefined && (node as { spec?: { unschedulable?: boolean } }).spec?.unschedulable === true) return w.recorded;
    const kube = this.#o.client;
    if ((node as { spec?: { unschedulable?: boolean } }).spec?.unschedulable !== true) await cordon(kube, name, systemClock);
    // One eviction pass (timeout 0): the queue brings the Machine back, so no worker sleeps here.
    const r = await drain(kube, name, { timeoutMs: 0, clock: systemClock });
    if (r.ok) return { status: 'True', reason: 'Drained', message: `Node ${name} cordoned and drained${r.skipped.length > 0 ? `; left: ${r.skipped.slice(0, 5).join(', ')}` : ''}` };
    const blocked = r.blocked.slice(0, 5).map((b) => `${b.pod} (${b.reason})`).join('; ');
    const more = r.blocked.length > 5 ? ` and ${r.blocked.length - 5} more` : '';
    if (w.late) return { status: 'False', reason: 'DrainTimeout', message: `still draining after deletionTimeout ${w.timeout}: ${r.blocked.length} pod(s) left: ${blocked}${more}; waiting on (annotate ${ANNOTATION_FORCE_DELETE}=true to go on without)` };
    const pdb = r.blocked.some((b) => b.reason.startsWith('PodDisruptionBudget'));
    return { status: 'False', reason: pdb ? 'DrainBlocked' : 'Draining', message: `${r.blocked.length} pod(s) left: ${blocked}${more}` };
  }

  async #uninstall(name: string, node: NodeObject | undefined, components: readonly ComponentObject[], w: { late: boolean; forced: boolean; timeout: string }): Promise<Step> {
    const mine = components.filter((mc) => machineOf(mc) === name);
    // No Node: no agent of this cluster runs there to uninstall, and a wait would be endless.
    const release = node === undefined || w.forced;
    for (const mc of mine) {
      const deleting = (mc as unknown as Finalized).metadata.deletionTimestamp !== undefined;
      const held = finalizers(mc).includes(UNINSTALL_FINALIZER);
      if (release) {
        if (held) await this.#releaseComponent(mc);
        if (!deleting) await this.#deleteComponent(mc);
      } else if (!deleting && (held || (await this.#holdComponent(mc)))) await this.#deleteComponent(mc);
    }
    if (mine.length === 0) return { status: 'True', reason: 'ComponentsRemoved', message: 'every MachineComponent of the machine is gone' };
    const list = mine.slice(0, 5).map((mc) => mc.metadata.name).join(', ') + (mine.length > 5 ? ` and ${mine.length - 5} more` : '');
    if (release) return { status: 'False', reason: node === undefined ? 'NodeGone' : 'Forced', message: `MachineComponents deleted without waiting for the agent: ${list}` };
    if (w.late) return { status: 'False', reason: 'RemovalTimeout', message: `the agent has not reported ${list} uninstalled within deletionTimeout ${w.timeout} (is it running? kubectl get lease -n kube-node-lease ${agentLeaseName(name)}); waiting on (annotate ${ANNOTATION_FORCE_DELETE}=true to go on without)` };
    return { status: 'False', reason: 'Uninstalling', message: `waiting for the agent to uninstall ${list}` };
  }

  /** Whether the finalizer is on: never delete a component whose uninstall could then go unseen. */
  async #holdComponent(mc: ComponentObject): Promise<boolean> {
    try {
      await this.#o.client.patch(`${MC_PATH}/${encodeURIComponent(mc.metadata.name)}`, { metadata: { resourceVersion: mc.metadata.resourceVersion, finalizers: [...finalizers(mc), UNINSTALL_FINALIZER] } }, 'merge');
      return true;
    } catch (err) {
      const kind = classifyKubeError(err);
      if (kind === 'not-found' || kind === 'conflict') return false;
      throw err;
    }
  }

  async #releaseComponent(mc: ComponentObject): Promise<void> {
    await this.#ignoreGone(this.#o.client.patch(`${MC_PATH}/${encodeURIComponent(mc.metadata.name)}`, { metadata: { resourceVersion: mc.metadata.resourceVersion, finalizers: finalizers(mc).filter((f) => f !== UNINSTALL_FINALIZER) } }, 'merge'));
  }

  async #deleteComponent(mc: ComponentObject): Promise<void> {
    const uid = (mc as unknown as Finalized).metadata.uid;
    await this.#ignoreGone(this.#o.client.request('DELETE', `${MC_PATH}/${encodeURIComponent(mc.metadata.name)}`, { body: { kind: 'DeleteOptions', apiVersion: 'v1', ...(uid === undefined ? {} : { preconditions: { uid } }) } }));
  }

  async #deleteNode(node: NodeObject): Promise<void> {
    const uid = (node as unknown as Finalized).metadata.uid;
    await this.#ignoreGone(this.#o.client.request('DELETE', `/api/v1/nodes/${encodeURIComponent(node.metadata.name)}`, { body: { kind: 'DeleteOptions', apiVersion: 'v1', ...(uid === undefined ? {} : { preconditions: { uid } }) } }));
  }

  async #dropFinalizer(m: MachineObject): Promise<void> {
    await this.#ignoreGone(this.#o.client.patch(`${MACHINE_PATH}/${encodeURIComponent(m.metadata.name)}`, { metadata: { resourceVersion: m.metadata.resourceVersion, finalizers: finalizers(m).filter((f) => f !== MACHINE_FINALIZER) } }, 'merge'));
  }

  /** Gone already is done; a 409 means the cache was stale, and the next pass (the watch brings it) looks again. */
  async #ignoreGone(p: Promise<unknown>): Promise<void> {
    try {
      await p;
    } catch (err) {
      const kind = classifyKubeError(err);
      if (kind !== 'not-found' && kind !== 'conflict') throw err;
    }
  }
}
