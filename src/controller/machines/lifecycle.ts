// Machine lifecycle: the controller's view of each Machine, from the Machine, its Node (same name)
// and its MachineComponents (machineOf: label kubenode.io/machine, or spec.machine for a name too
// long for a label). Conditions are the truth (NodeRegistered, NodeReady, ComponentsReady, Ready);
// status.lifecycle is for display.
//
// Writers never fight: the agent owns status.phase, its facts and the Node's problem conditions
// (server-side apply, manager kubenode-agent); this controller applies lifecycle, importedTime and
// its four condition types under its own manager, and conditions are a list-map keyed by type.
//
// Node labels and taints from Machine.spec: only keys this controller set are ever removed. The keys
// it set are recorded on the Node (kubenode.io/owned-labels, kubenode.io/owned-taints), and every
// Node write is a merge patch preconditioned on the resourceVersion it was computed from: a
// concurrent writer makes it a 409, and the key is looked at again from a fresher cache.
import { GROUP, machineOf, VERSION } from '../../api/common.ts';
import type { Condition } from '../../api/common.ts';
import { DeletionConditions, LifecycleConditions, type LifecyclePhase, type Machine, type Taint } from '../../api/machine.ts';
import { classifyKubeError, type KubeClient } from '../../kube/client.ts';
import type { Clock } from '../../host/clock.ts';
import type { Logger } from '../../log.ts';
import { durationMs } from '../../util/duration.ts';
import { kubeTime } from '../../report/kube/node-conditions.ts';
import type { KubeObject } from '../../watch/informer.ts';
import type { EventRecorder } from '../events.ts';
import { addMachineFinalizer, hasMachineFinalizer, MachineDeletion } from './deletion.ts';

export const FIELD_MANAGER = 'kubenode-controller';
export const ANNOTATION_OWNED_LABELS = 'kubenode.io/owned-labels';
export const ANNOTATION_OWNED_TAINTS = 'kubenode.io/owned-taints';
/** Keeps workloads off a node being imported until its components are ready. */
export const IMPORTING_TAINT: Taint = { key: 'kubenode.io/importing', effect: 'NoSchedule' };
const DEFAULT_NODE_STARTUP_TIMEOUT = '10m';
const READY_MESSAGE = 'Node Ready, labels and taints applied, every component Installed and Ready';
/** A 409 is looked at again this soon: the watch has usually delivered the newer object by then. */
const CONFLICT_RETRY_MS = 200;

export type MachineObject = KubeObject & Pick<Machine, 'spec'> & { metadata: { uid?: string; creationTimestamp?: string; deletionTimestamp?: string }; status?: Partial<Machine['status']> };

interface NodeTaint {
  key: string;
  value?: string;
  effect: string;
  timeAdded?: string;
}
export type NodeObject = KubeObject & {
  metadata: { annotations?: Record<string, string> };
  spec?: { taints?: NodeTaint[] };
  status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
};
export type ComponentObject = KubeObject & {
  spec?: { component?: string };
  status?: { phase?: string; observedGeneration?: number; conditions?: { type: string; status: string }[] };
};

/** What the reconciler reads: the controller's informers (or, in tests, any map of objects). */
export interface Cache<T> {
  get(key: string): T | undefined;
  snapshot(): ReadonlyMap<string, T>;
}

export interface LifecycleCaches {
  machines: Cache<MachineObject>;
  nodes: Cache<NodeObject>;
  components: Cache<ComponentObject>;
}

export interface LifecycleOptions {
  client: KubeClient;
  caches: LifecycleCaches;
  clock: Clock;
  log: Logger;
  mayWrite: () => boolean;
  /** Events on the Machine: the import done, a Node that did not start in time. */
  events?: EventRecorder;
}

type ConditionType = 'NodeRegistered' | 'NodeReady' | 'ComponentsReady' | 'Ready' | 'AgentCertificateValid' | 'Drained' | 'ComponentsRemoved';
interface Observed {
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
}

export class MachineLifecycle {
  readonly #o: LifecycleOptions;
  /** Machine name → names of its MachineComponents; kept from the component events, rebuilt on each sync. */
  readonly #byMachine = new Map<string, Set<string>>();
  /** What our last write returned, used while the cache still holds the object it was computed from. */
  readonly #written = new Map<string, { fromRv: string | undefined; obj: NodeObject }>();
  readonly #deletion: MachineDeletion;

