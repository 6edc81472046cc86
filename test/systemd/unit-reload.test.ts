// The packaged unit's ExecReload, run as systemd would run it (${MAINPID} replaced by the main
// process's pid, then /bin/sh -c), against local child processes only: it must never send SIGHUP
// to a process that does not catch it yet (Node still starting), and must reload the agent
// however early `systemctl reload` comes.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { detectors } from '../../src/detectors/index.ts';
import { AGENT, REPO } from '../helpers/cli.ts';
import { TempRoot } from '../helpers/host-root.ts';

const UNIT = readFileSync(new URL('../../packaging/kubenode-agent.service', import.meta.url), 'utf8');
const children: ChildProcess[] = [];
const roots: TempRoot[] = [];
after(() => {
  for (const c of children) c.kill('SIGKILL');
  for (const r of roots) r.remove();
});

/** ExecReload's command line for this main pid, as systemd expands it. */
function execReload(mainPid: number): string[] {
  const line = /^ExecReload=(.*)$/m.exec(UNIT)?.[1];
  assert.ok(line !== undefined, 'the unit has an ExecReload=');
  const m = /^\/bin\/sh -c '([^']*)'$/.exec(line);
  assert.ok(m !== null, `ExecReload= is /bin/sh -c '…': ${line}`);
  return ['/bin/sh', '-c', (m[1] as string).replace(/\$\{MAINPID\}|\$MAINPID\b/g, String(mainPid))];
}

function run(argv: string[]): { child: ChildProcess; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> } {
  const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], cwd: REPO });
  children.push(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, exited };
}

test('ExecReload sends SIGHUP only once the main process catches it', async () => {
  // A stand-in for Node before the agent's first statement: SIGHUP's default action, until told on stdin to install a handler.
  const main = run([process.execPath, '-e', "process.stdin.once('data', () => { process.on('SIGHUP', () => { process.stdout.write('hup'); process.exit(0); }); process.stdout.write('ready'); }); setInterval(() => undefined, 1000);"]);
  let out = '';
  main.child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  const reload = run(execReload(main.child.pid as number));
  await sleep(1000);
  assert.deepEqual([main.child.exitCode, main.child.signalCode], [null, null], 'the main process was not signalled before it catches SIGHUP');
  assert.equal(reload.child.exitCode, null, 'the reload is still waiting');
  main.child.stdin?.write('go\n');
  assert.deepEqual(await reload.exited, { code: 0, signal: null });
  assert.deepEqual(await main.exited, { code: 0, signal: null });
  assert.equal(out, 'readyhup');
});

test('ExecReload fails, sending nothing, when the main process is gone', async () => {
  const gone = run(['/bin/true']);
  await gone.exited;
  const reload = run(execReload(gone.child.pid as number));
  assert.deepEqual(await reload.exited, { code: 1, signal: null });
});

test('systemctl reload the moment the agent was started reloads it and leaves it running', async () => {
  const root = new TempRoot();
  roots.push(root);
  root.write('/proc/sys/kernel/random/boot_id', 'boot-1\n');
  root.write('/proc/sys/kernel/hostname', 'node-reload\n');
  // No detectors: the daemon's start and reload are under test, not what it probes.
  const config = root.write('/agent.yaml', ['listen: 127.0.0.1:0', 'detectors:', ...Object.keys(detectors).map((name) => `  ${name}: { enabled: false }`), ''].join('\n'));
  for (let i = 0; i < 3; i++) {
    const agent = run([process.execPath, AGENT, 'run', '--root', root.dir, '--config', config]);
    let out = '';
    agent.child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    const reload = run(execReload(agent.child.pid as number));
    assert.deepEqual(await reload.exited, { code: 0, signal: null }, `try ${i}`);
    for (let t = 0; !out.includes('"msg":"Configuration reloaded"'); t++) {
      assert.ok(t < 600 && agent.child.exitCode === null && agent.child.signalCode === null, `try ${i}: not reloaded (${agent.child.signalCode ?? agent.child.exitCode}): ${out}`);
      await sleep(50);
    }
    agent.child.kill('SIGTERM');
    assert.deepEqual(await agent.exited, { code: 0, signal: null }, `try ${i}`);
  }
});
