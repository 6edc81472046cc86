// Component status in the state dir (standalone mode): the same shape as MachineComponent.status.
import { Value } from '@sinclair/typebox/value';
import { MachineComponentStatus, type ComponentCondition, type ComponentPhase } from '../api/machine-component.ts';
import type { Host } from '../host/host.ts';
import { listDir } from '../host/files.ts';
import type { Target } from './types.ts';

const statusDir = (stateDir: string): string => `${stateDir}/installers/status`;
const recordDir = (stateDir: string): string => `${stateDir}/installers/records`;

export async function readStatus(host: Host, stateDir: string, component: string): Promise<MachineComponentStatus | undefined> {
  const text = await host.tryReadText(`${statusDir(stateDir)}/${component}.json`);
  if (text === undefined) return undefined;
  try {
    const parsed = JSON.parse(text) as unknown;
    return Value.Check(MachineComponentStatus, parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

export async function writeStatus(host: Host, stateDir: string, component: string, status: MachineComponentStatus): Promise<void> {
  await host.writeFileAtomic(`${statusDir(stateDir)}/${component}.json`, `${JSON.stringify(status, null, 1)}\n`);
}

export async function listStatuses(host: Host, stateDir: string): Promise<{ component: string; status: MachineComponentStatus }[]> {
  const out: { component: string; status: MachineComponentStatus }[] = [];
  for (const name of (await listDir(host, statusDir(stateDir))).sort()) {
    if (!name.endsWith('.json')) continue;
    const component = name.slice(0, -5);
    const status = await readStatus(host, stateDir, component);
    if (status !== undefined) out.push({ component, status });
  }
  return out;
}

/** The agent's own memory of a component, beyond what status shows. */
export interface ComponentRecord {
  /** Last spec installed and verified healthy: what a rollback restores. */
  lastGood?: Target;
  /** A spec that failed and was rolled back: not retried until it changes (or --retry-failed). */
  failed?: { specHash: string; version: string; at: string; error: string };
}

export async function readRecord(host: Host, stateDir: string, component: string): Promise<ComponentRecord> {
  const text = await host.tryReadText(`${recordDir(stateDir)}/${component}.json`);
  if (text === undefined) return {};
  try {
    return JSON.parse(text) as ComponentRecord;
  } catch {
    return {};
  }
}

export async function writeRecord(host: Host, stateDir: string, component: string, record: ComponentRecord): Promise<void> {
  await host.writeFileAtomic(`${recordDir(stateDir)}/${component}.json`, `${JSON.stringify(record, null, 1)}\n`, 0o600);
}

export function emptyStatus(): MachineComponentStatus {
  return { phase: 'Pending', observedGeneration: 0, conditions: [], history: [] };
}

/** Sets a condition, keeping lastTransitionTime while status and reason stay the same. */
export function setCondition(status: MachineComponentStatus, now: string, type: string, value: ComponentCondition['status'], reason: string, message: string): void {
  const existing = status.conditions.find((c) => c.type === type);
  if (existing !== undefined) {
    if (existing.status !== value || existing.reason !== reason) existing.lastTransitionTime = now;
    existing.status = value;
    existing.reason = reason;
    existing.message = message;
  } else {
    status.conditions.push({ type, status: value, reason, message, lastTransitionTime: now });
  }
}

export function pushHistory(status: MachineComponentStatus, entry: MachineComponentStatus['history'][number]): void {
  status.history.unshift(entry);
  if (status.history.length > 10) status.history.length = 10;
}

export function setPhase(status: MachineComponentStatus, phase: ComponentPhase, now: string): void {
  status.phase = phase;
  status.updatedAt = now;
}
