// Side by side with node-problem-detector: the same monitor configs and the same generated input
// through NPD (a binary the person running this provides) and through the agent, alternating,
// several runs each; medians and ratios printed as a table.
//
//   npm run bench:npd -- --npd PATH [--runs 3] [--records 1000000] [--idle 60] [--warmup 10] [--only start,idle,kmsg,filelog]
//   npm run bench:npd -- --npd PATH --only idle,each [--strace]     idle wakeups side by side, then each built-in detector's own
//   npm run bench:npd -- --npd PATH --callgrind [--records 100000]   instructions, counted by valgrind
//   npm run bench:npd -- --npd PATH --correctness [--npd-testdata DIR] every real line through both
//   npm run bench:npd                                                  the agent alone
// BENCH_DEBUG=1 passes each subject's stderr through.
//
// What each subject reads (both are fed the same bytes):
// - idle and start: the machine's own /dev/kmsg, read by both (the agent through a scratch root
//   whose /proc, /sys and /dev are links to the real ones; nothing is written outside it).
// - kmsg (kernel-monitor.json alone: see KMSG_FED): NPD opens /dev/kmsg by a fixed path, so it runs in a private mount namespace whose /dev
//   is a tmpfs where /dev/kmsg links to a packet-mode pipe (pipe2(O_DIRECT): one record per
//   read(2), as the device hands them out); a small python3 feeder writes the records into it.
//   The agent reads the same records from a regular file at ROOT/dev/kmsg (its --root).
// - filelog: both read the same kern.log (NPD's kernel-monitor-filelog.json, logPath pointed at it).
// "Done" is the moment the Prometheus endpoint of each shows problem_counter{reason="OOMKilling"}
// at the number of OOM lines in the input; CPU is user+system from /proc/PID/stat, peak memory
// VmHWM from /proc/PID/status. Wall-clock figures are noisy on a shared machine: CPU seconds,
// peak RSS and (with --callgrind) instruction counts are the figures to compare.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { syslogStamp } from '../test/helpers/syslog.ts';
import { isScript, procStats } from './helpers.ts';

const { values: opt } = parseArgs({
  options: {
    npd: { type: 'string' },
    agent: { type: 'string', default: 'dist/kubenode-agent.cjs' },
    runs: { type: 'string', default: '3' },
    records: { type: 'string' },
    idle: { type: 'string', default: '60' },
    warmup: { type: 'string', default: '10' },
    strace: { type: 'boolean', default: false },
    only: { type: 'string', default: 'start,idle,kmsg,filelog' },
    callgrind: { type: 'boolean', default: false },
    correctness: { type: 'boolean', default: false },
    'npd-testdata': { type: 'string' },
  },
});

const repo = new URL('../', import.meta.url).pathname;
const RUNS = Number(opt.runs);
const RECORDS = Number(opt.records ?? (opt.callgrind ? 100_000 : 1_000_000));
const IDLE_S = Number(opt.idle);
const WARMUP_S = Number(opt.warmup);
const ONLY = new Set(opt.only.split(','));
const scratch = mkdtempSync(path.join(os.tmpdir(), 'bench-npd-'));
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));

/**
 * An executable under test (the agent's or NPD's), laid down as dpkg and rpm install one: written
 * in 64 KiB pieces. On a kernel whose page cache takes large folios (ext4 from 6.16, xfs), a file
 * written in one piece, as a build writes it, sits in 2 MB folios that its mappings then map
 * whole, which would add 25-30 MB of its pages to its RSS (BENCHMARKS.md, 2026-12-07).
 */
function asInstalled(file: string, as: string): string {
  if (isScript(file)) return file;
  const dir = mkdtempSync(path.join(scratch, `${as}-`));
  const copy = path.join(dir, path.basename(file));
  const src = openSync(file, 'r');
  const dst = openSync(copy, 'w', 0o755);
  const piece = Buffer.alloc(64 * 1024);
  try {
    for (let n; (n = readSync(src, piece)) > 0; ) writeSync(dst, piece, 0, n);
  } finally {
    closeSync(src);
    closeSync(dst);
  }
  return copy;
}
const agentPath = asInstalled(path.resolve(opt.agent), 'agent');
const npdPath = opt.npd === undefined ? undefined : asInstalled(path.resolve(opt.npd), 'npd');

