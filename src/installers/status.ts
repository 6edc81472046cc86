// Component status in the state dir (standalone mode): the same shape as MachineComponent.status.
import type { ComponentPhase } from '../api/common.ts';
import { MachineComponentStatus, type ComponentCondition } from '../api/machine-component.ts';
import type { Host } from '../host/host.ts';
import type { Static, TSchema } from '@sinclair/typebox';
import { listDir, removePath } from '../host/files.ts';
import { readStateFile } from '../host/state-file.ts';
import { ComponentRecord } from './state.ts';

/** How a state read treats a bad file: a copy is always set aside; apply also removes it, so it is reported once. */
export interface StateReadOptions {
  readOnly?: boolean;
  /** Collects one message per bad file (naming it, and where it went). */
  problems?: string[];
}

/**
 * One of the installers' state files, checked against its schema (src/host/state-file.ts); a bad
 * one reads as absent, and the component converges from what is on disk.
 */
export async function readInstallerState<S extends TSchema>(host: Host, file: string, schema: S, options: StateReadOptions): Promise<Static<S> | undefined> {
  const r = await readStateFile(host, file, schema);
  if (r.state === 'ok') return r.value;
  if (r.state === 'absent') return undefined;
  const aside = r.setAsideAs === undefined ? '' : `; copied aside to ${host.path(r.setAsideAs)}`;
  if (options.readOnly === true || r.setAsideAs === undefined) {
    options.problems?.push(`state file ${host.path(file)} is bad (${r.reason})${aside}${options.readOnly === true ? ' (apply moves it out of the way)' : ''}`);
    return undefined;
  }
  await removePath(host, file);
  options.problems?.push(`state file ${host.path(file)} is bad (${r.reason}); moved aside to ${host.path(r.setAsideAs)}`);
  return undefined;
}

const statusDir = (stateDir: string): string => `${stateDir}/installers/status`;
export const recordDir = (stateDir: string): string => `${stateDir}/installers/records`;

export async function readStatus(host: Host, stateDir: string, component: string, options: StateReadOptions = {}): Promise<MachineComponentStatus | undefined> {
  return readInstallerState(host, `${statusDir(stateDir)}/${component}.json`, MachineComponentStatus, options);
}

export async function writeStatus(host: Host, stateDir: string, component: string, status: MachineComponentStatus): Promise<void> {
  await host.writeFileAtomic(`${statusDir(stateDir)}/${component}.json`, `${JSON.stringify(status, null, 1)}\n`);
}

export async function listStatuses(host: Host, stateDir: string, options: StateReadOptions = {}): Promise<{ component: string; status: MachineComponentStatus }[]> {
  const out: { component: string; status: MachineComponentStatus }[] = [];
  for (const name of (await listDir(host, statusDir(stateDir))).sort()) {
    if (!name.endsWith('.json')) continue;
    const component = name.slice(0, -5);
    const status = await readStatus(host, stateDir, component, options);
    if (status !== undefined) out.push({ component, status });
  }
  return out;
}

export async function readRecord(host: Host, stateDir: string, component: string, options: StateReadOptions = {}): Promise<ComponentRecord> {
  return (await readInstallerState(host, `${recordDir(stateDir)}/${component}.json`, ComponentRecord, options)) ?? {};
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
