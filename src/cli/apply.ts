import { Command } from 'commander';
import type { ApplyOutcome } from '../installers/engine.ts';
import { installerSlice } from './common.ts';
import { addInstallerOptions, reportManifestErrors, wholeDesiredState, type InstallerCliOptions } from './plan.ts';

/** EX_TEMPFAIL: another agent holds the install lock; try again later. */
const EXIT_TEMPFAIL = 75;

export function renderOutcomes(outcomes: readonly ApplyOutcome[]): string {
  const lines = outcomes
    .filter((o) => o.result !== 'unchanged' || o.warnings !== undefined)
    .flatMap((o) => [
      `${o.component} ${o.version}: ${o.result}${o.stepsRun.length === 0 ? '' : ` (${o.stepsRun.join(', ')})`}${o.error === undefined ? '' : `: ${o.error}`}`,
      ...(o.warnings ?? []).map((w) => `  ! ${w}`),
    ]);
  const unchanged = outcomes.filter((o) => o.result === 'unchanged').length;
  lines.push(unchanged === outcomes.length ? `Nothing to do: ${unchanged} component(s) converged.` : `${outcomes.length - unchanged} component(s) acted on, ${unchanged} unchanged.`);
  return `${lines.join('\n')}\n`;
}

/** 1 when anything is not where the manifests want it: failed, rolled back, deferred by the gate, or held after a failure. */
export function applyExitCode(outcomes: readonly ApplyOutcome[], refusedFiles: number): 0 | 1 {
  const bad = outcomes.some((o) => o.result === 'failed' || o.result === 'rolled-back' || o.result === 'deferred' || o.result === 'held');
  return bad || refusedFiles > 0 ? 1 : 0;
}

export function applyCommand(exit: (code: number) => void): Command {
  const cmd = new Command('apply').description('converge the node to the manifests: run only the steps whose check fails, verify, roll back on failure');
  addInstallerOptions(cmd);
  cmd
    .option('--kubeconfig <file>', "also ask the cluster's RiskPolicy objects before a disruptive restart, as the daemon does")
    .addHelpText(
      'after',
      `
Examples:
  kubenode-agent apply
  kubenode-agent apply --manifests ./components --json
  kubenode-agent apply --retry-failed --kubeconfig /etc/kubenode/kubeconfig

Exit codes: 0 converged, 1 a component failed, was rolled back, deferred or held (or a manifest was refused), 64 bad usage or configuration, 75 another agent holds the install lock.`,
    );
  return cmd.action(async (options: InstallerCliOptions) => {
    const [{ bootstrap }, { openInstallerSession }, { logOptions }, { LockBusyError }, { terminalProgress }] = await Promise.all([
      import('../bootstrap.ts'),
      import('../installers/session.ts'),
      import('./common.ts'),
      import('../host/lock.ts'),
      import('./progress.ts'),
    ]);
    const boot = await bootstrap(options, logOptions(options, 'warn', 2));
    const { engine, manifests, close } = await openInstallerSession(options, installerSlice(boot), terminalProgress(process.stderr, options.json === true));
    reportManifestErrors(manifests.errors);
    let lock;
    try {
      lock = await engine.lock('kubenode-agent apply');
    } catch (err) {
      close();
      if (err instanceof LockBusyError) {
        process.stderr.write(`kubenode-agent: another agent is installing: ${err.message}\n`);
        exit(EXIT_TEMPFAIL);
        return;
      }
      throw err;
    }
    let outcomes: ApplyOutcome[];
    try {
      outcomes = await engine.apply(manifests.targets, { retryFailed: options.retryFailed === true, removeUndeclared: wholeDesiredState(options, manifests) });
    } finally {
      await lock.release();
      close();
    }
    process.stdout.write(options.json === true ? `${JSON.stringify({ components: outcomes }, null, 2)}\n` : renderOutcomes(outcomes));
    exit(applyExitCode(outcomes, manifests.errors.length));
  });
}
