// What a failed run leaves: a failed FIRST install (no last good version) must leave the root as
// it found it, byte for byte, also when the agent is killed (-9) at any step boundary of the run
// or of its cleanup; a failed upgrade must take away what only the failed spec added.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { agent, artifactServerForSuite, componentManifest, demoRelease, makeSandbox, readJson, sha256, systemctlCalls, tempDir, writeConfig, writeManifest, type ArtifactServer } from './helpers.ts';

const STATE = 'var/lib/kubenode';
/** The agent's own state and runtime (lock) dirs; the fake systemctl's call log is the test's instrument, not part of the host. */
const IGNORED = new Set([STATE, 'run/kubenode-agent', 'var/log/systemctl.calls']);

/** Every path under root with its type, mode, owner and content hash or link target. */
function snapshot(root: string, rel = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(path.join(root, rel)).sort()) {
    const p = path.join(rel, name);
    if (IGNORED.has(p)) continue;
    const s = lstatSync(path.join(root, p));
    const mode = (s.mode & 0o7777).toString(8);
    if (s.isSymbolicLink()) out.push(`${p} -> ${readlinkSync(path.join(root, p))}`);
    else if (s.isDirectory()) out.push(`${p}/ ${mode} ${s.uid}:${s.gid}`, ...snapshot(root, p));
    else out.push(`${p} ${mode} ${s.uid}:${s.gid} ${createHash('sha256').update(readFileSync(path.join(root, p))).digest('hex')}`);
  }
  return out;
}

interface Spec {
  version: string;
  healthy?: boolean;
  unit?: string;
  extraFiles?: string[];
  postInstall?: string[][];
}

function manifest(server: ArtifactServer, o: Spec): string {
  const body = demoRelease(o.version, { healthy: o.healthy !== false });
  const name = `demo-${o.version}-${o.healthy === false ? 'broken' : 'ok'}.tar.gz`;
  server.put(name, body);
  const unit = o.unit ?? 'demo.service';
  return componentManifest('node-a-demo', {
    component: 'demo',
    version: o.version,
    source: { type: 'tarball', url: server.url(name), sha256: sha256(body), stripComponents: 1 },
    install: { links: [{ path: '/usr/local/bin/demo', target: 'bin/demo' }] },
    files: [
      { path: '/etc/demo/demo.conf', content: `version=${o.version}\n`, mode: '0640', owner: 'root:daemon' },
      ...(o.extraFiles ?? []).map((f) => ({ path: f, content: `added by ${o.version}\n` })),
    ],
    unit: { name: unit, content: `[Unit]\nDescription=demo ${o.version}\n[Service]\nExecStart=/usr/local/bin/demo\n[Install]\nWantedBy=multi-user.target\n` },
    ...(o.postInstall === undefined ? {} : { hooks: { postInstall: o.postInstall } }),
    healthCheck: { exec: { argv: ['/usr/local/bin/demo', '--health'] }, retries: 0 },
    versionProbe: { argv: ['/usr/local/bin/demo', '--version'], regex: 'demo version (\\S+)' },
  });
}

/** Roots to fail a first install into: bare, and one where the component's paths partly exist already. */
const roots: { name: string; seed: (root: string) => void }[] = [
  { name: 'a bare root', seed: () => {} },
  {
    name: 'a root with an operator-written demo.conf, unit dir and /usr/local/bin',
    seed: (root) => {
      mkdirSync(path.join(root, 'etc/demo'), { recursive: true });
      writeFileSync(path.join(root, 'etc/demo/demo.conf'), 'written by hand\n');
      chmodSync(path.join(root, 'etc/demo/demo.conf'), 0o600);
      writeFileSync(path.join(root, 'etc/demo/other.conf'), 'not ours\n');
      mkdirSync(path.join(root, 'etc/systemd/system/multi-user.target.wants'), { recursive: true });
      writeFileSync(path.join(root, 'etc/systemd/system/other.service'), '[Service]\nExecStart=/bin/true\n');
      mkdirSync(path.join(root, 'usr/local/bin'), { recursive: true });
    },
  },
];

