// The daemon's standalone loop: the manifest directory (a host path) watched and debounced, plus
// a periodic pass that repairs drift; one run at a time, under the node-wide install lock.
import type { AgentConfig } from '../config/schema.ts';
import { errorMessage } from '../errors.ts';
import type { Host } from '../host/host.ts';
import { LockBusyError } from '../host/lock.ts';
import { watchDir, type DirWatch } from '../host/watch.ts';
import type { Logger } from '../log.ts';
import { createInstallContext, manifestReader } from './context.ts';
import { Engine, type ApplyOutcome } from './engine.ts';
import { loadManifestDir } from './manifests.ts';
import type { RiskGate } from './risk.ts';
import type { InstallContext } from './types.ts';
import { parseDuration } from '../util/duration.ts';

export interface ReconcilerOptions {
  manifestDir: string;
  debounceMs: number;
  intervalMs: number;
}

export class InstallReconciler {
  readonly #ctx: InstallContext;
  readonly #engine: Engine;
  readonly #options: ReconcilerOptions;
  readonly #abort = new AbortController();
  #watch: DirWatch | undefined;
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
    this.#engine = new Engine(this.#ctx);
    this.#options = options;
  }

  start(): void {
    this.#watch = watchDir(this.#ctx.host, this.#options.manifestDir, this.#options.debounceMs, () => this.trigger());
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
      if (!(await host.exists(this.#options.manifestDir))) {
        // No manifest directory: nothing declared on this node (yet); the watch notices it appearing.
        log.debug({ dir: this.#options.manifestDir }, 'No manifest directory; nothing to install');
        this.last = { at: host.clock.now(), outcomes: [], manifestErrors: [] };
        return;
      }
      const manifests = await loadManifestDir(manifestReader(host, false), this.#options.manifestDir);
      for (const err of manifests.errors) log.error({ file: err.file, field: err.field, err: err.message }, 'Manifest refused');
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
        const outcomes = await this.#engine.apply(manifests.targets);
        this.last = { at: host.clock.now(), outcomes, manifestErrors: manifests.errors.map((e) => e.message) };
      } finally {
        await lock.release();
      }
    } catch (err) {
      log.error({ err: errorMessage(err) }, 'Install pass failed');
    } finally {
      this.passes += 1;
    }
  }

  /** Stops watching, interrupts the pass in flight between steps (its journal resumes it later), waits for it. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#interval);
    await this.#watch?.close();
    this.#abort.abort(new Error('agent stopping'));
    await this.#running;
  }
}

/** What the daemon calls: builds the context from the agent config and starts the loop. */
export function startInstallReconciler(host: Host, config: AgentConfig, nodeName: string, log: Logger, options: { risk?: RiskGate } = {}): InstallReconciler {
  const ctx = createInstallContext(host, config, nodeName, log, options);
  const reconciler = new InstallReconciler(ctx, {
    manifestDir: ctx.config.manifestDir,
    debounceMs: parseDuration(config.installers.reconcileDebounce) ?? 2000,
    intervalMs: parseDuration(config.installers.reconcileInterval) ?? 600_000,
  });
  reconciler.start();
  return reconciler;
}
