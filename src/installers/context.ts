import type { AgentConfig } from '../config/schema.ts';
import type { Host } from '../host/host.ts';
import { readLocalDir, readLocalFile } from '../host/local-dir.ts';
import type { Logger } from '../log.ts';
import type { InstallerGate } from '../risk/gate.ts';
import { createRiskGate } from '../risk/index.ts';
import type { ComponentObserver } from '../report/component-metrics.ts';
import type { ManifestReader } from './manifests.ts';
import type { InstallContext, InstallProgress, ResolvedInstallersConfig } from './types.ts';

export function resolveInstallersConfig(config: AgentConfig): ResolvedInstallersConfig {
  const c = config.installers;
  return {
    ...c,
    stateDir: config.stateDir,
    cacheRoot: c.cacheDir === '' ? `${config.stateDir}/installers/cache` : c.cacheDir,
    backoffMs: c.downloadBackoff,
    idleTimeoutMs: c.downloadIdleTimeout,
    downloadTimeoutMs: c.downloadTimeout,
    lockTimeoutMs: c.lockTimeout,
    commandTimeoutMs: c.commandTimeout,
  };
}

export function createInstallContext(host: Host, config: AgentConfig, nodeName: string, log: Logger, options: { risk?: InstallerGate; signal?: AbortSignal; metrics?: ComponentObserver; progress?: InstallProgress } = {}): InstallContext {
  const resolved = resolveInstallersConfig(config);
  return {
    host,
    config: resolved,
    log,
    nodeName,
    // Without a gate from the caller: the node's one local budget, as the daemon's remedies spend it.
    risk: options.risk ?? createRiskGate({ host, config: config.risk, stateDir: config.stateDir, log }).forInstallers(nodeName),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
    ...(options.progress === undefined ? {} : { progress: options.progress }),
  };
}

/** Manifests named on the command line are read where the operator is; the configured directory is a host path. */
export function manifestReader(host: Host, fromCommandLine: boolean): ManifestReader {
  return fromCommandLine
    ? { list: readLocalDir, read: readLocalFile }
    : { list: (dir) => host.readDir(dir), read: (file) => host.readText(file) };
}
