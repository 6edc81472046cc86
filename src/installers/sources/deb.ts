import type { MachineComponentSpec } from '../../api/machine-component.ts';
import { makeDir } from '../../host/files.ts';
import { execRootAware, isSandbox } from '../../host/tools.ts';
import { ensureArtifact } from '../download.ts';
import { versionMatches } from '../health.ts';
import type { InstallContext, Step } from '../types.ts';
import { StepError } from '../types.ts';
import { artifactOf, fetchStep, pruneCache } from './common.ts';
import type { SourceDefinition } from './types.ts';

/** Version of an installed package from dpkg's status database (read directly: no process per check). */
export function dpkgInstalledVersion(statusText: string, pkg: string): string | undefined {
  for (const stanza of statusText.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const line of stanza.split('\n')) {
      const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(line);
      if (m !== null) fields.set((m[1] as string).toLowerCase(), m[2] as string);
    }
    if (fields.get('package') !== pkg) continue;
    if (fields.get('status') !== 'install ok installed') continue;
    return fields.get('version');
  }
  return undefined;
}

export async function debInstalled(ctx: InstallContext, spec: MachineComponentSpec): Promise<string | undefined> {
  const text = (await ctx.host.tryReadText('/var/lib/dpkg/status')) ?? '';
  return dpkgInstalledVersion(text, spec.source.package ?? spec.component);
}

/** dpkg -i of a verified .deb; downgrades are allowed (a rollback is one). */
export const deb: SourceDefinition = {
  steps(ctx, spec) {
    const pkg = spec.source.package ?? spec.component;
    const installed = async (): Promise<boolean> => {
      const v = await debInstalled(ctx, spec);
      return v !== undefined && versionMatches(spec.version, v);
    };
    const install: Step = {
      id: 'install',
      describe: `dpkg -i ${pkg} ${spec.version}`,
      marks: ['restart', 'postInstall'],
      async check() {
        const v = await debInstalled(ctx, spec);
        if (v !== undefined && versionMatches(spec.version, v)) return { inSync: true };
        return { inSync: false, diff: v === undefined ? 'not installed' : `installed ${v}` };
      },
      async apply() {
        if (await installed()) return;
        const { url, sha256 } = artifactOf(spec);
        const artifact = await ensureArtifact(ctx, spec.component, url, sha256, spec.source.maxBytes);
        const rootArgs: string[] = [];
        if (isSandbox(ctx.host)) {
          await makeDir(ctx.host, '/var/log');
          rootArgs.push(`--root=${ctx.host.root}`, `--admindir=${ctx.host.path('/var/lib/dpkg')}`, `--log=${ctx.host.path('/var/log/dpkg.log')}`);
        }
        const argv = ['dpkg', ...rootArgs, '--force-confdef', '--force-confold', '--force-downgrade', '-i', ctx.host.path(artifact)];
        const r = await execRootAware(ctx.host, argv, { timeoutMs: ctx.config.commandTimeoutMs });
        if (r.notFound) throw new StepError('install', 'dpkg not found');
        if (r.exitCode !== 0) throw new StepError('install', `dpkg -i ${pkg} ${spec.version} ${r.timedOut ? 'timed out' : `exited ${r.exitCode}`}: ${r.stderr.trim().slice(-500)}`);
        if (!(await installed())) throw new StepError('install', `dpkg -i succeeded but ${pkg} ${spec.version} is not recorded as installed`);
      },
    };
    return [fetchStep(ctx, spec, installed), install];
  },
  prune: (ctx, spec, keep, protect) => pruneCache(ctx, spec.component, keep, protect.sha256),
};
