// The daemon's install loop: a source of desired state (the manifest directory, watched and
// debounced, in standalone mode; the cluster's MachineComponents in src/installers/kube-source.ts)
// plus a periodic pass that repairs drift; one run at a time, under the node-wide install lock.
import { errorMessage } from '../errors.ts';
import type { Host } from '../host/host.ts';
import { watchDir, type DirWatch } from '../host/watch.ts';
import type { Logger } from '../log.ts';
import type { ComponentObserver } from '../report/component-metrics.ts';
import { createInstallContext, manifestReader, type InstallersSlice } from './context.ts';
import type { ApplyOutcome, Engine } from './engine.ts';
import type { InstallerGate } from '../risk/gate.ts';
import type { InstallContext, Target } from './types.ts';
import type { ConfigError } from '../errors.ts';

export interface Desired {
  targets: Target[];
  /** One per refused file or object. */
  errors: ConfigError[];
  /** Nothing is declared at all (no manifest directory): no engine run. */
  absent?: boolean;
}

/** Where the desired state comes from. The reconciler owns the pass; the source says what to converge to. */
export interface DesiredSource {
  /** Starts noticing changes; calls trigger() whenever the desired state may have changed. */
  start(trigger: () => void): void;
  /** The desired state now; undefined: not known yet (skip the pass, a trigger follows). */
  load(): Promise<Desired | undefined>;
  /** After each pass that ran the engine: report the outcome (status) where the source lives. */
  report?(outcomes: ApplyOutcome[], ctx: InstallContext): Promise<void>;
  close(): Promise<void>;
}

/** Standalone mode: a host directory of MachineComponent YAML files. */
export class ManifestDirSource implements DesiredSource {
  readonly #host: Host;
  readonly #dir: string;
  readonly #debounceMs: number;
  readonly #log: Logger;
  #watch: DirWatch | undefined;

  constructor(host: Host, dir: string, debounceMs: number, log: Logger) {
    this.#host = host;
    this.#dir = dir;
    this.#debounceMs = debounceMs;
    this.#log = log;
  }

  start(trigger: () => void): void {
    this.#watch = watchDir(this.#host, this.#dir, this.#debounceMs, trigger);
  }

  async load(): Promise<Desired> {
    if (!(await this.#host.exists(this.#dir))) {
      // No manifest directory: nothing declared on this node (yet); the watch notices it appearing.
      this.#log.debug({ dir: this.#dir }, 'No manifest directory; nothing to install');
      return { targets: [], errors: [], absent: true };
    }
    const { loadManifestDir } = await import('./manifests.ts');
    return loadManifestDir(manifestReader(this.#host, false), this.#dir);
  }

  async close(): Promise<void> {
    await this.#watch?.close();
  }
}

export interface ReconcilerOptions {
  /** Standalone: the manifest directory (ignored when source is given). */
  manifestDir?: string;
  source?: DesiredSource;
  debounceMs: number;
  intervalMs: number;
}

export class InstallReconciler {
  readonly #ctx: InstallContext;
  /** Loaded on the first pass with something declared: a node with no manifest directory never loads the engine, the manifest schema or the install lock. */
  #engine: Engine | undefined;
  readonly #options: ReconcilerOptions;
  readonly #abort = new AbortController();
  readonly #source: DesiredSource;
  #interval: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #dirty = false;
  #stopped = false;
  /** Outcomes of the last completed pass (for health and tests). */
  last: { at: number; outcomes: ApplyOutcome[]; manifestErrors: string[] } | undefined;
  /** Completed passes. */
  passes = 0;

  constructor(ctx: Omit<InstallContext, 'signal'>, options: ReconcilerOptions) {
    this.#ctx = { ...ctx, signal: this.#abort.signal };
    this.#options = options;
    this.#source = options.source ?? new ManifestDirSource(ctx.host, options.manifestDir ?? ctx.config.manifestDir, options.debounceMs, ctx.log);
  }

  start(): void {
    this.#source.start(() => this.trigger());
    this.#interval = setInterval(() => this.trigger(), this.#options.intervalMs);
    this.#interval.unref();
    this.trigger();
  }

  /** Asks for a pass; coalesces with one in flight (a pass follows it). */
  trigger(): void {
    if (this.#stopped) return;
    if (this.#running !== undefined) {
      this.#dirty = true;
      return;
    }
    this.#running = this.#loop().finally(() => {
      this.#running = undefined;
    });
  }

  async #loop(): Promise<void> {
    do {
      this.#dirty = false;
      await this.#pass();
    } while (this.#dirty && !this.#stopped);
  }

  async #pass(): Promise<void> {
    const { host, log } = this.#ctx;
    try {
      const manifests = await this.#source.load();
      if (manifests === undefined) return;
      if (manifests.absent === true) {
        this.last = { at: host.clock.now(), outcomes: [], manifestErrors: [] };
        return;
      }
      for (const err of manifests.errors) log.error({ file: err.file, field: err.field, err: err.message }, 'Manifest refused');
      this.#engine ??= new (await import('./engine.ts')).Engine(this.#ctx);
      const [{ LockBusyError }, { listStatuses }] = await Promise.all([import('../host/lock.ts'), import('./status.ts')]);
      let lock;
      try {
        lock = await this.#engine.lock('kubenode-agent run (installers)');
      } catch (err) {
        if (err instanceof LockBusyError) {
          log.warn({ err: err.message }, 'Install lock busy; will retry on the next pass');
          this.#dirty = false;
          return;
        }
        throw err;
      }
      try {
        // Removal only from a complete desired state: a refused file or object may declare what is installed.
        const outcomes = await this.#engine.apply(manifests.targets, { removeUndeclared: manifests.errors.length === 0 });
        this.last = { at: host.clock.now(), outcomes, manifestErrors: manifests.errors.map((e) => e.message) };
      } finally {
        await lock.release();
      }
      if (this.#ctx.metrics !== undefined) this.#ctx.metrics.passDone(this.last.outcomes, await listStatuses(host, this.#ctx.config.stateDir));
      await this.#source.report?.(this.last.outcomes, this.#ctx);
    } catch (err) {
      log.error({ err: errorMessage(err) }, 'Install pass failed');
    } finally {
      this.passes += 1;
    }
  }

  /**
   * Stops watching and waits for the pass in flight. By default (the agent stopping) the pass is
   * interrupted between steps and its journal resumes it on the next start; with `finish` (a
   * reload) it runs to its end, so a reload never cuts a run — or a hook — in two.
   */
  async stop(options: { finish?: boolean } = {}): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#interval);
    await this.#source.close();
    if (options.finish !== true) this.#abort.abort(new Error('agent stopping'));
    await this.#running;
  }
}

/** What the daemon calls: builds the context from the installers' slice and starts the loop. */
export function startInstallReconciler(host: Host, slice: InstallersSlice, log: Logger, options: { risk: InstallerGate; metrics?: ComponentObserver }): InstallReconciler {
  const ctx = createInstallContext(host, slice, log, options);
  const reconciler = new InstallReconciler(ctx, {
    manifestDir: ctx.config.manifestDir,
    debounceMs: slice.installers.reconcileDebounce,
    intervalMs: slice.installers.reconcileInterval,
  });
  reconciler.start();
  return reconciler;
}
