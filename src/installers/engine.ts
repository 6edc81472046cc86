// The component engine: spec → plan of steps (check() says whether each already holds) → apply
// only the steps that do not → verify → record status; on failure converge back to the last good
// spec. A journal in the state dir makes every run resumable after a crash or kill -9.
import path from 'node:path';
import type { MachineComponentSpec, MachineComponentStatus } from '../api/machine-component.ts';
import { errorMessage } from '../errors.ts';
import { acquireLock, type Lock, type LockHolder } from '../host/lock.ts';
import { fileSteps, nodeArch, renderFile, sha256, type Facts } from './files.ts';
import { handOff, handsOff, isSelf, verifyComponent } from './self-upgrade.ts';
import { crashPoint, Journal } from './journal.ts';
import { installDir } from './sources/common.ts';
import { sources } from './sources/index.ts';
import { emptyStatus, pushHistory, readRecord, readStatus, recordDir, setCondition, setPhase, writeRecord, writeStatus } from './status.ts';
import type { ComponentRecord } from './state.ts';
import { unitSteps } from './systemd.ts';
import type { InstallContext, Pending, Step, Target } from './types.ts';
import { StepDeferredError, StepError } from './types.ts';
import { managedKeys, recordPriors, undoDir, undoRecords } from './undo.ts';
import { execFailure } from '../errors.ts';
import { listDir, removePath, removeTempSiblings } from '../host/files.ts';
import { claimedBy, findConflicts, type ConflictVerdict } from './conflicts.ts';
import { noteCreated, ownedFile, ownedPaths } from './owned.ts';
import { removalSteps } from './remove.ts';
import { UNIT_DIR } from './systemd.ts';


export interface PlannedAction {
  step: string;
  describe: string;
  /** Why: the check's diff, or the flag that triggers it. */
  reason: string;
  disruptive: boolean;
}

export interface ComponentPlan {
  component: string;
  fromVersion?: string;
  toVersion: string;
  actions: PlannedAction[];
  /** A crashed run's journal is waiting to be resumed (or its rollback or removal finished). */
  resume?: 'apply' | 'rollback' | 'remove';
  /** No longer declared: removed, or left as it is (removalPolicy Orphan). */
  removal?: 'uninstall' | 'orphan';
  /** Not acted on: this spec failed and was rolled back. */
  held?: string;
  /** The plan could not be computed (a check threw), or the component is refused (a conflict). */
  error?: string;
  /** Acted on, but something needs a person: a state file set aside, a conflict this component wins. */
  warnings?: string[];
}

export type ApplyResult = 'unchanged' | 'installed' | 'rolled-back' | 'failed' | 'deferred' | 'held' | 'removed' | 'orphaned' | 'handed-off';

export interface ApplyOutcome {
  component: string;
  result: ApplyResult;
  version: string;
  installedVersion?: string;
  stepsRun: string[];
  error?: string;
  /** Needs a person, though the run went on: a state file set aside, a conflict this component wins. */
  warnings?: string[];
  durationMs: number;
}

/** Under /run (a tmpfs): a reboot clears it, and its holder's boot_id and start time say when it is stale. */
export const INSTALL_LOCK = '/run/kubenode-agent/installers.lock';

const EMPTY_PENDING: Record<Pending, boolean> = { reload: false, restart: false, postInstall: false };

function facts(ctx: InstallContext, spec: MachineComponentSpec): Facts {
  return { nodeName: ctx.nodeName, arch: nodeArch(), component: spec.component, version: spec.version, installDir: installDir(spec) };
}

function hookStep(ctx: InstallContext, id: string, argvs: string[][], timeoutMs: number, extra: Partial<Step>): Step {
  return {
    id,
    describe: argvs.map((a) => a.join(' ')).join('; '),
    ...extra,
    check: async () => ({ inSync: true }),
    async apply() {
      for (const argv of argvs) {
        // Not given ctx.signal: a hook stopped half-way would run again from the start on resume,
        // so a stop or reload lets the running hook finish (its own timeout still bounds it).
        const r = await ctx.host.exec(argv, { timeoutMs });
        const failure = execFailure(r);
        if (failure !== undefined) throw new StepError(id, failure.message, { cause: failure });
      }
    },
  };
}

