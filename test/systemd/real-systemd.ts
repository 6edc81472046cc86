// Opt-in: the installers engine against the machine's real systemd (PID 1). Not part of
// `npm test` — it acts on the machine it runs on, which no other test does. See README.md here.
//
//   sudo KUBENODE_REAL_SYSTEMD=1 node test/systemd/real-systemd.ts
//
// Exit 0: passed; 1: a check failed; 2: refused to run (not systemd, not opted in, not root).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { stringify } from 'yaml';
import { defaultConfig } from '../../src/config/load.ts';
import { createHost } from '../../src/host/host.ts';
import { createInstallContext } from '../../src/installers/context.ts';
import { Engine, type ApplyOutcome } from '../../src/installers/engine.ts';
import { parseManifestText } from '../../src/installers/manifests.ts';
import { createLogger } from '../../src/log.ts';
import { createRiskGate } from '../../src/risk/index.ts';

/** Where PID 1's name is read; the refusal test points it at a file of its own. */
const PID1_COMM = process.env.KUBENODE_SELFTEST_PID1_COMM ?? '/proc/1/comm';

function refusals(): string[] {
  const out: string[] = [];
  let comm: string;
  try {
    comm = readFileSync(PID1_COMM, 'utf8').trim();
  } catch (err) {
    comm = `unreadable (${err instanceof Error ? err.message : String(err)})`;
  }
  if (comm !== 'systemd') out.push(`PID 1 is ${JSON.stringify(comm)} (${PID1_COMM}), not systemd`);
  if (process.env.KUBENODE_REAL_SYSTEMD !== '1') {
    out.push('KUBENODE_REAL_SYSTEMD=1 is not set (this test writes a unit under /etc/systemd/system and files under /run on this machine, then removes them)');
  }
  if (process.getuid?.() !== 0) out.push('not running as root (systemctl enable/restart need it)');
  return out;
}

const systemctl = (...args: string[]): string => execFileSync('systemctl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
const systemctlTry = (...args: string[]): string => {
  try {
    return systemctl(...args);
  } catch (err) {
    return `failed: ${err instanceof Error ? err.message : String(err)}`;
  }
};

async function main(): Promise<number> {
  const refused = refusals();
  if (refused.length > 0) {
    console.error(`real-systemd: refusing to run:\n  - ${refused.join('\n  - ')}`);
    return 2;
  }
  const id = randomBytes(4).toString('hex');
  const component = `kubenode-selftest-${id}`;
  const unit = `${component}.service`;
  const unitFile = `/etc/systemd/system/${unit}`;
  const wantsLink = `/etc/systemd/system/multi-user.target.wants/${unit}`;
  const dir = `/run/${component}`;
  const stateDir = `/run/${component}-state`;
  const failures: string[] = [];
  const check = (ok: boolean, what: string): void => {
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
    if (!ok) failures.push(what);
  };

  const config = defaultConfig();
  config.stateDir = stateDir;
  const host = createHost();
  const log = createLogger('warn', 2);
  const risk = createRiskGate({ host, config: config.risk, stateDir, log }).forInstallers('selftest');
  const ctx = createInstallContext(host, { installers: config.installers, stateDir, nodeName: 'selftest' }, log, { risk });
  const engine = new Engine(ctx);
  const apply = async (version: string, content: string): Promise<ApplyOutcome | undefined> => {
    const yaml = stringify({
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'MachineComponent',
      metadata: { name: component },
      spec: {
        component,
        version,
        source: { type: 'none' },
        files: [{ path: `${dir}/config`, content }],
        unit: { name: unit, content: '[Unit]\nDescription=kubenode-agent self-test\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n' },
        healthCheck: { unitActive: true, retries: 2, intervalSeconds: 1 },
      },
    });
    const lock = await engine.lock('real-systemd self-test');
    try {
      return (await engine.apply(parseManifestText(`${component}.yaml`, yaml)))[0];
    } finally {
      await lock.release();
    }
  };
  const startedAt = (): number => Number(systemctlTry('show', '-p', 'ExecMainStartTimestampMonotonic', '--value', unit));

  console.log(`real-systemd: unit ${unit}, files under ${dir}, state in ${stateDir}`);
  try {
    const first = await apply('1.0.0', 'generation=1\n');
    check(first?.result === 'installed', `install: ${first?.result} ${first?.error ?? ''}`.trim());
    check(systemctlTry('is-active', unit) === 'active', `${unit} is active`);
    check(systemctlTry('is-enabled', unit) === 'enabled', `${unit} is enabled`);
    const t1 = startedAt();
    check(t1 > 0, `ExecMainStartTimestampMonotonic after install is ${t1}`);

    const same = await apply('1.0.0', 'generation=1\n');
    check(same?.result === 'unchanged', `second apply changes nothing: ${same?.result}`);
    check(startedAt() === t1, 'no restart without a change');

    const upgrade = await apply('1.0.1', 'generation=2\n');
    check(upgrade?.result === 'installed', `upgrade: ${upgrade?.result} ${upgrade?.error ?? ''}`.trim());
    check(readFileSync(`${dir}/config`, 'utf8') === 'generation=2\n', 'changed file written');
    const t2 = startedAt();
    check(t2 > t1, `changed file restarted the unit (ExecMainStartTimestampMonotonic ${t1} → ${t2})`);
    check(systemctlTry('is-active', unit) === 'active', `${unit} is active after the upgrade`);
  } catch (err) {
    check(false, `unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  } finally {
    // Whatever happened above, leave the machine as it was.
    systemctlTry('stop', unit);
    systemctlTry('disable', unit);
    rmSync(unitFile, { force: true });
    rmSync(wantsLink, { force: true });
    systemctlTry('daemon-reload');
    systemctlTry('reset-failed', unit);
    rmSync(dir, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
    check(!existsSync(unitFile) && !existsSync(wantsLink) && !existsSync(dir) && !existsSync(stateDir), 'cleanup: unit file, enablement link and files removed');
    const load = systemctlTry('show', '-p', 'LoadState', '--value', unit);
    check(load === 'not-found', `cleanup: systemd no longer knows ${unit} (LoadState=${load})`);
  }
  console.log(failures.length === 0 ? 'real-systemd: passed' : `real-systemd: ${failures.length} check(s) failed`);
  return failures.length === 0 ? 0 : 1;
}

process.exitCode = await main();
