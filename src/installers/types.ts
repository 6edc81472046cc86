import type { Logger } from 'pino';
import { AgentError } from '../errors.ts';
import type { Host } from '../host/host.ts';
import type { LockHolder } from '../host/lock.ts';
import type { ComponentObserver } from '../report/component-metrics.ts';
import type { InstallersConfig } from './config.ts';
import type { InstallerGate } from '../risk/gate.ts';
import type { SelfUpgradeRole } from './self-upgrade.ts';

export type { Target, Touch } from './state.ts';
import type { Touch } from './state.ts';

/** What a step's check() says. */
export type CheckResult = { inSync: true } | { inSync: false; diff: string };

/** Flags a step raises before it changes something, and trigger steps consume. */
export type Pending = 'reload' | 'restart' | 'postInstall';

/**
 * One idempotent unit of work. check() is read-only; apply() must be safe to run again after a
 * crash at any point (atomic renames, re-runnable commands). Rollback is not per step: a failed
 * upgrade converges back to the last good spec by running that spec's steps (src/installers/engine.ts),
 * which also works after a kill -9, where in-memory undo closures would be lost.
 */
export interface Step {
  /** Stable within a component: 'fetch', 'install', 'activate', 'file:/etc/x', 'unit', 'restart'… */
  id: string;
  /** One line for `plan`: what apply() would do. */
  describe: string;
  /** Disruptive steps ask the risk gate first. */
  disruptive?: boolean;
  /** Raised (persisted in the journal) before apply() runs. */
  marks?: Pending[];
  /** A trigger step runs when its flag is pending instead of by check(). */
  trigger?: Pending;
  /** Runs before install when any of fetch/install/activate is out of sync (pre-install hooks). */
  beforeInstall?: boolean;
  check(): Promise<CheckResult>;
  apply(): Promise<void>;
  /** What apply() may change (hooks: unknown, so nothing); asked right before apply() runs. */
  touches?(): Promise<Touch[]>;
}

export interface ResolvedInstallersConfig extends InstallersConfig {
  stateDir: string;
  /** Host path of the artifact cache. */
  cacheRoot: string;
  backoffMs: number;
  idleTimeoutMs: number;
  downloadTimeoutMs: number;
  lockTimeoutMs: number;
  commandTimeoutMs: number;
}

export interface InstallContext {
  host: Host;
  config: ResolvedInstallersConfig;
  log: Logger;
  nodeName: string;
  risk: InstallerGate;
  signal?: AbortSignal;
  /** The daemon's component metrics; absent for the CLI's one-shot plan and apply. */
  metrics?: ComponentObserver;
  /** An interactive caller's progress display (the CLI on a terminal); absent elsewhere. */
  progress?: InstallProgress;
  /** The agent's own component: handed to the self-upgrade unit (and which flags it gets), or run here, in that unit. */
  selfUpgrade?: SelfUpgradeRole;
}

/** Long waits, told as they happen; the caller decides whether and how to show them. */
export interface InstallProgress {
  /** Bytes of the component's artifact so far (a resumed transfer counts what was kept), and its size when known. */
  download(component: string, bytes: number, total: number | undefined): void;
  /** The component's download finished or gave up (also called when the cache already had it). */
  downloadEnd(component: string): void;
  /** The install lock is held by a live process (undefined: its record is unreadable); called once per wait. */
  lockWait(holder: LockHolder | undefined): void;
}

export class StepError extends AgentError {
  readonly step: string;
  constructor(step: string, message: string, options?: { cause?: unknown }) {
    super('STEP', message, options);
    this.step = step;
  }
}

/** The risk gate refused a disruptive step: not a failure, the step stays pending. */
export class StepDeferredError extends StepError {}
