import { Command } from 'commander';
import type { ConfigError } from '../errors.ts';
import type { ComponentPlan } from '../installers/engine.ts';
import type { LoadedManifests } from '../installers/manifests.ts';
import type { InstallerSessionOptions } from '../installers/session.ts';
import { addHostOptions, addLogOptions, installerSlice, logOptions, type LogFlags } from './common.ts';

export interface InstallerCliOptions extends InstallerSessionOptions, LogFlags {
  json?: boolean;
  retryFailed?: boolean;
}

/** Options plan and apply share. */
export function addInstallerOptions(cmd: Command): Command {
  addHostOptions(cmd);
  cmd
    .option('--manifests <dir>', 'directory of MachineComponent YAML files (default: installers.manifestDir in the config, a host path)')
    .option('--json', 'print JSON')
    .option('--retry-failed', 'act on a spec that failed and was rolled back');
  return addLogOptions(cmd, 'diagnostics on stderr; default warn');
}

export function reportManifestErrors(errors: readonly ConfigError[]): void {
  for (const err of errors) process.stderr.write(`kubenode-agent: ${err.message} (file refused; other files still apply)\n`);
}

/**
 * Removal needs the node's whole desired state: the configured manifest directory, every file of
 * it accepted. `--manifests DIR` names some components to act on, not all the node should have.
 */
export const wholeDesiredState = (options: InstallerCliOptions, manifests: LoadedManifests): boolean => options.manifests === undefined && manifests.errors.length === 0;

/** Components plan would act on: steps to run, a crashed run to resume, an error, or a held (failed, rolled back) spec. */
export function pending(plans: readonly ComponentPlan[]): ComponentPlan[] {
  return plans.filter((p) => p.actions.length > 0 || p.error !== undefined || p.resume !== undefined || p.held !== undefined || p.removal !== undefined);
}

export function renderPlan(plans: readonly ComponentPlan[]): string {
  const lines: string[] = [];
  const changing = plans.filter((p) => p.actions.length > 0 || p.error !== undefined || p.resume !== undefined || p.warnings !== undefined || p.removal !== undefined);
  for (const p of changing) {
    const versions =
      p.removal === 'uninstall'
        ? `${p.toVersion} → removed`
        : p.removal === 'orphan'
          ? `${p.toVersion} left installed, no longer managed (removalPolicy Orphan)`
          : p.fromVersion === undefined
            ? p.toVersion
            : p.fromVersion === p.toVersion
              ? p.toVersion
              : `${p.fromVersion} → ${p.toVersion}`;
    lines.push(`${p.component} ${versions}${p.resume === undefined ? '' : ` (resuming a crashed ${p.resume})`}`);
    if (p.error !== undefined) lines.push(`  ! ${p.error}`);
    for (const w of p.warnings ?? []) lines.push(`  ! ${w}`);
    const width = Math.max(0, ...p.actions.map((a) => a.step.length));
    for (const a of p.actions) lines.push(`  ${a.step.padEnd(width)}  ${a.describe}  [${a.reason}]`);
  }
  const held = plans.filter((x) => x.held !== undefined);
  for (const p of held) lines.push(`${p.component} held: ${p.held}; ${p.toVersion} is still pending (change the spec, or apply --retry-failed to try it again)`);
  const steps = changing.reduce((n, p) => n + p.actions.length, 0);
  lines.push(
    changing.length === 0 && held.length === 0
      ? `Nothing to do: ${plans.length} component(s) converged.`
      : `Plan: ${changing.length} of ${plans.length} component(s) to change, ${steps} step(s)${held.length === 0 ? '' : `; ${held.length} held after a failure`}.`,
  );
  return `${lines.join('\n')}\n`;
}

interface PlanOptions extends InstallerCliOptions {
  detailedExitcode?: boolean;
}

export function planCommand(exit: (code: number) => void): Command {
  const cmd = new Command('plan').description('show what apply would change on this node (read-only; nothing on a converged node)');
  addInstallerOptions(cmd);
  cmd
    .option('--detailed-exitcode', 'exit 2 when changes are pending (0: none, 1: an error), as Terraform and Ansible users expect')
    .addHelpText(
      'after',
      `
Examples:
  kubenode-agent plan
  kubenode-agent plan --manifests ./components --json
  kubenode-agent plan --detailed-exitcode || [ $? -eq 2 ] && echo "changes pending"`,
    );
  return cmd.action(async (options: PlanOptions) => {
    const [{ bootstrap }, { openInstallerSession }] = await Promise.all([import('../bootstrap.ts'), import('../installers/session.ts')]);
    const boot = await bootstrap(options, logOptions(options, 'warn', 2));
    const { engine, manifests } = await openInstallerSession(options, installerSlice(boot));
    reportManifestErrors(manifests.errors);
    const plans = await engine.plan(manifests.targets, { retryFailed: options.retryFailed === true, removeUndeclared: wholeDesiredState(options, manifests) });
    process.stdout.write(
      options.json === true ? `${JSON.stringify({ components: plans, errors: manifests.errors.map((e) => ({ file: e.file, field: e.field, message: e.message })) }, null, 2)}\n` : renderPlan(plans),
    );
    if (manifests.errors.length > 0 || plans.some((p) => p.error !== undefined)) exit(1);
    else exit(options.detailedExitcode === true && pending(plans).length > 0 ? 2 : 0);
  });
}
