import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, readlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { agent, artifactServerForSuite, componentManifest, demoRelease, installerSandbox, makeTar, sha256, startArtifactServer, tempDir, writeConfig, writeManifest, type ArtifactServer } from './helpers.ts';

function binaryManifest(server: ArtifactServer, name: string, body: Buffer, extra: Record<string, unknown> = {}): string {
  server.put(name, body);
  return componentManifest('node-a-tool', { component: 'tool', version: '1.2.3', source: { type: 'binary', url: server.url(name), sha256: sha256(body), binaryName: 'tool', ...extra }, install: { links: [{ path: '/usr/local/bin/tool', target: 'tool' }] } });
}

describe('downloads', () => {
  const server = artifactServerForSuite();

  it('resumes an interrupted download with Range and installs the verified binary', async () => {
    const { root, work, manifests } = installerSandbox();
    // 1 MiB of a binary-like payload; the server drops the first connection after 300 000 bytes.
    const body = Buffer.concat([Buffer.from('#!/bin/sh\necho tool 1.2.3\nexit 0\n'), Buffer.alloc(1024 * 1024, 7)]);
    writeManifest(manifests, 'tool.yaml', binaryManifest(server, 'tool-resume', body));
    server.cutAfter('tool-resume', 300_000);
    const r = await agent('apply', { root, manifests, config: writeConfig(work) });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const reqs = server.requests.filter((q) => q.name === 'tool-resume');
    assert.equal(reqs.length, 2, JSON.stringify(reqs));
    assert.deepEqual(reqs[0], { name: 'tool-resume', range: undefined, status: 200 });
    assert.equal(reqs[1]?.status, 206);
    const from = Number(/^bytes=(\d+)-$/.exec(reqs[1]?.range ?? '')?.[1]);
    // The server sends 300 000 bytes before it drops the connection; the client may have kept fewer.
    assert.ok(from > 0 && from <= 300_000, `resumed from ${from}`);
    assert.equal(readlinkSync(path.join(root, 'usr/local/bin/tool')), '../../../opt/kubenode/tool/current/tool');
    assert.deepEqual(readdirSync(path.join(root, 'var/lib/kubenode/installers/cache/tool')), [sha256(body)]);
  });

  it('gives up after the configured attempts and keeps the partial file for the next run, which resumes', async () => {
    const { root, work, manifests } = installerSandbox();
    const body = Buffer.alloc(200_000, 3);
    writeManifest(manifests, 'tool.yaml', binaryManifest(server, 'tool-flaky', body));
    server.cutAfter('tool-flaky', 50_000, 2);
    const r = await agent('apply', { root, manifests, config: writeConfig(work, { downloadAttempts: 2 }) });
    assert.equal(r.code, 1);
    assert.match(r.stdout, /download failed after 2 attempts: .*connection closed after \d+ of 200000 bytes|download failed after 2 attempts: .*interrupted/);
    assert.equal(existsSync(path.join(root, 'opt/kubenode/tool')), false);
    // The failed spec is held (apply exits 1 for a held component); the operator retries it.
    const held = await agent('apply', { root, manifests, config: writeConfig(work, { downloadAttempts: 2 }) });
    assert.equal(held.code, 1, held.stdout + held.stderr);
    assert.match(held.stdout, /tool 1\.2\.3: held/);
    const next = await agent('apply', { root, manifests, config: writeConfig(work, { downloadAttempts: 2 }) }, ['--retry-failed']);
    assert.equal(next.code, 0, next.stdout + next.stderr);
    const last = server.requests.filter((q) => q.name === 'tool-flaky').at(-1);
    assert.equal(last?.status, 206, 'the next run resumed the partial file');
  });

  it('refuses an artifact over source.maxBytes', async () => {
    const { root, work, manifests } = installerSandbox();
    writeManifest(manifests, 'tool.yaml', binaryManifest(server, 'tool-big', Buffer.alloc(5000, 1), { maxBytes: 4096 }));
    const r = await agent('apply', { root, manifests, config: writeConfig(work) });
    assert.equal(r.code, 1);
    assert.match(r.stdout, /5000 bytes is over the limit of 4096/);
    assert.equal(server.requests.filter((q) => q.name === 'tool-big').length, 1, 'not retried');
  });

  it('a 404 fails at once with the URL', async () => {
    const { root, work, manifests } = installerSandbox();
    const text = binaryManifest(server, 'present', Buffer.from('x')).replace('/present', '/absent');
    writeManifest(manifests, 'tool.yaml', text);
    const r = await agent('apply', { root, manifests, config: writeConfig(work) });
    assert.equal(r.code, 1);
    assert.match(r.stdout, /download failed after 1 attempt: http:\/\/127\.0\.0\.1:\d+\/absent: HTTP 404/);
  });
});

