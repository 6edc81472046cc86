// A component dropped from the manifest directory is uninstalled — unit stopped and disabled,
// its files, links and version directories removed (only what the agent made), its status gone —
// unless removalPolicy is Orphan; journaled like an install, so a kill -9 at any step boundary of
// the removal converges on the next start; `plan` shows the removal first.
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { agent, artifactServerForSuite, clearSystemctlCalls, componentManifest, demoRelease, makeSandbox, sha256, systemctlCalls, tempDir, writeConfig, type ArtifactServer } from './helpers.ts';

const DIR = 'etc/kubenode/components';
const STATE = 'var/lib/kubenode/installers';

function demo(server: ArtifactServer, extra: Record<string, unknown> = {}): string {
  const body = demoRelease('1.0.0');
  server.put('remove-demo.tgz', body);
  return componentManifest('demo', {
    component: 'demo',
    version: '1.0.0',
    source: { type: 'tarball', url: server.url('remove-demo.tgz'), sha256: sha256(body), stripComponents: 1 },
    install: { links: [{ path: '/usr/local/bin/demo', target: 'bin/demo' }] },
    files: [
      { path: '/etc/demo/demo.conf', content: 'x\n' },
      { path: '/etc/demo/taken.conf', content: 'ours now\n' },
    ],
    unit: { name: 'demo.service', content: '[Service]\nExecStart=/usr/local/bin/demo\n[Install]\nWantedBy=multi-user.target\n' },
    ...extra,
  });
}

const other = componentManifest('other', { component: 'other', version: '1.0.0', source: { type: 'none' }, files: [{ path: '/etc/other.conf', content: 'o\n' }] });

/** A root with demo and other installed from the configured manifest directory. */
async function installed(server: ArtifactServer, extra: Record<string, unknown> = {}): Promise<{ root: string; config: string }> {
  const root = makeSandbox();
  mkdirSync(path.join(root, DIR), { recursive: true });
  writeFileSync(path.join(root, DIR, 'demo.yaml'), demo(server, extra));
  writeFileSync(path.join(root, DIR, 'other.yaml'), other);
  // Not the agent's: must survive the removal.
  mkdirSync(path.join(root, 'etc/demo'), { recursive: true });
  writeFileSync(path.join(root, 'etc/demo/local.conf'), 'operator\n');
  // There before the agent: taken over by the spec, so not the agent's to delete.
  writeFileSync(path.join(root, 'etc/demo/taken.conf'), 'operator\n');
  const config = writeConfig(tempDir('work'));
  const r = await agent('apply', { root, config });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  writeFileSync(path.join(root, 'opt/kubenode/demo/NOTES'), 'operator notes\n');
  clearSystemctlCalls(root);
  return { root, config };
}

function assertRemoved(root: string, where: string): void {
  for (const p of ['etc/systemd/system/demo.service', 'etc/systemd/system/multi-user.target.wants/demo.service', 'usr/local/bin/demo', 'etc/demo/demo.conf', 'opt/kubenode/demo/1.0.0', 'opt/kubenode/demo/current', `${STATE}/cache/demo`, `${STATE}/status/demo.json`, `${STATE}/records/demo.json`, `${STATE}/journal/demo.json`]) {
    assert.equal(existsSync(path.join(root, p)), false, `${where}: ${p} removed`);
  }
  assert.deepEqual(readdirSync(path.join(root, 'opt/kubenode/demo')), ['NOTES'], `${where}: what the agent did not make stays`);
  assert.ok(existsSync(path.join(root, 'etc/demo/local.conf')), `${where}: the operator's file stays`);
  assert.ok(existsSync(path.join(root, 'etc/demo/taken.conf')), `${where}: a file that was there before the agent stays`);
  assert.ok(existsSync(path.join(root, 'etc/other.conf')), `${where}: the other component stays`);
}

