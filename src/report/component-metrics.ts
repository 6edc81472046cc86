// Component metrics: what the installers did (apply and download results and durations) and
// where each component stands (installed version, phase). The installers call the observer;
// they need no prom-client and no metric names.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { ComponentPhases } from '../api/common.ts';
import type { ApplyResult } from '../installers/engine.ts';
import { labelValue } from './label-value.ts';

export type DownloadResult = 'ok' | 'checksum_mismatch' | 'failed';

// Every result, so that each component's counters start at 0 and increase() sees the first
// failure on a node; a result added to either type and missing here fails to compile.
const APPLY_RESULTS = Object.keys({ unchanged: 0, installed: 0, 'rolled-back': 0, failed: 0, deferred: 0, held: 0, removed: 0, orphaned: 0, 'handed-off': 0 } satisfies Record<ApplyResult, 0>).map(labelValue);
const DOWNLOAD_RESULTS = Object.keys({ ok: 0, checksum_mismatch: 0, failed: 0 } satisfies Record<DownloadResult, 0>);

export interface ApplyObservation {
  component: string;
  result: ApplyResult;
  durationMs: number;
}

export interface ComponentState {
  component: string;
  status: { phase: string; installedVersion?: string };
}

/** What src/installers/ reports, through InstallContext.metrics. */
export interface ComponentObserver {
  /** After each reconcile pass: every component's outcome, and every component status in the state dir. */
  passDone(outcomes: readonly ApplyObservation[], states: readonly ComponentState[]): void;
  /** After each artifact download (cache hits are not downloads). */
  downloaded(component: string, result: DownloadResult, durationMs: number, bytes: number): void;
}

export class ComponentMetrics implements ComponentObserver {
  readonly #info: Gauge;
  readonly #phase: Gauge;
  readonly #applies: Counter;
  readonly #applySeconds: Histogram;
  readonly #downloads: Counter;
  readonly #downloadSeconds: Histogram;
  readonly #downloadBytes: Counter;

  constructor(registry: Registry) {
    const registers = [registry];
    this.#info = new Gauge({ name: 'kubenode_component_info', help: 'A component installed on the node, with its installed version; always 1.', labelNames: ['component', 'version'], registers });
    this.#phase = new Gauge({
      name: 'kubenode_component_phase',
      help: `A component's phase: 1 on the series of its current phase (${ComponentPhases.join(', ')}), 0 on the others.`,
      labelNames: ['component', 'phase'],
      registers,
    });
    this.#applies = new Counter({
      name: 'kubenode_component_applies_total',
      help: 'Component reconciles, by result (unchanged, installed, rolled_back, failed, deferred, held, removed, orphaned, handed_off).',
      labelNames: ['component', 'result'],
      registers,
    });
    this.#applySeconds = new Histogram({
      name: 'kubenode_component_apply_duration_seconds',
      help: 'Time one component reconcile took, checks included.',
      labelNames: ['component'],
      buckets: [0.1, 1, 10, 60, 300, 1800],
      registers,
    });
    this.#downloads = new Counter({
      name: 'kubenode_component_downloads_total',
      help: 'Artifact downloads, by result (ok, checksum_mismatch, failed after every retry).',
      labelNames: ['component', 'result'],
      registers,
    });
    this.#downloadSeconds = new Histogram({
      name: 'kubenode_component_download_duration_seconds',
      help: 'Time one artifact download took, retries and verification included.',
      labelNames: ['component'],
      buckets: [1, 10, 60, 300, 1800],
      registers,
    });
    this.#downloadBytes = new Counter({ name: 'kubenode_component_download_bytes_total', help: 'Artifact bytes downloaded.', labelNames: ['component'], registers });
  }

  passDone(outcomes: readonly ApplyObservation[], states: readonly ComponentState[]): void {
    for (const component of new Set([...outcomes, ...states].map((x) => x.component))) {
      for (const result of APPLY_RESULTS) this.#applies.inc({ component, result }, 0);
      for (const result of DOWNLOAD_RESULTS) this.#downloads.inc({ component, result }, 0);
    }
    for (const o of outcomes) {
      this.#applies.inc({ component: o.component, result: labelValue(o.result) });
      this.#applySeconds.observe({ component: o.component }, o.durationMs / 1000);
    }
    // Rebuilt from the state dir: a removed component or a replaced version leaves no stale series.
    this.#info.reset();
    this.#phase.reset();
    for (const { component, status } of states) {
      if (status.installedVersion !== undefined) this.#info.set({ component, version: status.installedVersion }, 1);
      for (const phase of ComponentPhases) this.#phase.set({ component, phase }, phase === status.phase ? 1 : 0);
    }
  }

  downloaded(component: string, result: DownloadResult, durationMs: number, bytes: number): void {
    this.#downloads.inc({ component, result });
    this.#downloadSeconds.observe({ component }, durationMs / 1000);
    if (bytes > 0) this.#downloadBytes.inc({ component }, bytes);
  }
}
