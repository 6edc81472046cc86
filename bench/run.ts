// `npm run bench`: prints the figures BENCHMARKS.md records. Benchmarks report; they never fail on timing.
import { measure } from './check.ts';
import { runLogRules } from './log-rules.ts';

const node = process.execPath;
const agent = 'dist/kubenode-agent.cjs';
const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

runLogRules();
const rules = [runLogRules(), runLogRules(), runLogRules()].sort((a, b) => a.perSecond - b.perSecond)[1]!;
console.log('## Log rules (kernel-monitor.json, 1,000,000 kmsg records, median of 3)');
console.log(`${fmt(rules.records)} records in ${fmt(rules.seconds, 3)} s = ${fmt(rules.perSecond)} records/s (${rules.events} events)`);

console.log('\n## check on a fixture host (process start included, 20 runs)');
console.log('| command | median ms | p90 ms | peak RSS MB |');
console.log('| --- | ---: | ---: | ---: |');
for (const [label, argv] of [
  ['version', [node, agent, 'version']],
  ['check, NPD monitors, npd-kernel-5.x', [node, agent, 'check', '--root', 'test/fixtures/hosts/npd-kernel-5.x', '--config.system-log-monitor=builtin:kernel-monitor.json,builtin:readonly-monitor.json', '--only', 'kernel-monitor,readonly-monitor']],
  ['check, every detector, npd-kernel-5.x', [node, agent, 'check', '--root', 'test/fixtures/hosts/npd-kernel-5.x']],
] as [string, string[]][]) {
  const f = measure(argv, 20);
  console.log(`| \`${label}\` | ${fmt(f.medianMs)} | ${fmt(f.p90Ms)} | ${fmt(f.peakRssMb, 1)} |`);
}

console.log('');
await import('./installers.ts');
