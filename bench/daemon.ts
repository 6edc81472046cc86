// The idle daemon with default intervals: CPU (share of one core) and RSS over a long window.
// It runs against this machine through a scratch root whose proc, sys, dev, etc, run, usr and
// var/log are symlinks to the real ones, so every read is live while every write (state dir,
// write probes) lands in the scratch root: the machine is not changed.
// Run: node scripts/build.ts && node bench/daemon.ts [seconds=600] [binary=dist/kubenode-agent.cjs]
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isScript, procStats } from './helpers.ts';

const seconds = Number(process.argv[2] ?? 600);
const target = process.argv[3] ?? 'dist/kubenode-agent.cjs';
const root = mkdtempSync(path.join(os.tmpdir(), 'kubenode-bench-daemon-'));
for (const dir of ['proc', 'sys', 'dev', 'etc', 'run', 'usr', 'bin', 'sbin', 'lib', 'lib64']) symlinkSync(`/${dir}`, path.join(root, dir));
mkdirSync(path.join(root, 'var/lib'), { recursive: true });
symlinkSync('/var/log', path.join(root, 'var/log'));

const argv = isScript(target) ? [process.execPath, target] : [target];
const child = spawn(argv[0] as string, [...argv.slice(1), 'run', '--root', root, '--listen', '127.0.0.1:0', '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'] });
const cpuSeconds = (): number => procStats(child.pid as number).cpuSeconds;
const rssMb = (): number => procStats(child.pid as number).rssMiB;

await new Promise((r) => setTimeout(r, 20_000));
const startCpu = cpuSeconds();
const started = performance.now();
let maxRss = rssMb();
while (performance.now() - started < seconds * 1000) {
  await new Promise((r) => setTimeout(r, 10_000));
  maxRss = Math.max(maxRss, rssMb());
}
const wall = (performance.now() - started) / 1000;
const cpu = cpuSeconds() - startCpu;
child.kill('SIGTERM');
await new Promise((r) => child.on('exit', r));
rmSync(root, { recursive: true, force: true });
console.log(`## Idle daemon, default intervals, ${target}`);
console.log(`${fmt(wall)} s after a 20 s warm-up: CPU ${fmt(cpu)} s = ${((cpu / wall) * 100).toFixed(2)}% of one core; peak RSS ${fmt(maxRss)} MB`);

function fmt(n: number): string {
  return n.toFixed(1);
}
