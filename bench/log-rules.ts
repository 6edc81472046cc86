// Log-rule throughput: NPD's kernel-monitor.json over a generated 1,000,000-record kmsg stream.
// The stream cycles through the real records of test/fixtures/hosts/npd-healthy-6.18 and, one
// record in a thousand, a captured fault line, so that the prefilter sees realistic misses and hits.
import { readFileSync } from 'node:fs';
import { parseSystemLogMonitor } from '../src/detectors/npd/config.ts';
import { LineSplitter, parseKmsgLines } from '../src/detectors/engine/kmsg.ts';
import { LogRuleEngine } from '../src/detectors/npd/log-rules.ts';

const RECORDS = Number(process.env.BENCH_RECORDS ?? 1_000_000);
const root = new URL('../', import.meta.url);
const healthy = readFileSync(new URL('test/fixtures/hosts/npd-healthy-6.18/dev/kmsg', root), 'utf8')
  .split('\n')
  .filter((l) => /^\d+,\d+,\d+,/.test(l))
  .map((l) => l.slice(l.indexOf(';') + 1));
const faults = (JSON.parse(readFileSync(new URL('test/fixtures/npd/kernel-lines.json', root), 'utf8')) as { lines: { message: string }[] }).lines.map((l) => l.message);

/** The in-memory stream of runLogRules(), built on first use: runLogSource() must not pay for it. */
let stream: string | undefined;
function generatedStream(): string {
  if (stream !== undefined) return stream;
  const parts: string[] = [];
  for (let i = 0; i < RECORDS; i++) {
    const message = i % 1000 === 999 ? faults[(i / 1000) % faults.length | 0] : healthy[i % healthy.length];
    parts.push(`6,${i},${i * 10},-;${message}\n`);
  }
  stream = parts.join('');
  return stream;
}
const file = new URL('src/detectors/npd/builtin/kernel-monitor.json', root);
const monitor = parseSystemLogMonitor('kernel-monitor.json', readFileSync(file, 'utf8'));

export function runLogRules(): { records: number; seconds: number; perSecond: number; events: number } {
  const engine = new LogRuleEngine(monitor, { expiryMs: {}, patterns: [] }, [], 0);
  const splitter = new LineSplitter();
  const started = performance.now();
  let events = 0;
  let records = 0;
  const chunk = 64 * 1024;
  const text = generatedStream();
  for (let offset = 0; offset < text.length; offset += chunk) {
    const batch = parseKmsgLines(splitter.push(text.slice(offset, offset + chunk)));
    records += batch.length;
    events += engine.process(batch.map((r) => ({ timestamp: r.usec / 1000, message: r.message }))).length;
  }
  const seconds = (performance.now() - started) / 1000;
  return { records, seconds, perSecond: records / seconds, events };
}