describe('install lock', () => {
  it('two concurrent applies: one acts, the other waits for it or gives up naming the holder', async () => {
    const server = await startArtifactServer();
    try {
      const { root, work, manifests } = installerSandbox();
      const body = demoRelease('1.0.0');
      server.put('demo.tgz', body);
      // A pre-install hook that takes a while keeps the first agent inside the lock.
      mkdirSync(path.join(root, 'usr/local/sbin'), { recursive: true });
      writeFileSync(path.join(root, 'usr/local/sbin/slow-hook'), '#!/bin/sh\nsleep 1.5\n', { mode: 0o755 });
      writeManifest(
        manifests,
        'demo.yaml',
        componentManifest('demo', { component: 'demo', version: '1.0.0', source: { type: 'tarball', url: server.url('demo.tgz'), sha256: sha256(body), stripComponents: 1 }, hooks: { preInstall: [['slow-hook']] } }),
      );
      const config = writeConfig(work, { lockTimeout: '200ms' });
      const [a, b] = await Promise.all([agent('apply', { root, manifests, config }), agent('apply', { root, manifests, config })]);
      const codes = [a.code, b.code].sort();
      assert.deepEqual(codes, [0, 75], a.stdout + a.stderr + b.stdout + b.stderr);
      const loser = a.code === 75 ? a : b;
      assert.match(loser.stderr, /another agent is installing: \/run\/kubenode-agent\/installers\.lock is held by pid \d+ \(kubenode-agent apply, since .*\); gave up after \d+ms/);
      // With a longer wait the second one gets the lock after the first and finds nothing to do.
      const patient = writeConfig(tempDir('work'), { lockTimeout: '20s' });
      writeManifest(manifests, 'demo.yaml', readManifestWithVersion(server, '1.0.1'));
      const [c, d] = await Promise.all([agent('apply', { root, manifests, config: patient }), agent('apply', { root, manifests, config: patient })]);
      assert.deepEqual([c.code, d.code], [0, 0], c.stderr + d.stderr);
      const outputs = [c.stdout, d.stdout].sort();
      assert.match(outputs[0] as string, /^Nothing to do/);
      assert.match(outputs[1] as string, /demo 1\.0\.1: installed/);
    } finally {
      await server.close();
    }
  });
});

describe('install lock left by a holder that is gone', () => {
  const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  const stat = readFileSync(`/proc/${process.pid}/stat`, 'utf8');
  // This test process is alive: its pid is what a new process would reuse after a power loss.
  const startTime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] as string;
  const holder = (o: Partial<{ bootId: string; startTime: string }>): string =>
    JSON.stringify({ pid: process.pid, bootId, startTime, hostname: 'node-a', since: '2026-01-01T00:00:00.000Z', purpose: 'kubenode-agent run (installers)', ...o });
  const cases: { name: string; lock: string; code: number }[] = [
    { name: 'from before a reboot (another boot_id), its pid now reused by a live process: taken over', lock: holder({ bootId: '00000000-0000-0000-0000-000000000000' }), code: 0 },
    { name: 'same boot, its pid reused by a later process (another start time): taken over', lock: holder({ startTime: '1' }), code: 0 },
    { name: 'garbage (a torn write): taken over after a poll of grace', lock: '{"pid": 12', code: 0 },
    { name: 'held by a live process (boot_id, pid and start time all match): waited for, then refused naming it', lock: holder({}), code: 75 },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const { root, work, manifests } = installerSandbox();
      writeManifest(
        manifests,
        'files.yaml',
        componentManifest('conf', { component: 'conf', version: '1.0.0', source: { type: 'none' }, files: [{ path: '/etc/conf.d/a', content: 'a\n' }] }),
      );
      mkdirSync(path.join(root, 'run/kubenode-agent'), { recursive: true });
      writeFileSync(path.join(root, 'run/kubenode-agent/installers.lock'), c.lock);
      const r = await agent('apply', { root, manifests, config: writeConfig(work, { lockTimeout: '300ms' }) });
      assert.equal(r.code, c.code, r.stdout + r.stderr);
      if (c.code === 0) {
        assert.equal(readFileSync(path.join(root, 'etc/conf.d/a'), 'utf8'), 'a\n');
        assert.equal(existsSync(path.join(root, 'run/kubenode-agent/installers.lock')), false, 'released');
        assert.deepEqual(readdirSync(path.join(root, 'run/kubenode-agent')), [], 'no stale lock left aside');
      } else {
        assert.match(r.stderr, new RegExp(`installers\\.lock is held by pid ${process.pid} \\(kubenode-agent run \\(installers\\)`));
        assert.equal(existsSync(path.join(root, 'etc/conf.d/a')), false);
      }
    });
  }
});

function readManifestWithVersion(server: ArtifactServer, version: string): string {
  const body = makeTar([{ path: `d/bin/demo`, content: '#!/bin/sh\nexit 0\n', mode: 0o755 }]);
  server.put(`demo-${version}.tgz`, body);
  return componentManifest('demo', { component: 'demo', version, source: { type: 'tarball', url: server.url(`demo-${version}.tgz`), sha256: sha256(body), stripComponents: 1 }, hooks: { preInstall: [['slow-hook']] } });
}
