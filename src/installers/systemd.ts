// systemd: unit files, enablement (systemctl --root on a tree, as on a node), daemon-reload only
// when a unit changed, restart only when the unit, binary or a config file changed.
import type { MachineComponentSpec } from '../api/machine-component.ts';
import type { ExecResult } from '../host/host.ts';
import { statPath } from '../host/files.ts';
import { execRootAware, isSandbox } from '../host/tools.ts';
import { writeFileAtomicOwned } from '../host/files.ts';
import { checkManagedFile, refuseUnsafe } from './files.ts';
import type { InstallContext, Step } from './types.ts';
import { StepError } from './types.ts';
import { execFailure } from '../errors.ts';

export const UNIT_DIR = '/etc/systemd/system';
const UNIT_SEARCH = [UNIT_DIR, '/usr/lib/systemd/system', '/lib/systemd/system'];

/** Symlinks `systemctl enable` makes for a unit, from its [Install] section. */
export function installLinks(unitName: string, unitText: string): string[] {
  const links: string[] = [];
  let section = '';
  for (const raw of unitText.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#') || line.startsWith(';') || line === '') continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header !== null) {
      section = header[1] as string;
      continue;
    }
    if (section !== 'Install') continue;
    const kv = /^([A-Za-z]+)\s*=\s*(.*)$/.exec(line);
    if (kv === null) continue;
    const values = (kv[2] as string).split(/\s+/).filter((v) => v !== '');
    for (const v of values) {
      if (kv[1] === 'WantedBy') links.push(`${UNIT_DIR}/${v}.wants/${unitName}`);
      else if (kv[1] === 'RequiredBy') links.push(`${UNIT_DIR}/${v}.requires/${unitName}`);
      else if (kv[1] === 'Alias') links.push(`${UNIT_DIR}/${v}`);
    }
  }
  return links;
}

async function unitText(ctx: InstallContext, spec: MachineComponentSpec): Promise<string | undefined> {
  const unit = spec.unit;
  if (unit === undefined) return undefined;
  if (unit.content !== undefined) return unit.content;
  for (const dir of UNIT_SEARCH) {
    const text = await ctx.host.tryReadText(`${dir}/${unit.name}`);
    if (text !== undefined) return text;
  }
  return undefined;
}

/** Runs systemctl against the running system through the Host; a --root tree has none to talk to. */
export async function systemctlLive(ctx: InstallContext, args: string[], step: string): Promise<ExecResult | 'skipped'> {
  // Not given ctx.signal: a restart cut off by a stop would be run again, a second restart, on resume.
  const result = await ctx.host.exec(['systemctl', ...args], { timeoutMs: ctx.config.commandTimeoutMs });
  if (result.notFound && isSandbox(ctx.host)) {
    ctx.log.warn({ step, argv: result.argv, root: ctx.host.root }, 'No systemctl under the root; skipped (a tree has no running systemd)');
    return 'skipped';
  }
  return result;
}

export function failIfBad(step: string, result: ExecResult | 'skipped'): void {
  if (result === 'skipped') return;
  const failure = execFailure(result);
  if (failure !== undefined) throw new StepError(step, failure.message, { cause: failure });
}

/** `systemctl enable|disable` a unit: with --root on a tree (no running systemd needed), as on a node. */
export async function setEnablement(ctx: InstallContext, verb: 'enable' | 'disable', unitName: string, step: string): Promise<void> {
  const argv = ['systemctl', ...(isSandbox(ctx.host) ? ['--root', ctx.host.root] : []), verb, unitName];
  failIfBad(step, await execRootAware(ctx.host, argv, { timeoutMs: ctx.config.commandTimeoutMs }));
}

/** Runs when a step marked 'reload' changed something: a unit written or removed. */
export function daemonReloadStep(ctx: InstallContext): Step {
  return {
    id: 'daemon-reload',
    describe: 'systemctl daemon-reload',
    trigger: 'reload',
    check: async () => ({ inSync: true }),
    async apply() {
      failIfBad('daemon-reload', await systemctlLive(ctx, ['daemon-reload'], 'daemon-reload'));
    },
  };
}

export function unitSteps(ctx: InstallContext, spec: MachineComponentSpec): Step[] {
  const unit = spec.unit;
  if (unit === undefined) return [];
  const steps: Step[] = [];
  const unitPath = `${UNIT_DIR}/${unit.name}`;
  if (unit.content !== undefined) {
    const content = unit.content;
    steps.push({
      id: 'unit',
      describe: `write ${unitPath}`,
      marks: unit.restartOnChange ? ['reload', 'restart'] : ['reload'],
      touches: async () => [{ kind: 'unit', name: unit.name, path: unitPath }],
      async check() {
        await refuseUnsafe(ctx.host, unitPath, 'unit file', 'unit');
        const r = await checkManagedFile(ctx.host, unitPath, content, 0o644, {});
        return r.inSync ? r : { inSync: false, diff: r.diff };
      },
      async apply() {
        await refuseUnsafe(ctx.host, unitPath, 'unit file', 'unit');
        await writeFileAtomicOwned(ctx.host, unitPath, content, { mode: 0o644 });
      },
    });
  }
  steps.push(daemonReloadStep(ctx));
  steps.push({
    id: 'enable',
    describe: `systemctl ${unit.enabled ? 'enable' : 'disable'} ${unit.name}`,
    async touches() {
      const text = await unitText(ctx, spec);
      return text === undefined ? [] : installLinks(unit.name, text).map((link) => ({ kind: 'path', path: link }));
    },
    async check() {
      const text = await unitText(ctx, spec);
      if (text === undefined) return { inSync: false, diff: `unit ${unit.name} not found` };
      const links = installLinks(unit.name, text);
      const present: string[] = [];
      for (const link of links) if ((await statPath(ctx.host, link)) !== undefined) present.push(link);
      if (unit.enabled && present.length < links.length) return { inSync: false, diff: `not enabled (${links.length - present.length} link(s) missing)` };
      if (!unit.enabled && present.length > 0) return { inSync: false, diff: 'enabled' };
      return { inSync: true };
    },
    async apply() {
      await setEnablement(ctx, unit.enabled ? 'enable' : 'disable', unit.name, 'enable');
    },
  });
  steps.push({
    id: 'restart',
    describe: `systemctl ${unit.enabled ? 'restart' : 'try-restart'} ${unit.name}${spec.disruptive ? ' (disruptive: asks the risk gate)' : ''}`,
    trigger: 'restart',
    disruptive: spec.disruptive,
    check: async () => ({ inSync: true }),
    async apply() {
      failIfBad('restart', await systemctlLive(ctx, [unit.enabled ? 'restart' : 'try-restart', unit.name], 'restart'));
    },
  });
  return steps;
}
