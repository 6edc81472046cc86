import { statPath } from '../../host/files.ts';
import { execRootAware, isSandbox } from '../../host/tools.ts';
import type { InstallContext } from '../types.ts';
import { StepError } from '../types.ts';
import { packageSource } from './package.ts';
import { execFailure } from '../../errors.ts';

function rootArgs(ctx: InstallContext): string[] {
  const dbpath = ctx.config.rpmDbPath !== '' ? ctx.config.rpmDbPath : isSandbox(ctx.host) ? '/var/lib/rpm' : '';
  return [...(isSandbox(ctx.host) ? ['--root', ctx.host.root] : []), ...(dbpath === '' ? [] : ['--dbpath', dbpath])];
}

export async function rpmInstalled(ctx: InstallContext, pkg: string): Promise<string | undefined> {
  const r = await execRootAware(ctx.host, ['rpm', ...rootArgs(ctx), '-q', '--qf', '%{EPOCHNUM}:%{VERSION}-%{RELEASE}\\n', pkg], { timeoutMs: ctx.config.commandTimeoutMs });
  if (r.notFound) throw new StepError('install', 'rpm not found');
  if (r.exitCode !== 0) return undefined;
  return r.stdout.trim().split('\n')[0]?.replace(/^0:/, '');
}

/** rpm -U of a verified .rpm; --oldpackage lets a rollback downgrade. */
export const rpm = packageSource({
  source: 'rpm',
  verb: 'rpm -U',
  installedVersion: rpmInstalled,
  nameOf: (ctx, artifact) => execRootAware(ctx.host, ['rpm', '-qp', '--nosignature', '--nodigest', '--qf', '%{NAME}', ctx.host.path(artifact)], { timeoutMs: ctx.config.commandTimeoutMs }),
  async install(ctx, artifact) {
    const args = rootArgs(ctx);
    const dbIndex = args.indexOf('--dbpath');
    if (isSandbox(ctx.host) && dbIndex >= 0 && (await statPath(ctx.host, args[dbIndex + 1] as string)) === undefined) {
      const init = await execRootAware(ctx.host, ['rpm', ...args, '--initdb'], { timeoutMs: ctx.config.commandTimeoutMs });
      const failure = execFailure(init);
      if (failure !== undefined) throw new StepError('install', failure.message, { cause: failure });
    }
    return execRootAware(ctx.host, ['rpm', ...args, '-U', '--oldpackage', '--replacepkgs', ctx.host.path(artifact)], { timeoutMs: ctx.config.commandTimeoutMs });
  },
  remove: (ctx, pkg) => execRootAware(ctx.host, ['rpm', ...rootArgs(ctx), '-e', pkg], { timeoutMs: ctx.config.commandTimeoutMs }),
});
