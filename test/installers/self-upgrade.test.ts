// The agent upgrading itself, end to end in a sandbox root: real kubenode-agent debs and rpms of the
// agent's own bundle, installed by real dpkg/rpm; the agent runs as the sandbox's service (daemon,
// standalone mode, manifest directory) and hands its own upgrade to the transient unit through
// systemd-run. Only systemctl and systemd-run are stand-ins (test/installers/self-sandbox.ts): this
// machine's PID 1 is not systemd. Nothing outside the temp dirs is touched.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { readJson, sha256, startArtifactServer, tempDir, type ArtifactServer } from './helpers.ts';
import { missingTools, skipOutsideCi } from '../helpers/prerequisites.ts';
import { agentPackage, makeSelfSandbox, stopSandboxUnits, type PackageType, type SelfSandbox } from './self-sandbox.ts';

const UNIT = 'kubenode-agent-self-upgrade.service';
const STATE = 'var/lib/kubenode';

interface Status {
  phase: string;
  installedVersion?: string;
  lastError?: string;
  conditions: { type: string; status: string; reason: string; message: string }[];
  history: { version: string; specHash: string; result: string; at: string }[];
}

const config = {
  nodeName: 'node-a',
  listen: '127.0.0.1:0',
  monitors: { systemLog: [], customPlugin: [] },
  installers: { selfUpgradeTimeout: '10s', reconcileDebounce: '100ms', reconcileInterval: '2s', lockTimeout: '2s', downloadBackoff: '20ms' },
  risk: { local: { maxDisruptive: 100 } },
};

const kinds: { type: PackageType; tools: string[] }[] = [
  { type: 'deb', tools: ['dpkg', 'dpkg-deb', 'dpkg-query'] },
  { type: 'rpm', tools: ['rpm', 'rpmbuild'] },
];

