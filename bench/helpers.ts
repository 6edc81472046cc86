// What the benchmarks share: the controller process started from the built CLI, a process's CPU
// and memory from /proc, sums from a Prometheus scrape, and percentiles.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const CLI = resolve(import.meta.dirname, '../dist/kubenode-agent.cjs');
const USER_HZ = 100;

export interface ControllerProcess {
  child: ChildProcess;
  pid: number;
  /** The controller's own /metrics, scraped now. */
  metrics: () => Promise<string>;
}

/**
 * `kubenode-agent controller` (the built CLI) against kubeconfig, leader election off, listening on
 * a free port; resolves once its log names the address it listens on. extraArgs go last.
 * BENCH_NODE_FLAGS (space-separated) go to node before the CLI: e.g. the executables' V8 flags
 * (scripts/build-sea.ts), to measure the controller as it runs from them.
 */
export async function startController(kubeconfig: string, extraArgs: readonly string[] = []): Promise<ControllerProcess> {
  const child = spawn(process.execPath, [...(process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean), CLI, 'controller', '--kubeconfig', kubeconfig, '--listen', '127.0.0.1:0', '--log-level', 'info', '--leader-elect', 'false', ...extraArgs], { stdio: ['ignore', 'pipe', 'inherit'] });
  const addr = await new Promise<string>((res, rej) => {
    let text = '';
    child.once('exit', (code, signal) => rej(new Error(`controller exited (${signal ?? code}) before it listened`)));
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      text += d;
      const m = /"listen":"([^"]+)"/.exec(text);
      if (m) res(m[1] as string);
    });
  });
  return { child, pid: child.pid as number, metrics: async () => (await fetch(`http://${addr}/metrics`)).text() };
}

/** An agent given as the bundle (run by this node) rather than as an executable. */
export const isScript = (file: string): boolean => file.endsWith('.cjs') || file.endsWith('.js');

/** CPU seconds and memory of a live process; RSS split into anonymous (its own heap) and file-backed (mapped executable and libraries, shared with the page cache). */
export function procStats(pid: number): { cpuSeconds: number; rssMiB: number; hwmMiB: number; anonMiB: number; fileMiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { cpuSeconds: (Number(stat[11]) + Number(stat[12])) / USER_HZ, rssMiB: kib('VmRSS') / 1024, hwmMiB: kib('VmHWM') / 1024, anonMiB: kib('RssAnon') / 1024, fileMiB: kib('RssFile') / 1024 };
}

/** The sum of every series of metric name in a Prometheus text scrape whose labels pass filter. */
export const counter = (text: string, name: string, filter: (labels: string) => boolean = () => true): number =>
  text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) && filter(l))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);

/** The p-quantile (0–1) of xs by rank; NaN when xs is empty. */
export const pct = (xs: readonly number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))] ?? NaN;
};

/**
 * Waits until the controller's request count has stood still for 15 s (at most maxMs), so that a
 * steady-state window starts after the start-up writes have drained; returns the seconds waited.
 */
export async function untilRequestsQuiet(scrape: () => Promise<string>, maxMs: number, first?: string): Promise<number> {
  const quiet0 = Date.now();
  let seen = counter(first ?? (await scrape()), 'kubenode_controller_api_requests_total');
  for (;;) {
    await sleep(15_000);
    const n = counter(await scrape(), 'kubenode_controller_api_requests_total');
    if (n === seen || Date.now() - quiet0 > maxMs) break;
    seen = n;
  }
  return (Date.now() - quiet0) / 1000;
}
