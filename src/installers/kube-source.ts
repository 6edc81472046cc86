// The cluster as the source of desired state: this node's MachineComponents (label
// kubenode.io/machine=labelValueOf(NODE), and machineOf naming NODE), watched by a resilient
// informer, feed the same InstallReconciler and Engine as the manifest directory does; after each
// pass each component's status (as the engine recorded it in the state dir) is written to the
// MachineComponent's status subresource.
import type { KubeConfig } from '@kubernetes/client-node';
import { API_VERSION } from '../api/common.ts';
import { KIND, type ComponentCondition, type MachineComponentSpec, type MachineComponentStatus } from '../api/machine-component.ts';
import { ConfigError, errorMessage } from '../errors.ts';
import { classifyKubeError, type KubeClient } from '../kube/client.ts';
import type { Logger } from '../log.ts';
import type { Informer, InformerStats, KubeObject } from '../watch/informer.ts';
import { GROUP, MACHINE_LABEL, VERSION, machineComponentInformer } from '../watch/sources.ts';
import { machineOf, UNINSTALL_FINALIZER } from '../api/common.ts';
import type { ApplyOutcome } from './engine.ts';
import { parseManifestText } from './manifests.ts';
import { InstallReconciler, type Desired, type DesiredSource } from './reconciler.ts';
import { emptyStatus, readStatus, setCondition } from './status.ts';
import type { InstallContext, Target } from './types.ts';

const PLURAL = 'machinecomponents';

export interface MachineComponentObject extends KubeObject {
  spec?: MachineComponentSpec;
  status?: Partial<MachineComponentStatus> & Record<string, unknown>;
}

export interface KubeSourceOptions {
  /** A client of the source's own: the informer resets its pool after a stall, close() closes it. */
  client: KubeClient;
  kubeConfig: KubeConfig;
  nodeName: string;
  log: Logger;
  /** Informer tuning (tests shorten these). */
  resyncMs?: number;
  stallMs?: number;
  /** Attempts of one status write on 409 Conflict. Default 8. */
  statusAttempts?: number;
  /** Test hook: runs before each status write attempt (a test makes a competing writer win here). */
  beforeStatusWrite?: (name: string, attempt: number) => Promise<void>;
}

export interface KubeSourceStats {
  statusWrites: number;
  statusConflicts: number;
  statusReads: number;
  statusErrors: number;
}

/** The fields of status this agent owns; everything else in status belongs to someone else. */
const OWN_FIELDS = ['phase', 'installedVersion', 'observedGeneration', 'attemptedGeneration', 'configHash', 'specHash', 'lastError', 'history', 'updatedAt'] as const;

/**
 * What the object's status should say about our fields: the local status, with conditions of the
 * types we write (other writers' conditions are kept as they are).
 */
export function mergeStatus(current: Record<string, unknown> | undefined, ours: MachineComponentStatus): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...(current ?? {}) };
  for (const f of OWN_FIELDS) {
    if (ours[f] === undefined) delete merged[f];
    else merged[f] = ours[f];
  }
  const ownTypes = new Set(ours.conditions.map((c) => c.type));
  const others = (Array.isArray(current?.conditions) ? (current.conditions as ComponentCondition[]) : []).filter((c) => !ownTypes.has(c.type));
  merged.conditions = [...others, ...ours.conditions];
  return merged;
}

/** Our fields of a status as canonical JSON: equal means no write is needed. */
function ownPart(status: Record<string, unknown> | undefined, ownTypes: ReadonlySet<string>): string {
  const s = status ?? {};
  const conditions = (Array.isArray(s.conditions) ? (s.conditions as ComponentCondition[]) : []).filter((c) => ownTypes.has(c.type));
  return JSON.stringify(canonical([OWN_FIELDS.map((f) => s[f] ?? null), conditions]));
}

/** Sorted keys: the apiserver returns objects with keys in its own order. */
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical((v as Record<string, unknown>)[k])]));
  return v;
}

const objectPath = (name: string): string => `/apis/${GROUP}/${VERSION}/${PLURAL}/${encodeURIComponent(name)}`;

export class KubeComponentSource implements DesiredSource {
  readonly informer: Informer<MachineComponentObject>;
  readonly stats: KubeSourceStats = { statusWrites: 0, statusConflicts: 0, statusReads: 0, statusErrors: 0 };
  readonly #o: KubeSourceOptions;
  /** component → the object that declares it, as of the last load. */
  #owners = new Map<string, { name: string; generation: number; specHash: string }>();
  /** Objects refused at the last load, with why. */
  #refused = new Map<string, ConfigError>();
  /** Objects the selector found that are for another machine (spec.machine), as of the last load. */
  #foreign = new Set<string>();
  #unsubscribe: (() => void) | undefined;