const CONFIG = {
  kmsg: [path.join(repo, 'test/fixtures/npd/config/kernel-monitor.json'), path.join(repo, 'test/fixtures/npd/config/readonly-monitor.json')],
  filelog: path.join(repo, 'test/fixtures/npd/config/kernel-monitor-filelog.json'),
};
// Every NPD kmsg monitor opens the device itself; a pipe has one read position, so two monitors
// would split the records between them. Where records are fed, one kmsg monitor runs.
const KMSG_FED = [CONFIG.kmsg[0] as string];
/** Every built-in detector off: the agent then runs NPD's monitors only, as NPD does. */
const DETECTORS = ['container-runtime', 'kernel', 'clock', 'network', 'pressure', 'storage', 'systemd', 'kubelet', 'gpu-nvidia', 'fpga'];
const npdOnlyConfig = path.join(scratch, 'npd-only.yaml');
writeFileSync(npdOnlyConfig, `detectors:\n${DETECTORS.map((d) => `  ${d}:\n    enabled: false\n`).join('')}`);
const allConfig = path.join(scratch, 'all.yaml');
writeFileSync(allConfig, 'detection:\n  maxConcurrent: 4\n');
/** NPD's configs and one built-in detector: what that detector alone adds to an idle daemon. */
function oneDetectorConfig(detector: string): string {
  const file = path.join(scratch, `only-${detector}.yaml`);
  writeFileSync(file, `detectors:\n${DETECTORS.filter((d) => d !== detector).map((d) => `  ${d}:\n    enabled: false\n`).join('')}`);
  return file;
}

// ---------------------------------------------------------------- real lines for the inputs

const healthy = readFileSync(path.join(repo, 'test/fixtures/hosts/npd-healthy-6.18/dev/kmsg'), 'utf8')
  .split('\n')
  .filter((l) => /^\d+,\d+,\d+,/.test(l))
  .map((l) => l.slice(l.indexOf(';') + 1));
interface FixtureLine {
  reason: string | null;
  message: string;
}
const fixtureLines = (JSON.parse(readFileSync(path.join(repo, 'test/fixtures/npd/kernel-lines.json'), 'utf8')) as { lines: FixtureLine[] }).lines;
const oomLines = fixtureLines.filter((l) => l.reason === 'OOMKilling').map((l) => l.message);

/** One fault (an OOM kill, a temporary event in both) every thousand records; the rest healthy boot noise. */
function messageAt(i: number): string {
  return i % 1000 === 999 ? (oomLines[(i / 1000) % oomLines.length | 0] as string) : (healthy[i % healthy.length] as string);
}
const expectedEvents = (records: number): number => Math.floor(records / 1000);

function uptimeSeconds(): number {
  return Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
}


async function writeLines(file: string, count: number, line: (i: number) => string): Promise<void> {
  mkdirSync(path.dirname(file), { recursive: true });
  const out = createWriteStream(file);
  for (let i = 0; i < count; i++) if (!out.write(line(i))) await new Promise<void>((r) => out.once('drain', () => r()));
  await new Promise<void>((r) => out.end(() => r()));
}

/** A kmsg file of `records` records stamped a minute ago, inside every config's 5 m lookback. */
async function generateKmsg(root: string, records: number): Promise<string> {
  const file = path.join(root, 'dev/kmsg');
  const base = Math.floor((uptimeSeconds() - 60) * 1e6);
  await writeLines(file, records, (i) => `6,${i},${base + i},-;${messageAt(i)}\n`);
  return file;
}

async function generateKernLog(root: string, records: number): Promise<string> {
  const file = path.join(root, 'var/log/kern.log');
  const stamp = syslogStamp(Date.now() - 60_000);
  await writeLines(file, records, (i) => `${stamp} node-1 kernel: [ ${(i / 1000).toFixed(6)}] ${messageAt(i)}\n`);
  return file;
}

// ---------------------------------------------------------------- processes

/**
 * Over every thread of the process: voluntary context switches (each one a sleep the thread woke
 * from: the wakeups, whatever the load) and time on a CPU in ns from schedstat (not rounded to
 * 10 ms ticks). A thread that ends between two readings takes its counts with it.
 */
function threadTotals(pid: number): { wakeups: number; cpuNs: number } {
  let wakeups = 0;
  let cpuNs = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      wakeups += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'))?.[1] ?? 0);
      cpuNs += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // The thread ended while being read.
    }
  }
  return { wakeups, cpuNs };
}