/** The ordered steps of a spec: fetch, pre-install hooks, install, activate, files, unit, daemon-reload, enable, restart, post-install hooks. */
export function buildSteps(ctx: InstallContext, spec: MachineComponentSpec): Step[] {
  const hookTimeout = spec.hooks.timeoutSeconds * 1000;
  const source = sources[spec.source.type].steps(ctx, spec);
  const steps: Step[] = [];
  for (const step of source) {
    if (step.id === 'install' && spec.hooks.preInstall.length > 0) steps.push(hookStep(ctx, 'pre-install', spec.hooks.preInstall, hookTimeout, { beforeInstall: true }));
    steps.push(step);
  }
  steps.push(...fileSteps(ctx, spec, facts(ctx, spec)));
  steps.push(...unitSteps(ctx, spec));
  if (spec.hooks.postInstall.length > 0) steps.push(hookStep(ctx, 'post-install', spec.hooks.postInstall, hookTimeout, { trigger: 'postInstall' }));
  return steps;
}

/** Hash of what a restart depends on besides the binary: rendered files and the unit. */
export function configHash(ctx: InstallContext, spec: MachineComponentSpec): string {
  const f = facts(ctx, spec);
  return sha256(
    JSON.stringify({
      files: spec.files.map((file) => [file.path, file.mode, file.owner ?? '', sha256(renderFile(file, f))]),
      unit: spec.unit === undefined ? null : [spec.unit.name, spec.unit.content === undefined ? null : sha256(spec.unit.content), spec.unit.enabled],
    }),
  );
}

interface Evaluated {
  steps: Step[];
  actions: PlannedAction[];
  run: Step[];
}

/** Runs every check and decides which steps apply() would run, given flags already pending. */
function evaluate(ctx: InstallContext, spec: MachineComponentSpec, pending: Record<Pending, boolean>): Promise<Evaluated> {
  return evaluateSteps(buildSteps(ctx, spec), pending);
}

async function evaluateSteps(steps: Step[], pending: Record<Pending, boolean>): Promise<Evaluated> {
  const diffs = new Map<string, string>();
  for (const step of steps) {
    if (step.trigger !== undefined || step.beforeInstall === true) continue;
    const r = await step.check();
    if (!r.inSync) diffs.set(step.id, r.diff);
  }
  const flags = { ...pending };
  const needInstall = ['fetch', 'install', 'activate'].some((id) => diffs.has(id));
  const actions: PlannedAction[] = [];
  const run: Step[] = [];
  for (const step of steps) {
    let reason: string | undefined;
    if (step.trigger !== undefined) reason = flags[step.trigger] ? `${step.trigger === 'reload' ? 'a unit' : step.trigger === 'restart' ? 'the unit, binary or config' : 'the install'} changed` : undefined;
    else if (step.beforeInstall === true) reason = needInstall ? 'before install' : undefined;
    else reason = diffs.get(step.id);
    if (reason === undefined) continue;
    for (const m of step.marks ?? []) flags[m] = true;
    actions.push({ step: step.id, describe: step.describe, reason, disruptive: step.disruptive === true });
    run.push(step);
  }
  return { steps, actions, run };
}

export interface EngineOptions {
  /** Act on a spec that failed before (and was rolled back). */
  retryFailed?: boolean;
  /**
   * The targets are the node's whole desired state (loaded without a refused file or object):
   * components installed before and no longer declared are removed (or, with removalPolicy
   * Orphan, forgotten).
   */
  removeUndeclared?: boolean;
  /** Act on the given targets alone: no sweep of leftovers, no other component's journal (the self-upgrade unit). */
  only?: boolean;
}

/** Sets or clears the Conflict condition of a component that keeps what it claims; true when status changed. */
function noteConflict(status: MachineComponentStatus, conflict: ConflictVerdict | undefined, now: string): boolean {
  const before = JSON.stringify(status.conditions);
  if (conflict === undefined) status.conditions = status.conditions.filter((c) => c.type !== 'Conflict');
  else setCondition(status, now, 'Conflict', 'True', 'ClaimedTwice', conflict.message);
  return JSON.stringify(status.conditions) !== before;
}

export class Engine {
  readonly #ctx: InstallContext;
  #swept = false;

  constructor(ctx: InstallContext) {
    this.#ctx = ctx;
  }

  get ctx(): InstallContext {
    return this.#ctx;
  }

