import { randomBytes } from 'node:crypto';
import { makeDir, readBytes, removePath, removeTempSiblings, renamePath, statPath, writeFileAtomicOwned } from '../../host/files.ts';
import { ensureArtifact } from '../download.ts';
import type { Step } from '../types.ts';
import { StepError } from '../types.ts';
import { activateStep, artifactOf, fetchStep, installDir, pruneVersioned, versionDir } from './common.ts';
import type { SourceDefinition } from './types.ts';

/** One executable: DIR/VERSION/NAME (mode 0755), then DIR/current switched. */
export const binary: SourceDefinition = {
  steps(ctx, spec) {
    const dir = installDir(spec);
    const target = versionDir(spec);
    const name = spec.source.binaryName ?? spec.component;
    const installed = async (): Promise<boolean> => (await statPath(ctx.host, `${target}/${name}`))?.type === 'file';
    const install: Step = {
      id: 'install',
      describe: `install ${target}/${name}`,
      marks: ['postInstall'],
      touches: async () => [{ kind: 'path', path: target }],
      check: async () => ((await installed()) ? { inSync: true } : { inSync: false, diff: 'not installed' }),
      async apply() {
        if (await installed()) return;
        const { url, sha256 } = artifactOf(spec);
        const artifact = await ensureArtifact(ctx, spec.component, url, sha256, spec.source.maxBytes);
        const bytes = await readBytes(ctx.host, artifact);
        if (bytes === undefined) throw new StepError('install', `${artifact} vanished from the cache`);
        await makeDir(ctx.host, dir);
        await removeTempSiblings(ctx.host, dir);
        // A leftover DIR/VERSION without the binary (not made by this agent) is replaced whole.
        await removePath(ctx.host, target);
        const tmp = `${dir}/.${spec.version}.kubenode-${randomBytes(6).toString('hex')}`;
        try {
          await writeFileAtomicOwned(ctx.host, `${tmp}/${name}`, bytes, { mode: 0o755 });
          await renamePath(ctx.host, tmp, target);
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