/** `strace -f -c` attached for `seconds`: calls per syscall, every thread together. */
async function syscallCounts(pid: number, seconds: number): Promise<Record<string, number>> {
  const out = path.join(scratch, `strace.${pid}.${Date.now()}`);
  const tracer = spawn('strace', ['-f', '-c', '-qq', '-o', out, '-p', String(pid)], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => tracer.once('exit', () => r()));
  await new Promise((r) => setTimeout(r, seconds * 1000));
  tracer.kill('SIGINT');
  await exited;
  const counts: Record<string, number> = {};
  for (const line of existsSync(out) ? readFileSync(out, 'utf8').split('\n') : []) {
    const f = line.trim().split(/\s+/);
    // "% time  seconds  usecs/call  calls  [errors]  syscall"
    if (f.length >= 5 && /^\d/.test(f[0] as string) && f.at(-1) !== 'total') counts[f.at(-1) as string] = Number(f[3]);
  }
  return counts;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

async function scrape(port: number): Promise<string | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(2000) });
    return res.ok ? await res.text() : undefined;
  } catch {
    return undefined;
  }
}

function counter(text: string, reason: string): number {
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^problem_counter\\{[^}]*reason="${reason}"[^}]*\\} (\\S+)`, 'gm'))) sum += Number(m[1]);
  return sum;
}

interface Running {
  child: ChildProcess;
  /** The process whose CPU and memory are measured (under unshare, the exec'd NPD has the child's pid). */
  pid: number;
  port: number;
  stderr: () => string;
  stop: () => Promise<void>;
}

function start(argv: string[], port: number, env?: NodeJS.ProcessEnv): Running {
  const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
    if (process.env.BENCH_DEBUG !== undefined) process.stderr.write(d);
    if (err.length > 4_000_000) err = err.slice(-2_000_000);
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    child,
    pid: child.pid as number,
    port,
    stderr: () => err,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function until(r: Running, test: (metrics: string) => boolean, timeoutMs: number, pollMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (r.child.exitCode !== null || r.child.signalCode !== null) throw new Error(`exited early: ${r.stderr().slice(-2000)}`);
    const text = await scrape(r.port);
    if (text !== undefined && test(text)) return;
    if (performance.now() > deadline) throw new Error(`timed out; last stderr: ${r.stderr().slice(-2000)}`);
    await new Promise((res) => setTimeout(res, pollMs));
  }
}
const ready = (text: string): boolean => /^problem_counter\{/m.test(text);

type Subject = 'npd' | 'agent';
/** `idle+DETECTOR`: NPD's configs and that one built-in detector. */
type Scenario = 'idle' | 'kmsg' | 'filelog' | 'idle-all' | `idle+${string}`;
const isIdle = (s: Scenario): boolean => s === 'idle' || s === 'idle-all' || s.startsWith('idle+');

const FEEDER = `
import os, sys, fcntl
r, w = os.pipe2(os.O_DIRECT)
try:
    fcntl.fcntl(w, 1031, 1 << 20)  # F_SETPIPE_SZ: more records in flight per wakeup
except OSError:
    pass
print(os.getpid(), r, flush=True)
with open(sys.argv[1], 'rb') as f:
    record = b''
    for line in f:
        if line.startswith(b' ') and record:
            record += line  # a dictionary line comes with its record in the same read, as from the device
            continue
        if record:
            os.write(w, record)
        record = line
    if record:
        os.write(w, record)
