// kill -9 at every step boundary of an upgrade (and of a rollback), then a normal restart of the
// agent must converge with nothing half-done. The hook: KUBENODE_TEST_CRASH_AFTER_STEP=N makes the
// agent SIGKILL itself at the Nth boundary (src/installers/journal.ts, crashPoint()).
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { agent, artifactServerForSuite, clearSystemctlCalls, componentManifest, demoRelease, installerSandbox, readJson, sha256, systemctlCalls, tempDir, writeConfig, writeManifest, type ArtifactServer } from './helpers.ts';

function manifest(server: ArtifactServer, version: string, body: Buffer): string {
  const name = `demo-${version}.tar.gz`;
  server.put(name, body);
  return componentManifest('node-a-demo', {
    component: 'demo',
    version,
    source: { type: 'tarball', url: server.url(name), sha256: sha256(body), stripComponents: 1 },
    install: { links: [{ path: '/usr/local/bin/demo', target: 'bin/demo' }] },
    files: [{ path: '/etc/demo/demo.conf', content: `version=${version}\n` }],
    unit: {
      name: 'demo.service',
      // The unit changes with the version too, so the upgrade also needs a daemon-reload.
      content: `[Unit]\nDescription=demo ${version}\n[Service]\nExecStart=/usr/local/bin/demo\n[Install]\nWantedBy=multi-user.target\n`,
    },
    healthCheck: { exec: { argv: ['/usr/local/bin/demo', '--health'] }, retries: 0 },
    versionProbe: { argv: ['/usr/local/bin/demo', '--version'], regex: 'demo version (\\S+)' },
  });
}

/** Every path under dir, relative. */
function walk(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const rel = path.join(prefix, name);
    out.push(rel);
    const full = path.join(dir, name);
    if (statSync(full, { throwIfNoEntry: false })?.isDirectory() === true && !readlinkSafe(full)) out.push(...walk(full, rel));
  }
  return out;
}
const readlinkSafe = (p: string): boolean => {
  try {
    readlinkSync(p);
    return true;
  } catch {
    return false;
  }
};

interface Scenario {
  name: string;
  to: { version: string; healthy: boolean };
  /** What the converged node looks like afterwards. */
  final: { current: string; phase: string; conf: string };
}

const scenarios: Scenario[] = [
  { name: 'upgrade 1.0.0 → 2.0.0', to: { version: '2.0.0', healthy: true }, final: { current: '2.0.0', phase: 'Installed', conf: 'version=2.0.0\n' } },
  { name: 'failing upgrade 1.0.0 → 3.0.0 and its rollback', to: { version: '3.0.0', healthy: false }, final: { current: '1.0.0', phase: 'Failed', conf: 'version=1.0.0\n' } },
];

describe('kill -9 at every step boundary', () => {
  const server = artifactServerForSuite();

  for (const sc of scenarios) {
    it(`${sc.name}: each crash resumes to a converged node`, async () => {
      const { root: base, work, manifests } = installerSandbox();
      const config = writeConfig(work);
      writeManifest(manifests, 'demo.yaml', manifest(server, '1.0.0', demoRelease('1.0.0')));
      const installed = await agent('apply', { root: base, manifests, config });
      assert.equal(installed.code, 0, installed.stdout + installed.stderr);
      clearSystemctlCalls(base);
      writeManifest(manifests, 'demo.yaml', manifest(server, sc.to.version, demoRelease(sc.to.version, { healthy: sc.to.healthy })));

      let crashes = 0;
      for (let n = 1; n < 40; n++) {
        const root = tempDir(`crash-${n}`);
        cpSync(base, root, { recursive: true, verbatimSymlinks: true });
        const env = { root, manifests, config };
        const crashed = await agent('apply', env, [], { env: { KUBENODE_TEST_CRASH_AFTER_STEP: String(n) } });
        if (crashed.code !== null) {
          // Fewer boundaries than n: the run completed, the loop has covered every boundary.
          assert.equal(crashed.code, sc.to.healthy ? 0 : 1, crashed.stdout + crashed.stderr);
          break;
        }
        crashes++;
        // At the crash: a journal says what was under way, and nothing is half-written.
        assert.ok(existsSync(path.join(root, 'var/lib/kubenode/installers/journal/demo.json')), `n=${n}: journal present`);
        const current = readlinkSync(path.join(root, 'opt/kubenode/demo/current'));
        assert.ok(['1.0.0', sc.to.version].includes(current), `n=${n}: current is ${current}`);
        assert.ok(statSync(path.join(root, 'opt/kubenode/demo', current)).isDirectory());
        assert.ok(['version=1.0.0\n', `version=${sc.to.version}\n`].includes(readFileSync(path.join(root, 'etc/demo/demo.conf'), 'utf8')));
        assert.deepEqual(walk(root).filter((p) => p.includes('.kubenode-')), [], `n=${n}: no temp files left by an atomic write`);
        const plan = await agent('plan', env);
        assert.match(plan.stdout, /\(resuming a crashed (apply|rollback)\)/, `n=${n}: plan shows the resume`);

        // Restart: converges.
        const resumed = await agent('apply', env);
        assert.equal(resumed.code, sc.to.healthy ? 0 : 1, `n=${n}: ${resumed.stdout}${resumed.stderr}`);
        assert.equal(readlinkSync(path.join(root, 'opt/kubenode/demo/current')), sc.final.current, `n=${n}`);
        assert.equal(readFileSync(path.join(root, 'etc/demo/demo.conf'), 'utf8'), sc.final.conf, `n=${n}`);
        assert.equal(readFileSync(path.join(root, 'etc/systemd/system/demo.service'), 'utf8').includes(`demo ${sc.final.current}`), true, `n=${n}: unit`);
        const status = readJson<{ phase: string; installedVersion: string }>(path.join(root, 'var/lib/kubenode/installers/status/demo.json'));
        assert.equal(status.phase, sc.final.phase, `n=${n}`);
        assert.equal(status.installedVersion, sc.final.current, `n=${n}`);
        assert.equal(existsSync(path.join(root, 'var/lib/kubenode/installers/journal/demo.json')), false, `n=${n}: journal finished`);
        assert.deepEqual(walk(root).filter((p) => p.includes('.kubenode-') || p.endsWith('.partial')), [], `n=${n}: no leftovers`);
        // The running service saw the final unit: a daemon-reload, then a restart after it.
        const calls = systemctlCalls(root);
        const lastReload = calls.lastIndexOf('daemon-reload');
        const lastRestart = calls.lastIndexOf('restart demo.service');
        assert.ok(lastReload >= 0 && lastRestart > lastReload, `n=${n}: reload then restart in ${JSON.stringify(calls)}`);
        const again = await agent('plan', env);
        assert.equal(again.code, 0);
        assert.match(again.stdout, sc.to.healthy ? /^Nothing to do: 1 component\(s\) converged\.$/m : /^demo held: 3\.0\.0 failed/m, `n=${n}`);
      }
      // journal written, fetch, install, activate, file, unit, daemon-reload, restart, verified (+ the rollback's steps).
      assert.ok(crashes >= 9, `crashed at ${crashes} boundaries`);
    });
  }
});
