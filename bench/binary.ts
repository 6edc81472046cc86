// Single-executable figures: size per arch, and start-up cost of the x64 binary against the same
// bundle run by node, measured in the same run. Prints markdown; asserts nothing.
//
//   node bench/binary.ts [--runs N]      (after npm run build, build:sea and package)
//
// Wall time is measured around each spawn; peak RSS is the child's maxrss from /usr/bin/time
// (Debian's `time`). Medians over N runs, the two variants interleaved so drift hits both alike.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { binaryName, SEA_ARCHES } from '../scripts/build-sea.ts';
import { FORMATS, packageName } from '../scripts/package.ts';
import { checkRoots } from '../test/package/artifacts.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '15' } } });
const RUNS = Number(values.runs);
const DIST = join(import.meta.dirname, '..', 'dist');
const BUNDLE = join(DIST, 'kubenode-agent.cjs');
const MB = (bytes: number) => (bytes / 1e6).toFixed(1);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

console.log('| artifact | raw MB | gzip -6 MB |\n| --- | ---: | ---: |');
for (const arch of SEA_ARCHES) {
  const bytes = readFileSync(join(DIST, binaryName(arch)));
  console.log(`| ${binaryName(arch)} | ${MB(bytes.length)} | ${MB(gzipSync(bytes, { level: 6 }).length)} |`);
}
for (const arch of SEA_ARCHES) {
  for (const format of FORMATS) {
    const file = join(DIST, packageName(format, arch));
    if (existsSync(file)) console.log(`| ${packageName(format, arch)} | ${MB(readFileSync(file).length)} | (compressed) |`);
  }
}

interface Sample {
  ms: number;
  rssMB: number;
}

function once(argv: string[]): Sample {
  const start = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', ...argv], { encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (r.error !== undefined) throw r.error;
  const kb = Number(r.stderr.trim().split('\n').at(-1));
  return { ms, rssMB: kb / 1024 };
}

const root = checkRoots()[0]!;
const commands: { name: string; args: string[] }[] = [
  { name: 'version', args: ['version'] },
  { name: `check --json --root ${root.name}`, args: ['check', '--json', '--root', root.dir] },
];
const variants = [
  { name: 'x64 binary', argv: [join(DIST, binaryName('x64'))] },
  { name: 'node bundle', argv: [process.execPath, BUNDLE] },
];

console.log(`\n| command (median of ${RUNS}) | variant | wall ms | peak RSS MB |\n| --- | --- | ---: | ---: |`);
for (const command of commands) {
  const samples = new Map<string, Sample[]>(variants.map((v) => [v.name, []]));
  for (const v of variants) once([...v.argv, ...command.args]); // warm the page cache
  for (let i = 0; i < RUNS; i++) {
    for (const v of variants) samples.get(v.name)!.push(once([...v.argv, ...command.args]));
  }
  for (const v of variants) {
    const s = samples.get(v.name)!;
    console.log(`| ${command.name} | ${v.name} | ${median(s.map((x) => x.ms)).toFixed(0)} | ${median(s.map((x) => x.rssMB)).toFixed(1)} |`);
  }
}

// The daemon once `run` has started its detectors and sat idle for a few seconds. RSS is split:
// the file-backed part (the executable's pages, shared and reclaimable) is where the binary and
// plain node differ; the anonymous part is the heap.
async function idleRss(argv: string[]): Promise<{ rss: number; anon: number }> {
  const child = spawn(argv[0]!, [...argv.slice(1), 'run', '--root', root.dir, '--listen', '127.0.0.1:0', '--log-level', 'error'], {
    stdio: 'ignore',
  });
  await new Promise((resolve) => setTimeout(resolve, 5000));
  const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status)![1]);
  return { rss: kb('VmRSS') / 1024, anon: kb('RssAnon') / 1024 };
}

console.log(`\n| idle daemon (run --root ${root.name}, 5 s) | RSS MB | of which anonymous MB |\n| --- | ---: | ---: |`);
for (const v of variants) {
  const { rss, anon } = await idleRss(v.argv);
  console.log(`| ${v.name} | ${rss.toFixed(1)} | ${anon.toFixed(1)} |`);
}
