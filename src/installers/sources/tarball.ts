import { ArchiveError, extractTarball, inspectTarball } from '../../host/archive.ts';
import { makeDir, removePath, removeTempSiblings, touch } from '../../host/files.ts';
import { tempName } from '../../host/jail.ts';
import { ensureArtifact } from '../download.ts';
import type { Step } from '../types.ts';
import { StepError } from '../types.ts';
import { activateStep, artifactOf, checkInstallDir, fetchStep, foreignVersionError, installDir, placeVersion, pruneVersioned, versionDir, versionState } from './common.ts';
import type { SourceDefinition } from './types.ts';

/** A tarball unpacked into DIR/VERSION (via a temp dir renamed into place), then DIR/current switched. */
export const tarball: SourceDefinition = {
  steps(ctx, spec) {
    const dir = installDir(spec);
    const target = versionDir(spec);
    const installed = async (): Promise<boolean> => (await versionState(ctx, spec)) === 'installed';
    const install: Step = {
      id: 'install',
      describe: `unpack into ${target}`,
      marks: ['postInstall'],
      touches: async () => [{ kind: 'path', path: target }],
      async check() {
        await checkInstallDir(ctx, spec, 'install');
        const state = await versionState(ctx, spec);
        if (state === 'foreign') throw foreignVersionError(spec);
        return state === 'installed' ? { inSync: true } : { inSync: false, diff: 'not unpacked' };
      },
      async apply() {
        await checkInstallDir(ctx, spec, 'install');
        const state = await versionState(ctx, spec);
        if (state === 'installed') return;
        if (state === 'foreign') throw foreignVersionError(spec);
        const { url, sha256 } = artifactOf(spec);
        const artifact = await ensureArtifact(ctx, spec.component, url, sha256, spec.source.maxBytes);
        const strip = spec.source.stripComponents ?? 0;
        const limits = { strip, maxUnpackedBytes: ctx.config.maxUnpackedBytes, maxEntries: ctx.config.maxArchiveEntries };
        try {
          await inspectTarball(ctx.host, artifact, limits);
        } catch (err) {
          if (err instanceof ArchiveError) throw new StepError('install', `refusing ${url}: ${err.message}; nothing was written`, { cause: err });
          throw err;
        }
        await makeDir(ctx.host, dir);
        await removeTempSiblings(ctx.host, dir);
        const tmp = `${dir}/${tempName(spec.version)}`;
        await makeDir(ctx.host, tmp);
        try {
          await extractTarball(ctx.host, artifact, tmp, limits);
          await placeVersion(ctx, spec, tmp);
        } catch (err) {
          await removePath(ctx.host, tmp);
          throw new StepError('install', `unpacking ${url}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
        }
        await touch(ctx.host, target);
      },
    };
    return [fetchStep(ctx, spec, installed), install, activateStep(ctx, spec)];
  },
  prune: pruneVersioned,
};
