import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { containerRuntime, crictlError, nameMatches, parseCrictlInfo } from '../../src/detectors/container-runtime.ts';
import { parseProcStat } from '../../src/detectors/engine/procs.ts';
import { createHost } from '../../src/host/host.ts';
import { FIXTURES, runAgent } from '../helpers/cli.ts';

const HOSTS = path.join(FIXTURES, 'hosts');
const D_STATE_LINE = (await readFile(path.join(HOSTS, 'runtime-dstate/proc/3976/stat'), 'utf8')).trim();

describe('container-runtime parsers', () => {
  const table: { name: string; text: string; want: ReturnType<typeof parseProcStat> }[] = [
    { name: 'D state (vfork parent)', text: D_STATE_LINE, want: { pid: 3976, comm: 'containerd', state: 'D' } },
    {
      name: 'comm with spaces and parentheses',
      // Captured on the development VM from a process named "dockerd (x) y".
      text: '6168 (dockerd (x) y) S 6167 6163 29195 0 -1 4194304 146 0 0 0 0 0 0 0 20 0 1 0 81923 2990080 410',
      want: { pid: 6168, comm: 'dockerd (x) y', state: 'S' },
    },
    { name: 'garbage', text: 'not a stat line', want: undefined },
  ];
  for (const { name, text, want } of table) test(`parseProcStat: ${name}`, () => assert.deepEqual(parseProcStat(text), want));

  test('nameMatches: exact names and prefix patterns', () => {
    const patterns = ['containerd', 'containerd-shim*'];
    assert.equal(nameMatches('containerd', patterns), true);
    assert.equal(nameMatches('containerd-shim', patterns), true);
    assert.equal(nameMatches('containerd-foo', patterns), false);
    assert.equal(nameMatches('dockerd (x) y', ['dockerd']), false);
  });

  test('parseCrictlInfo: healthy containerd', async () => {
    const status = parseCrictlInfo(await readFile(path.join(HOSTS, 'runtime-healthy/usr/bin/crictl.out'), 'utf8'));
    assert.deepEqual(status, { runtimeReady: true, networkReady: true, notReady: [] });
  });

  test('parseCrictlInfo: network not ready', async () => {
    const status = parseCrictlInfo(await readFile(path.join(HOSTS, 'runtime-network-not-ready/usr/bin/crictl.out'), 'utf8'));
    assert.equal(status?.runtimeReady, true);
    assert.equal(status?.networkReady, false);
    assert.equal(status?.notReady[0]?.reason, 'NetworkPluginNotReady');
  });

  test('parseCrictlInfo: not JSON', () => assert.equal(parseCrictlInfo('FATA[0001] boom'), undefined));

  test('crictlError picks the fatal line', async () => {
    const err = crictlError(await readFile(path.join(HOSTS, 'runtime-containerd-down/usr/bin/crictl.err'), 'utf8'));
    assert.match(err, /^FATA\[0001\] getting status of runtime: rpc error: code = Unavailable/);
  });
});

// ---- the built agent against fixture hosts and real unix sockets ----

let tmp: string;
before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'kn-rt-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

let configs = 0;
async function configFile(settings: Record<string, unknown>, silenced: string[] = []): Promise<string> {
  const file = path.join(tmp, `agent-${configs++}.yaml`);
  await writeFile(file, JSON.stringify({ monitors: { systemLog: [], customPlugin: [] }, detection: { silencedReasons: silenced }, detectors: { 'container-runtime': settings } }));
  return file;
}

interface Entry {
  status: string;
  conditions: { type: string; status: string; reason: string; message: string }[];
  error?: string;
}

async function check(root: string, settings: Record<string, unknown> = {}, silenced: string[] = []): Promise<Entry> {
  const result = await runAgent(['check', '--json', '--root', root, '--only', 'container-runtime', '--config', await configFile(settings, silenced)]);
  assert.ok(result.stdout.startsWith('{'), `agent printed no report: ${result.stderr}`);
  const report = JSON.parse(result.stdout) as { results: Entry[] };
  const entry = report.results[0] as Entry;
  assert.equal(result.code, entry.status === 'ok' ? 0 : entry.status === 'problem' ? 1 : 2);
  return entry;
}

const FAST = { checkRetryInterval: '100ms' };