  constructor(options: KubeSourceOptions) {
    this.#o = options;
    this.informer = machineComponentInformer<MachineComponentObject>(options.client, options.kubeConfig, options.nodeName, options.log, {
      ...(options.resyncMs === undefined ? {} : { resyncMs: options.resyncMs }),
      ...(options.stallMs === undefined ? {} : { stallMs: options.stallMs }),
    });
  }

  get informerStats(): InformerStats {
    return this.informer.stats;
  }

  start(trigger: () => void): void {
    this.#unsubscribe = this.informer.on((event) => {
      // Our own status writes come back as MODIFIED: only a spec change (generation), a new or
      // deleted object or a completed list can change what to install.
      if (
        event.type === 'update' &&
        event.old.metadata.generation === event.object.metadata.generation &&
        event.old.metadata.labels?.[MACHINE_LABEL] === event.object.metadata.labels?.[MACHINE_LABEL] &&
        event.old.metadata.deletionTimestamp === event.object.metadata.deletionTimestamp
      )
        return;
      trigger();
    });
    this.informer.start();
  }

  async load(): Promise<Desired | undefined> {
    // Before the first list we do not know the desired state: an empty cache is not "nothing declared".
    if (!this.informer.hasSynced) return undefined;
    const targets: Target[] = [];
    const errors: ConfigError[] = [];
    const owners = new Map<string, { name: string; generation: number; specHash: string }>();
    this.#refused = new Map();
    const foreign = new Set<string>();
    const objects = [...this.informer.snapshot().values()].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    for (const obj of objects) {
      // The label of a name too long for one is a shortened form that another name could share (or
      // a machine could be named): spec.machine says whose it is. Its status is not ours to write.
      if (!this.#mine(obj)) {
        if (!this.#foreign.has(obj.metadata.name)) this.#o.log.warn({ object: obj.metadata.name, machine: machineOf(obj) }, 'MachineComponent labelled for this node is for another machine; ignored');
        foreign.add(obj.metadata.name);
        continue;
      }
      // Being deleted (its Machine retired): no longer declared, so the engine removes it.
      if (obj.metadata.deletionTimestamp !== undefined) continue;
      const where = `${KIND}/${obj.metadata.name}`;
      try {
        // The same validation (and defaults) as a manifest file: JSON is YAML.
        const doc = { apiVersion: API_VERSION, kind: KIND, metadata: { name: obj.metadata.name, generation: obj.metadata.generation ?? 1 }, spec: obj.spec };
        const [target] = parseManifestText(where, JSON.stringify(doc));
        if (target === undefined) continue;
        const clash = owners.get(target.spec.component);
        if (clash !== undefined) throw new ConfigError(where, 'spec.component', `${target.spec.component} is already declared by ${KIND}/${clash.name}`);
        target.origin = where;
        owners.set(target.spec.component, { name: obj.metadata.name, generation: target.generation, specHash: target.specHash });
        targets.push(target);
      } catch (err) {
        const e = err instanceof ConfigError ? err : new ConfigError(where, '', errorMessage(err));
        errors.push(e);
        this.#refused.set(obj.metadata.name, e);
      }
    }
    this.#owners = owners;
    this.#foreign = foreign;
    return { targets, errors };
  }

  #mine(obj: MachineComponentObject): boolean {
    return machineOf(obj) === this.#o.nodeName;
  }

  /** Writes each declared component's status when our part of it differs from the object's. */
  async report(_outcomes: ApplyOutcome[], ctx: InstallContext): Promise<void> {
    const now = new Date(ctx.host.clock.now()).toISOString();
    const wanted: { name: string; status: MachineComponentStatus }[] = [];
    for (const [component, owner] of this.#owners) {
      const status = await readStatus(ctx.host, ctx.config.stateDir, component);
      if (status === undefined) continue;
      // A spec edit that changes nothing the engine acts on (same hash) is still observed.
      if (status.phase === 'Installed' && status.specHash === owner.specHash) {
        status.observedGeneration = Math.max(status.observedGeneration, owner.generation);
        status.attemptedGeneration = Math.max(status.attemptedGeneration ?? 0, owner.generation);
      }
      wanted.push({ name: owner.name, status });
    }
    for (const [name, err] of this.#refused) {
      const status = emptyStatus();
      const prev = this.informer.get(name)?.status;
      status.phase = 'Failed';
      status.lastError = err.message;
      // Keep the transition time of an unchanged refusal, so the status stays still (no write).
      const prevReady = (Array.isArray(prev?.conditions) ? (prev.conditions as ComponentCondition[]) : []).find((c) => c.type === 'Ready');
      if (prevReady !== undefined) status.conditions.push({ ...prevReady });
      setCondition(status, now, 'Ready', 'False', 'InvalidSpec', err.message);
      status.observedGeneration = this.informer.get(name)?.metadata.generation ?? 0;
      status.attemptedGeneration = status.observedGeneration;
      if (typeof prev?.updatedAt === 'string' && prev.phase === 'Failed' && prev.lastError === err.message) status.updatedAt = prev.updatedAt;
      else status.updatedAt = now;
      wanted.push({ name, status });
    }
    for (const { name, status } of wanted) {
      try {
        await this.writeStatus(name, status);
      } catch (err) {
        this.stats.statusErrors += 1;
        this.#o.log.warn({ component: name, err: errorMessage(err) }, 'MachineComponent status write failed; retried on the next pass');
      }
    }
    await this.#releaseUninstalled(ctx);
  }

  /**
   * A deleted MachineComponent held by the uninstall finalizer is let go once the engine keeps no
   * status for its component any more: removed, or (removalPolicy Orphan) forgotten. A removal that
   * failed keeps its status, so the finalizer stays and the controller says it waits.
   */
  async #releaseUninstalled(ctx: InstallContext): Promise<void> {
    for (const obj of this.informer.snapshot().values()) {
      const held = ((obj.metadata.finalizers as string[] | undefined) ?? []).indexOf(UNINSTALL_FINALIZER);
      const component = obj.spec?.component;
      if (obj.metadata.deletionTimestamp === undefined || held < 0 || component === undefined || !this.#mine(obj)) continue;
      if (this.#owners.has(component) || (await readStatus(ctx.host, ctx.config.stateDir, component)) !== undefined) continue;
      try {
        // test-then-remove: a list that changed since it was read is a 422, tried again next pass.
        await this.#o.client.patch(objectPath(obj.metadata.name), [{ op: 'test', path: `/metadata/finalizers/${held}`, value: UNINSTALL_FINALIZER }, { op: 'remove', path: `/metadata/finalizers/${held}` }], 'json');
        this.#o.log.info({ component, object: obj.metadata.name }, 'Component uninstalled; MachineComponent released');
      } catch (err) {
        if (classifyKubeError(err) === 'not-found') continue;
        this.stats.statusErrors += 1;
        this.#o.log.warn({ component: obj.metadata.name, err: errorMessage(err) }, 'Releasing the uninstall finalizer failed; retried on the next pass');
      }
    }
  }

  /**
   * Optimistic concurrency on the status subresource: write our fields onto the object as last
   * seen; on 409 re-read it, put our fields onto the fresh copy (keeping everyone else's) and write
   * again. Returns whether a write happened.
   */
  async writeStatus(name: string, ours: MachineComponentStatus): Promise<boolean> {
    const client = this.#o.client;
    const ownTypes = new Set(ours.conditions.map((c) => c.type));
    const attempts = this.#o.statusAttempts ?? 8;
    let current = this.informer.get(name);
    for (let attempt = 1; ; attempt++) {
      if (current === undefined) return false; // deleted meanwhile: nothing to report on
      if (ownPart(current.status, ownTypes) === ownPart(ours as unknown as Record<string, unknown>, ownTypes)) return false;
      await this.#o.beforeStatusWrite?.(name, attempt);
      const body = { ...current, status: mergeStatus(current.status, ours) };
      try {
        this.stats.statusWrites += 1;
        await client.request('PUT', `${objectPath(name)}/status`, { body });
        return true;
      } catch (err) {
        const kind = classifyKubeError(err);
        if (kind === 'not-found') return false;
        if (kind !== 'conflict' || attempt >= attempts) throw err;
        this.stats.statusConflicts += 1;
        this.#o.log.debug({ component: name, attempt }, 'Status write conflict; re-reading');
        this.stats.statusReads += 1;
        try {
          current = await client.get<MachineComponentObject>(`${objectPath(name)}/status`);
        } catch (readErr) {
          if (classifyKubeError(readErr) === 'not-found') return false;
          throw readErr;
        }
      }
    }
  }

  /** Stops the watch and drops the client's keep-alive sockets (the source owns its client). */
  async close(): Promise<void> {
    this.#unsubscribe?.();
    await this.informer.stop();
    this.#o.client.close();
  }
}

export interface KubeInstallerOptions extends Omit<KubeSourceOptions, 'log' | 'nodeName'> {
  debounceMs?: number;
  intervalMs?: number;
}

/**
 * What the daemon calls with a kubeconfig: the reconciler fed by the cluster. `ctx` is built as
 * for standalone mode (createInstallContext).
 */
export function startKubeInstaller(ctx: Omit<InstallContext, 'signal'>, options: KubeInstallerOptions & { intervalMs: number }): { reconciler: InstallReconciler; source: KubeComponentSource } {
  const source = new KubeComponentSource({ ...options, nodeName: ctx.nodeName, log: ctx.log });
  const reconciler = new InstallReconciler(ctx, { source, debounceMs: options.debounceMs ?? 0, intervalMs: options.intervalMs });
  reconciler.start();
  return { reconciler, source };
}

