// The agent upgrading itself, end to end in a sandbox root: real kubenode-agent debs and rpms of the
// agent's own bundle, installed by real dpkg/rpm, and the same bundle as a binary source (one
// executable) and as a tarball source, installed by the agent's own steps; the agent runs as the sandbox's service (daemon,
// standalone mode, manifest directory) and hands its own upgrade to the transient unit through
// systemd-run. Only systemctl and systemd-run are stand-ins (test/installers/self-sandbox.ts): this
// machine's PID 1 is not systemd. Nothing outside the temp dirs is touched.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { missingTools, skipOutsideCi } from '../helpers/prerequisites.ts';
import { readJson, sha256, startArtifactServer, tempDir, type ArtifactServer } from './helpers.ts';
import { agentArtifact, agentBundleFile, makeSelfSandbox, stopSandboxUnits, type AgentSource, type SelfSandbox } from './self-sandbox.ts';

const UNIT = 'kubenode-agent-self-upgrade.service';
const STATE = 'var/lib/kubenode';

interface Status {
  phase: string;
  installedVersion?: string;
  lastError?: string;
  conditions: { type: string; status: string; reason: string; message: string }[];
  history: { version: string; specHash: string; result: string; at: string }[];
}

// A broken version is rolled back at the deadline, so its cases wait it out: the least allowed. A
// good version must confirm within it, which on a loaded 2-core runner (the new agent started by
// the stand-in, then its first /healthz) took 3-5 s in tests and could pass 10 s: its cases get a
// minute, still inside waitFor's 2 minutes, so a good version that never confirms fails the case
// as rolled back. The transient unit reads agent.yaml when it starts, so declare() writes the one
// the case needs before the manifest; the running agent reads it only at its own start.
const BROKEN_DEADLINE = '10s';
const GOOD_DEADLINE = '1m';
const config = (selfUpgradeTimeout: string) => ({
  nodeName: 'node-a',
  listen: '127.0.0.1:0',
  monitors: { systemLog: [], customPlugin: [] },
  installers: { selfUpgradeTimeout, reconcileDebounce: '100ms', reconcileInterval: '2s', lockTimeout: '2s', downloadBackoff: '20ms' },
  risk: { local: { maxDisruptive: 100 } },
});

interface Kind {
  type: AgentSource;
  tools: string[];
  /** The source and install sections of the agent's MachineComponent. */
  spec: (url: string, sha: string) => Record<string, unknown>;
  /** What the sandbox reports installed for `version`. */
  installed: (version: string) => string;
  /** The file name the transient unit runs the kept previous program from. */
  kept: string;
  /** The steps the unit runs to switch, in order: a kill -9 after each (then after verification). */
  switching: string[];
}

const packaged = (type: 'deb' | 'rpm', tools: string[]): Kind => ({
  type,
  tools,
  spec: (url, sha) => ({ source: { type, url, sha256: sha, package: 'kubenode-agent' } }),
  installed: (v) => `${v}-1`,
  kept: 'kubenode-agent\\.cjs',
  switching: ['the package install', 'the restart'],
});