  /** Read-only: what apply would do. */
  async plan(targets: readonly Target[], options: EngineOptions = {}): Promise<ComponentPlan[]> {
    const { host, config } = this.#ctx;
    const out: ComponentPlan[] = [];
    const journaled = new Set(await Journal.list(host, config.stateDir));
    const declared = new Set(targets.map((t) => t.spec.component));
    const claimed = claimedBy(targets);
    for (const component of [...journaled].filter((c) => !declared.has(c))) {
      const journal = await Journal.load(host, config.stateDir, component, { readOnly: true });
      if (journal === undefined) continue;
      const spec = journal.data.target.spec;
      const base: ComponentPlan = { component, fromVersion: spec.version, toVersion: spec.version, actions: [], resume: journal.data.mode };
      if (journal.data.mode === 'remove') base.removal = 'uninstall';
      out.push(await this.#planned(base, journal.data.mode === 'remove' ? removalSteps(this.#ctx, spec, claimed) : buildSteps(this.#ctx, spec), journal.data.pending));
    }
    if (options.removeUndeclared === true) {
      for (const { component, spec } of await this.#undeclared(declared, journaled)) {
        if (spec === undefined) continue;
        const orphan = spec.removalPolicy === 'Orphan' || isSelf(spec);
        const base: ComponentPlan = { component, fromVersion: spec.version, toVersion: spec.version, actions: [], removal: orphan ? 'orphan' : 'uninstall' };
        out.push(orphan ? base : await this.#planned(base, removalSteps(this.#ctx, spec, claimed), EMPTY_PENDING));
      }
    }
    const conflicts = await this.#conflicts(targets);
    for (const target of targets) {
      const spec = target.spec;
      const problems: string[] = [];
      const read = { readOnly: true, problems };
      const status = await readStatus(host, config.stateDir, spec.component, read);
      const base: ComponentPlan = { component: spec.component, toVersion: spec.version, actions: [], ...(status?.installedVersion === undefined ? {} : { fromVersion: status.installedVersion }) };
      try {
        const conflict = conflicts.get(spec.component);
        if (conflict?.refused === true) throw new Error(conflict.message);
        const journal = journaled.has(spec.component) ? await Journal.load(host, config.stateDir, spec.component, read) : undefined;
        if (journal !== undefined) base.resume = journal.data.mode;
        const record = await readRecord(host, config.stateDir, spec.component, read);
        if (problems.length > 0) base.warnings = problems;
        if (conflict !== undefined) (base.warnings ??= []).push(conflict.message);
        if (journal === undefined && options.retryFailed !== true && record.failed?.specHash === target.specHash) {
          out.push({ ...base, held: `${spec.version} failed at ${record.failed.at} and was rolled back: ${record.failed.error}` });
          continue;
        }
        const evaluated = await evaluate(this.#ctx, spec, journal?.data.mode === 'apply' ? journal.data.pending : EMPTY_PENDING);
        out.push({ ...base, actions: evaluated.actions });
      } catch (err) {
        out.push({ ...base, error: errorMessage(err) });
      }
    }
    return out;
  }

  async #planned(base: ComponentPlan, steps: Step[], pending: Record<Pending, boolean>): Promise<ComponentPlan> {
    try {
      return { ...base, actions: (await evaluateSteps(steps, pending)).actions };
    } catch (err) {
      return { ...base, error: errorMessage(err) };
    }
  }

  /**
   * Components the agent installed (a last good spec in their record) that are neither declared
   * nor under a journal, with the spec last installed; and the state of ones that never got that
   * far, which is only forgotten.
   */
  async #undeclared(declared: ReadonlySet<string>, journaled: ReadonlySet<string>): Promise<{ component: string; spec?: MachineComponentSpec; target?: Target }[]> {
    const { host, config } = this.#ctx;
    const names = new Set([...(await listDir(host, recordDir(config.stateDir))), ...(await listDir(host, `${config.stateDir}/installers/status`))]);
    const out: { component: string; spec?: MachineComponentSpec; target?: Target }[] = [];
    for (const name of [...names].sort()) {
      if (!name.endsWith('.json')) continue;
      const component = name.slice(0, -5);
      if (declared.has(component) || journaled.has(component)) continue;
      const good = (await readRecord(host, config.stateDir, component, { readOnly: true })).lastGood;
      out.push(good === undefined ? { component } : { component, spec: good.spec, target: good });
    }
    return out;
  }

  /** Drops what the agent keeps about a component: it is no longer managed. */
  async #forget(component: string): Promise<void> {
    const { host, config } = this.#ctx;
    for (const file of [`${recordDir(config.stateDir)}/${component}.json`, `${config.stateDir}/installers/status/${component}.json`, ownedFile(config.stateDir, component)]) await removePath(host, file);
    await removePath(host, undoDir(config.stateDir, component));
  }

