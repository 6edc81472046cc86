import type { MachineComponentSpec } from '../../api/machine-component.ts';
import { statPath } from '../../host/files.ts';
import { execRootAware, isSandbox } from '../../host/tools.ts';
import { ensureArtifact } from '../download.ts';
import { versionMatches } from '../health.ts';
import type { InstallContext, Step } from '../types.ts';
import { StepError } from '../types.ts';
import { artifactOf, fetchStep, pruneCache } from './common.ts';
import type { SourceDefinition } from './types.ts';

function rootArgs(ctx: InstallContext): string[] {
  const dbpath = ctx.config.rpmDbPath !== '' ? ctx.config.rpmDbPath : isSandbox(ctx.host) ? '/var/lib/rpm' : '';
  return [...(isSandbox(ctx.host) ? ['--root', ctx.host.root] : []), ...(dbpath === '' ? [] : ['--dbpath', dbpath])];
}

export async function rpmInstalled(ctx: InstallContext, spec: MachineComponentSpec): Promise<string | undefined> {
  const pkg = spec.source.package ?? spec.component;
  const r = await execRootAware(ctx.host, ['rpm', ...rootArgs(ctx), '-q', '--qf', '%{EPOCHNUM}:%{VERSION}-%{RELEASE}\\n', pkg], { timeoutMs: ctx.config.commandTimeoutMs });
  if (r.notFound) throw new StepError('install', 'rpm not found');
  if (r.exitCode !== 0) return undefined;
  return r.stdout.trim().split('\n')[0]?.replace(/^0:/, '');
}

/** rpm -U of a verified .rpm; --oldpackage lets a rollback downgrade. */
export const rpm: SourceDefinition = {
  steps(ctx, spec) {
    const pkg = spec.source.package ?? spec.component;
    const installed = async (): Promise<boolean> => {
      const v = await rpmInstalled(ctx, spec);
      return v !== undefined && versionMatches(spec.version, v);
    };
    const install: Step = {
      id: 'install',
      describe: `rpm -U ${pkg} ${spec.version}`,
      marks: ['restart', 'postInstall'],
      async check() {
        const v = await rpmInstalled(ctx, spec);
        if (v !== undefined && versionMatches(spec.version, v)) return { inSync: true };
        return { inSync: false, diff: v === undefined ? 'not installed' : `installed ${v}` };
      },
      async apply() {
        if (await installed()) return;
        const { url, sha256 } = artifactOf(spec);
        const artifact = await ensureArtifact(ctx, spec.component, url, sha256, spec.source.maxBytes);
        const args = rootArgs(ctx);
        const dbIndex = args.indexOf('--dbpath');
        if (isSandbox(ctx.host) && dbIndex >= 0 && (await statPath(ctx.host, args[dbIndex + 1] as string)) === undefined) {
          const init = await execRootAware(ctx.host, ['rpm', ...args, '--initdb'], { timeoutMs: ctx.config.commandTimeoutMs });
          if (init.exitCode !== 0) throw new StepError('install', `rpm --initdb exited ${init.exitCode}: ${init.stderr.trim().slice(-300)}`);
        }
        const r = await execRootAware(ctx.host, ['rpm', ...args, '-U', '--oldpackage', '--replacepkgs', ctx.host.path(artifact)], { timeoutMs: ctx.config.commandTimeoutMs });
        if (r.notFound) throw new StepError('install', 'rpm not found');
        if (r.exitCode !== 0) throw new StepError('install', `rpm -U ${pkg} ${spec.version} ${r.timedOut ? 'timed out' : `exited ${r.exitCode}`}: ${r.stderr.trim().slice(-500)}`);
        if (!(await installed())) throw new StepError('install', `rpm -U succeeded but ${pkg} ${spec.version} is not installed`);
      },
    };
    return [fetchStep(ctx, spec, installed), install];
  },
  prune: (ctx, spec, keep, protect) => pruneCache(ctx, spec.component, keep, protect.sha256),
};
