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

const parts: string[] = [];
for (let i = 0; i < RECORDS; i++) {
  const message = i % 1000 === 999 ? faults[(i / 1000) % faults.length | 0] : healthy[i % healthy.length];
  parts.push(`6,${i},${i * 10},-;${message}\n`);
}
const stream = parts.join('');
const file = new URL('src/detectors/npd/builtin/kernel-monitor.json', root);
const monitor = parseSystemLogMonitor('kernel-monitor.json', readFileSync(file, 'utf8'));

export function runLogRules(): { records: number; seconds: number; perSecond: number; events: number } {
  const engine = new LogRuleEngine(monitor, { expiryMs: {}, patterns: [] }, [], 0);
  const splitter = new LineSplitter();
  const started = performance.now();
  let events = 0;
  let records = 0;
  const chunk = 64 * 1024;
  for (let offset = 0; offset < stream.length; offset += chunk) {
    const batch = parseKmsgLines(splitter.push(stream.slice(offset, offset + chunk)));
    records += batch.length;
    events += engine.process(batch.map((r) => ({ timestamp: r.usec / 1000, message: r.message }))).length;
  }
  const seconds = (performance.now() - started) / 1000;
  return { records, seconds, perSecond: records / seconds, events };
}