  /**
   * Takes an undeclared component off the node (the removal steps of its last installed spec,
   * journaled; a crash resumes them), or, with removalPolicy Orphan, only forgets it.
   */
  async #remove(target: Target, journal: Journal | undefined, claimed: (key: string) => boolean): Promise<ApplyOutcome> {
    const started = performance.now();
    const { host, config, log } = this.#ctx;
    const spec = target.spec;
    const component = spec.component;
    const clog = log.child({ component });
    const outcome = (result: ApplyResult, stepsRun: string[], error?: string): ApplyOutcome => ({
      component,
      result,
      version: spec.version,
      installedVersion: spec.version,
      stepsRun,
      ...(error === undefined ? {} : { error }),
      durationMs: Math.round(performance.now() - started),
    });
    // The agent never uninstalls itself: that would end the node's repair tool (README, "The agent upgrades itself").
    if (journal === undefined && (spec.removalPolicy === 'Orphan' || isSelf(spec))) {
      await this.#forget(component);
      clog.info({ version: spec.version }, 'Component no longer declared; removalPolicy Orphan leaves it installed, no longer managed');
      return outcome('orphaned', []);
    }
    if (journal === undefined) {
      journal = await Journal.begin(host, config.stateDir, { component, mode: 'remove', target, pending: { ...EMPTY_PENDING } });
      crashPoint('journal written');
    }
    const stepsRun: string[] = [];
    try {
      const evaluated = await evaluateSteps(removalSteps(this.#ctx, spec, claimed), journal.data.pending);
      await this.#runSteps(evaluated.run, journal, stepsRun, clog, { gate: true, record: false });
    } catch (err) {
      const message = `removing ${spec.version}: ${errorMessage(err)}`;
      const status = (await readStatus(host, config.stateDir, component)) ?? emptyStatus();
      const now = new Date(host.clock.now()).toISOString();
      status.lastError = message;
      setPhase(status, 'Failed', now);
      setCondition(status, now, 'Ready', 'False', 'RemovalFailed', message);
      await writeStatus(host, config.stateDir, component, status);
      // The journal stays: the next pass (or start) resumes the removal.
      clog.error({ err: message }, 'Removing a component failed; retried on the next pass');
      return outcome(err instanceof StepDeferredError || this.#ctx.signal?.aborted === true ? 'deferred' : 'failed', stepsRun, message);
    }
    await this.#forget(component);
    await journal.finish();
    clog.info({ version: spec.version, steps: stepsRun }, 'Component removed');
    return outcome('removed', stepsRun);
  }

  /** Takes the node-wide install lock (waits up to installers.lockTimeout). */
  lock(purpose: string): Promise<Lock> {
    const progress = this.#ctx.progress;
    return acquireLock(this.#ctx.host, INSTALL_LOCK, { timeoutMs: this.#ctx.config.lockTimeoutMs, purpose, ...(progress === undefined ? {} : { onWait: (holder: LockHolder | undefined) => progress.lockWait(holder) }) });
  }

  /**
   * Converges every target, one component at a time. Journals left by a crashed run are finished
   * first (resumed forward, or their rollback completed), also for components no longer declared.
   * The caller holds the lock.
   */
  async apply(targets: readonly Target[], options: EngineOptions = {}): Promise<ApplyOutcome[]> {
    const { host, config, log } = this.#ctx;
    const outcomes: ApplyOutcome[] = [];
    if (!this.#swept && options.only !== true) {
      await this.#sweep(targets).catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'Removing leftovers of an interrupted run failed'));
      this.#swept = true;
    }
    const declared = new Set(targets.map((t) => t.spec.component));
    const claimed = claimedBy(targets);
    const journaled = new Set(await Journal.list(host, config.stateDir));
    for (const component of journaled) {
      if (declared.has(component) || options.only === true) continue;
      const problems: string[] = [];
      const journal = await Journal.load(host, config.stateDir, component, { problems });
      for (const p of problems) log.error({ component, err: p }, 'State file set aside');
      if (journal?.data.mode === 'remove') outcomes.push(await this.#remove(journal.data.target, journal, claimed));
      else if (journal !== undefined) outcomes.push(await this.#applyOne(journal.data.target, options, journal, []));
    }
    // Removals before installs: what a removed component held may be what a new one claims.
    if (options.removeUndeclared === true) {
      for (const { component, target } of await this.#undeclared(declared, journaled)) {
        if (this.#ctx.signal?.aborted === true) break;
        // Never installed (a failed first install, a refused newcomer): only its status to forget.
        if (target === undefined) await this.#forget(component);
        else outcomes.push(await this.#remove(target, undefined, claimed));
      }
    }
    const conflicts = await this.#conflicts(targets);
    for (const target of targets) {
      if (this.#ctx.signal?.aborted === true) break;
      const conflict = conflicts.get(target.spec.component);
      if (conflict?.refused === true) {
        outcomes.push(await this.#refuse(target, conflict));
        continue;
      }
      try {
        const problems: string[] = [];
        let journal = await Journal.load(host, config.stateDir, target.spec.component, { problems });
        if (journal?.data.mode === 'remove') {
          // Declared again while its removal was under way: finish the removal, then install afresh.
          outcomes.push(await this.#remove(journal.data.target, journal, claimed));
          journal = undefined;
        }
        outcomes.push(await this.#applyOne(target, options, journal, problems, conflict));
      } catch (err) {
        // Whatever went wrong with one component (its state unwritable, a path refused), the others still run.
        log.error({ component: target.spec.component, err: errorMessage(err) }, 'Component failed');
        outcomes.push({ component: target.spec.component, result: 'failed', version: target.spec.version, stepsRun: [], error: errorMessage(err), durationMs: 0 });
      }
    }
    return outcomes;
  }

  /** Conflicts among the targets; the incumbent of each is the spec its record says was last good. */
  async #conflicts(targets: readonly Target[]): Promise<Map<string, ConflictVerdict>> {
    const { host, config } = this.#ctx;
    const had = new Map<string, MachineComponentSpec | undefined>();
    // Read-only here: a bad record is set aside (and reported) by the component's own run.
    for (const t of targets) had.set(t.spec.component, (await readRecord(host, config.stateDir, t.spec.component, { readOnly: true })).lastGood?.spec);
    return findConflicts(targets, (c) => had.get(c));
  }

  /** A refused component: reported Failed (Conflict), nothing on the host touched. Written only when it changes. */
  async #refuse(target: Target, conflict: ConflictVerdict): Promise<ApplyOutcome> {
    const { host, config, log } = this.#ctx;
    const component = target.spec.component;
    const status = (await readStatus(host, config.stateDir, component)) ?? emptyStatus();
    const before = JSON.stringify(status);
    const now = new Date(host.clock.now()).toISOString();
    if (status.phase !== 'Failed' || status.lastError !== conflict.message) {
      setPhase(status, 'Failed', now);
      status.lastError = conflict.message;
    }
    setCondition(status, now, 'Ready', 'False', 'Conflict', conflict.message);
    setCondition(status, now, 'Conflict', 'True', 'ClaimedTwice', conflict.message);
    if (JSON.stringify(status) !== before) {
      await writeStatus(host, config.stateDir, component, status);
      log.error({ component, err: conflict.message }, 'Component refused: it claims what another component claims');
    }
    return {
      component,
      result: 'failed',
      version: target.spec.version,
      ...(status.installedVersion === undefined ? {} : { installedVersion: status.installedVersion }),
      stepsRun: [],
      error: conflict.message,
      durationMs: 0,
    };
  }

  /**
   * Once per engine (the agent's start): removes what a kill -9 left half-made, recognisable by
   * name as this agent's — atomic-write temps, unpack and prune temps beside versions, and partial
   * downloads no declared spec will resume.
   */
  async #sweep(targets: readonly Target[]): Promise<void> {
    const { host, config, log } = this.#ctx;
    const base = `${config.stateDir}/installers`;
    const dirs = new Set([`${base}/journal`, `${base}/status`, `${base}/records`, `${base}/owned`]);
    for (const c of await listDir(host, `${base}/undo`)) dirs.add(`${base}/undo/${c}`);
    const wanted = new Map<string, Set<string>>();
    for (const t of targets) {
      const s = t.spec;
      if (s.source.sha256 !== undefined) wanted.set(s.component, (wanted.get(s.component) ?? new Set()).add(s.source.sha256));
      if (s.source.type === 'tarball' || s.source.type === 'binary') dirs.add(installDir(s));
      for (const p of [...s.files.map((f) => f.path), ...s.install.links.map((l) => l.path)]) dirs.add(path.posix.dirname(p));
      if (s.unit?.content !== undefined) dirs.add(UNIT_DIR);
      for (const owned of await ownedPaths(this.#ctx, s.component)) dirs.add(path.posix.dirname(owned));
    }
    for (const dir of dirs) {
      try {
        for (const name of await removeTempSiblings(host, dir)) log.info({ path: `${dir}/${name}` }, 'Removed a leftover of an interrupted run');
      } catch (err) {
        log.warn({ path: dir, err: errorMessage(err) }, 'Could not look for leftovers of an interrupted run');
      }
    }
    for (const component of await listDir(host, config.cacheRoot)) {
      const dir = `${config.cacheRoot}/${component}`;
      await removeTempSiblings(host, dir);
      for (const name of await listDir(host, dir)) {
        const m = /^([a-f0-9]{64})\.partial$/.exec(name);
        if (m === null || wanted.get(component)?.has(m[1] as string) === true) continue;
        await removePath(host, `${dir}/${name}`);
        log.info({ path: `${dir}/${name}` }, 'Removed a partial download no declared component will resume');
      }
    }
  }

  async #applyOne(target: Target, options: EngineOptions, journal: Journal | undefined, problems: string[], conflict?: ConflictVerdict): Promise<ApplyOutcome> {
    const started = performance.now();
    const { host, config, log } = this.#ctx;
    const spec = target.spec;
    const component = spec.component;
    const clog = log.child({ component });
    const record = await readRecord(host, config.stateDir, component, { problems });
    const status = (await readStatus(host, config.stateDir, component, { problems })) ?? emptyStatus();
    const now = (): string => new Date(host.clock.now()).toISOString();
    for (const p of problems) clog.error({ err: p }, 'State file set aside');
    const warnings = [...problems, ...(conflict === undefined ? [] : [conflict.message])];
    if (noteConflict(status, conflict, now())) await writeStatus(host, config.stateDir, component, status);
    const outcome = (result: ApplyResult, stepsRun: string[], error?: string): ApplyOutcome => ({
      component,
      result,
      version: spec.version,
      ...(status.installedVersion === undefined ? {} : { installedVersion: status.installedVersion }),
      stepsRun,
      ...(error === undefined ? {} : { error }),
      ...(warnings.length === 0 ? {} : { warnings }),
      durationMs: Math.round(performance.now() - started),
    });

    if (handsOff(this.#ctx, spec, undefined, journal !== undefined, record.lastGood !== undefined)) {
      const handed = await handOff(this.#ctx, target, record, journal, status);
      return outcome(handed.result, [], handed.message);
    }
    if (journal?.data.mode === 'rollback') {
      clog.warn({ failed: journal.data.failed }, 'Finishing a rollback a crashed run left');
      const stepsRun = await this.#rollback(journal, record, status, clog);
      return outcome('rolled-back', stepsRun, journal.data.failed?.error);
    }
    const attempted = status.attemptedGeneration !== target.generation;
    status.attemptedGeneration = target.generation;
    if (journal === undefined && options.retryFailed !== true && record.failed?.specHash === target.specHash) {
      // Held is this generation's outcome too: the controller judges a failure by attemptedGeneration.
      if (attempted) await writeStatus(host, config.stateDir, component, status);
      return outcome('held', [], `${spec.version} failed and was rolled back: ${record.failed.error}`);
    }
    const pending = journal?.data.pending ?? EMPTY_PENDING;
    let evaluated: Evaluated;
    try {
      evaluated = await evaluate(this.#ctx, spec, pending);
    } catch (err) {
      setPhase(status, 'Failed', now());
      status.lastError = errorMessage(err);
      setCondition(status, now(), 'Ready', 'False', 'CheckFailed', status.lastError);
      await writeStatus(host, config.stateDir, component, status);
      return outcome('failed', [], status.lastError);
    }
    const converged = evaluated.run.length === 0 && journal === undefined && status.phase === 'Installed' && status.specHash === target.specHash;
    if (converged) return outcome('unchanged', []);
    if (handsOff(this.#ctx, spec, evaluated.run, false, record.lastGood !== undefined)) {
      const handed = await handOff(this.#ctx, target, record, undefined, status);
      return outcome(handed.result, [], handed.message);
    }

    if (journal === undefined) {
      // Backups a crashed run left after its journal was finished belong to no run.
      await removePath(host, undoDir(config.stateDir, component));
      journal = await Journal.begin(host, config.stateDir, {
        component,
        mode: 'apply',
        target,
        ...(record.lastGood === undefined ? {} : { lastGood: record.lastGood }),
        pending: { ...EMPTY_PENDING },
      });
      crashPoint('journal written');
    } else if (journal.data.target.specHash !== target.specHash) {
      // The spec changed while a crashed run was pending: go on towards the new one, keeping its flags.
      journal.data.target = target;
      await journal.save();
    }
    if (evaluated.run.length > 0) {
      setPhase(status, 'Installing', now());
      setCondition(status, now(), 'Ready', 'False', 'Installing', `converging to ${spec.version}`);
      await writeStatus(host, config.stateDir, component, status);
    }
    const stepsRun: string[] = [];
    try {
      await this.#runSteps(evaluated.run, journal, stepsRun, clog, { gate: true, record: true });
      const verified = await verifyComponent(this.#ctx, spec, journal.data);
      crashPoint('verified');
      if (!verified.ok) throw new StepError('verify', verified.error);
      // Converged and healthy: this is now the last good spec.
      const changed = status.specHash !== target.specHash || status.installedVersion !== (verified.version ?? spec.version);
      // What this run found absent and wrote is the agent's own: a removal may delete it.
      await noteCreated(this.#ctx, component, (journal.data.undo ?? []).flatMap((u) => (u.prior.type === 'absent' && u.touch.kind !== 'package' ? [u.touch.path] : [])));
      record.lastGood = target;
      delete record.failed;
      await writeRecord(host, config.stateDir, component, record);
      status.installedVersion = verified.version ?? spec.version;
      status.observedGeneration = target.generation;
      status.configHash = configHash(this.#ctx, spec);
      status.specHash = target.specHash;
      delete status.lastError;
      setPhase(status, 'Installed', now());
      setCondition(status, now(), 'Ready', 'True', 'Installed', `${spec.version} installed and healthy`);
      if (changed) pushHistory(status, { version: spec.version, specHash: target.specHash, result: 'Installed', at: now(), message: stepsRun.length === 0 ? 'already in place' : `ran ${stepsRun.join(', ')}` });
      await writeStatus(host, config.stateDir, component, status);
      await this.#finish(journal);
      await this.#prune(spec, record).catch((err: unknown) => clog.warn({ err: errorMessage(err) }, 'Pruning old versions failed'));
      if (stepsRun.length > 0) clog.info({ version: spec.version, steps: stepsRun }, 'Component converged');
      return outcome(stepsRun.length === 0 && !changed ? 'unchanged' : 'installed', stepsRun);
    } catch (err) {
      const message = errorMessage(err);
      if (err instanceof StepDeferredError) {
        setCondition(status, now(), 'RiskGate', 'False', 'Denied', message);
        status.lastError = message;
        await writeStatus(host, config.stateDir, component, status);
        clog.warn({ step: err.step, err: message }, 'Disruptive step deferred by the risk gate');
        return outcome('deferred', stepsRun, message);
      }
      if (this.#ctx.signal?.aborted === true) {
        // Stopping (SIGTERM): not a failure. The journal stays, and the next start resumes the run.
        clog.warn({ err: message }, 'Stopped mid-run; the journal resumes it on the next start');
        return outcome('deferred', stepsRun, `stopped: ${message}`);
      }
      clog.error({ step: err instanceof StepError ? err.step : undefined, err: message }, 'Apply failed; rolling back');
      journal.data.mode = 'rollback';
      journal.data.failed = { specHash: target.specHash, version: spec.version, error: message };
      if (record.lastGood !== undefined) journal.data.target = record.lastGood;
      await journal.save();
      stepsRun.push(...(await this.#rollback(journal, record, status, clog)));
      return outcome(record.lastGood === undefined ? 'failed' : 'rolled-back', stepsRun, message);
    }
  }

  /** The journal first, then the backups: a crash in between leaves only stale backups, cleared by the next run. */
  async #finish(journal: Journal): Promise<void> {
    await journal.finish();
    await removePath(this.#ctx.host, undoDir(this.#ctx.config.stateDir, journal.data.component));
  }

  /** gate: ask the risk gate for disruptive steps; record: note what each step touches first (apply runs). */
  async #runSteps(run: Step[], journal: Journal, stepsRun: string[], clog: InstallContext['log'], options: { gate: boolean; record: boolean }): Promise<void> {
    for (const step of run) {
      if (this.#ctx.signal?.aborted === true) throw new StepError(step.id, 'stopped');
      if (step.trigger !== undefined && !journal.data.pending[step.trigger]) continue;
      let release: (() => Promise<void>) | undefined;
      if (step.disruptive === true && options.gate) {
        const decision = await this.#ctx.risk.ask({ component: journal.data.component, step: step.id, action: step.describe });
        clog.info({ step: step.id, decision: decision.allowed ? 'allowed' : 'denied', reason: decision.reason }, 'Risk gate decision');
        if (!decision.allowed) throw new StepDeferredError(step.id, `risk gate denied ${step.describe}: ${decision.reason}`);
        release = decision.release;
      }
      if (options.record) await recordPriors(this.#ctx, journal, step);
      await journal.stepStarted(step.id, step.marks ?? []);
      clog.debug({ step: step.id }, 'Step started');
      try {
        await step.apply();
      } catch (err) {
        if (err instanceof StepError) throw err;
        throw new StepError(step.id, `${step.id}: ${errorMessage(err)}`, { cause: err });
      } finally {
        // A permit (a RiskPolicy slot) is held only while the disruptive step runs.
        await release?.();
      }
      await journal.stepDone(step.id, step.trigger);
      stepsRun.push(step.id);
    }
  }

  /**
   * Converges back to the journal's target (the last good spec), undoes what the failed spec
   * changed beyond it, restarts, re-verifies, reports Failed. With no last good spec (a failed
   * first install) everything the run changed is undone, so nothing is left half-installed.
   */
  async #rollback(journal: Journal, record: ComponentRecord, status: MachineComponentStatus, clog: InstallContext['log']): Promise<string[]> {
    const { host, config } = this.#ctx;
    const now = (): string => new Date(host.clock.now()).toISOString();
    const failed = journal.data.failed ?? { specHash: '', version: '?', error: 'unknown' };
    const component = journal.data.component;
    const stepsRun: string[] = [];
    setPhase(status, 'RollingBack', now());
    await writeStatus(host, config.stateDir, component, status);
    let lastError = `${failed.version}: ${failed.error}`;
    const good = record.lastGood;
    if (good === undefined) {
      const problems = await undoRecords(this.#ctx, journal, new Set());
      stepsRun.push('cleanup');
      delete status.installedVersion;
      delete status.configHash;
      delete status.specHash;
      lastError += problems.length === 0 ? '; no earlier healthy version: removed what this run installed' : `; no earlier healthy version: cleanup incomplete: ${problems.join('; ')}`;
    } else if (good.specHash === failed.specHash) {
      lastError += '; nothing to roll back to (no earlier healthy version)';
    } else {
      try {
        // The failed version may have been started: the good one is restarted whatever changed.
        if (good.spec.unit !== undefined && !journal.data.pending.restart) {
          journal.data.pending.restart = true;
          await journal.save();
        }
        const evaluated = await evaluate(this.#ctx, good.spec, journal.data.pending);
        // Restoring service is not gated: the risk was taken by the change that failed.
        await this.#runSteps(evaluated.run, journal, stepsRun, clog, { gate: false, record: false });
        // What only the failed spec declared (a new file, a renamed unit, its version directory) goes too.
        const problems = await undoRecords(this.#ctx, journal, await managedKeys(evaluated.steps));
        if (problems.length > 0) lastError += `; could not undo: ${problems.join('; ')}`;
        const verified = await verifyComponent(this.#ctx, good.spec, journal.data);
        status.installedVersion = verified.version ?? good.spec.version;
        status.configHash = configHash(this.#ctx, good.spec);
        status.specHash = good.specHash;
        lastError += verified.ok ? `; rolled back to ${good.spec.version}` : `; rolled back to ${good.spec.version}, which is unhealthy too: ${verified.error}`;
      } catch (err) {
        lastError += `; rollback to ${good.spec.version} failed: ${errorMessage(err)}`;
      }
    }
    record.failed = { specHash: failed.specHash, version: failed.version, at: now(), error: failed.error };
    await writeRecord(host, config.stateDir, component, record);
    status.lastError = lastError;
    setPhase(status, 'Failed', now());
    setCondition(status, now(), 'Ready', 'False', 'RolledBack', lastError);
    pushHistory(status, { version: failed.version, specHash: failed.specHash, result: good === undefined ? 'Failed' : 'RolledBack', at: now(), message: lastError });
    await writeStatus(host, config.stateDir, component, status);
    await this.#finish(journal);
    clog.warn({ err: lastError }, 'Component failed and was rolled back');
    return stepsRun;
  }

  async #prune(spec: MachineComponentSpec, record: ComponentRecord): Promise<void> {
    const prune = sources[spec.source.type].prune;
    if (prune === undefined) return;
    const versions = [spec.version, ...(record.lastGood === undefined ? [] : [record.lastGood.spec.version])];
    const shas = [spec.source.sha256, record.lastGood?.spec.source.sha256].filter((s): s is string => s !== undefined);
    await prune(this.#ctx, spec, this.#ctx.config.keepVersions, { versions, sha256: shas });
  }
}