function baseRoot(seed: (root: string) => void): string {
  const root = makeSandbox();
  // As on any host; the agent's state dir and its lock dir go below them.
  mkdirSync(path.join(root, 'var/lib'), { recursive: true });
  mkdirSync(path.join(root, 'run'), { recursive: true });
  writeFileSync(path.join(root, 'usr/bin/fail'), '#!/bin/sh\necho "post-install refused" >&2\nexit 1\n');
  chmodSync(path.join(root, 'usr/bin/fail'), 0o755);
  seed(root);
  return root;
}

interface StatusFile {
  phase: string;
  installedVersion?: string;
  lastError?: string;
  history: { version: string; result: string }[];
}
const statusOf = (root: string): StatusFile => readJson<StatusFile>(path.join(root, STATE, 'installers/status/demo.json'));

function assertNotInstalled(root: string, before: string[], where: string, error: RegExp): void {
  assert.deepEqual(snapshot(root), before, `${where}: the root is as it was`);
  const s = statusOf(root);
  assert.equal(s.phase, 'Failed', where);
  assert.equal(s.installedVersion, undefined, where);
  assert.match(s.lastError ?? '', error, where);
  assert.equal(existsSync(path.join(root, STATE, 'installers/journal/demo.json')), false, `${where}: journal finished`);
  assert.equal(existsSync(path.join(root, STATE, 'installers/undo/demo')), false, `${where}: backups dropped`);
}

describe('a failed first install leaves nothing behind', () => {
  const server = artifactServerForSuite();

  const failures: { name: string; spec: Spec; error: RegExp }[] = [
    { name: 'its health check fails', spec: { version: '3.0.0', healthy: false }, error: /3\.0\.0: health check .* exited 1: demo 3\.0\.0 is broken.*removed what this run installed/ },
    { name: 'its post-install hook fails', spec: { version: '1.0.0', postInstall: [['/usr/bin/fail']] }, error: /1\.0\.0: \/usr\/bin\/fail exited 1: post-install refused.*removed what this run installed/ },
  ];
  for (const r of roots) {
    for (const f of failures) {
      it(`${r.name}, ${f.name}: byte for byte as before, Failed, not installed, held`, async () => {
        const root = baseRoot(r.seed);
        const before = snapshot(root);
        const work = tempDir('work');
        const manifests = path.join(work, 'manifests');
        const config = writeConfig(work);
        writeManifest(manifests, 'demo.yaml', manifest(server, f.spec));
        const res = await agent('apply', { root, manifests, config });
        assert.equal(res.code, 1, res.stdout + res.stderr);
        assert.match(res.stdout, /demo \S+: failed/);
        assertNotInstalled(root, before, 'after the run', f.error);
        // The unit was started by the run: stopped before its file went, then systemd reloaded.
        const calls = systemctlCalls(root);
        const stop = calls.indexOf('stop demo.service');
        assert.ok(stop > calls.indexOf('restart demo.service') && calls.lastIndexOf('daemon-reload') > stop, JSON.stringify(calls));
        assert.equal(statusOf(root).history[0]?.result, 'Failed');

        const again = await agent('apply', { root, manifests, config });
        assert.match(again.stdout, /demo \S+: held/);
        assert.deepEqual(snapshot(root), before, 'the held spec is not retried');
      });
    }
  }

  it('kill -9 at every step boundary of the failing first install and of its cleanup: the restart converges to not installed, Failed', async () => {
    const base = baseRoot((roots[1] as (typeof roots)[number]).seed);
    const before = snapshot(base);
    const work = tempDir('work');
    const manifests = path.join(work, 'manifests');
    const config = writeConfig(work);
    writeManifest(manifests, 'demo.yaml', manifest(server, { version: '3.0.0', healthy: false }));
    let crashes = 0;
    for (let n = 1; n < 60; n++) {
      const root = tempDir(`cleanup-crash-${n}`);
      cpSync(base, root, { recursive: true, verbatimSymlinks: true });
      const env = { root, manifests, config };
      const crashed = await agent('apply', env, [], { env: { KUBENODE_TEST_CRASH_AFTER_STEP: String(n) } });
      if (crashed.code !== null) {
        // Fewer boundaries than n: the run completed, every boundary has been covered.
        assert.equal(crashed.code, 1, crashed.stdout + crashed.stderr);
        assertNotInstalled(root, before, `n=${n} (no crash)`, /removed what this run installed/);
        break;
      }
      crashes++;
      assert.ok(existsSync(path.join(root, STATE, 'installers/journal/demo.json')), `n=${n}: journal present at the crash`);
      const resumed = await agent('apply', env);
      assert.equal(resumed.code, 1, `n=${n}: ${resumed.stdout}${resumed.stderr}`);
      assertNotInstalled(root, before, `n=${n}`, /3\.0\.0: health check .*removed what this run installed/);
      const again = await agent('apply', env);
      assert.match(again.stdout, /demo 3\.0\.0: held/, `n=${n}`);
    }
    // journal, fetch, install, activate, file, unit, daemon-reload, enable, restart, verified, then
    // one boundary per undo record (6) and the cleanup's daemon-reload.
    assert.ok(crashes >= 17, `crashed at ${crashes} boundaries`);
  });
});