  constructor(options: LifecycleOptions) {
    this.#o = options;
    this.#deletion = new MachineDeletion({ client: options.client, log: options.log, now: () => options.clock.now(), ...(options.events === undefined ? {} : { events: options.events }) });
  }

  /** The machine a component event concerns (and the index kept up to date). */
  componentEvent(type: 'add' | 'update' | 'delete', mc: ComponentObject, old?: ComponentObject): string[] {
    const machines = new Set<string>();
    const before = old === undefined ? undefined : machineOf(old);
    const now = machineOf(mc);
    if (before !== undefined) {
      this.#byMachine.get(before)?.delete(mc.metadata.name);
      machines.add(before);
    }
    if (now !== undefined) {
      if (type !== 'delete') this.#index(now).add(mc.metadata.name);
      else this.#byMachine.get(now)?.delete(mc.metadata.name);
      machines.add(now);
    }
    return [...machines];
  }

  /** A full list arrived: the index is rebuilt from it. */
  componentsSynced(): void {
    this.#byMachine.clear();
    for (const mc of this.#o.caches.components.snapshot().values()) {
      const m = machineOf(mc);
      if (m !== undefined) this.#index(m).add(mc.metadata.name);
    }
  }

  /** Forgets what it kept about a Node that went away. */
  nodeDeleted(name: string): void {
    this.#written.delete(name);
  }