// The same records through the real sources, as the daemon reads them: a kmsg file under a host
// root and, for filelog, the same messages as a syslog kern.log. Run one per process, so that its
// peak RSS is its own: `node bench/log-rules.ts kmsg` or `node bench/log-rules.ts filelog`.
export async function runLogSource(kind: 'kmsg' | 'filelog'): Promise<{ lines: number; seconds: number; cpuSeconds: number; peakRssMb: number; events: number }> {
  const { mkdtempSync, mkdirSync, rmSync, writeFileSync, createWriteStream } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const path = await import('node:path');
  const { createHost } = await import('../src/host/host.ts');
  const { createLogger } = await import('../src/log.ts');
  const { createSystemLogMonitor } = await import('../src/detectors/npd/system-log-monitor.ts');
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-log-source-'));
  try {
    const uptime = 1_000_000;
    mkdirSync(path.join(dir, 'proc'));
    writeFileSync(path.join(dir, 'proc', 'uptime'), `${uptime}.00 ${uptime}.00\n`);
    const file = path.join(dir, kind === 'kmsg' ? 'dev/kmsg' : 'var/log/kern.log');
    mkdirSync(path.dirname(file), { recursive: true });
    // Written in pieces so that the generator never holds the whole log either.
    const out = createWriteStream(file);
    const stamp = new Date().toLocaleString('en-US', { month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
    const [date, time] = stamp.split(', ');
    const syslog = `${(date ?? '').replace(/ 0/, '  ')} ${time}`;
    for (let i = 0; i < RECORDS; i++) {
      const message = i % 1000 === 999 ? faults[(i / 1000) % faults.length | 0] : healthy[i % healthy.length];
      const line = kind === 'kmsg' ? `6,${i},${(uptime - 60) * 1_000_000 + i},-;${message}\n` : `${syslog} node-1 kernel: [ ${i}.000000] ${message}\n`;
      if (!out.write(line)) await new Promise<void>((r) => out.once('drain', () => r()));
    }
    await new Promise<void>((r) => out.end(() => r()));
    const name = kind === 'kmsg' ? 'kernel-monitor.json' : 'kernel-monitor-filelog.json';
    const text = readFileSync(new URL(kind === 'kmsg' ? 'src/detectors/npd/builtin/kernel-monitor.json' : 'test/fixtures/npd/config/kernel-monitor-filelog.json', root), 'utf8');
    const source = parseSystemLogMonitor(name, text);
    const host = createHost({ root: dir });
    const detector = createSystemLogMonitor(source, { expiryMs: {}, patterns: [] }, { host, log: createLogger('silent'), nodeName: 'bench', mode: 'check', previous: [], silenced: new Set() });
    const cpu = process.cpuUsage();
    const started = performance.now();
    const result = await detector.probe(new AbortController().signal);
    const seconds = (performance.now() - started) / 1000;
    const used = process.cpuUsage(cpu);
    return { lines: RECORDS, seconds, cpuSeconds: (used.user + used.system) / 1e6, peakRssMb: process.resourceUsage().maxRSS / 1024, events: result.events.length };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// A rule that can span any number of lines and has no literal to prefilter on (the hung-task
// report and the kernel's hint that follows it, (?i) and (?s)), bufferSize 1000, over the same
// records: with the reach filter off, as before it, every line searches the whole buffer.
const reachMonitor = parseSystemLogMonitor(
  'reach.json',
  JSON.stringify({
    plugin: 'kmsg',
    source: 'bench',
    bufferSize: 1000,
    conditions: [],
    rules: [{ type: 'temporary', reason: 'HungTaskHint', pattern: '(?is)task \\S+ blocked for more than \\d+ seconds\\..*hung_task_timeout_secs" disables this message\\.' }],
  }),
);

export function runUnboundedRule(reachFilter: boolean, lines: number): { lines: number; seconds: number; perSecond: number; events: number } {
  const engine = new LogRuleEngine(reachMonitor, { expiryMs: {}, patterns: [] }, [], 0, { reachFilter });
  const batch = Array.from({ length: 1000 }, () => ({ timestamp: 0, message: '' }));
  const started = performance.now();
  let events = 0;
  for (let i = 0; i < lines; i += batch.length) {
    for (let j = 0; j < batch.length; j++) {
      const n = i + j;
      (batch[j] as { message: string }).message = (n % 1000 === 999 ? faults[(n / 1000) % faults.length | 0] : healthy[n % healthy.length]) as string;
    }
    events += engine.process(batch).length;
  }
  const seconds = (performance.now() - started) / 1000;
  return { lines, seconds, perSecond: lines / seconds, events };
}

const kind = process.argv[2];
if (import.meta.url === `file://${process.argv[1]}` && (kind === 'kmsg' || kind === 'filelog')) {
  console.log(JSON.stringify(await runLogSource(kind)));
}
// `node bench/log-rules.ts reach`: the unbounded rule with the filter (100,000 lines) and without
// it (BENCH_BEFORE_LINES, 5,000 by default: about 300 lines/s), then kernel-monitor.json, median of 3.
if (import.meta.url === `file://${process.argv[1]}` && kind === 'reach') {
  const before = Number(process.env.BENCH_BEFORE_LINES ?? 5000);
  console.log(JSON.stringify({ filter: 'on', ...runUnboundedRule(true, 100_000) }));
  console.log(JSON.stringify({ filter: 'off', ...runUnboundedRule(false, before) }));
  runLogRules();
  const kernel = [runLogRules(), runLogRules(), runLogRules()].sort((a, b) => a.perSecond - b.perSecond)[1];
  console.log(JSON.stringify({ monitor: 'kernel-monitor.json', ...kernel }));
}
