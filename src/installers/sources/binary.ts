import { makeDir, readBytes, removePath, removeTempSiblings, statPath, writeFileAtomicOwned } from '../../host/files.ts';
import { tempName } from '../../host/jail.ts';
import { ensureArtifact } from '../download.ts';
import type { Step } from '../types.ts';
import { StepError } from '../types.ts';
import { activateStep, artifactOf, checkInstallDir, fetchStep, foreignVersionError, installDir, placeVersion, pruneVersioned, removeVersion, versionDir, versionState } from './common.ts';
import type { SourceDefinition } from './types.ts';

/** One executable: DIR/VERSION/NAME (mode 0755), then DIR/current switched. */
export const binary: SourceDefinition = {
  steps(ctx, spec) {
    const dir = installDir(spec);
    const target = versionDir(spec);
    const name = spec.source.binaryName ?? spec.component;
    const installed = async (): Promise<boolean> => (await versionState(ctx, spec)) === 'installed' && (await statPath(ctx.host, `${target}/${name}`))?.type === 'file';
    const install: Step = {
      id: 'install',
      describe: `install ${target}/${name}`,
      marks: ['postInstall'],
      touches: async () => [{ kind: 'path', path: target }],
      async check() {
        await checkInstallDir(ctx, spec, 'install');
        if ((await versionState(ctx, spec)) === 'foreign') throw foreignVersionError(spec);
        return (await installed()) ? { inSync: true } : { inSync: false, diff: 'not installed' };
      },
      async apply() {
        await checkInstallDir(ctx, spec, 'install');
        if ((await versionState(ctx, spec)) === 'foreign') throw foreignVersionError(spec);
        if (await installed()) return;
        const { url, sha256 } = artifactOf(spec);
        const artifact = await ensureArtifact(ctx, spec.component, url, sha256, spec.source.maxBytes);
        const bytes = await readBytes(ctx.host, artifact);
        if (bytes === undefined) throw new StepError('install', `${artifact} vanished from the cache`);
        await makeDir(ctx.host, dir);
        await removeTempSiblings(ctx.host, dir);
        // A version directory of ours that lacks the binary (its binaryName changed) is replaced whole.
        await removeVersion(ctx, spec.component, target);
        const tmp = `${dir}/${tempName(spec.version)}`;
        try {
          await writeFileAtomicOwned(ctx.host, `${tmp}/${name}`, bytes, { mode: 0o755 });
          await placeVersion(ctx, spec, tmp);
        } catch (err) {
          await removePath(ctx.host, tmp);
          throw err;
        }
      },
    };
    return [fetchStep(ctx, spec, installed), install, activateStep(ctx, spec)];
  },
  prune: pruneVersioned,
};
