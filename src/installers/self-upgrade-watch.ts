// What runs in the transient unit (`kubenode-agent self-upgrade`, started by the daemon through
// systemd-run, outside the agent's cgroup): the engine, in the role that runs the agent's own steps,
// on the journal the daemon wrote. See src/installers/self-upgrade.ts.
import type { Bootstrap } from '../bootstrap.ts';
import { acquireLock } from '../host/lock.ts';
import { createRiskGate } from '../risk/index.ts';
import { createInstallContext } from './context.ts';
import { Engine, INSTALL_LOCK, type ApplyOutcome } from './engine.ts';
import { Journal } from './journal.ts';
import { arm, disarm } from './self-upgrade.ts';
import { agentCommand } from './self-upgrade-paths.ts';

/**
 * Finishes the journaled upgrade (or its rollback) of `component`. finished: the result is recorded
 * and nothing is left to resume (the unit exits 0); otherwise it exits non-zero and systemd starts
 * it again (Restart=on-failure).
 */
export async function runSelfUpgrade(s: Bootstrap, component: string): Promise<{ outcome?: ApplyOutcome; finished: boolean }> {
  const { host, log, config } = s;
  const risk = createRiskGate({ host, config: config.risk, stateDir: config.stateDir, log }).forInstallers(s.nodeName);
  const ctx = createInstallContext(host, { installers: config.installers, stateDir: config.stateDir, nodeName: s.nodeName }, log.child({ component, unit: 'self-upgrade' }), { risk, selfUpgrade: { mode: 'run' } });
  // The daemon that started this unit holds the lock until its pass ends; the upgrade then holds it
  // through the switch and the wait, so the new agent's first pass cannot run the journal meanwhile.
  const lock = await acquireLock(host, INSTALL_LOCK, { timeoutMs: Math.max(ctx.config.lockTimeoutMs, 2 * ctx.config.selfUpgradeTimeout), purpose: `kubenode-agent self-upgrade of ${component}` });
  try {
    const journal = await Journal.load(host, config.stateDir, component);
    if (journal === undefined || journal.data.mode === 'remove') {
      await disarm(host, config.stateDir);
      log.info({ component }, 'Self-upgrade: nothing journaled; nothing to do');
      return { finished: true };
    }
    // This very command line (the kept previous program and its flags) is what a boot resumes with.
    await arm(host, config.stateDir, journal, [...agentCommand(), ...process.argv.slice(2)]);
    const [outcome] = await new Engine(ctx).apply([journal.data.target], { only: true });
    // Only once the result is recorded (the journal finished): a crash before this resumes the run.
    const finished = (await Journal.load(host, config.stateDir, component)) === undefined;
    if (finished) await disarm(host, config.stateDir);
    return { ...(outcome === undefined ? {} : { outcome }), finished };
  } finally {
    await lock.release();
  }
}
