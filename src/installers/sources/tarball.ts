import { randomBytes } from 'node:crypto';
import { ArchiveError, extractTarball, inspectTarball } from '../../host/archive.ts';
import { makeDir, removePath, removeTempSiblings, renamePath, statPath, touch } from '../../host/files.ts';
import { ensureArtifact } from '../download.ts';
import type { Step } from '../types.ts';
import { StepError } from '../types.ts';
import { activateStep, artifactOf, fetchStep, installDir, pruneVersioned, versionDir } from './common.ts';
import type { SourceDefinition } from './types.ts';

/** A tarball unpacked into DIR/VERSION (via a temp dir renamed into place), then DIR/current switched. */
export const tarball: SourceDefinition = {
  steps(ctx, spec) {
    const dir = installDir(spec);
    const target = versionDir(spec);
    const installed = async (): Promise<boolean> => (await statPath(ctx.host, target))?.type === 'dir';
    const install: Step = {
      id: 'install',
      describe: `unpack into ${target}`,
      marks: ['postInstall'],
      touches: async () => [{ kind: 'path', path: target }],
      check: async () => ((await installed()) ? { inSync: true } : { inSync: false, diff: 'not unpacked' }),
      async apply() {
        if (await installed()) return;
        const { url, sha256 } = artifactOf(spec);
        const artifact = await ensureArtifact(ctx, spec.component, url, sha256, spec.source.maxBytes);
        const strip = spec.source.stripComponents ?? 0;
        try {
          await inspectTarball(ctx.host, artifact, { strip, maxUnpackedBytes: ctx.config.maxUnpackedBytes });
        } catch (err) {
          if (err instanceof ArchiveError) throw new StepError('install', `refusing ${url}: ${err.message}; nothing was written`, { cause: err });
          throw err;
        }
        await makeDir(ctx.host, dir);
        await removeTempSiblings(ctx.host, dir);
        const tmp = `${dir}/.${spec.version}.kubenode-${randomBytes(6).toString('hex')}`;
        await makeDir(ctx.host, tmp);
        try {
          await extractTarball(ctx.host, artifact, tmp, { strip });
          await renamePath(ctx.host, tmp, target);
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