describe('a failed upgrade takes away what only the failed spec added', () => {
  const server = artifactServerForSuite();

  it('rolls back 1.0.0 → 3.0.0 (broken, with an extra file, a hand-written file it overwrote and a renamed unit)', async () => {
    const root = baseRoot(() => {});
    const work = tempDir('work');
    const manifests = path.join(work, 'manifests');
    const config = writeConfig(work);
    writeManifest(manifests, 'demo.yaml', manifest(server, { version: '1.0.0' }));
    const first = await agent('apply', { root, manifests, config });
    assert.equal(first.code, 0, first.stdout + first.stderr);
    writeFileSync(path.join(root, 'etc/demo/tuning.conf'), 'hand-tuned\n');
    const installed = snapshot(root);

    writeManifest(manifests, 'demo.yaml', manifest(server, { version: '3.0.0', healthy: false, unit: 'demo3.service', extraFiles: ['/etc/demo/extra.conf', '/etc/demo/tuning.conf', '/etc/demo3/new.conf'] }));
    const res = await agent('apply', { root, manifests, config });
    assert.equal(res.code, 1, res.stdout + res.stderr);
    assert.match(res.stdout, /demo 3\.0\.0: rolled-back/);
    const s = statusOf(root);
    assert.equal(s.phase, 'Failed');
    assert.equal(s.installedVersion, '1.0.0');
    assert.match(s.lastError ?? '', /rolled back to 1\.0\.0$/);
    assert.equal(existsSync(path.join(root, 'etc/demo/extra.conf')), false, 'added file removed');
    assert.equal(existsSync(path.join(root, 'etc/demo3')), false, 'its new directory removed');
    assert.equal(readFileSync(path.join(root, 'etc/demo/tuning.conf'), 'utf8'), 'hand-tuned\n', 'overwritten file restored');
    assert.equal(existsSync(path.join(root, 'etc/systemd/system/demo3.service')), false, 'its unit removed');
    assert.equal(existsSync(path.join(root, 'etc/systemd/system/multi-user.target.wants/demo3.service')), false, 'its unit disabled');
    assert.equal(existsSync(path.join(root, 'opt/kubenode/demo/3.0.0')), false, 'its version directory removed');
    assert.ok(systemctlCalls(root).includes('stop demo3.service'));
    assert.deepEqual(snapshot(root), installed, 'the node is as 1.0.0 left it');
  });
});