for (const kind of kinds) {
  const skip = skipOutsideCi(missingTools(kind.tools, 'apt-get install dpkg rpm'));
  describe(`the agent upgrades itself (${kind.type})`, { skip }, () => {
    let server: ArtifactServer;
    let box: SelfSandbox;
    const packages = new Map<string, Buffer>();
    let salt = 0;

    const file = (rel: string): string => path.join(box.root, rel);
    const status = (): Status | undefined => (existsSync(file(`${STATE}/installers/status/kubenode-agent.json`)) ? readJson<Status>(file(`${STATE}/installers/status/kubenode-agent.json`)) : undefined);
    const journaled = (): boolean => existsSync(file(`${STATE}/installers/journal/kubenode-agent.json`));
    const armed = (): boolean => existsSync(file(`${STATE}/installers/self-upgrade`));
    const unitExits = (): string[] => box.log(`${UNIT}.log.exits`);
    const agentLog = (): Record<string, unknown>[] =>
      box.log('kubenode-agent.log').flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      });

    const diagnostics = (): string =>
      [
        `status: ${JSON.stringify(status())}`,
        `installed: ${box.installedVersion()}`,
        `journal: ${journaled()}, armed: ${armed()}`,
        `systemd-run calls:\n${box.log('systemd-run.calls').join('\n')}`,
        `unit log (tail):\n${box.log(`${UNIT}.log`).slice(-15).join('\n')}`,
        `agent log (tail):\n${box.log('kubenode-agent.log').slice(-15).join('\n')}`,
      ].join('\n');

    async function waitFor(what: string, ok: () => boolean, limitMs = 120_000): Promise<void> {
      const until = Date.now() + limitMs;
      while (!ok()) {
        if (Date.now() > until) assert.fail(`${what}: not reached\n${diagnostics()}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }

    /** Declares kubenode-agent at `version` (a changed salt makes a new spec of the same version). */
    function declare(version: string, options: { broken?: boolean } = {}): void {
      const key = `${version}${options.broken === true ? '-broken' : ''}`;
      const body = packages.get(key) as Buffer;
      const name = `kubenode-agent-${key}.${kind.type}`;
      server.put(name, body);
      salt += 1;
      writeFileSync(
        file('etc/kubenode/components/kubenode-agent.yaml'),
        stringify({
          apiVersion: 'kubenode.io/v1alpha1',
          kind: 'MachineComponent',
          metadata: { name: 'node-a-kubenode-agent' },
          spec: {
            component: 'kubenode-agent',
            version,
            source: { type: kind.type, url: server.url(name), sha256: sha256(body), package: 'kubenode-agent' },
            unit: { name: 'kubenode-agent.service' },
            versionProbe: { argv: ['/usr/bin/kubenode-agent', '--version'], regex: '^([0-9][^\\s]*)' },
            // Only to tell the specs of one version apart between cases.
            hooks: { timeoutSeconds: 60 + salt },
          },
        }),
      );
    }

    const settled = (version: string, phase: 'Installed' | 'Failed'): boolean => {
      const s = status();
      return s?.phase === phase && s.installedVersion === version && !journaled() && !armed() && box.installedVersion() === `${version}-1`;
    };

    /** The agent running now answers /healthz, and it is `version`. */
    async function runningIs(version: string): Promise<void> {
      await waitFor(`an agent ${version} running and healthy`, () => agentLog().some((l) => l.msg === 'Agent started'));
      const started = agentLog().filter((l) => l.msg === 'Agent started').at(-1) as { listen: string };
      const res = await fetch(`http://${started.listen}/healthz`);
      assert.equal(res.status, 200);
      const v = execFileSync(file('usr/bin/kubenode-agent'), ['--version'], { encoding: 'utf8' }).trim();
      assert.equal(v, version);
    }

    before(async () => {
      for (const [key, version, broken] of [['1.0.0', '1.0.0', false], ['1.1.0', '1.1.0', false], ['1.2.0-broken', '1.2.0', true]] as const) {
        packages.set(key, await agentPackage(kind.type, version, { broken }));
      }
      server = await startArtifactServer();
      box = makeSelfSandbox(kind.type, config);
      // As a node is bootstrapped: the package installed by hand, then the agent started.
      const first = path.join(tempDir('bootstrap'), `agent.${kind.type}`);
      writeFileSync(first, packages.get('1.0.0') as Buffer);
      box.bootstrapInstall(first);
      declare('1.0.0');
      box.systemctl('start', 'kubenode-agent.service');
      await waitFor('1.0.0 recorded as installed and healthy', () => settled('1.0.0', 'Installed'));
    });

    after(async () => {
      if (box !== undefined) {
        stopSandboxUnits(box.root);
        rmSync(box.root, { recursive: true, force: true });
      }
      await server?.close();
    });

    it('a healthy new version: the upgrade runs in the transient unit, the new agent confirms, the rollback is disarmed', async () => {
      declare('1.1.0');
      await waitFor('1.1.0 installed', () => settled('1.1.0', 'Installed'));
      const calls = box.log('systemd-run.calls');
      assert.equal(calls.length, 1, calls.join('\n'));
      assert.match(calls[0] as string, new RegExp(`--unit=${UNIT} .*--property=Restart=on-failure .*-- \\S+ \\S+installers/self-upgrade/previous/kubenode-agent\\.cjs self-upgrade --component kubenode-agent --root ${box.root}$`));
      const confirmed = agentLog().find((l) => l.msg === 'Self-upgrade: confirmed healthy') as { version?: string } | undefined;
      assert.equal(confirmed?.version, '1.1.0');
      assert.deepEqual(unitExits(), ['exit 0']);
      await runningIs('1.1.0');
      assert.equal(status()?.conditions.find((c) => c.type === 'Ready')?.status, 'True');
    });

    it('a new version that never reports healthy: the previous one is restored after the deadline, and the bad one is held', async () => {
      const callsBefore = box.log('systemd-run.calls').length;
      declare('1.2.0', { broken: true });
      await waitFor('rolled back to 1.1.0', () => settled('1.1.0', 'Failed'));
      const s = status() as Status;
      const ready = s.conditions.find((c) => c.type === 'Ready');
      assert.equal(ready?.reason, 'RolledBack');
      assert.match(s.lastError ?? '', /no kubenode-agent 1\.2\.0 reported healthy within 10s .*rolled back to 1\.1\.0/);
      assert.ok(box.log('kubenode-agent.exits').length > 0, 'the broken version was started and failed');
      await runningIs('1.1.0');
      assert.equal(box.log('systemd-run.calls').length, callsBefore + 1);
      // Held: the agent does not try 1.2.0 again until its spec changes.
      const plan = JSON.parse(execFileSync(file('usr/bin/kubenode-agent'), ['plan', '--root', box.root, '--json'], { encoding: 'utf8' })) as { components: { component: string; held?: string }[] };
      assert.match(plan.components.find((p) => p.component === 'kubenode-agent')?.held ?? '', /^1\.2\.0 failed at .* and was rolled back: no kubenode-agent 1\.2\.0 reported healthy/);
    });

    // Each case kills one process at one step boundary, then lets the agent converge by itself.
    const upgradeCases = [
      { who: 'unit', after: 1, what: 'after the package install, before the restart' },
      { who: 'unit', after: 2, what: 'after the restart, while waiting for the new agent' },
      { who: 'unit', after: 3, what: 'after verification, before the result is recorded' },
      { who: 'agent', after: 1, what: 'the daemon, after the journal is written, before systemd-run' },
      { who: 'agent', after: 2, what: 'the daemon, right after systemd-run' },
    ] as const;
    let current = '1.1.0';
    for (const c of upgradeCases) {
      it(`kill -9 of ${c.who === 'unit' ? 'the transient unit ' : ''}${c.what} converges to the new version`, async () => {
        const next = current === '1.1.0' ? '1.0.0' : '1.1.0';
        if (c.who === 'unit') writeFileSync(file('run/unit-crash-after'), `${c.after}\n`);
        else {
          writeFileSync(file('run/agent-crash-after'), `${c.after}\n`);
          rmSync(file('var/log/kubenode-agent.log'), { force: true });
          box.systemctl('restart', 'kubenode-agent.service');
          await waitFor('the agent restarted', () => agentLog().some((l) => l.msg === 'Agent started'));
        }
        rmSync(file(`var/log/${UNIT}.log.exits`), { force: true });
        rmSync(file('var/log/kubenode-agent.exits'), { force: true });
        declare(next);
        await waitFor(`${next} installed`, () => settled(next, 'Installed'));
        const killed = c.who === 'unit' ? unitExits() : box.log('kubenode-agent.exits');
        assert.ok(killed.includes('exit 137'), `the ${c.who} was killed: ${killed.join(', ')}`);
        current = next;
        await runningIs(next);
      });
    }

    const rollbackCases = [1, 2, 3, 4, 5].map((after) => ({
      after,
      what: ['after installing the broken version', 'after restarting into it', 'after its verification failed', "after the rollback's install", "after the rollback's restart"][after - 1],
    }));
    for (const c of rollbackCases) {
      it(`kill -9 of the transient unit ${c.what} still ends on the previous version`, async () => {
        writeFileSync(file('run/unit-crash-after'), `${c.after}\n`);
        rmSync(file(`var/log/${UNIT}.log.exits`), { force: true });
        const last = status()?.history[0]?.at;
        declare('1.2.0', { broken: true });
        await waitFor(`rolled back to ${current}`, () => settled(current, 'Failed') && status()?.history[0]?.at !== last && status()?.history[0]?.result === 'RolledBack');
        assert.ok(unitExits().includes('exit 137'), `the unit was killed: ${unitExits().join(', ')}`);
        await runningIs(current);
      });
    }

    it('no longer declared: the agent forgets itself but never uninstalls itself', async () => {
      rmSync(file('etc/kubenode/components/kubenode-agent.yaml'));
      await waitFor('the agent component forgotten', () => status() === undefined && !existsSync(file(`${STATE}/installers/records/kubenode-agent.json`)));
      assert.equal(box.installedVersion(), `${current}-1`);
      await runningIs(current);
    });
  });
}
