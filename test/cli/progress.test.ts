// `apply` on a terminal: download progress redrawn in place, and a line naming the install lock's
// holder while it is waited for. The terminal is a real pseudo-terminal (util-linux `script`); the
// artifact comes from a real HTTP server on 127.0.0.1 that sends it slowly.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { AGENT, runAgent, type CliResult } from '../helpers/cli.ts';
import { makeSandbox, sha256, tempDir, writeConfig, writeManifest } from '../installers/helpers.ts';

const quote = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

/** Runs the built agent with a pseudo-terminal as its stdin, stdout and stderr; the output is all the terminal showed. */
function onTerminal(args: readonly string[]): Promise<CliResult> {
  const command = [process.execPath, AGENT, ...args].map(quote).join(' ');
  // Not spawnSync: the artifact server runs in this process's event loop.
  const child = spawn('script', ['-qfec', command, '/dev/null'], { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const CHUNK = 64 * 1024;
const CHUNKS = 16;
const body = Buffer.concat([Buffer.from('#!/bin/sh\necho tool 1.0.0\n'), Buffer.alloc(CHUNK * CHUNKS - 26, 7)]);

describe('apply on a terminal', () => {
  let server: Server;
  let url = '';
  before(async () => {
    // 1 MiB in 16 pieces 60ms apart: about a second, long enough for several redraws.
    server = createServer((_req, res) => {
      res.writeHead(200, { 'content-length': String(body.length) });
      let i = 0;
      const next = (): void => {
        if (i === CHUNKS) {
          res.end();
          return;
        }
        res.write(body.subarray(i * CHUNK, ++i * CHUNK));
        setTimeout(next, 60);
      };
      next();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    url = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}/tool`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  function setup(): { root: string; manifests: string; config: string } {
    const root = makeSandbox();
    const work = tempDir('progress');
    const manifests = path.join(work, 'manifests');
    writeManifest(
      manifests,
      'tool.yaml',
      stringify({
        apiVersion: 'kubenode.io/v1alpha1',
        kind: 'MachineComponent',
        metadata: { name: 'tool' },
        spec: { component: 'tool', version: '1.0.0', source: { type: 'binary', url, sha256: sha256(body), binaryName: 'tool' } },
      }),
    );
    return { root, manifests, config: writeConfig(work) };
  }
  const argv = (e: { root: string; manifests: string; config: string }, extra: string[] = []): string[] => ['apply', '--root', e.root, '--config', e.config, '--manifests', e.manifests, ...extra];

  it('shows the download: bytes so far, the total and the rate, redrawn in place with \\r a few times a second', async () => {
    const r = await onTerminal(argv(setup()));
    assert.equal(r.code, 0, r.stdout);
    const draws = [...r.stdout.matchAll(/\rtool: downloading ([\d.]+ (?:B|KiB|MiB)) of 1\.0 MiB, [\d.]+ (?:B|KiB|MiB)\/s/g)];
    assert.ok(draws.length >= 2, `redrawn in place: ${JSON.stringify(r.stdout)}`);
    assert.ok(draws.length < CHUNKS, `not once per chunk (${draws.length} draws for ${CHUNKS} chunks)`);
    assert.equal(draws.at(-1)?.[1], '1.0 MiB', 'the last draw shows the whole artifact');
    assert.match(r.stdout, /tool 1\.0\.0: installed/);
  });

  it('shows nothing of it when stderr is not a terminal, nor with --json on one', async () => {
    const piped = await runAgent(argv(setup()));
    assert.equal(piped.code, 0, piped.stderr);
    assert.doesNotMatch(piped.stderr + piped.stdout, /downloading|\r/);
    const json = await onTerminal(argv(setup(), ['--json']));
    assert.equal(json.code, 0, json.stdout);
    assert.doesNotMatch(json.stdout, /downloading/);
    assert.equal((JSON.parse(json.stdout) as { components: { result: string }[] }).components[0]?.result, 'installed');
  });
});

describe('apply waiting for the install lock on a terminal', () => {
  let holder: ChildProcess;
  before(() => {
    holder = spawn('sleep', ['60'], { stdio: 'ignore' });
  });
  after(() => holder.kill());

  it('says once which pid holds it, since when and on which boot; without a terminal only the refusal names it', async () => {
    const pid = holder.pid as number;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const record = { pid, bootId, startTime: stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19], hostname: 'node-a', since: '2026-12-01T22:00:00.000Z', purpose: 'kubenode-agent run (installers)' };
    const root = makeSandbox();
    const work = tempDir('progress-lock');
    const manifests = path.join(work, 'manifests');
    writeManifest(manifests, 'conf.yaml', stringify({ apiVersion: 'kubenode.io/v1alpha1', kind: 'MachineComponent', metadata: { name: 'conf' }, spec: { component: 'conf', version: '1.0.0', source: { type: 'none' }, files: [{ path: '/etc/conf.d/a', content: 'a\n' }] } }));
    mkdirSync(path.join(root, 'run/kubenode-agent'), { recursive: true });
    writeFileSync(path.join(root, 'run/kubenode-agent/installers.lock'), JSON.stringify(record));
    const args = ['apply', '--root', root, '--config', writeConfig(work, { lockTimeout: '600ms' }), '--manifests', manifests];
    const line = `waiting for the install lock: held by pid ${pid} since 2026-12-01T22:00:00.000Z (boot ${bootId.slice(0, 8)}, kubenode-agent run (installers))`;
    const tty = await onTerminal(args);
    assert.equal(tty.code, 75, tty.stdout);
    assert.equal(tty.stdout.split(line).length - 1, 1, JSON.stringify(tty.stdout));
    const piped = await runAgent(args);
    assert.equal(piped.code, 75, piped.stderr);
    assert.doesNotMatch(piped.stderr, /waiting for the install lock/);
    assert.match(piped.stderr, new RegExp(`held by pid ${pid} \\(kubenode-agent run \\(installers\\)`));
  });
});
