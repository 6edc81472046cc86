// The agent upgrading itself. Its own package (deb/rpm `kubenode-agent`) or binary is a
// MachineComponent like any other, but the steps that replace or restart it cannot run in the agent:
// the restart ends the agent's cgroup and with it any dpkg or rpm still running there. So the daemon
// only arms the upgrade (the previous version's artifact in the cache, the journal written) and hands
// the run to a transient systemd unit (`systemd-run`, through the Host), where the same engine runs
// the steps; its verification waits for the new agent to confirm it is healthy (its own /healthz,
// and its Lease when in a cluster), and past the deadline the engine's own rollback restores the
// last good version. Every state is in the journal, so a kill -9 or power loss at any point resumes.
// See README, "The agent upgrades itself".
import path from 'node:path';
import { Type } from '@sinclair/typebox';
import type { MachineComponentSpec, MachineComponentStatus } from '../api/machine-component.ts';
import { errorMessage, execFailure } from '../errors.ts';
import { keepLocalFile, removePath, statPath, swapSymlink } from '../host/files.ts';
import type { Host } from '../host/host.ts';
import { httpGetStatus } from '../host/http.ts';
import type { Logger } from '../log.ts';
import { formatDuration } from '../util/duration.ts';
import { ensureArtifact } from './download.ts';
import { verify, versionMatches, type VerifyResult } from './health.ts';
import { crashPoint, Journal } from './journal.ts';
import { UNIT_DIR } from './systemd.ts';
import type { ComponentRecord, JournalData, Target } from './state.ts';
import { readInstallerState, setCondition, setPhase, writeStatus } from './status.ts';
import type { InstallContext, Step } from './types.ts';
import { agentCommand, armedFile, confirmedFile, hostArgs, keptDir, selfDir } from './self-upgrade-paths.ts';

/** The agent's own package name; a component that installs it, or is named so, is the agent itself. */
export const SELF_PACKAGE = 'kubenode-agent';
/** The transient unit the upgrade runs in: one at a time, by name. */
export const SELF_UNIT = 'kubenode-agent-self-upgrade.service';
/**
 * A transient unit does not outlive a reboot, and a new version broken enough never to reach its
 * first pass would never start one again: so while an upgrade is armed, this unit, enabled for the
 * next boot, runs the same kept program to resume it (and so roll back past the deadline).
 */
export const RESUME_UNIT = 'kubenode-agent-self-upgrade-resume.service';
const RESUME_FILE = `${UNIT_DIR}/${RESUME_UNIT}`;
const RESUME_WANTS = `${UNIT_DIR}/multi-user.target.wants/${RESUME_UNIT}`;

/**
 * How this process takes part: the daemon (and `apply`) hand the run off; the transient unit runs
 * it. `apply` (a person at the node, outside the service) runs a first install itself: with no
 * earlier version recorded there is nothing to roll back to, and that is how a node whose agent
 * is a binary or tarball (nothing dpkg or rpm put there first) gets its first one.
 */
export type SelfUpgradeRole = { mode: 'hand-off'; agentArgs: string[]; firstInstall?: 'direct' } | { mode: 'run' };

export function isSelf(spec: MachineComponentSpec): boolean {
  const pkg = spec.source.type === 'deb' || spec.source.type === 'rpm' ? (spec.source.package ?? spec.component) : undefined;
  return spec.component === SELF_PACKAGE || pkg === SELF_PACKAGE;
}

/** Steps that replace the running agent or restart it: a package install (its post-install restarts the service), a switched version, a restart. */
const SWITCHING = new Set(['install', 'activate', 'restart']);

/** True when this engine must not run the component's steps itself but hand them to the transient unit. */
export function handsOff(ctx: InstallContext, spec: MachineComponentSpec, run: readonly Step[] | undefined, journaled: boolean, lastGood: boolean): boolean {
  if (!isSelf(spec) || ctx.selfUpgrade?.mode === 'run') return false;
  if (ctx.selfUpgrade?.firstInstall === 'direct' && !lastGood) return false;
  return journaled || (run ?? []).some((s) => SWITCHING.has(s.id));
}

