import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { deviceWakeup, LOG_CHUNK_BYTES, openFileLog, type LogReader } from '../../src/host/log-follow.ts';
import { skipOutsideCi } from '../helpers/prerequisites.ts';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function scratch(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'log-follow-'));
  dirs.push(dir);
  return dir;
}

async function drain(reader: LogReader): Promise<string> {
  let text = '';
  for (let chunk = await reader.read(); chunk !== ''; chunk = await reader.read()) text += chunk;
  return text;
}

const lines = (from: number, to: number): string => Array.from({ length: to - from }, (_, i) => `line ${from + i}\n`).join('');

test('rotation by rename: what was written to the old file before the next read is not lost', async () => {
  const dir = scratch();
  const file = path.join(dir, 'app.log');
  writeFileSync(file, lines(0, 3));
  const reader = await openFileLog(file, true);
  assert.equal(await drain(reader), lines(0, 3));
  // logrotate's default: the writer still appends to the renamed file, then a new file appears at the path.
  appendFileSync(file, lines(3, 5));
  renameSync(file, `${file}.1`);
  writeFileSync(file, lines(5, 7));
  assert.equal(await drain(reader), lines(3, 7));
  appendFileSync(file, lines(7, 8));
  assert.equal(await drain(reader), lines(7, 8));
  await reader.close();
});

test('copytruncate: lines written after the truncate are read even when the file grew back past the old offset', async () => {
  const dir = scratch();
  const file = path.join(dir, 'app.log');
  writeFileSync(file, lines(0, 3));
  const reader = await openFileLog(file, true);
  assert.equal(await drain(reader), lines(0, 3));
  truncateSync(file, 0);
  appendFileSync(file, lines(100, 110));
  assert.equal(await drain(reader), lines(100, 110));
  // A plain shrink is noticed too.
  truncateSync(file, 0);
  appendFileSync(file, lines(200, 201));
  assert.equal(await drain(reader), lines(200, 201));
  await reader.close();
});

test('a large file comes out in bounded chunks, never whole', async () => {
  const dir = scratch();
  const file = path.join(dir, 'big.log');
  const text = lines(0, 200_000);
  writeFileSync(file, text);
  const reader = await openFileLog(file, true);
  let total = 0;
  let chunks = 0;
  for (let chunk = await reader.read(); chunk !== ''; chunk = await reader.read()) {
    assert.ok(Buffer.byteLength(chunk) <= LOG_CHUNK_BYTES);
    total += chunk.length;
    chunks += 1;
  }
  await reader.close();
  assert.equal(total, text.length);
  assert.ok(chunks > 1);
});

test('fromStart false reads nothing already there, only what is appended', async () => {
  const dir = scratch();
  const file = path.join(dir, 'app.log');
  writeFileSync(file, lines(0, 3));
  const reader = await openFileLog(file, false);
  assert.equal(await drain(reader), '');
  appendFileSync(file, lines(3, 4));
  assert.equal(await drain(reader), lines(3, 4));
  await reader.close();
});

test('wait() returns when the file changes (inotify), not after a poll interval', async () => {
  const dir = scratch();
  const file = path.join(dir, 'app.log');
  writeFileSync(file, '');
  const reader = await openFileLog(file, true);
  assert.equal(await drain(reader), '');
  const controller = new AbortController();
  const woke = reader.wait(controller.signal).then(() => 'woke');
  setTimeout(() => appendFileSync(file, lines(0, 1)), 50);
  // The re-check timer is 30 s: only the change itself can end this wait within the race's 10 s.
  const outcome = await Promise.race([woke, new Promise((r) => setTimeout(() => r('timeout'), 10_000))]);
  assert.equal(outcome, 'woke');
  assert.equal(await drain(reader), lines(0, 1));
  controller.abort();
  await reader.close();
});

test('the shared record-device wait wakes on a new record (a FIFO stands in for /dev/kmsg)', async () => {
  const dir = scratch();
  const fifo = path.join(dir, 'kmsg');
  execFileSync('mkfifo', [fifo]);
  const wakeup = deviceWakeup(fifo);
  const seen = wakeup.generation;
  const controller = new AbortController();
  const woke = wakeup.wait(seen, controller.signal).then(() => 'woke');
  // Opened on the threadpool: a FIFO's open blocks until the worker opens its end. A record written
  // while the worker still skips the backlog is, rightly, no wake-up: keep writing until one comes.
  const writer = await open(fifo, 'w');
  let outcome = 'timeout';
  void woke.then((w) => (outcome = w));
  for (let seq = 7; seq < 57 && outcome !== 'woke'; seq++) {
    await writer.write(`6,${seq},1000,-;a record\n`).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 200));
  }
  await writer.close();
  controller.abort();
  assert.equal(outcome, 'woke');
  assert.ok(wakeup.generation > seen);
});


// /dev/kmsg cannot be created here, but /dev/ptmx reads as it does where it matters: a character
// device, each open independent, EAGAIN on a non-blocking read with nothing to hand out, and a
// blocking read that never returns. A worker stuck in such a read keeps Node from exiting.
test('a reader of a silent record device (/dev/ptmx under the root as dev/kmsg) lets its process exit', { skip: skipOutsideCi(existsSync('/dev/ptmx') ? undefined : 'no /dev/ptmx') }, () => {
  const root = scratch();
  mkdirSync(path.join(root, 'dev'));
  symlinkSync('/dev/ptmx', path.join(root, 'dev/kmsg'));
  const hostModule = new URL('../../src/host/host.ts', import.meta.url).href;
  const script = `
    import { createHost } from ${JSON.stringify(hostModule)};
    const log = await createHost({ root: process.argv[2] }).openLog('/dev/kmsg', { fromStart: true });
    if (await log.read() !== '') throw new Error('a silent device handed out text');
    const quiet = new AbortController();
    setTimeout(() => quiet.abort(), 500);
    await log.wait(quiet.signal);
    await log.close();
    process.stdout.write('closed');
  `;
  // A module file, as the CLI is: a process started with -e ends without waiting for its threads.
  const file = path.join(root, 'read-silent-device.mjs');
  writeFileSync(file, script);
  const child = spawnSync(process.execPath, [file, root], { encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL' });
  assert.equal(child.error, undefined, 'the process did not exit by itself within 60 s');
  assert.equal(child.stdout, 'closed', child.stderr);
  assert.equal(child.status, 0, child.stderr);
});
