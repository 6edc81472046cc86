import type { ExecResult } from '../../host/host.ts';
import { ensureArtifact } from '../download.ts';
import { versionMatches } from '../health.ts';
import type { InstallContext, Step } from '../types.ts';
import { StepError } from '../types.ts';
import { artifactOf, fetchStep, pruneCache } from './common.ts';
import type { SourceDefinition } from './types.ts';
import { execFailure } from '../../errors.ts';

/** What differs between dpkg and rpm; the install step around them is the same. */
export interface PackageManager {
  source: 'deb' | 'rpm';
  /** The command as an operator reads it, e.g. "dpkg -i". */
  verb: string;
  installedVersion(ctx: InstallContext, pkg: string): Promise<string | undefined>;
  /** Reads the package name out of a package file (a host path) without installing it. */
  nameOf(ctx: InstallContext, artifact: string): Promise<ExecResult>;
  /** Installs a verified package file (a host path); downgrades must be allowed, since a rollback is one. */
  install(ctx: InstallContext, artifact: string): Promise<ExecResult>;
  /** Removes an installed package and its configuration (dpkg --purge, rpm -e). */
  remove(ctx: InstallContext, pkg: string): Promise<ExecResult>;
}

/** A package source: fetch and verify the package, then install it unless that version already is. */
export function packageSource(pm: PackageManager): SourceDefinition {
  return {
    steps(ctx, spec) {
      const pkg = spec.source.package ?? spec.component;
      const installed = async (): Promise<boolean> => {
        const v = await pm.installedVersion(ctx, pkg);
        return v !== undefined && versionMatches(spec.version, v);
      };
      const install: Step = {
        id: 'install',
        describe: `${pm.verb} ${pkg} ${spec.version}`,
        marks: ['restart', 'postInstall'],
        touches: async () => [{ kind: 'package', source: pm.source, name: pkg }],
        async check() {
          const v = await pm.installedVersion(ctx, pkg);
          if (v !== undefined && versionMatches(spec.version, v)) return { inSync: true };
          return { inSync: false, diff: v === undefined ? 'not installed' : `installed ${v}` };
        },
        async apply() {
          if (await installed()) return;
          const { url, sha256 } = artifactOf(spec);
          const artifact = await ensureArtifact(ctx, spec.component, url, sha256, spec.source.maxBytes);
          // The checksum proves the file is the one named, not that it is the package named: a
          // different package would be installed beside (or over) what source.package says.
          const named = await pm.nameOf(ctx, artifact);
          const unreadable = execFailure(named);
          if (unreadable !== undefined) throw new StepError('install', `${url} is not a readable ${pm.source} package: ${unreadable.message}`, { cause: unreadable });
          const actual = named.stdout.trim();
          if (actual !== pkg) throw new StepError('install', `refusing ${url}: it holds the package ${JSON.stringify(actual)}, not source.package ${JSON.stringify(pkg)}; nothing was installed`);
          const r = await pm.install(ctx, artifact);
          const failure = execFailure(r);
          if (failure !== undefined) throw new StepError('install', `${pkg} ${spec.version}: ${failure.message}`, { cause: failure });
          if (!(await installed())) throw new StepError('install', `${pm.verb} succeeded but ${pkg} ${spec.version} is not recorded as installed`);
        },
      };
      return [fetchStep(ctx, spec, installed), install];
    },
    prune: (ctx, spec, keep, protect) => pruneCache(ctx, spec.component, keep, protect.sha256),
    packages: {
      installed: (ctx, name) => pm.installedVersion(ctx, name),
      async remove(ctx, name) {
        const r = await pm.remove(ctx, name);
        const failure = execFailure(r);
        if (failure !== undefined) throw new StepError('cleanup', failure.message, { cause: failure });
      },
    },
  };
}
