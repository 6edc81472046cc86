// Single-executable figures: size per arch, and start-up cost of the x64 binary against the same
// bundle run by node, measured in the same run. Prints markdown; asserts nothing.
//
//   node bench/binary.ts [--runs N] [--idle SECONDS] [--before DIR]     (after npm run package)
//
// --before DIR adds another build's dist/ (its kubenode-agent.cjs and x64 binary, e.g. main at a
// branch point: `npm run build && node scripts/build-sea.ts` in a worktree of it) as two more
// variants, run in the same loop, so a change is measured side by side with what it changes.
//
// Wall time is measured around each spawn; peak RSS and CPU seconds (user + sys) are the child's
// from /usr/bin/time (Debian's `time`). Medians over N runs, the variants interleaved so drift
// hits all alike.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { BUNDLE, KUBE_CHUNK } from '../scripts/build.ts';
import { binaryName, SEA_ARCHES } from '../scripts/build-sea.ts';
import { FORMATS, packageName } from '../scripts/package.ts';
import { checkRoots } from '../test/package/artifacts.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '15' }, idle: { type: 'string', default: '30' }, before: { type: 'string' } } });
const RUNS = Number(values.runs);
const IDLE_S = Number(values.idle);
const DIST = join(import.meta.dirname, '..', 'dist');
const MB = (bytes: number) => (bytes / 1e6).toFixed(1);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

console.log('| artifact | raw MB | gzip -6 MB |\n| --- | ---: | ---: |');
for (const arch of SEA_ARCHES) {
  const bytes = readFileSync(join(DIST, binaryName(arch)));
  console.log(`| ${binaryName(arch)} | ${MB(bytes.length)} | ${MB(gzipSync(bytes, { level: 6 }).length)} |`);
}
for (const file of [BUNDLE, KUBE_CHUNK]) console.log(`| ${file} (node + bundle) | ${MB(readFileSync(join(DIST, file)).length)} | — |`);
for (const arch of SEA_ARCHES) {
  for (const format of FORMATS) {
    const file = join(DIST, packageName(format, arch));
    if (existsSync(file)) console.log(`| ${packageName(format, arch)} | ${MB(readFileSync(file).length)} | (compressed) |`);
  }
}

interface Sample {
  ms: number;
  rssMB: number;
  cpuS: number;
}

function once(argv: string[]): Sample {
  const start = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M %U %S', ...argv], { encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (r.error !== undefined) throw r.error;
  const [kb, user, sys] = r.stderr.trim().split('\n').at(-1)!.split(' ').map(Number) as [number, number, number];
  return { ms, rssMB: kb / 1024, cpuS: user + sys };
}

const root = checkRoots()[0]!;
const commands: { name: string; args: string[] }[] = [
  { name: 'version', args: ['version'] },
  { name: `check --json --root ${root.name}`, args: ['check', '--json', '--root', root.dir] },
];
const builds = [{ label: '', dist: DIST }, ...(values.before === undefined ? [] : [{ label: ' (before)', dist: values.before }])];
const variants = builds.flatMap(({ label, dist }) => [
  { name: `x64 binary${label}`, argv: [join(dist, binaryName('x64'))] },
  { name: `node bundle${label}`, argv: [process.execPath, join(dist, BUNDLE)] },
]);

console.log(`\n| command (median of ${RUNS}) | variant | wall ms | peak RSS MB | CPU s (user + sys) |\n| --- | --- | ---: | ---: | ---: |`);
for (const command of commands) {
  const samples = new Map<string, Sample[]>(variants.map((v) => [v.name, []]));
  for (const v of variants) once([...v.argv, ...command.args]); // warm the page cache
  for (let i = 0; i < RUNS; i++) {
    for (const v of variants) samples.get(v.name)!.push(once([...v.argv, ...command.args]));
  }
  for (const v of variants) {
    const s = samples.get(v.name)!;
    console.log(`| ${command.name} | ${v.name} | ${median(s.map((x) => x.ms)).toFixed(0)} | ${median(s.map((x) => x.rssMB)).toFixed(1)} | ${median(s.map((x) => x.cpuS)).toFixed(2)} |`);
  }
}

// The daemon once `run` has started its detectors and sat idle: RSS read once a second over the
// last 5 s of IDLE_S, medians. RSS is split: the file-backed part (the executable's pages, shared
// and reclaimable) is where the binary and plain node differ; the anonymous part is the heap.
// All variants run at once, so they sit through the same load.
async function idleRss(argv: string[]): Promise<{ rss: number; anon: number; file: number }> {
  const child = spawn(argv[0]!, [...argv.slice(1), 'run', '--root', root.dir, '--listen', '127.0.0.1:0', '--log-level', 'error'], {
    stdio: 'ignore',
  });
  const sleep = (s: number) => new Promise((resolve) => setTimeout(resolve, s * 1000));
  await sleep(IDLE_S - 5);
  const samples: string[] = [];
  for (let i = 0; i < 5; i++) {
    await sleep(1);
    samples.push(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
  }
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));
  const mb = (field: string) => median(samples.map((status) => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status)![1]))) / 1024;
  return { rss: mb('VmRSS'), anon: mb('RssAnon'), file: mb('RssFile') };
}

console.log(`\n| idle daemon (run --root ${root.name}, ${IDLE_S} s) | RSS MB | anonymous MB | file-backed MB |\n| --- | ---: | ---: | ---: |`);
const idle = await Promise.all(variants.map((v) => idleRss(v.argv)));
variants.forEach((v, i) => {
  const { rss, anon, file } = idle[i]!;
  console.log(`| ${v.name} | ${rss.toFixed(1)} | ${anon.toFixed(1)} | ${file.toFixed(1)} |`);
});
