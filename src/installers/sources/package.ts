import type { MachineComponentSpec } from '../../api/machine-component.ts';
import type { ExecResult } from '../../host/host.ts';
import { ensureArtifact } from '../download.ts';
import { versionMatches } from '../health.ts';
import type { InstallContext, Step } from '../types.ts';
import { StepError } from '../types.ts';
import { artifactOf, fetchStep, pruneCache } from './common.ts';
import type { SourceDefinition } from './types.ts';

/** What differs between dpkg and rpm; the install step around them is the same. */
export interface PackageManager {
  /** The command as an operator reads it, e.g. "dpkg -i". */
  verb: string;
  installedVersion(ctx: InstallContext, spec: MachineComponentSpec): Promise<string | undefined>;
  /** Installs a verified package file (a host path); downgrades must be allowed, since a rollback is one. */
  install(ctx: InstallContext, artifact: string): Promise<ExecResult>;
}

/** A package source: fetch and verify the package, then install it unless that version already is. */
export function packageSource(pm: PackageManager): SourceDefinition {
  return {
    steps(ctx, spec) {
      const pkg = spec.source.package ?? spec.component;
      const installed = async (): Promise<boolean> => {
        const v = await pm.installedVersion(ctx, spec);
        return v !== undefined && versionMatches(spec.version, v);
      };
      const install: Step = {
        id: 'install',
        describe: `${pm.verb} ${pkg} ${spec.version}`,
        marks: ['restart', 'postInstall'],
        async check() {
          const v = await pm.installedVersion(ctx, spec);
          if (v !== undefined && versionMatches(spec.version, v)) return { inSync: true };
          return { inSync: false, diff: v === undefined ? 'not installed' : `installed ${v}` };
        },
        async apply() {
          if (await installed()) return;
          const { url, sha256 } = artifactOf(spec);
          const artifact = await ensureArtifact(ctx, spec.component, url, sha256, spec.source.maxBytes);
          const r = await pm.install(ctx, artifact);
          const tool = pm.verb.split(' ')[0] as string;
          if (r.notFound) throw new StepError('install', `${tool} not found`);
          if (r.exitCode !== 0) {
            throw new StepError('install', `${pm.verb} ${pkg} ${spec.version} ${r.timedOut ? 'timed out' : `exited ${r.exitCode}`}: ${r.stderr.trim().slice(-500)}`);
          }
          if (!(await installed())) throw new StepError('install', `${pm.verb} succeeded but ${pkg} ${spec.version} is not recorded as installed`);
        },
      };
      return [fetchStep(ctx, spec, installed), install];
    },
    prune: (ctx, spec, keep, protect) => pruneCache(ctx, spec.component, keep, protect.sha256),
  };
}
