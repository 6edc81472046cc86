// What `plan` and `apply` work on: the engine and the manifests, from the command's bootstrap
// (src/cli/plan.ts and apply.ts load this lazily, and print).
import path from 'node:path';
import { createKubeClient, loadKubeConfig } from '../kube/client.ts';
import type { Logger } from '../log.ts';
import { createRiskGate } from '../risk/index.ts';
import type { HostOptions } from '../bootstrap.ts';
import type { Host } from '../host/host.ts';
import type { RiskConfig } from '../risk/config.ts';
import type { InstallersConfig } from './config.ts';
import { createInstallContext, manifestReader } from './context.ts';
import { Engine } from './engine.ts';
import { hostArgs } from './self-upgrade-paths.ts';
import type { InstallProgress } from './types.ts';
import { loadManifestDir, type LoadedManifests } from './manifests.ts';

export interface InstallerSessionOptions extends HostOptions {
  manifests?: string;
  /** apply: ask the cluster's RiskPolicy objects too, as the daemon does. */
  kubeconfig?: string;
}

/** What a session needs of the command's bootstrap: the installers' and the risk gate's slices. */
export interface InstallerSessionSetup {
  host: Host;
  log: Logger;
  nodeName: string;
  stateDir: string;
  installers: InstallersConfig;
  risk: RiskConfig;
}

export async function openInstallerSession(options: InstallerSessionOptions, s: InstallerSessionSetup, progress?: InstallProgress): Promise<{ engine: Engine; manifests: LoadedManifests; log: Logger; nodeName: string; close: () => void }> {
  const log = s.log;
  const kube = options.kubeconfig === undefined ? undefined : createKubeClient(await loadKubeConfig({ kubeconfig: options.kubeconfig }));
  const risk = createRiskGate({ host: s.host, config: s.risk, stateDir: s.stateDir, log, ...(kube === undefined ? {} : { kube }) }).forInstallers(s.nodeName);
  const ctx = createInstallContext(s.host, { installers: s.installers, stateDir: s.stateDir, nodeName: s.nodeName }, log, { risk, selfUpgrade: { mode: 'hand-off', agentArgs: hostArgs(options), firstInstall: 'direct' }, ...(progress === undefined ? {} : { progress }) });
  const dir = options.manifests === undefined ? ctx.config.manifestDir : path.resolve(options.manifests);
  const manifests = await loadManifestDir(manifestReader(s.host, options.manifests !== undefined), dir);
  return { engine: new Engine(ctx), manifests, log, nodeName: s.nodeName, close: () => kube?.close() };
}