describe('removing a component', () => {
  const server = artifactServerForSuite();

  it('dropped from the manifest directory: plan shows the removal first; apply stops, disables and removes only what the agent made', async () => {
    const { root, config } = await installed(server);
    rmSync(path.join(root, DIR, 'demo.yaml'));
    const plan = await agent('plan', { root, config });
    assert.equal(plan.code, 0, plan.stderr);
    const lines = plan.stdout.split('\n');
    assert.equal(lines[0], 'demo 1.0.0 → removed', plan.stdout);
    assert.match(plan.stdout, /^ {2}stop +systemctl stop demo\.service +\[running\]$/m);
    assert.match(plan.stdout, /^ {2}versions +remove the version directories/m);
    const r = await agent('apply', { root, config });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^demo 1\.0\.0: removed \(stop, disable, unit, daemon-reload, link:\/usr\/local\/bin\/demo, current, file:\/etc\/demo\/demo\.conf, versions, cache\)$/m);
    assertRemoved(root, 'after apply');
    const calls = systemctlCalls(root);
    assert.ok(calls.indexOf('stop demo.service') >= 0 && calls.indexOf('daemon-reload') > calls.indexOf('stop demo.service'), JSON.stringify(calls));
    const again = await agent('apply', { root, config });
    assert.equal(again.stdout, 'Nothing to do: 1 component(s) converged.\n');
  });

  it('removalPolicy Orphan: left installed as it is, no longer managed', async () => {
    const { root, config } = await installed(server, { removalPolicy: 'Orphan' });
    rmSync(path.join(root, DIR, 'demo.yaml'));
    const plan = await agent('plan', { root, config });
    assert.match(plan.stdout, /^demo 1\.0\.0 left installed, no longer managed \(removalPolicy Orphan\)$/m);
    const r = await agent('apply', { root, config });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /demo 1\.0\.0: orphaned/);
    for (const p of ['etc/systemd/system/demo.service', 'usr/local/bin/demo', 'etc/demo/demo.conf', 'opt/kubenode/demo/1.0.0']) assert.ok(existsSync(path.join(root, p)), `${p} left`);
    assert.equal(existsSync(path.join(root, STATE, 'status/demo.json')), false, 'forgotten');
    assert.deepEqual(systemctlCalls(root), [], 'not stopped');
  });

  it('a refused manifest file in the directory: nothing is removed (it may declare what is installed)', async () => {
    const { root, config } = await installed(server);
    writeFileSync(path.join(root, DIR, 'demo.yaml'), 'apiVersion: kubenode.io/v1alpha1\nkind: MachineComponent\nmetadata: {name: demo}\nspec: {component: demo, version: "1.0.0", source: {type: snap}}\n');
    const r = await agent('apply', { root, config });
    assert.equal(r.code, 1);
    assert.doesNotMatch(r.stdout, /removed/);
    assert.ok(existsSync(path.join(root, 'opt/kubenode/demo/1.0.0')));
    assert.ok(existsSync(path.join(root, 'etc/demo/demo.conf')));
  });

  it('kill -9 at every step boundary of the removal: the next start finishes it', async () => {
    const base = await installed(server);
    rmSync(path.join(base.root, DIR, 'demo.yaml'));
    let crashes = 0;
    for (let n = 1; n < 30; n++) {
      const root = tempDir(`remove-crash-${n}`);
      cpSync(base.root, root, { recursive: true, verbatimSymlinks: true });
      const crashed = await agent('apply', { root, config: base.config }, [], { env: { KUBENODE_TEST_CRASH_AFTER_STEP: String(n) } });
      if (crashed.code !== null) {
        assert.equal(crashed.code, 0, crashed.stdout + crashed.stderr);
        assertRemoved(root, `n=${n} (no crash)`);
        break;
      }
      crashes++;
      assert.ok(existsSync(path.join(root, STATE, 'journal/demo.json')), `n=${n}: journal present`);
      const plan = await agent('plan', { root, config: base.config });
      assert.match(plan.stdout, /^demo 1\.0\.0 → removed \(resuming a crashed remove\)$/m, `n=${n}: ${plan.stdout}`);
      const resumed = await agent('apply', { root, config: base.config });
      assert.equal(resumed.code, 0, `n=${n}: ${resumed.stdout}${resumed.stderr}`);
      assertRemoved(root, `n=${n}`);
    }
    // journal, stop, disable, unit, daemon-reload, link, current, file, versions, cache
    assert.ok(crashes >= 10, `crashed at ${crashes} boundaries`);
  });
});