sys.stdin.readline()  # the write end stays open: NPD would restart its parser on EOF
`;

interface Feeder {
  link: string;
  stop: () => void;
}

async function startFeeder(file: string): Promise<Feeder> {
  const child = spawn('python3', ['-c', FEEDER, file], { stdio: ['pipe', 'pipe', 'inherit'] });
  const first = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out);
    });
    child.once('exit', () => reject(new Error('the kmsg feeder (python3) exited before it started')));
  });
  const [pid, fd] = first.trim().split(' ');
  return { link: `/proc/${pid}/fd/${fd}`, stop: () => child.kill('SIGTERM') };
}

/** NPD's argv, in a mount namespace whose /dev/kmsg is `kmsgLink` when one is given. */
function npdArgv(npd: string, port: number, monitors: string[], kmsgLink: string | undefined, wrap: string[]): string[] {
  const args = [npd, '--enable-k8s-exporter=false', '--hostname-override=bench', '--prometheus-address=127.0.0.1', `--prometheus-port=${port}`, `--config.system-log-monitor=${monitors.join(',')}`, '--config.custom-plugin-monitor=', '--config.system-stats-monitor='];
  if (kmsgLink === undefined) return [...wrap, ...args];
  const dev = mkdtempSync(path.join(scratch, 'realdev-'));
  const script = [
    'set -e',
    `mount --bind /dev '${dev}'`,
    'mount -t tmpfs bench-dev /dev',
    `for f in null zero random urandom; do touch /dev/$f; mount --bind '${dev}'/$f /dev/$f; done`,
    `ln -s '${kmsgLink}' /dev/kmsg`,
    'exec "$@"',
  ].join('\n');
  return ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script, 'npd-bench', ...wrap, ...args];
}

interface Sample {
  /** spawn → the first /metrics with NPD's series (monitors loaded). */
  readyMs: number;
  readyCpu: number;
  readyRssMb: number;
  /** idle: CPU over the window; kmsg/filelog: CPU from ready to done. */
  cpu: number;
  /** idle: share of one core. */
  share?: number;
  rssMb: number;
  hwmMb: number;
  /** RSS at the end, anonymous and file-backed (idle runs). */
  anonMb?: number;
  fileMb?: number;
  doneMs?: number;
  instructions?: number;
  /** idle: voluntary context switches per minute, every thread. */
  wakeupsPerMin?: number;
  /** idle: CPU per minute from schedstat, ms. */
  cpuMsPerMin?: number;
  /** idle with --strace: calls per minute, by syscall, over a second window of the same length. */
  syscallsPerMin?: Record<string, number>;
}

/** A scratch root through which the agent sees the real machine, as bench/daemon.ts does. */
function liveRoot(): string {
  const root = mkdtempSync(path.join(scratch, 'live-'));
  for (const dir of ['proc', 'sys', 'dev', 'etc', 'run', 'usr', 'bin', 'sbin', 'lib', 'lib64']) symlinkSync(`/${dir}`, path.join(root, dir));
  mkdirSync(path.join(root, 'var/lib'), { recursive: true });
  symlinkSync('/var/log', path.join(root, 'var/log'));
  return root;
}

/** A root holding only what the log scenarios need: proc/uptime (now), a state dir, the log. */
function logRoot(dir: string): void {
  rmSync(path.join(dir, 'var/lib'), { recursive: true, force: true });
  mkdirSync(path.join(dir, 'var/lib'), { recursive: true });
  mkdirSync(path.join(dir, 'proc'), { recursive: true });
  writeFileSync(path.join(dir, 'proc/uptime'), readFileSync('/proc/uptime'));
}

function callgrindWrap(out: string): string[] {
  return ['valgrind', '--tool=callgrind', `--callgrind-out-file=${out}`, '--dump-instr=no', '--trace-children=no'];
}
function callgrindTotal(out: string): number | undefined {
  if (!existsSync(out)) return undefined;
  const m = /^(?:summary|totals):\s+(\d+)/m.exec(readFileSync(out, 'utf8'));
  return m === null ? undefined : Number(m[1]);
}

async function runOnce(subject: Subject, scenario: Scenario, input: { root: string; file: string } | undefined): Promise<Sample> {
  const port = await freePort();
  const cg = opt.callgrind ? path.join(scratch, `callgrind.${subject}.${scenario}.${port}`) : undefined;
  const wrap = cg === undefined ? [] : callgrindWrap(cg);
  let feeder: Feeder | undefined;
  let argv: string[];
  if (subject === 'npd') {
    const npd = npdPath as string;
    if (scenario === 'kmsg') {
      feeder = await startFeeder((input as { file: string }).file);
      argv = npdArgv(npd, port, KMSG_FED, feeder.link, wrap);
    } else if (scenario === 'filelog') {
      const cfg = JSON.parse(readFileSync(CONFIG.filelog, 'utf8')) as { logPath: string };
      cfg.logPath = (input as { file: string }).file;
      const file = path.join(scratch, 'kernel-monitor-filelog.json');
      writeFileSync(file, JSON.stringify(cfg));
      argv = npdArgv(npd, port, [file], undefined, wrap);
    } else argv = npdArgv(npd, port, CONFIG.kmsg, undefined, wrap);
  } else {
    const agent = agentPath;
    const base = isScript(agent) ? [process.execPath, agent] : [agent];
    const root = input?.root ?? liveRoot();
    if (input !== undefined) logRoot(root);
    const monitors = scenario === 'filelog' ? [CONFIG.filelog] : scenario === 'kmsg' ? KMSG_FED : CONFIG.kmsg;
    const config = scenario === 'idle-all' ? allConfig : scenario.startsWith('idle+') ? oneDetectorConfig(scenario.slice('idle+'.length)) : npdOnlyConfig;
    argv = [...wrap, ...base, 'run', '--root', root, '--listen', `127.0.0.1:${port}`, '--log-level', 'warn', '--config', config, `--config.system-log-monitor=${monitors.join(',')}`];
  }
  const t0 = performance.now();
  const r = start(argv, port);
  try {
    const slow = cg === undefined ? 1 : 60;
    await until(r, ready, 30_000 * slow, 2);
    const readyMs = performance.now() - t0;
    const readyCpu = procStats(r.pid).cpuSeconds;
    const readyRssMb = procStats(r.pid).rssMiB;
    if (isIdle(scenario)) {
      if (cg !== undefined) {
        await r.stop();
        return { readyMs, readyCpu, readyRssMb, cpu: 0, rssMb: readyRssMb, hwmMb: readyRssMb, instructions: callgrindTotal(cg) };
      }
      if (!ONLY.has('idle') && !scenario.startsWith('idle+')) {
        return { readyMs, readyCpu, readyRssMb, cpu: 0, rssMb: readyRssMb, hwmMb: procStats(r.pid).hwmMiB };
      }
      await new Promise((res) => setTimeout(res, WARMUP_S * 1000));
      const c0 = procStats(r.pid).cpuSeconds;
      const before = threadTotals(r.pid);
      const w0 = performance.now();
      await new Promise((res) => setTimeout(res, IDLE_S * 1000));
      const cpu = procStats(r.pid).cpuSeconds - c0;
      const after = threadTotals(r.pid);
      const wall = (performance.now() - w0) / 1000;
      const perMin = 60 / wall;
      const end = procStats(r.pid);
      const sample: Sample = { readyMs, readyCpu, readyRssMb, cpu, share: cpu / wall, rssMb: end.rssMiB, hwmMb: end.hwmMiB, anonMb: end.anonMiB, fileMb: end.fileMiB };
      sample.wakeupsPerMin = (after.wakeups - before.wakeups) * perMin;
      sample.cpuMsPerMin = ((after.cpuNs - before.cpuNs) / 1e6) * perMin;
      if (opt.strace) {
        // A window of its own: tracing stops every thread at each syscall, which would skew the counts above.
        const calls = await syscallCounts(r.pid, IDLE_S);
        sample.syscallsPerMin = Object.fromEntries(Object.entries(calls).map(([k, v]) => [k, (v * 60) / IDLE_S]));
      }
      return sample;
    }
    const want = expectedEvents(RECORDS);
    await until(r, (text) => counter(text, 'OOMKilling') >= want, 600_000 * slow, cg === undefined ? 50 : 500);
    const doneMs = performance.now() - t0;
    const sample: Sample = { readyMs, readyCpu, readyRssMb, cpu: procStats(r.pid).cpuSeconds - readyCpu, rssMb: procStats(r.pid).rssMiB, hwmMb: procStats(r.pid).hwmMiB, doneMs };
    if (cg !== undefined) {
      await r.stop();
      sample.instructions = callgrindTotal(cg);
    }
    return sample;
  } finally {
    await r.stop();
    feeder?.stop();
  }
}

// ---------------------------------------------------------------- reporting

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

const rows: string[] = [];
function row(what: string, npd: number | undefined, agent: number | undefined, unit: string, digits = 1): void {
  const f = (v: number | undefined): string => (v === undefined ? '—' : `${v.toFixed(digits)} ${unit}`);
  const ratio = npd !== undefined && agent !== undefined && npd > 0 ? `${(agent / npd).toFixed(2)}×` : '—';
  rows.push(`| ${what} | ${f(npd)} | ${f(agent)} | ${ratio} |`);
}

/** The idle window's counts: wakeups, CPU from schedstat, and with --strace the syscalls that matter for sleeping. */
function idleRows(what: string, npd: Sample[], agent: Sample[]): void {
  row(`${what}: wakeups (voluntary context switches, every thread) per minute`, pick(npd, (s) => s.wakeupsPerMin), pick(agent, (s) => s.wakeupsPerMin), '', 0);
  row(`${what}: CPU per minute (schedstat)`, pick(npd, (s) => s.cpuMsPerMin), pick(agent, (s) => s.cpuMsPerMin), 'ms', 2);
  if (!opt.strace) return;
  const calls = (name: string) => (s: Sample): number | undefined => (s.syscallsPerMin === undefined ? undefined : name === 'all' ? Object.values(s.syscallsPerMin).reduce((a, b) => a + b, 0) : (s.syscallsPerMin[name] ?? 0));
  for (const name of ['all', 'epoll_pwait', 'futex', 'read', 'nanosleep', 'openat']) row(`${what}: ${name === 'all' ? 'syscalls' : name} per minute (strace -f -c)`, pick(npd, calls(name)), pick(agent, calls(name)), '', 0);
}

async function scenario(name: Scenario, subjects: Subject[], prepare: ((root: string) => Promise<string>) | undefined): Promise<Record<Subject, Sample[]>> {
  const out: Record<Subject, Sample[]> = { npd: [], agent: [] };
  for (let run = 0; run < RUNS; run++) {
    // The same input for both subjects of a run, generated fresh so that it lies inside the lookback.
    let input: { root: string; file: string } | undefined;
    if (prepare !== undefined) {
      const root = path.join(scratch, `input-${name}`);
      rmSync(root, { recursive: true, force: true });
      input = { root, file: await prepare(root) };
    }
    const order = run % 2 === 0 ? subjects : [...subjects].reverse();
    for (const s of order) {
      const sample = await runOnce(s, name, input);
      out[s].push(sample);
      console.error(`${name} run ${run + 1} ${s}: ${JSON.stringify(sample)}`);
    }
  }
  return out;
}

const pick = (samples: Sample[], f: (s: Sample) => number | undefined): number | undefined => {
  const xs = samples.map(f).filter((x): x is number => x !== undefined);
  return xs.length === 0 ? undefined : median(xs);
};

function npdVersion(): string {
  if (opt.npd === undefined) return 'none';
  const r = spawnSync(opt.npd, ['--version'], { encoding: 'utf8' });
  return (r.stdout || r.stderr).trim();
}

async function benchmarks(): Promise<void> {
  const subjects: Subject[] = opt.npd === undefined ? ['agent'] : ['npd', 'agent'];
  const load = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  console.log(`# NPD side by side — ${new Date().toISOString()}`);
  console.log(`NPD: ${npdVersion()}; agent: ${opt.agent} on Node ${process.version}; ${RUNS} runs, medians; ${RECORDS} records; load average before: ${load}${opt.callgrind ? '; under valgrind --tool=callgrind' : ''}`);
  console.log('');
  rows.push('| what | NPD | agent | agent / NPD |', '| --- | ---: | ---: | ---: |');
  const ins = (s: Sample): number | undefined => (s.instructions === undefined ? undefined : s.instructions / 1e6);
  if (ONLY.has('start') || ONLY.has('idle')) {
    const r = await scenario('idle', subjects, undefined);
    if (opt.callgrind) row('start to ready, NPD configs (kernel + readonly on /dev/kmsg): instructions', pick(r.npd, ins), pick(r.agent, ins), 'M', 0);
    else {
      row('start to ready: wall', pick(r.npd, (s) => s.readyMs), pick(r.agent, (s) => s.readyMs), 'ms', 0);
      row('start to ready: CPU', pick(r.npd, (s) => s.readyCpu * 1000), pick(r.agent, (s) => s.readyCpu * 1000), 'ms', 0);
      row('RSS at ready', pick(r.npd, (s) => s.readyRssMb), pick(r.agent, (s) => s.readyRssMb), 'MB');
      row(`idle, NPD configs only: CPU share of one core over ${IDLE_S} s`, pick(r.npd, (s) => (s.share ?? 0) * 100), pick(r.agent, (s) => (s.share ?? 0) * 100), '%', 3);
      row('idle, NPD configs only: RSS at the end', pick(r.npd, (s) => s.rssMb), pick(r.agent, (s) => s.rssMb), 'MB');
      row('idle, NPD configs only: peak RSS', pick(r.npd, (s) => s.hwmMb), pick(r.agent, (s) => s.hwmMb), 'MB');
      row('idle, NPD configs only: RSS at the end, anonymous', pick(r.npd, (s) => s.anonMb), pick(r.agent, (s) => s.anonMb), 'MB');
      row('idle, NPD configs only: RSS at the end, file-backed', pick(r.npd, (s) => s.fileMb), pick(r.agent, (s) => s.fileMb), 'MB');
      if (ONLY.has('idle')) idleRows('idle, NPD configs only', r.npd, r.agent);
    }
  }
  if (ONLY.has('idle') && !opt.callgrind) {
    const r = await scenario('idle-all', ['agent'], undefined);
    row(`idle, every built-in detector + NPD configs: CPU share over ${IDLE_S} s`, undefined, pick(r.agent, (s) => (s.share ?? 0) * 100), '%', 3);
    row('idle, every built-in detector + NPD configs: RSS at the end', undefined, pick(r.agent, (s) => s.rssMb), 'MB');
    row('idle, every built-in detector + NPD configs: RSS at the end, anonymous', undefined, pick(r.agent, (s) => s.anonMb), 'MB');
    row('idle, every built-in detector + NPD configs: RSS at the end, file-backed', undefined, pick(r.agent, (s) => s.fileMb), 'MB');
    idleRows('idle, every built-in detector + NPD configs', [], r.agent);
  }
  if (ONLY.has('each') && !opt.callgrind) {
    // What each detector adds: NPD's configs and that detector alone, against NPD's configs alone (above).
    for (const detector of DETECTORS) {
      const r = await scenario(`idle+${detector}`, ['agent'], undefined);
      idleRows(`idle, NPD configs + ${detector}`, [], r.agent);
    }
  }
  for (const kind of ['kmsg', 'filelog'] as const) {
    if (!ONLY.has(kind)) continue;
    const r = await scenario(kind, subjects, (root) => (kind === 'kmsg' ? generateKmsg(root, RECORDS) : generateKernLog(root, RECORDS)));
    const what = kind === 'kmsg' ? `${RECORDS} kmsg records, kernel-monitor.json` : `${RECORDS} kern.log lines, kernel-monitor-filelog.json`;
    if (opt.callgrind) row(`${what}: instructions, start to done`, pick(r.npd, ins), pick(r.agent, ins), 'M', 0);
    else {
      row(`${what}: CPU after ready`, pick(r.npd, (s) => s.cpu), pick(r.agent, (s) => s.cpu), 's', 2);
      row(`${what}: peak RSS`, pick(r.npd, (s) => s.hwmMb), pick(r.agent, (s) => s.hwmMb), 'MB');
      row(`${what}: wall, ready to done`, pick(r.npd, (s) => (s.doneMs ?? 0) - s.readyMs), pick(r.agent, (s) => (s.doneMs ?? 0) - s.readyMs), 'ms', 0);
    }
  }
  console.log(rows.join('\n'));
}

