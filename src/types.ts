// Core detection types. Kept free of Kubernetes and I/O imports, as NPD keeps pkg/types.

export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
  /** Epoch ms of the last status or reason change. */
  transitionTime: number;
}

export type Severity = 'info' | 'warn';

export interface ProblemEvent {
  severity: Severity;
  reason: string;
  message: string;
  /** Epoch ms when the problem happened (log time for log monitors). */
  timestamp: number;
}

/** What one detector knows after one probe, or after one batch of log lines. */
export interface DetectorResult {
  /** The full current set of this detector's conditions. */
  conditions: Condition[];
  /** Events raised since the previous result. */
  events: ProblemEvent[];
  /** Why the detector could not tell whether the node is healthy, when it could not. */
  unknown?: string;
}

export type CheckStatus = 'ok' | 'problem' | 'unknown';

export function resultStatus(result: DetectorResult): CheckStatus {
  const problem =
    result.conditions.some((c) => c.status === 'True') || result.events.some((e) => e.severity === 'warn');
  if (problem) return 'problem';
  if (result.unknown !== undefined || result.conditions.some((c) => c.status === 'Unknown')) return 'unknown';
  return 'ok';
}
