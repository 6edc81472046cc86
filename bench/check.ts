// Wall time and peak RSS of a whole agent command, process start included.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));

export interface ProcessFigures {
  medianMs: number;
  p90Ms: number;
  peakRssMb: number;
}

/** Runs argv `runs` times under GNU time; returns the wall-time median and p90 and the largest max-RSS. */
export function measure(argv: string[], runs: number): ProcessFigures {
  const walls: number[] = [];
  let rss = 0;
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    const result = spawnSync('/usr/bin/time', ['-f', 'maxrss_kb=%M', ...argv], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
    walls.push(performance.now() - started);
    const match = /maxrss_kb=(\d+)/.exec(result.stderr);
    if (match === null) throw new Error(`no figures from ${argv.join(' ')}: ${result.stderr}`);
    rss = Math.max(rss, Number(match[1]) / 1024);
  }
  walls.sort((a, b) => a - b);
  return { medianMs: walls[Math.floor(walls.length / 2)] as number, p90Ms: walls[Math.floor(walls.length * 0.9)] as number, peakRssMb: rss };
}
