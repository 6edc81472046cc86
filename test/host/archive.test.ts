// Class 2 for archives: entry count and unpacked size are limited while streaming, with flat memory.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { writeEntryBomb, writeGzipBomb } from './archive-bomb.ts';

const RSS_SCRIPT = path.join(import.meta.dirname, 'archive-rss.ts');
const GiB = 1024 * 1024 * 1024;
const MiB = 1024 * 1024;
const FLAT_MB = 64;

function measure(op: 'inspect' | 'extract', file: string, maxUnpackedBytes: number, maxEntries: number, dest = ''): { refused: boolean; message: string; rssGrowthMB: number } {
  return JSON.parse(execFileSync(process.execPath, [RSS_SCRIPT, op, file, String(maxUnpackedBytes), String(maxEntries), dest], { encoding: 'utf8' })) as never;
}

describe('archive limits', () => {
  let dir: string;
  let bomb: string;
  let many: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'kubenode-archive-'));
    bomb = path.join(dir, 'bomb.tar.gz');
    many = path.join(dir, 'many.tar.gz');
    await writeGzipBomb(bomb, GiB);
    await writeEntryBomb(many, 20_000);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('the generated bomb is about 1 MB for 1 GiB unpacked', async () => {
    assert.ok((await stat(bomb)).size < 2 * MiB);
  });

  test('a 1 MB gzip bomb is refused with flat memory', () => {
    const r = measure('inspect', bomb, 100 * MiB, 1000);
    assert.equal(r.refused, true);
    assert.equal(r.message, 'unpacks to more than 104857600 bytes (installers.maxUnpackedBytes)');
    assert.ok(r.rssGrowthMB < FLAT_MB, `peak RSS grew ${r.rssGrowthMB} MB`);
  });

  // Streaming 1 GiB through leaves inflated chunks as garbage until V8's external-memory GC
  // runs: 60-110 MB here, the same for a 4 GiB bomb; held in memory it would be 1 GiB.
  test('a bomb within the limit streams through without holding it in memory', () => {
    const r = measure('inspect', bomb, 2 * GiB, 1000);
    assert.equal(r.refused, false, r.message);
    assert.ok(r.rssGrowthMB < 3 * FLAT_MB, `peak RSS grew ${r.rssGrowthMB} MB`);
  });

  test('more entries than maxEntries are refused', () => {
    const r = measure('inspect', many, GiB, 1000);
    assert.equal(r.refused, true);
    assert.equal(r.message, 'holds more than 1000 entries (installers.maxArchiveEntries)');
    assert.equal(measure('inspect', many, GiB, 20_000).refused, false);
  });

  test('extraction enforces the same limits as it streams', async () => {
    const dest = path.join(dir, 'out');
    await mkdir(dest);
    const r = measure('extract', many, GiB, 500, dest);
    assert.equal(r.refused, true);
    assert.match(r.message, /more than 500 entries/);
    const written = await readdir(path.join(dest, 'd')).catch(() => []);
    assert.ok(written.length <= 500, `${written.length} files written`);
    const big = measure('extract', bomb, 100 * MiB, 1000, dest);
    assert.equal(big.refused, true);
    assert.ok(big.rssGrowthMB < FLAT_MB, `peak RSS grew ${big.rssGrowthMB} MB`);
  });
});
