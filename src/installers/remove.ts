// Removing a component that is no longer declared: the steps that take away what its last
// installed spec put on the node, each idempotent and checked first like an install's, run under
// a journal (mode 'remove') so a kill -9 between any two of them converges on the next start.
// Only what the agent made goes: the spec's files, links and unit, the version directories it
// recorded creating, the package it names, its cache; anything else in its directories stays.
import type { MachineComponentSpec } from '../api/machine-component.ts';
import { listDir, readLink, removePath, statPath } from '../host/files.ts';
import { createdPaths, ownedPaths } from './owned.ts';
import { installDir, linkTargetOf, removeVersion } from './sources/common.ts';
import { sources } from './sources/index.ts';
import { daemonReloadStep, failIfBad, installLinks, setEnablement, systemctlLive, UNIT_DIR } from './systemd.ts';
import type { InstallContext, Step } from './types.ts';

const present = async (ctx: InstallContext, hostPath: string): Promise<boolean> => (await statPath(ctx.host, hostPath)) !== undefined;
/** The agent wrote it where nothing was: a file it took over (it existed before) is left. */
const made = async (ctx: InstallContext, component: string, hostPath: string): Promise<boolean> => (await createdPaths(ctx, component)).includes(hostPath);

/**
 * `claimed(key)` says whether a declared component now claims the thing (keys as in
 * src/installers/conflicts.ts): that one is left for its new owner, not removed under it.
 */
export function removalSteps(ctx: InstallContext, spec: MachineComponentSpec, claimed: (key: string) => boolean): Step[] {
  const steps: Step[] = [];
  const unit = spec.unit !== undefined && !claimed(`unit:${spec.unit.name}`) ? spec.unit : undefined;
  if (unit !== undefined) {
    const unitPath = `${UNIT_DIR}/${unit.name}`;
    const unitText = async (): Promise<string | undefined> => unit.content ?? (await ctx.host.tryReadText(unitPath));
    steps.push({
      id: 'stop',
      describe: `systemctl stop ${unit.name}${spec.disruptive ? ' (disruptive: asks the risk gate)' : ''}`,
      disruptive: spec.disruptive,
      async check() {
        const r = await systemctlLive(ctx, ['is-active', unit.name], 'stop');
        return r !== 'skipped' && r.exitCode === 0 ? { inSync: false, diff: 'running' } : { inSync: true };
      },
      async apply() {
        failIfBad('stop', await systemctlLive(ctx, ['stop', unit.name], 'stop'));
      },
    });
    steps.push({
      id: 'disable',
      describe: `systemctl disable ${unit.name}`,
      async check() {
        const text = await unitText();
        if (text === undefined) return { inSync: true };
        for (const link of installLinks(unit.name, text)) if (await present(ctx, link)) return { inSync: false, diff: 'enabled' };
        return { inSync: true };
      },
      async apply() {
        await setEnablement(ctx, 'disable', unit.name, 'disable');
      },
    });
    if (unit.content !== undefined && !claimed(unitPath)) {
      steps.push({
        id: 'unit',
        describe: `remove ${unitPath}`,
        marks: ['reload'],
        check: async () => ((await present(ctx, unitPath)) && (await made(ctx, spec.component, unitPath)) ? { inSync: false, diff: 'present' } : { inSync: true }),
        async apply() {
          if (await made(ctx, spec.component, unitPath)) await removePath(ctx.host, unitPath);
        },
      });
    }
  }
  steps.push(daemonReloadStep(ctx));
  const dir = installDir(spec);
  const versioned = (spec.source.type === 'tarball' || spec.source.type === 'binary') && !claimed(dir);
  if (versioned) {
    for (const link of spec.install.links.filter((l) => !claimed(l.path))) {
      // Only while it still points where this agent pointed it.
      const ours = async (): Promise<boolean> => (await readLink(ctx.host, link.path)) === linkTargetOf(spec, link.path, link.target) && (await made(ctx, spec.component, link.path));
      steps.push({
        id: `link:${link.path}`,
        describe: `remove the link ${link.path}`,
        check: async () => ((await ours()) ? { inSync: false, diff: 'present' } : { inSync: true }),
        async apply() {
          if (await ours()) await removePath(ctx.host, link.path);
        },
      });
    }
    const current = `${dir}/current`;
    const ourCurrent = async (): Promise<boolean> => {
      const target = await readLink(ctx.host, current);
      return target !== undefined && !target.includes('/');
    };
    steps.push({
      id: 'current',
      describe: `remove ${current}`,
      check: async () => ((await ourCurrent()) ? { inSync: false, diff: 'present' } : { inSync: true }),
      async apply() {
        if (await ourCurrent()) await removePath(ctx.host, current);
      },
    });
  }
  for (const file of spec.files.filter((f) => !claimed(f.path))) {
    const isFile = async (): Promise<boolean> => (await statPath(ctx.host, file.path))?.type === 'file' && (await made(ctx, spec.component, file.path));
    steps.push({
      id: `file:${file.path}`,
      describe: `remove ${file.path}`,
      check: async () => ((await isFile()) ? { inSync: false, diff: 'present' } : { inSync: true }),
      async apply() {
        if (await isFile()) await removePath(ctx.host, file.path);
      },
    });
  }
  if (versioned) {
    steps.push({
      id: 'versions',
      describe: `remove the version directories this agent made under ${dir}`,
      check: async () => ((await ownedPaths(ctx, spec.component)).length > 0 ? { inSync: false, diff: 'present' } : { inSync: true }),
      async apply() {
        for (const owned of await ownedPaths(ctx, spec.component)) await removeVersion(ctx, spec.component, owned);
        // The install directory itself only when nothing else is left in it.
        if ((await statPath(ctx.host, dir))?.type === 'dir' && (await listDir(ctx.host, dir)).length === 0) await removePath(ctx.host, dir);
      },
    });
  }
  const pm = sources[spec.source.type].packages;
  const pkg = spec.source.package;
  if (pm !== undefined && pkg !== undefined && !claimed(`package:${spec.source.type}:${pkg}`)) {
    steps.push({
      id: 'package',
      describe: `purge the ${spec.source.type} package ${pkg}`,
      check: async () => ((await pm.installed(ctx, pkg)) === undefined ? { inSync: true } : { inSync: false, diff: 'installed' }),
      async apply() {
        if ((await pm.installed(ctx, pkg)) !== undefined) await pm.remove(ctx, pkg);
      },
    });
  }
  const cache = `${ctx.config.cacheRoot}/${spec.component}`;
  steps.push({
    id: 'cache',
    describe: `remove the cached artifacts ${cache}`,
    check: async () => ((await present(ctx, cache)) ? { inSync: false, diff: 'present' } : { inSync: true }),
    apply: () => removePath(ctx.host, cache),
  });
  return steps;
}
