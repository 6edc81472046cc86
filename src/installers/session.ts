// What `plan` and `apply` work on: the engine and the manifests, from the command's bootstrap
// (src/cli/plan.ts and apply.ts load this lazily, and print).
import path from 'node:path';
import { createKubeClient, loadKubeConfig } from '../kube/client.ts';
import type { Logger } from '../log.ts';
import { createRiskGate } from '../risk/index.ts';
import type { Bootstrap, HostOptions } from '../bootstrap.ts';
import { createInstallContext, manifestReader } from './context.ts';
import { Engine } from './engine.ts';
import type { InstallProgress } from './types.ts';
import { loadManifestDir, type LoadedManifests } from './manifests.ts';

export interface InstallerSessionOptions extends HostOptions {
  manifests?: string;
  /** apply: ask the cluster's RiskPolicy objects too, as the daemon does. */
  kubeconfig?: string;
}

export async function openInstallerSession(options: InstallerSessionOptions, s: Bootstrap, progress?: InstallProgress): Promise<{ engine: Engine; manifests: LoadedManifests; log: Logger; nodeName: string; close: () => void }> {
  const log = s.log;
  const kube = options.kubeconfig === undefined ? undefined : createKubeClient(await loadKubeConfig({ kubeconfig: options.kubeconfig }));
  const risk = createRiskGate({ host: s.host, config: s.config.risk, stateDir: s.config.stateDir, log, ...(kube === undefined ? {} : { kube }) }).forInstallers(s.nodeName);
  const ctx = createInstallContext(s.host, { installers: s.config.installers, stateDir: s.config.stateDir, nodeName: s.nodeName }, log, { risk, ...(progress === undefined ? {} : { progress }) });
  const dir = options.manifests === undefined ? ctx.config.manifestDir : path.resolve(options.manifests);
  const manifests = await loadManifestDir(manifestReader(s.host, options.manifests !== undefined), dir);
  return { engine: new Engine(ctx), manifests, log, nodeName: s.nodeName, close: () => kube?.close() };
}