describe('container-runtime on fixture hosts (containerd via crictl)', () => {
  test('healthy containerd: ok', async () => {
    const e = await check(path.join(HOSTS, 'runtime-healthy'), FAST);
    assert.equal(e.status, 'ok');
    assert.equal(e.conditions[0]?.status, 'False');
  });

  test('containerd down: CRIStatusFailed', async () => {
    const e = await check(path.join(HOSTS, 'runtime-containerd-down'), FAST);
    assert.equal(e.status, 'problem');
    assert.equal(e.conditions[0]?.type, 'ContainerRuntimeUnhealthy');
    assert.equal(e.conditions[0]?.reason, 'CRIStatusFailed');
    assert.match(e.conditions[0]?.message ?? '', /code = Unavailable/);
  });

  test('crictl hangs past the deadline: CRIStatusFailed, and check still ends', async () => {
    const e = await check(path.join(HOSTS, 'runtime-crictl-hangs'), { ...FAST, deadline: '500ms', failuresToTrip: 2 });
    assert.equal(e.status, 'problem');
    assert.equal(e.conditions[0]?.reason, 'CRIStatusFailed');
    assert.match(e.conditions[0]?.message ?? '', /did not finish within 500ms/);
  });

  test('containerd in D state: RuntimeProcessInDState', async () => {
    const e = await check(path.join(HOSTS, 'runtime-dstate'), FAST);
    assert.equal(e.status, 'problem');
    assert.equal(e.conditions[0]?.reason, 'RuntimeProcessInDState');
    assert.match(e.conditions[0]?.message ?? '', /containerd\[3976\]/);
  });

  test('kill switch: a silenced reason (detection.silencedReasons) is not reported', async () => {
    const e = await check(path.join(HOSTS, 'runtime-dstate'), FAST, ['RuntimeProcessInDState']);
    assert.equal(e.status, 'ok');
  });

  test('NetworkReady=false alone does not mark the runtime', async () => {
    const e = await check(path.join(HOSTS, 'runtime-network-not-ready'), FAST);
    assert.equal(e.status, 'ok');
  });

  test('a node with no runtime and none expected is ok; expected=true makes it a problem', async () => {
    const root = path.join(tmp, 'empty');
    await mkdir(path.join(root, 'proc'), { recursive: true });
    assert.equal((await check(root, FAST)).status, 'ok');
    const e = await check(root, { ...FAST, docker: { expected: 'true' } });
    assert.equal(e.status, 'problem');
    assert.equal(e.conditions[0]?.reason, 'RuntimeNotRunning');
  });
});

type Mode = 'ok' | 'slow' | 'never' | 'error500' | 'transient';