/**
 * The command the self-upgrade unit runs: this agent's own program file kept under the state dir,
 * so that the unit, restarted after a crash, runs the version that started it, not whatever the
 * package put in /usr/bin since (a new version broken enough to fail here too could not roll
 * itself back). Run from a source tree (development, a .ts entry) there is no one file to keep.
 */
async function keptCommand(host: Host, stateDir: string): Promise<string[]> {
  const [exe, script] = agentCommand() as [string, string | undefined];
  if (script !== undefined && script.endsWith('.ts')) return [exe, script];
  const program = script ?? exe;
  const kept = `${keptDir(stateDir)}/${path.basename(program)}`;
  if ((await statPath(host, kept))?.type !== 'file') await keepLocalFile(host, program, kept, 0o755);
  return script === undefined ? [host.path(kept)] : [exe, host.path(kept)];
}

/** Written by the transient unit before it switches: tells an agent that starts meanwhile to confirm its health. */
export const Armed = Type.Object({
  version: Type.Literal(1),
  component: Type.String(),
  /** The journal's startedAt: which upgrade this is. */
  attempt: Type.String(),
  from: Type.String(),
  to: Type.String(),
  pid: Type.Integer(),
});

/** Written by an agent that started during an upgrade, once its /healthz answered ok (and its Lease was renewed). */
export const Confirmation = Type.Object({
  version: Type.Literal(1),
  agentVersion: Type.String(),
  pid: Type.Integer(),
  /** Epoch ms when that agent started: only an agent started after the upgrade began counts. */
  startedAt: Type.Integer(),
  confirmedAt: Type.String(),
  lease: Type.Boolean(),
});

const writeJson = (host: Host, file: string, value: unknown): Promise<void> => host.writeFileAtomic(file, `${JSON.stringify(value)}\n`, 0o600);

/**
 * The daemon's side: arm and hand off. The previous version's artifact must be in the cache (a
 * rollback installs it from there) and the new one too, before anything changes; then the journal
 * is written and the transient unit started. Never throws: a failure leaves the agent as it is.
 */
export async function handOff(ctx: InstallContext, target: Target, record: ComponentRecord, journal: Journal | undefined, status: MachineComponentStatus): Promise<{ result: 'handed-off' | 'failed'; message: string }> {
  const { host, config, log } = ctx;
  const spec = target.spec;
  const now = (): string => new Date(host.clock.now()).toISOString();
  const fail = async (message: string): Promise<{ result: 'failed'; message: string }> => {
    status.lastError = message;
    setCondition(status, now(), 'Ready', status.installedVersion === undefined ? 'False' : 'True', 'SelfUpgradeNotStarted', message);
    await writeStatus(host, config.stateDir, spec.component, status);
    log.error({ component: spec.component, err: message }, 'Self-upgrade not started');
    return { result: 'failed', message };
  };
  try {
    if (journal === undefined) {
      const good = record.lastGood;
      if (good === undefined || good.specHash === target.specHash) {
        return await fail(`no earlier healthy version of the agent is recorded to roll back to: declare the version installed now first (a package already installed is recorded as it is; a binary or tarball is installed once by \`kubenode-agent apply\`), then the new one; nothing was changed`);
      }
      for (const s of [good.spec, spec]) {
        if (s.source.url !== undefined && s.source.sha256 !== undefined) await ensureArtifact(ctx, s.component, s.source.url, s.source.sha256, s.source.maxBytes);
      }
      journal = await Journal.begin(host, config.stateDir, { component: spec.component, mode: 'apply', target, lastGood: good, pending: { reload: false, restart: false, postInstall: false } });
      crashPoint('journal written');
    }
    const active = await host.exec(['systemctl', 'is-active', SELF_UNIT], { timeoutMs: config.commandTimeoutMs });
    const state = active.stdout.trim();
    if (state === 'active' || state === 'activating') return { result: 'handed-off', message: `${SELF_UNIT} is already running the upgrade to ${spec.version}` };
    // A failed earlier run of the unit keeps its name until reset; nothing to reset is not an error.
    await host.exec(['systemctl', 'reset-failed', SELF_UNIT], { timeoutMs: config.commandTimeoutMs });
    const argv = [
      'systemd-run',
      `--unit=${SELF_UNIT}`,
      `--description=kubenode-agent self-upgrade of ${spec.component} to ${spec.version}`,
      // Killed (-9, OOM) mid-way, systemd starts it again and it resumes from the journal.
      '--property=Restart=on-failure',
      '--property=RestartSec=5s',
      '--',
      ...(await keptCommand(host, config.stateDir)),
      'self-upgrade',
      '--component',
      spec.component,
      ...(ctx.selfUpgrade?.mode === 'hand-off' ? ctx.selfUpgrade.agentArgs : hostArgs(host.root === '/' ? {} : { root: host.root })),
    ];
    const r = await host.exec(argv, { timeoutMs: config.commandTimeoutMs });
    const failure = execFailure(r);
    // The journal stays: the next pass starts the unit again.
    if (failure !== undefined) return await fail(`could not start ${SELF_UNIT}: ${failure.message}; retried on the next pass`);
    crashPoint('handed off');
    const message = `handed to ${SELF_UNIT}: it installs ${spec.version}, waits up to ${formatDuration(config.selfUpgradeTimeout)} for it to report healthy, or restores ${journal.data.lastGood?.spec.version ?? 'the previous version'}`;
    setPhase(status, 'Installing', now());
    setCondition(status, now(), 'Ready', 'False', 'SelfUpgrading', message);
    await writeStatus(host, config.stateDir, spec.component, status);
    log.info({ component: spec.component, version: spec.version, unit: SELF_UNIT }, 'Self-upgrade handed to a transient unit');
    return { result: 'handed-off', message };
  } catch (err) {
    return await fail(`arming the self-upgrade to ${spec.version}: ${errorMessage(err)}`);
  }
}

