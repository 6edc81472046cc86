// The work behind `plan`, `apply` and `status` (src/cli/*.ts load this lazily).
import path from 'node:path';
import type { ConfigError } from '../errors.ts';
import { LockBusyError } from '../host/lock.ts';
import { createKubeClient, loadKubeConfig } from '../kube/client.ts';
import { createLogger, type Logger } from '../log.ts';
import { createRiskGate } from '../risk/index.ts';
import { setup } from '../cli/setup.ts';
import type { CommonOptions } from '../cli/common.ts';
import { createInstallContext, manifestReader } from './context.ts';
import { Engine, type ApplyOutcome, type ComponentPlan } from './engine.ts';
import { loadManifestDir, type LoadedManifests } from './manifests.ts';
import { listStatuses } from './status.ts';

export interface InstallerCliOptions extends CommonOptions {
  manifests?: string;
  json?: boolean;
  logLevel?: string;
  retryFailed?: boolean;
  /** apply: ask the cluster's RiskPolicy objects too, as the daemon does. */
  kubeconfig?: string;
}

const EXIT_TEMPFAIL = 75;

export async function loadInstallerSetup(options: InstallerCliOptions): Promise<{ engine: Engine; manifests: LoadedManifests; log: Logger; nodeName: string; close: () => void }> {
  const s = await setup(options);
  const log = createLogger((options.logLevel ?? 'warn') as 'warn', 2);
  const kube = options.kubeconfig === undefined ? undefined : createKubeClient(await loadKubeConfig({ kubeconfig: options.kubeconfig }));
  const risk = createRiskGate({ host: s.host, config: s.config.risk, stateDir: s.config.stateDir, log, ...(kube === undefined ? {} : { kube }) }).forInstallers(s.nodeName);
  const ctx = createInstallContext(s.host, s.config, s.nodeName, log, { risk });
  const dir = options.manifests === undefined ? ctx.config.manifestDir : path.resolve(options.manifests);
  const manifests = await loadManifestDir(manifestReader(s.host, options.manifests !== undefined), dir);
  return { engine: new Engine(ctx), manifests, log, nodeName: s.nodeName, close: () => kube?.close() };
}

export function reportManifestErrors(errors: readonly ConfigError[]): void {
  for (const err of errors) process.stderr.write(`kubenode-agent: ${err.message} (file refused; other files still apply)\n`);
}

/**
 * Removal needs the node's whole desired state: the configured manifest directory, every file of
 * it accepted. `--manifests DIR` names some components to act on, not all the node should have.
 */
const wholeDesiredState = (options: InstallerCliOptions, manifests: LoadedManifests): boolean => options.manifests === undefined && manifests.errors.length === 0;

export function renderPlan(plans: readonly ComponentPlan[]): string {
  const lines: string[] = [];
  const changing = plans.filter((p) => p.actions.length > 0 || p.error !== undefined || p.resume !== undefined || p.warnings !== undefined || p.removal !== undefined);
  for (const p of changing) {
    const versions =
      p.removal === 'uninstall' ? `${p.toVersion} → removed` : p.removal === 'orphan' ? `${p.toVersion} left installed, no longer managed (removalPolicy Orphan)` : p.fromVersion === undefined ? p.toVersion : p.fromVersion === p.toVersion ? p.toVersion : `${p.fromVersion} → ${p.toVersion}`;
    lines.push(`${p.component} ${versions}${p.resume === undefined ? '' : ` (resuming a crashed ${p.resume})`}`);
    if (p.error !== undefined) lines.push(`  ! ${p.error}`);
    for (const w of p.warnings ?? []) lines.push(`  ! ${w}`);
    const width = Math.max(0, ...p.actions.map((a) => a.step.length));
    for (const a of p.actions) lines.push(`  ${a.step.padEnd(width)}  ${a.describe}  [${a.reason}]`);
  }
  for (const p of plans.filter((x) => x.held !== undefined)) lines.push(`${p.component} held: ${p.held} (change the spec or use --retry-failed)`);
  const steps = changing.reduce((n, p) => n + p.actions.length, 0);
  lines.push(
    changing.length === 0
      ? `Nothing to do: ${plans.length - plans.filter((p) => p.held !== undefined).length} component(s) converged.`
      : `Plan: ${changing.length} of ${plans.length} component(s) to change, ${steps} step(s).`,
  );
  return `${lines.join('\n')}\n`;
}

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

export async function runPlan(options: InstallerCliOptions, exit: (code: number) => void): Promise<void> {
  const { engine, manifests } = await loadInstallerSetup(options);
  reportManifestErrors(manifests.errors);
  const plans = await engine.plan(manifests.targets, { retryFailed: options.retryFailed === true, removeUndeclared: wholeDesiredState(options, manifests) });
  process.stdout.write(options.json === true ? `${JSON.stringify({ components: plans, errors: manifests.errors.map((e) => ({ file: e.file, field: e.field, message: e.message })) }, null, 2)}\n` : renderPlan(plans));
  exit(manifests.errors.length > 0 || plans.some((p) => p.error !== undefined) ? 1 : 0);
}

export async function runApply(options: InstallerCliOptions, exit: (code: number) => void): Promise<void> {
  const { engine, manifests, close } = await loadInstallerSetup(options);
  reportManifestErrors(manifests.errors);
  let lock;
  try {
    lock = await engine.lock('kubenode-agent apply');
  } catch (err) {
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
  const bad = outcomes.some((o) => o.result === 'failed' || o.result === 'rolled-back' || o.result === 'deferred');
  exit(bad || manifests.errors.length > 0 ? 1 : 0);
}

export async function runStatus(options: CommonOptions & { json?: boolean }): Promise<void> {
  const { host, config } = await setup(options);
  const all = await listStatuses(host, config.stateDir);
  if (options.json === true) {
    process.stdout.write(`${JSON.stringify({ components: all.map(({ component, status }) => ({ component, ...status })) }, null, 2)}\n`);
    return;
  }
  if (all.length === 0) {
    process.stdout.write(`No component status under ${host.path(`${config.stateDir}/installers/status`)}.\n`);
    return;
  }
  const rows = all.map(({ component, status }) => [
    component,
    status.phase,
    status.installedVersion ?? '-',
    status.updatedAt ?? '-',
    (status.lastError ?? status.conditions.find((c) => c.type === 'Ready')?.message ?? '').replace(/\s+/g, ' ').slice(0, 100),
  ]);
  const header = ['COMPONENT', 'PHASE', 'VERSION', 'UPDATED', 'MESSAGE'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] as number))).join('  ').trimEnd();
  process.stdout.write(`${[line(header), ...rows.map(line)].join('\n')}\n`);
}