// ---------------------------------------------------------------- correctness

interface Case {
  name: string;
  messages: string[];
}

/** Real lines: NPD's own test data (its kernel_log_generator problems), our kernel-lines.json, our hosts' logs. */
function cases(): Case[] {
  const out: Case[] = [];
  const testdata = opt['npd-testdata'];
  if (testdata !== undefined) {
    for (const f of readdirSync(testdata).sort()) {
      const messages = readFileSync(path.join(testdata, f), 'utf8').split('\n');
      if (messages.at(-1) === '') messages.pop();
      out.push({ name: `npd:${f}`, messages });
    }
  }
  fixtureLines.forEach((l, i) => out.push({ name: `kernel-lines.json#${i} (${l.reason ?? `near ${(l as { near?: string }).near ?? '?'}`})`, messages: [l.message] }));
  const hosts = path.join(repo, 'test/fixtures/hosts');
  for (const h of readdirSync(hosts).sort()) {
    const kmsg = path.join(hosts, h, 'dev/kmsg');
    if (existsSync(kmsg) && statSync(kmsg).isFile()) {
      const messages = readFileSync(kmsg, 'utf8')
        .split('\n')
        .filter((l) => /^\d+,\d+,\d+,/.test(l))
        .map((l) => l.slice(l.indexOf(';') + 1));
      if (messages.length > 0) out.push({ name: `hosts/${h}/dev/kmsg`, messages });
    }
  }
  return out;
}