  /** One pass over one Machine. Returns when to look again (a deadline, a conflict), if ever. */
  async reconcile(name: string): Promise<number | undefined> {
    const machine = this.#o.caches.machines.get(name);
    if (machine === undefined) return undefined;
    const deleting = machine.metadata.deletionTimestamp !== undefined;
    // Held by someone else's finalizer only: ours is done, nothing is left to retire.
    if (deleting && !hasMachineFinalizer(machine)) return undefined;
    if (!deleting && !hasMachineFinalizer(machine)) {
      if (!this.#o.mayWrite()) throw new Error('not the leader: refusing to write');
      // The rest of the pass goes on from the same Machine: nothing below needs the finalizer in the cache.
      if ((await addMachineFinalizer(this.#o.client, machine)) === 'conflict') return CONFLICT_RETRY_MS;
    }
    const now = this.#o.clock.now();
    const node = this.#node(name);
    const existing = new Map((machine.status?.conditions ?? []).map((c) => [c.type, c]));
    let wakeIn: number | undefined;

    const registered: Observed = node === undefined ? { status: 'False', reason: 'NodeNotRegistered', message: `no Node named ${name} yet` } : { status: 'True', reason: 'NodeRegistered', message: `Node ${name} is registered` };

    const kubelet = node?.status?.conditions?.find((c) => c.type === 'Ready');
    let nodeReady: Observed;
    if (kubelet?.status === 'True') nodeReady = { status: 'True', reason: 'NodeReady', message: kubelet.message ?? '' };
    else {
      const prior = existing.get('NodeReady')?.reason;
      const wasReady = prior === 'NodeReady' || prior === 'NodeNotReady';
      if (wasReady) nodeReady = { status: 'False', reason: 'NodeNotReady', message: `Node Ready=${kubelet?.status ?? 'missing'}${kubelet?.message ? `: ${kubelet.message}` : ''}` };
      else {
        const timeout = machine.spec.nodeStartupTimeout ?? DEFAULT_NODE_STARTUP_TIMEOUT;
        const deadline = Date.parse(machine.metadata.creationTimestamp ?? '') + durationMs(timeout);
        if (Number.isFinite(deadline) && now >= deadline) nodeReady = { status: 'False', reason: 'NodeStartupTimeout', message: `the Node has not become Ready within nodeStartupTimeout ${timeout} of the Machine's creation` };
        else {
          nodeReady = { status: 'False', reason: 'NodeStarting', message: node === undefined ? 'waiting for the Node to register' : `Node Ready=${kubelet?.status ?? 'missing'}` };
          if (Number.isFinite(deadline)) wakeIn = deadline - now;
        }
      }
    }

    const components = this.#components(machine);
    const imported = machine.status?.importedTime !== undefined;
    const importing = !imported && components.status !== 'True';

    let wrote = false;
    if (node !== undefined && !deleting) {
      const synced = await this.#syncNode(machine, node, importing);
      if (synced === 'conflict') return CONFLICT_RETRY_MS;
      wrote = synced === 'written';
    }

    const certificate = this.#certificate(machine, now);
    if (certificate?.wakeIn !== undefined) wakeIn = Math.min(wakeIn ?? Infinity, certificate.wakeIn);

    const observed: Partial<Record<ConditionType, Observed>> = { NodeRegistered: registered, NodeReady: nodeReady, ComponentsReady: components };
    if (certificate !== undefined) observed.AgentCertificateValid = certificate.observed;
    if (deleting) {
      if (!this.#o.mayWrite()) throw new Error('not the leader: refusing to write');
      const mcs = [...(this.#byMachine.get(name) ?? [])].map((n) => this.#o.caches.components.get(n)).filter((mc): mc is ComponentObject => mc !== undefined);
      const pass = await this.#deletion.step(machine, node, mcs);
      if (pass.done) return undefined;
      observed.Drained = pass.drained;
      observed.ComponentsRemoved = pass.removed;
      wakeIn = pass.wakeIn;
    }
    const notReady = Object.values(observed).find((c) => c.status !== 'True');
    const ready: Observed = deleting
      ? { status: 'False', reason: 'Deleting', message: `the Machine is being deleted: ${notReady?.message ?? 'finishing'}` }
      : notReady !== undefined
        ? { status: 'False', reason: notReady.reason, message: notReady.message }
        : { status: 'True', reason: 'Ready', message: READY_MESSAGE };
    observed.Ready = ready;

    let lifecycle: LifecyclePhase;
    if (deleting) lifecycle = 'Deleting';
    else if (node === undefined) lifecycle = 'Pending';
    else if (!imported && wrote) lifecycle = 'Importing';
    else if (nodeReady.status !== 'True') lifecycle = 'WaitingForNode';
    else if (ready.status !== 'True') lifecycle = 'InstallingComponents';
    else lifecycle = 'Running';

    const conditions: Condition[] = (Object.entries(observed) as [ConditionType, Observed][]).map(([type, o]) => {
      const prior = existing.get(type);
      const lastTransitionTime = prior !== undefined && prior.status === o.status ? prior.lastTransitionTime : kubeTime(now);
      return { type, status: o.status, reason: o.reason, message: o.message.slice(0, 32768), observedGeneration: machine.metadata.generation, lastTransitionTime };
    });
    const importedTime = machine.status?.importedTime ?? (ready.status === 'True' ? kubeTime(now) : undefined);
    const status = { lifecycle, ...(importedTime === undefined ? {} : { importedTime }), conditions };
    if (!sameStatus(machine, status)) await this.#writeStatus(name, status);
    const target = { name, uid: machine.metadata.uid ?? '', apiVersion: `${GROUP}/${VERSION}`, kind: 'Machine' };
    if (nodeReady.reason === 'NodeStartupTimeout' && existing.get('NodeReady')?.reason !== 'NodeStartupTimeout') this.#o.events?.record(target, 'Warning', 'NodeStartupTimeout', nodeReady.message, 'NodeStartupTimeout');
    if (machine.status?.importedTime === undefined && importedTime !== undefined) this.#o.events?.record(target, 'Normal', 'Imported', READY_MESSAGE, 'Imported');
    if (certificate?.observed.reason === 'CertificateExpired' && existing.get('AgentCertificateValid')?.reason !== 'CertificateExpired') {
      this.#o.events?.record(target, 'Warning', 'AgentCertificateExpired', certificate.observed.message, `cert-expired/${machine.status?.agentCertificateExpiry ?? ''}`);
      this.#o.log.error({ machine: name, notAfter: machine.status?.agentCertificateExpiry }, certificate.observed.message);
    }
    return wakeIn;
  }

  /** From status.agentCertificateExpiry (the newest certificate signed for the agent), once known. */
  #certificate(machine: MachineObject, now: number): { observed: Observed; wakeIn?: number } | undefined {
    const at = machine.status?.agentCertificateExpiry;
    const notAfter = Date.parse(at ?? '');
    if (at === undefined || !Number.isFinite(notAfter)) return undefined;
    // Looked at again within a day: a timer longer than 2^31 ms would fire at once.
    if (now < notAfter) return { observed: { status: 'True', reason: 'CertificateValid', message: `the agent's client certificate is valid until ${at}` }, wakeIn: Math.min(notAfter - now, 24 * 3600_000) };
    return {
      observed: {
        status: 'False',
        reason: 'CertificateExpired',
        message: `the agent's client certificate expired at ${at} and no renewal was signed: the agent can no longer reach the apiserver; run kubenode-agent join on the node with a new bootstrap token`,
      },
    };
  }

  #index(machine: string): Set<string> {
    let s = this.#byMachine.get(machine);
    if (s === undefined) this.#byMachine.set(machine, (s = new Set()));
    return s;
  }

  #node(name: string): NodeObject | undefined {
    const cached = this.#o.caches.nodes.get(name);
    const w = this.#written.get(name);
    if (w === undefined || cached === undefined) return cached;
    if (cached.metadata.resourceVersion === w.fromRv) return w.obj;
    this.#written.delete(name);
    return cached;
  }

  #components(machine: MachineObject): Observed {
    const names = [...(this.#byMachine.get(machine.metadata.name) ?? [])].sort();
    const mcs = names.map((n) => this.#o.caches.components.get(n)).filter((mc): mc is ComponentObject => mc !== undefined);
    const present = new Set(mcs.map((mc) => mc.spec?.component));
    const missing = (machine.spec.components ?? []).filter((c) => !present.has(c));
    const waiting = mcs.filter((mc) => !(mc.status?.phase === 'Installed' && mc.status.observedGeneration === mc.metadata.generation && mc.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')));
    if (missing.length > 0) return { status: 'False', reason: 'ComponentsMissing', message: `no MachineComponent for ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''}` };
    if (waiting.length > 0) {
      const list = waiting.slice(0, 5).map((mc) => `${mc.metadata.name} (${mc.status?.phase ?? 'no status'})`);
      return { status: 'False', reason: 'ComponentsNotReady', message: `${waiting.length} of ${mcs.length} not Installed and Ready: ${list.join(', ')}` };
    }
    return { status: 'True', reason: mcs.length === 0 ? 'NoComponents' : 'ComponentsReady', message: `${mcs.length} component(s) Installed and Ready` };
  }

  /** Whether the Node already carried what the Machine asks, was written to, or changed under the write (409). */
  async #syncNode(machine: MachineObject, node: NodeObject, importing: boolean): Promise<'in-sync' | 'written' | 'conflict'> {
    const patch = nodePatch(machine, node, importing);
    if (patch === undefined) return 'in-sync';
    if (!this.#o.mayWrite()) throw new Error('not the leader: refusing to write');
    const path = `/api/v1/nodes/${encodeURIComponent(node.metadata.name)}`;
    try {
      const out = await this.#o.client.patch<NodeObject>(path, { metadata: { resourceVersion: node.metadata.resourceVersion, ...patch.metadata }, ...(patch.spec === undefined ? {} : { spec: patch.spec }) }, 'merge');
      this.#written.set(node.metadata.name, { fromRv: this.#o.caches.nodes.get(node.metadata.name)?.metadata.resourceVersion, obj: out });
      this.#o.log.info({ machine: machine.metadata.name, labels: patch.metadata.labels, taints: patch.spec?.taints.map(taintId) }, 'Node labels and taints applied');
      return 'written';
    } catch (err) {
      if (classifyKubeError(err) !== 'conflict') throw err;
      this.#written.delete(node.metadata.name);
      this.#o.log.debug({ machine: machine.metadata.name }, 'Node changed under the write (409); looking again');
      return 'conflict';
    }
  }

  async #writeStatus(name: string, status: Record<string, unknown>): Promise<void> {
    if (!this.#o.mayWrite()) throw new Error('not the leader: refusing to write');
    const body = { apiVersion: `${GROUP}/${VERSION}`, kind: 'Machine', metadata: { name }, status };
    // force: these fields are this controller's alone; a stale manager name must not block it.
    await this.#o.client.patch(`/apis/${GROUP}/${VERSION}/machines/${encodeURIComponent(name)}/status`, body, 'apply', { query: { fieldManager: FIELD_MANAGER, force: 'true' } });
  }
}

/** What of a Node this reconciler reads: an update that leaves it alone (a heartbeat) is no reason to run. */
export function nodeFingerprint(node: KubeObject): string {
  const n = node as NodeObject;
  const ready = n.status?.conditions?.find((c) => c.type === 'Ready');
  const a = n.metadata.annotations ?? {};
  return JSON.stringify([ready?.status, ready?.message, n.metadata.labels ?? {}, a[ANNOTATION_OWNED_LABELS], a[ANNOTATION_OWNED_TAINTS], n.spec?.taints ?? []]);
}

const taintId = (t: { key: string; effect: string }): string => `${t.key}:${t.effect}`;
const splitList = (s: string | undefined): Set<string> => new Set((s ?? '').split(',').filter((x) => x !== ''));

/** The merge patch that makes the Node carry the Machine's labels and taints, or undefined when it does. */
export function nodePatch(machine: MachineObject, node: NodeObject, importing: boolean): { metadata: { labels?: Record<string, string | null>; annotations?: Record<string, string | null> }; spec?: { taints: NodeTaint[] } } | undefined {
  const annotations = node.metadata.annotations ?? {};
  const have = node.metadata.labels ?? {};
  const want = machine.spec.labels ?? {};
  const labels: Record<string, string | null> = {};
  for (const [k, v] of Object.entries(want)) if (have[k] !== v) labels[k] = v;
  for (const k of splitList(annotations[ANNOTATION_OWNED_LABELS])) if (!(k in want) && k in have) labels[k] = null;

  const wantTaints = new Map<string, Taint>();
  for (const t of [...(machine.spec.taints ?? []), ...(importing ? [IMPORTING_TAINT] : [])]) wantTaints.set(taintId(t), t);
  const ownedTaints = splitList(annotations[ANNOTATION_OWNED_TAINTS]);
  const current = node.spec?.taints ?? [];
  const next: NodeTaint[] = [];
  const placed = new Set<string>();
  for (const t of current) {
    const w = wantTaints.get(taintId(t));
    if (w !== undefined) {
      if (placed.has(taintId(t))) continue;
      placed.add(taintId(t));
      next.push({ ...t, ...(w.value === undefined || w.value === '' ? { value: undefined } : { value: w.value }) });
    } else if (!ownedTaints.has(taintId(t))) next.push(t);
  }
  for (const [id, w] of wantTaints) if (!placed.has(id)) next.push({ key: w.key, effect: w.effect, ...(w.value === undefined || w.value === '' ? {} : { value: w.value }) });
  const clean = (ts: NodeTaint[]): string => JSON.stringify(ts.map((t) => ({ key: t.key, value: t.value ?? '', effect: t.effect, timeAdded: t.timeAdded ?? '' })));
  const taintsChanged = clean(next) !== clean(current);

  const newAnnotations: Record<string, string | null> = {};
  const ownLabels = Object.keys(want).sort().join(',');
  const ownTaints = [...wantTaints.keys()].sort().join(',');
  if ((annotations[ANNOTATION_OWNED_LABELS] ?? '') !== ownLabels) newAnnotations[ANNOTATION_OWNED_LABELS] = ownLabels === '' ? null : ownLabels;
  if ((annotations[ANNOTATION_OWNED_TAINTS] ?? '') !== ownTaints) newAnnotations[ANNOTATION_OWNED_TAINTS] = ownTaints === '' ? null : ownTaints;

  if (Object.keys(labels).length === 0 && Object.keys(newAnnotations).length === 0 && !taintsChanged) return undefined;
  return {
    metadata: { ...(Object.keys(labels).length === 0 ? {} : { labels }), ...(Object.keys(newAnnotations).length === 0 ? {} : { annotations: newAnnotations }) },
    ...(taintsChanged ? { spec: { taints: next.map((t) => JSON.parse(JSON.stringify(t)) as NodeTaint) } } : {}),
  };
}

/** The controller's conditions on the Machine; the agent's problem conditions are not ours to count. */
const OWN_CONDITIONS = new Set<string>([...LifecycleConditions, ...DeletionConditions]);

function sameStatus(machine: MachineObject, status: { lifecycle: string; importedTime?: string; conditions: Condition[] }): boolean {
  const s = machine.status;
  if (s?.lifecycle !== status.lifecycle || s.importedTime !== status.importedTime) return false;
  const have = new Map((s.conditions ?? []).map((c) => [c.type, c]));
  // A condition type we wrote before and write no more must be dropped: that needs a write too.
  if ([...have.keys()].filter((t) => OWN_CONDITIONS.has(t)).length !== status.conditions.length) return false;
  return status.conditions.every((c) => {
    const h = have.get(c.type);
    return h !== undefined && h.status === c.status && h.reason === c.reason && h.message === c.message && h.lastTransitionTime === c.lastTransitionTime && h.observedGeneration === c.observedGeneration;
  });
}
