// Where the self-upgrade keeps its state and how it runs this agent again, apart from the upgrade
// itself (src/installers/self-upgrade.ts): every `run` asks whether an upgrade is armed, and loads
// the upgrade only when one is or a pass runs its engine.
import path from 'node:path';
import { isSea } from 'node:sea';

export const selfDir = (stateDir: string): string => `${stateDir}/installers/self-upgrade`;
/** Present from the hand-off until the new agent is confirmed healthy or rolled back. */
export const armedFile = (stateDir: string): string => `${selfDir(stateDir)}/armed.json`;
export const confirmedFile = (stateDir: string): string => `${selfDir(stateDir)}/confirmed.json`;
/** The program that started the upgrade, kept for its transient unit to run. */
export const keptDir = (stateDir: string): string => `${selfDir(stateDir)}/previous`;

/** The host-selecting flags a command was given, for the transient unit to run with the same ones. */
export function hostArgs(options: { root?: string; config?: string; nodeName?: string }): string[] {
  return [
    ...(options.root === undefined ? [] : ['--root', path.resolve(options.root)]),
    ...(options.config === undefined ? [] : ['--config', path.resolve(options.config)]),
    ...(options.nodeName === undefined ? [] : ['--node-name', options.nodeName]),
  ];
}

/** How to run this agent again: the single executable, or node and the bundle or entry script. */
export function agentCommand(): string[] {
  return isSea() ? [process.execPath] : [process.execPath, path.resolve(process.argv[1] ?? '')];
}