/** A Docker/Pouch-like API server on a unix socket under `root`. */
async function serve(root: string, socket: string, mode: Mode): Promise<{ requests: () => number; close: () => Promise<void> }> {
  const file = path.join(root, socket);
  await mkdir(path.dirname(file), { recursive: true });
  let requests = 0;
  const open = new Set<import('node:net').Socket>();
  const server = http.createServer((req, res) => {
    requests += 1;
    assert.equal(req.url, '/_ping');
    if (mode === 'never') return;
    if (mode === 'transient' && requests === 1) {
      req.socket.destroy();
      return;
    }
    if (mode === 'error500') {
      res.writeHead(500, { 'content-type': 'text/plain' }).end('Internal Server Error');
      return;
    }
    const answer = (): void => void res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'api-version': '1.41' }).end('OK');
    if (mode === 'slow') setTimeout(answer, 300);
    else answer();
  });
  server.on('connection', (s) => {
    open.add(s);
    s.on('close', () => open.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(file, resolve));
  return {
    requests: () => requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A socket file nobody listens on any more: connect gets ECONNREFUSED. */
async function staleSocket(file: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const child = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(file)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  await new Promise((resolve) => child.on('exit', resolve));
}

describe('container-runtime against real unix sockets (Docker /_ping)', () => {
  const cases: { mode: Mode; settings: Record<string, unknown>; status: string; reason?: string; requests?: (n: number) => boolean }[] = [
    { mode: 'ok', settings: { deadline: '2s' }, status: 'ok', requests: (n) => n === 1 },
    // Slow but within the deadline: a busy daemon is not a stalled one.
    { mode: 'slow', settings: { deadline: '2s' }, status: 'ok', requests: (n) => n === 1 },
    { mode: 'never', settings: { deadline: '300ms' }, status: 'problem', reason: 'DockerPingFailed', requests: (n) => n === 3 },
    { mode: 'error500', settings: { deadline: '2s' }, status: 'problem', reason: 'DockerPingFailed', requests: (n) => n === 3 },
    // One dropped connection, then a good answer: not a problem.
    { mode: 'transient', settings: { deadline: '2s' }, status: 'ok', requests: (n) => n === 2 },
  ];
  for (const c of cases) {
    test(`docker ${c.mode}: ${c.status}`, async () => {
      const root = await mkdtemp(path.join(tmp, `d-`));
      await mkdir(path.join(root, 'proc'), { recursive: true });
      const server = await serve(root, 'var/run/docker.sock', c.mode);
      try {
        const e = await check(root, { ...FAST, ...c.settings });
        assert.equal(e.status, c.status, JSON.stringify(e));
        if (c.reason !== undefined) assert.equal(e.conditions[0]?.reason, c.reason);
        if (c.requests !== undefined) assert.ok(c.requests(server.requests()), `requests: ${server.requests()}`);
      } finally {
        await server.close();
      }
    });
  }

  test('docker socket refused (stale socket file): DockerPingFailed', async () => {
    const root = await mkdtemp(path.join(tmp, 'r-'));
    await mkdir(path.join(root, 'proc'), { recursive: true });
    await staleSocket(path.join(root, 'var/run/docker.sock'));
    const e = await check(root, FAST);
    assert.equal(e.status, 'problem');
    assert.match(e.conditions[0]?.message ?? '', /refused/);
  });

  test('pouch answers: ok; pouch never answers: PouchPingFailed', async () => {
    const root = await mkdtemp(path.join(tmp, 'p-'));
    await mkdir(path.join(root, 'proc'), { recursive: true });
    let server = await serve(root, 'var/run/pouchd.sock', 'ok');
    try {
      assert.equal((await check(root, FAST)).status, 'ok');
    } finally {
      await server.close();
    }
    server = await serve(root, 'var/run/pouchd.sock', 'never');
    try {
      const e = await check(root, { ...FAST, deadline: '300ms' });
      assert.equal(e.conditions[0]?.reason, 'PouchPingFailed');
    } finally {
      await server.close();
    }
  });

  test('containerd socket without crictl: unknown when it accepts, problem when refused', async () => {
    const root = await mkdtemp(path.join(tmp, 'c-'));
    await mkdir(path.join(root, 'proc'), { recursive: true });
    const server = await serve(root, 'run/containerd/containerd.sock', 'ok');
    try {
      const e = await check(root, FAST);
      assert.equal(e.status, 'unknown');
      assert.match(e.error ?? '', /crictl not found/);
    } finally {
      await server.close();
    }
    await staleSocket(path.join(root, 'run/containerd/containerd.sock'));
    const e = await check(root, FAST);
    assert.equal(e.status, 'problem');
    assert.equal(e.conditions[0]?.reason, 'CRIStatusFailed');
  });
});

describe('container-runtime in the daemon: N consecutive failures', () => {
  test('the condition turns only at the third failed probe and clears on the next good one', async () => {
    const root = await mkdtemp(path.join(tmp, 'daemon-'));
    await mkdir(path.join(root, 'proc'), { recursive: true });
    const host = createHost({ root });
    const config = { ...defaultsOf(), deadline: 300 };
    const detector = containerRuntime.create(config, { host, log: pino({ level: 'silent' }), nodeName: 'n', mode: 'run', previous: [], silenced: new Set() });
    const signal = new AbortController().signal;
    let server = await serve(root, 'var/run/docker.sock', 'never');
    const statuses: string[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const r = await detector.probe(signal);
        statuses.push(r.conditions[0]?.status ?? '?');
        if (i === 0) assert.deepEqual(r.events.map((e) => [e.severity, e.reason]), [['info', 'DockerPingFailed']]);
      }
    } finally {
      await server.close();
    }
    server = await serve(root, 'var/run/docker.sock', 'ok');
    try {
      const r = await detector.probe(signal);
      statuses.push(r.conditions[0]?.status ?? '?');
    } finally {
      await server.close();
    }
    assert.deepEqual(statuses, ['False', 'False', 'True', 'False']);
  });
});

function defaultsOf(): Parameters<typeof containerRuntime.create>[0] {
  return {
    containerd: { socket: '/run/containerd/containerd.sock', expected: 'auto' },
    docker: { socket: '/var/run/docker.sock', expected: 'auto' },
    pouch: { socket: '/var/run/pouchd.sock', expected: 'auto' },
    deadline: 3000,
    failuresToTrip: 3,
    successesToClear: 1,
    checkRetryInterval: 1000,
    dStateProcesses: ['containerd', 'dockerd', 'containerd-shim*', 'pouchd'],
  };
}
