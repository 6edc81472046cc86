import type { StaticDecode, TObject } from '@sinclair/typebox';
import type { Logger } from 'pino';
import type { Host } from '../../host/host.ts';
import type { Condition, DetectorResult } from '../../types.ts';

export type Mode = 'check' | 'run';

export interface DetectorContext {
  host: Host;
  log: Logger;
  nodeName: string;
  mode: Mode;
  /** This detector's conditions as last persisted; empty on a first start and in `check`. */
  previous: Condition[];
  /**
   * Reasons the operator silenced (detection.silencedReasons). Detectors that decide their
   * conditions with engine/conditions.ts never raise them, so another reason of the same type can
   * surface; the engine's silence() filters every result anyway.
   */
  silenced: ReadonlySet<string>;
}

export interface Detector {
  /** One complete look at the host: the whole of `check`, and every interval of the daemon. */
  probe(signal: AbortSignal): Promise<DetectorResult>;
  /**
   * Detectors that follow a stream (logs) implement watch() for the daemon instead of
   * being probed on an interval: it emits each change and returns only when the signal aborts.
   */
  watch?(emit: (result: DetectorResult) => void, signal: AbortSignal): Promise<void>;
}

/** Settings every detector has, whatever its own schema adds. */
export interface DetectorSettings {
  enabled: boolean;
  /** ms between probes in the daemon. */
  intervalMs: number;
  /** ms a single probe may take before it is abandoned as unknown. */
  timeoutMs: number;
}

/** C is its decoded configuration (durations in ms); a parameter of its own so registries can hold every detector. */
export interface DetectorDefinition<S extends TObject = TObject, C = StaticDecode<S>> {
  description: string;
  /** The detector's own settings in agent.yaml under detectors.<name>, with their defaults. */
  configSchema: S;
  defaults: { enabled: boolean; interval: string; timeout: string };
  /** Its conditions come from the current boot's logs, so a new boot_id clears them. */
  logDerived?: boolean;
  create(config: C, ctx: DetectorContext): Detector;
}

/** A detector ready to run: a built-in one, or one NPD monitor file. */
export interface NpdProblem {
  reason: string;
  /** Set for a permanent rule: the condition type its problem_gauge series carries. */
  condition?: string;
}

export interface DetectorInstance {
  name: string;
  settings: DetectorSettings;
  /** Its conditions come from logs of the current boot, so a reboot clears them. */
  logDerived: boolean;
  /** NPD's metricsReporting: false keeps this detector out of problem_counter and problem_gauge. */
  metricsReporting: boolean;
  /** An NPD monitor's rules: each reason it can raise (with its condition for a permanent rule), pre-created in problem_counter and problem_gauge at 0 as NPD does at start. */
  problems?: readonly NpdProblem[];
  create(ctx: DetectorContext): Detector;
}