/** One ExecStart= word: quoted when it must be, with systemd's specifiers (%) and variables ($) escaped. */
function unitWord(word: string): string {
  const escaped = word.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? escaped : `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** The resume unit: the command line this unit runs (the kept previous program), at the next boot. */
function resumeUnit(component: string, argv: readonly string[]): string {
  return [
    '# Written by kubenode-agent while it upgrades itself; removed once the upgrade is done or rolled back.',
    '[Unit]',
    `Description=kubenode-agent: resume the self-upgrade of ${component} after a reboot`,
    'After=network-online.target',
    'Wants=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${argv.map(unitWord).join(' ')}`,
    'Restart=on-failure',
    'RestartSec=5s',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/**
 * The transient unit's side, before it switches: agents that start from now on confirm their
 * health, and a reboot before the result is recorded resumes the run (the resume unit, enabled
 * as `systemctl enable` would: the file and its multi-user.target.wants link; only the next boot
 * reads them, so no daemon-reload).
 */
export async function arm(host: Host, stateDir: string, journal: Journal, argv: readonly string[]): Promise<void> {
  const d = journal.data;
  const current = await readInstallerState(host, armedFile(stateDir), Armed, {});
  if (current?.attempt !== d.startedAt) {
    await writeJson(host, armedFile(stateDir), { version: 1, component: d.component, attempt: d.startedAt, from: d.lastGood?.spec.version ?? '', to: (d.failed?.version ?? d.target.spec.version), pid: process.pid });
  }
  await host.writeFileAtomic(RESUME_FILE, resumeUnit(d.component, argv), 0o644);
  if ((await statPath(host, RESUME_WANTS))?.type !== 'symlink') await swapSymlink(host, RESUME_WANTS, RESUME_FILE);
}

/** After the run is recorded (journal finished): nothing left for an agent to confirm, or for a boot to resume. */
export async function disarm(host: Host, stateDir: string): Promise<void> {
  await removePath(host, RESUME_WANTS);
  await removePath(host, RESUME_FILE);
  await removePath(host, selfDir(stateDir));
}

/**
 * When the agent running now must have started by: the start of the run's last step that replaced
 * or restarted it (recorded before the step ran, so an agent that systemd started during it, and
 * only such a one, counts), else the start of the run.
 */
function switchedAt(journal: JournalData): number {
  let at = Date.parse(journal.startedAt);
  for (const s of journal.steps) if (s.state === 'started' && SWITCHING.has(s.id)) at = Math.max(at, Date.parse(s.at));
  return at;
}

/**
 * Verification of the agent itself, in the transient unit: the spec's own checks, and an agent of
 * that version started since the last switch has confirmed (/healthz ok, Lease renewed), within
 * installers.selfUpgradeTimeout. Anything else is the engine's verify.
 */
export async function verifyComponent(ctx: InstallContext, spec: MachineComponentSpec, journal: JournalData): Promise<VerifyResult> {
  if (!isSelf(spec) || ctx.selfUpgrade?.mode !== 'run') return verify(ctx, spec);
  const { host, config } = ctx;
  const since = switchedAt(journal);
  const deadline = host.clock.now() + config.selfUpgradeTimeout;
  let why = `no kubenode-agent ${spec.version} reported healthy`;
  for (;;) {
    const c = await readInstallerState(host, confirmedFile(config.stateDir), Confirmation, {});
    if (c !== undefined && c.startedAt >= since && (versionMatches(c.agentVersion, spec.version) || versionMatches(spec.version, c.agentVersion))) {
      const checked = await verify(ctx, spec);
      if (checked.ok) return checked;
      why = checked.error;
    } else if (c !== undefined) {
      why = `the agent that reported healthy is ${c.agentVersion} (pid ${c.pid}), not ${spec.version} started since it was last switched or restarted`;
    }
    const left = deadline - host.clock.now();
    if (left <= 0) return { ok: false, error: `${why} within ${formatDuration(config.selfUpgradeTimeout)} (its /healthz ok and, in a cluster, its Lease renewed)` };
    await host.clock.sleep(Math.min(500, left), ctx.signal);
  }
}

export interface ConfirmOptions {
  host: Host;
  stateDir: string;
  /** The daemon's health endpoint, host:port. */
  address: string;
  agentVersion: string;
  startedAt: number;
  log: Logger;
  /** In a cluster: whether the agent's Lease has been renewed since it started. */
  leaseRenewed?: () => boolean;
  signal: AbortSignal;
}

/**
 * The new agent's side, at start: when an upgrade is armed, wait until its own /healthz answers
 * 200 (and its Lease is renewed), then write the confirmation the transient unit waits for. It only
 * reports: disarming is the unit's job, so a crash of either leaves a state the other resumes from.
 */
export async function confirmSelfUpgrade(o: ConfirmOptions): Promise<void> {
  const armed = await readInstallerState(o.host, armedFile(o.stateDir), Armed, {});
  if (armed === undefined) return;
  o.log.info({ component: armed.component, from: armed.from, to: armed.to }, 'Self-upgrade in progress: confirming this agent is healthy');
  let waitingForLease = false;
  while (!o.signal.aborted) {
    let ok = false;
    try {
      ok = (await httpGetStatus(`http://${o.address}/healthz`, 2000, o.signal)) === 200;
    } catch {
      // not answering yet
    }
    const lease = o.leaseRenewed?.() ?? false;
    if (ok && (o.leaseRenewed === undefined || lease)) {
      await writeJson(o.host, confirmedFile(o.stateDir), { version: 1, agentVersion: o.agentVersion, pid: process.pid, startedAt: o.startedAt, confirmedAt: new Date(o.host.clock.now()).toISOString(), lease });
      o.log.info({ version: o.agentVersion, lease }, 'Self-upgrade: confirmed healthy');
      return;
    }
    if (ok && !waitingForLease) {
      // Said once: an agent that answers but cannot reach its apiserver is rolled back at the deadline.
      waitingForLease = true;
      o.log.warn({ version: o.agentVersion }, 'Self-upgrade: /healthz ok, waiting for the node Lease to be renewed before confirming');
    }
    try {
      await o.host.clock.sleep(500, o.signal);
    } catch {
      return;
    }
  }
}