const kinds: Kind[] = [
  packaged('deb', ['dpkg', 'dpkg-deb', 'dpkg-query']),
  packaged('rpm', ['rpm', 'rpmbuild']),
  {
    type: 'binary',
    tools: [],
    spec: (url, sha) => ({ source: { type: 'binary', url, sha256: sha, binaryName: 'kubenode-agent' }, install: { links: [{ path: '/usr/bin/kubenode-agent', target: 'kubenode-agent' }] } }),
    installed: (v) => v,
    // The versioned file itself (…/VERSION/kubenode-agent), not the link the upgrade switches.
    kept: 'kubenode-agent',
    switching: ['installing the version directory', 'switching current to it', 'the restart'],
  },
  {
    type: 'tarball',
    tools: [],
    spec: (url, sha) => ({ source: { type: 'tarball', url, sha256: sha, stripComponents: 1 }, install: { links: [{ path: '/usr/bin/kubenode-agent', target: 'bin/kubenode-agent' }] } }),
    installed: (v) => v,
    kept: 'kubenode-agent\\.cjs',
    switching: ['unpacking the version directory', 'switching current to it', 'the restart'],
  },
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
    const agentLog = (): Record<string, unknown>[] => box.jsonLog('kubenode-agent.log');

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
    /** The agent's artifact at `version`, built once. */
    async function artifact(version: string, broken: boolean): Promise<Buffer> {
      const key = `${version}${broken ? '-broken' : ''}`;
      const have = packages.get(key);
      if (have !== undefined) return have;
      const built = await agentArtifact(kind.type, version, { broken });
      packages.set(key, built);
      return built;
    }

    async function declare(version: string, options: { broken?: boolean } = {}): Promise<void> {
      const key = `${version}${options.broken === true ? '-broken' : ''}`;
      const body = await artifact(version, options.broken === true);
      const name = `kubenode-agent-${key}.${kind.type === 'tarball' ? 'tar.gz' : kind.type}`;
      server.put(name, body);
      salt += 1;
      writeFileSync(file('etc/kubenode/agent.yaml'), `${JSON.stringify(config(options.broken === true ? BROKEN_DEADLINE : GOOD_DEADLINE))}\n`);
      writeFileSync(
        file('etc/kubenode/components/kubenode-agent.yaml'),
        stringify({
          apiVersion: 'kubenode.io/v1alpha1',
          kind: 'MachineComponent',
          metadata: { name: 'node-a-kubenode-agent' },
          spec: {
            component: 'kubenode-agent',
            version,
            ...kind.spec(server.url(name), sha256(body)),
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
      return s?.phase === phase && s.installedVersion === version && !journaled() && !armed() && box.installedVersion() === kind.installed(version);
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
      server = await startArtifactServer();
      box = makeSelfSandbox(kind.type, config(GOOD_DEADLINE));
      if (kind.type === 'deb' || kind.type === 'rpm') {
        // As a node is bootstrapped: the package installed by hand, then the agent started.
        const first = path.join(tempDir('bootstrap'), `agent.${kind.type}`);
        writeFileSync(first, await artifact('1.0.0', false));
        box.bootstrapInstall(first);
        await declare('1.0.0');
        box.systemctl('start', 'kubenode-agent.service');
      } else {
        // Nothing put the agent there before it runs: its first install is one `apply` by hand
        // (a downloaded copy of the agent), which starts the service; nothing to roll back to yet.
        await declare('1.0.0');
        // Async: the artifact server answering the download is in this process.
        await promisify(execFile)(process.execPath, [await agentBundleFile('1.0.0'), 'apply', '--root', box.root], { timeout: 120_000 });
        assert.equal(box.log('systemd-run.calls').length, 0, 'a first install runs in apply itself');
      }
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
      await declare('1.1.0');
      await waitFor('1.1.0 installed', () => settled('1.1.0', 'Installed'));
      const calls = box.log('systemd-run.calls');
      assert.equal(calls.length, 1, calls.join('\n'));
      assert.match(calls[0] as string, new RegExp(`--unit=${UNIT} .*--property=Restart=on-failure .*-- \\S+ \\S+installers/self-upgrade/previous/${kind.kept} self-upgrade --component kubenode-agent --root ${box.root}$`));
      const confirmed = agentLog().find((l) => l.msg === 'Self-upgrade: confirmed healthy') as { version?: string } | undefined;
      assert.equal(confirmed?.version, '1.1.0');
      // The unit records the result, then exits: its exit may come a moment after.
      await waitFor('the unit exited', () => unitExits().length > 0);
      assert.deepEqual(unitExits(), ['exit 0']);
      await runningIs('1.1.0');
      assert.equal(status()?.conditions.find((c) => c.type === 'Ready')?.status, 'True');
    });

    it('a new version that never reports healthy: the previous one is restored after the deadline, and the bad one is held', async () => {
      const callsBefore = box.log('systemd-run.calls').length;
      await declare('1.2.0', { broken: true });
      await waitFor('rolled back to 1.1.0', () => settled('1.1.0', 'Failed'));
      const s = status() as Status;
      const ready = s.conditions.find((c) => c.type === 'Ready');
      assert.equal(ready?.reason, 'RolledBack');
      assert.match(s.lastError ?? '', new RegExp(`no kubenode-agent 1\\.2\\.0 reported healthy within ${BROKEN_DEADLINE} .*rolled back to 1\\.1\\.0`));
      assert.ok(box.log('kubenode-agent.exits').length > 0, 'the broken version was started and failed');
      await runningIs('1.1.0');
      assert.equal(box.log('systemd-run.calls').length, callsBefore + 1);
      // Held: the agent does not try 1.2.0 again until its spec changes.
      const plan = JSON.parse(execFileSync(file('usr/bin/kubenode-agent'), ['plan', '--root', box.root, '--json'], { encoding: 'utf8' })) as { components: { component: string; held?: string }[] };
      assert.match(plan.components.find((p) => p.component === 'kubenode-agent')?.held ?? '', /^1\.2\.0 failed at .* and was rolled back: no kubenode-agent 1\.2\.0 reported healthy/);
    });

    // Each case kills one process at one step boundary, then lets the agent converge by itself. Each
    // goes to a version not on the node yet, so every step runs (a binary's or tarball's version
    // directory, once there, is not installed again).
    const upgradeCases: { who: 'unit' | 'agent'; after: number; what: string }[] = [
      ...kind.switching.map((step, i) => ({ who: 'unit' as const, after: i + 1, what: `after ${step}${i === kind.switching.length - 1 ? ', while waiting for the new agent' : ''}` })),
      { who: 'unit', after: kind.switching.length + 1, what: 'after verification, before the result is recorded' },
      { who: 'agent', after: 1, what: 'the daemon, after the journal is written, before systemd-run' },
      { who: 'agent', after: 2, what: 'the daemon, right after systemd-run' },
    ];
    let current = '1.1.0';
    for (const [i, c] of upgradeCases.entries()) {
      it(`kill -9 of ${c.who === 'unit' ? 'the transient unit ' : ''}${c.what} converges to the new version`, async () => {
        const next = `1.3.${i}`;
        if (c.who === 'unit') writeFileSync(file('run/unit-crash-after'), `${c.after}\n`);
        else {
          writeFileSync(file('run/agent-crash-after'), `${c.after}\n`);
          rmSync(file('var/log/kubenode-agent.log'), { force: true });
          box.systemctl('restart', 'kubenode-agent.service');
          await waitFor('the agent restarted', () => agentLog().some((l) => l.msg === 'Agent started'));
        }
        rmSync(file(`var/log/${UNIT}.log.exits`), { force: true });
        rmSync(file('var/log/kubenode-agent.exits'), { force: true });
        await declare(next);
        await waitFor(`${next} installed`, () => settled(next, 'Installed'));
        const killed = c.who === 'unit' ? unitExits() : box.log('kubenode-agent.exits');
        assert.ok(killed.includes('exit 137'), `the ${c.who} was killed: ${killed.join(', ')}`);
        current = next;
        await runningIs(next);
      });
    }

    const rollbackSteps = kind.type === 'deb' || kind.type === 'rpm'
      ? ['after installing the broken version', 'after restarting into it', 'after its verification failed', "after the rollback's install", "after the rollback's restart"]
      // The previous version's directory is still there: the rollback switches current back and restarts.
      : ['after installing the broken version', 'after switching current to it', 'after restarting into it', 'after its verification failed', "after the rollback's switch back", "after the rollback's restart"];
    const rollbackCases = rollbackSteps.map((what, i) => ({ after: i + 1, what }));
    for (const [i, c] of rollbackCases.entries()) {
      it(`kill -9 of the transient unit ${c.what} still ends on the previous version`, async () => {
        writeFileSync(file('run/unit-crash-after'), `${c.after}\n`);
        rmSync(file(`var/log/${UNIT}.log.exits`), { force: true });
        const last = status()?.history[0]?.at;
        await declare(`1.4.${i}`, { broken: true });
        await waitFor(`rolled back to ${current}`, () => settled(current, 'Failed') && status()?.history[0]?.at !== last && status()?.history[0]?.result === 'RolledBack');
        assert.ok(unitExits().includes('exit 137'), `the unit was killed: ${unitExits().join(', ')}`);
        await runningIs(current);
      });
    }

    it('power lost while waiting on a new version that never gets to its first pass: the next boot resumes the upgrade from the kept program, which rolls back', async () => {
      const resume = file('etc/systemd/system/kubenode-agent-self-upgrade-resume.service');
      const wants = file('etc/systemd/system/multi-user.target.wants/kubenode-agent-self-upgrade-resume.service');
      rmSync(file('var/log/kubenode-agent.exits'), { force: true });
      const last = status()?.history[0]?.at;
      await declare('1.5.0', { broken: true });
      // The link names its unit by the host path: present, not followed here.
      const linked = (): boolean => lstatSync(wants, { throwIfNoEntry: false }) !== undefined;
      await waitFor('the unit waiting on the broken 1.5.0', () => armed() && linked() && box.log('kubenode-agent.exits').length > 0);
      assert.equal(readlinkSync(wants), '/etc/systemd/system/kubenode-agent-self-upgrade-resume.service');
      assert.match(readFileSync(resume, 'utf8'), new RegExp(`^ExecStart=\\S+ \\S+installers/self-upgrade/previous/${kind.kept} self-upgrade --component kubenode-agent --root ${box.root}$`, 'm'));
      box.powerLoss();
      // What a boot finds: the broken version in place and the upgrade still journaled.
      assert.equal(box.installedVersion(), kind.installed('1.5.0'));
      assert.ok(journaled() && armed());
      box.boot();
      await waitFor(`rolled back to ${current} after the boot`, () => settled(current, 'Failed') && status()?.history[0]?.at !== last && status()?.history[0]?.result === 'RolledBack');
      assert.match(status()?.lastError ?? '', /no kubenode-agent 1\.5\.0 reported healthy/);
      assert.equal(existsSync(resume), false, 'the resume unit is removed with the upgrade done');
      assert.equal(linked(), false);
      await runningIs(current);
    });

    it('no longer declared: the agent forgets itself but never uninstalls itself', async () => {
      rmSync(file('etc/kubenode/components/kubenode-agent.yaml'));
      await waitFor('the agent component forgotten', () => status() === undefined && !existsSync(file(`${STATE}/installers/records/kubenode-agent.json`)));
      assert.equal(box.installedVersion(), kind.installed(current));
      await runningIs(current);
    });
  });
}
