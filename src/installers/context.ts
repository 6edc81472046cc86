import type { Host } from '../host/host.ts';
import { readLocalDir, readLocalFile } from '../host/local-dir.ts';
import type { Logger } from '../log.ts';
import type { InstallerGate } from '../risk/gate.ts';
import type { ComponentObserver } from '../report/component-metrics.ts';
import type { InstallersConfig } from './config.ts';
import type { SelfUpgradeRole } from './self-upgrade.ts';
import type { ManifestReader } from './manifests.ts';
import type { InstallContext, InstallProgress, ResolvedInstallersConfig } from './types.ts';

/** The installers' slice of the agent config and the two shared values they need; the composition root cuts it. */
export interface InstallersSlice {
  installers: InstallersConfig;
  stateDir: string;
  nodeName: string;
}

export function resolveInstallersConfig(installers: InstallersConfig, stateDir: string): ResolvedInstallersConfig {
  return {
    ...installers,
    stateDir,
    cacheRoot: installers.cacheDir === '' ? `${stateDir}/installers/cache` : installers.cacheDir,
    backoffMs: installers.downloadBackoff,
    idleTimeoutMs: installers.downloadIdleTimeout,
    downloadTimeoutMs: installers.downloadTimeout,
    lockTimeoutMs: installers.lockTimeout,
    commandTimeoutMs: installers.commandTimeout,
  };
}

/** `risk` is the gate the caller built from the node's risk config, so installers and remedies spend one budget. */
export function createInstallContext(host: Host, slice: InstallersSlice, log: Logger, options: { risk: InstallerGate; signal?: AbortSignal; metrics?: ComponentObserver; progress?: InstallProgress; selfUpgrade?: SelfUpgradeRole }): InstallContext {
  return {
    host,
    config: resolveInstallersConfig(slice.installers, slice.stateDir),
    log,
    nodeName: slice.nodeName,
    risk: options.risk,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
    ...(options.progress === undefined ? {} : { progress: options.progress }),
    ...(options.selfUpgrade === undefined ? {} : { selfUpgrade: options.selfUpgrade }),
  };
}

/** Manifests named on the command line are read where the operator is; the configured directory is a host path. */
export function manifestReader(host: Host, fromCommandLine: boolean): ManifestReader {
  return fromCommandLine
    ? { list: readLocalDir, read: readLocalFile }
    : { list: (dir) => host.readDir(dir), read: (file) => host.readText(file) };
}