/** What a case raised: each event's reason (a condition turning True is one, with the rule's reason). */
type Raised = string[];

const gap = Array.from({ length: 10 }, (_, i) => healthy[i] as string);

async function npdRaised(kind: 'kmsg' | 'filelog', c: Case): Promise<Raised> {
  const root = mkdtempSync(path.join(scratch, 'case-'));
  const sentinel = oomLines[0] as string;
  // The case, then bufferSize neutral lines and one OOM line whose event says NPD has read it all.
  const messages = [...c.messages, ...gap, sentinel];
  const port = await freePort();
  let feeder: Feeder | undefined;
  let argv: string[];
  const base = Date.now() - 60_000;
  if (kind === 'kmsg') {
    const up = Math.floor((uptimeSeconds() - 60) * 1e6);
    writeFileSync(path.join(root, 'kmsg'), messages.map((m, i) => `6,${i},${up + i},-;${m}\n`).join(''));
    feeder = await startFeeder(path.join(root, 'kmsg'));
    argv = npdArgv(npdPath as string, port, KMSG_FED, feeder.link, []);
  } else {
    writeFileSync(path.join(root, 'kern.log'), messages.map((m, i) => `${syslogStamp(base)} node-1 kernel: [ ${(i / 1000).toFixed(6)}] ${m}\n`).join(''));
    const cfg = JSON.parse(readFileSync(CONFIG.filelog, 'utf8')) as { logPath: string };
    cfg.logPath = path.join(root, 'kern.log');
    writeFileSync(path.join(root, 'cfg.json'), JSON.stringify(cfg));
    argv = npdArgv(npdPath as string, port, [path.join(root, 'cfg.json')], undefined, []);
  }
  const r = start(argv, port);
  try {
    await until(r, (text) => counter(text, 'OOMKilling') >= 1 + c.messages.filter((m) => m === sentinel).length, 30_000, 20);
    await new Promise((res) => setTimeout(res, 100));
    const raised: Raised = [];
    for (const m of r.stderr().matchAll(/Events:\[\{Severity:\w+ Timestamp:[^]*? Reason:(\w+) Message:/g)) raised.push(m[1] as string);
    raised.splice(raised.lastIndexOf('OOMKilling'), 1);
    return raised.sort();
  } finally {
    await r.stop();
    feeder?.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

async function agentRaised(kind: 'kmsg' | 'filelog', c: Case): Promise<Raised> {
  const { createHost } = await import('../src/host/host.ts');
  const { createLogger } = await import('../src/log.ts');
  const { parseSystemLogMonitor } = await import('../src/detectors/npd/config.ts');
  const { createSystemLogMonitor } = await import('../src/detectors/npd/system-log-monitor.ts');
  const root = mkdtempSync(path.join(scratch, 'case-'));
  try {
    logRoot(root);
    const base = Date.now() - 60_000;
    const up = Math.floor((uptimeSeconds() - 60) * 1e6);
    const messages = [...c.messages, ...gap];
    let files: string[];
    if (kind === 'kmsg') {
      mkdirSync(path.join(root, 'dev'));
      writeFileSync(path.join(root, 'dev/kmsg'), messages.map((m, i) => `6,${i},${up + i},-;${m}\n`).join(''));
      files = KMSG_FED;
    } else {
      mkdirSync(path.join(root, 'var/log'), { recursive: true });
      writeFileSync(path.join(root, 'var/log/kern.log'), messages.map((m, i) => `${syslogStamp(base)} node-1 kernel: [ ${(i / 1000).toFixed(6)}] ${m}\n`).join(''));
      files = [CONFIG.filelog];
    }
    const host = createHost({ root });
    const raised: Raised = [];
    for (const file of files) {
      const monitor = parseSystemLogMonitor(path.basename(file), readFileSync(file, 'utf8'));
      const detector = createSystemLogMonitor(monitor, { expiryMs: {}, patterns: [] }, { host, log: createLogger('silent'), nodeName: 'bench', mode: 'check', previous: [], silenced: new Set() });
      const result = await detector.probe(new AbortController().signal);
      // A condition turning True is an event with the rule's reason here as in NPD.
      for (const e of result.events) raised.push(e.reason);
    }
    return raised.sort();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

async function correctness(): Promise<void> {
  if (opt.npd === undefined) throw new Error('--correctness needs --npd PATH');
  const all = cases();
  console.log(`# Correctness, NPD ${npdVersion()} against the agent — ${new Date().toISOString()}`);
  console.log(`${all.length} cases (${all.reduce((n, c) => n + c.messages.length, 0)} lines), each through kmsg (kernel-monitor.json) and filelog (kernel-monitor-filelog.json)`);
  let same = 0;
  const diffs: string[] = [];
  for (const kind of ['kmsg', 'filelog'] as const) {
    for (const c of all) {
      const [n, a] = [await npdRaised(kind, c), await agentRaised(kind, c)];
      if (n.join(',') === a.join(',')) same += 1;
      else diffs.push(`- ${kind} ${c.name}: NPD [${n.join(', ')}], agent [${a.join(', ')}]`);
    }
  }
  console.log(`agree: ${same} of ${all.length * 2}`);
  console.log(diffs.length === 0 ? 'no differences' : diffs.join('\n'));
}

if (opt.correctness) await correctness();
else await benchmarks();
