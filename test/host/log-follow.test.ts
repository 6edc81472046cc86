import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { appendFileSync, closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, readSync, renameSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { LOG_CHUNK_BYTES, openFileLog, watchDevice, type LogReader } from '../../src/host/log-follow.ts';
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

test('the shared record-device wait is woken by the event loop when a record arrives, with no timer (a FIFO stands in for /dev/kmsg)', async () => {
  const dir = scratch();
  const fifo = path.join(dir, 'kmsg');
  execFileSync('mkfifo', [fifo]);
  // Held open for writing first: a FIFO without a writer reads as ended, which is not a silent device.
  const writer = await open(fifo, constants.O_RDWR | constants.O_NONBLOCK);
  const watch = watchDevice(fifo);
  assert.equal(watch.failed, false);
  const seen = watch.wakeup.generation;
  const controller = new AbortController();
  let woke = false;
  const waiting = watch.wakeup.wait(seen, controller.signal).then(() => (woke = true));
  // Nothing written: the wait must still be pending after the loop has run its timers and polled.
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(woke, false, 'woke with nothing to read');
  const before = Date.now();
  await writer.write('6,7,1000,-;a record\n');
  const outcome = await Promise.race([waiting.then(() => 'woke'), new Promise((r) => setTimeout(() => r('timeout'), 10_000))]);
  assert.equal(outcome, 'woke', `no wakeup ${Date.now() - before} ms after the record`);
  assert.ok(watch.wakeup.generation > seen);
  assert.equal(watch.failed, false);
  controller.abort();
  await writer.close();
});

test('a device epoll cannot watch is not watched (libuv would abort): its readers fall back to a slow re-check', { skip: skipOutsideCi(existsSync('/dev/null') ? undefined : 'no /dev/null') }, () => {
  const watch = watchDevice('/dev/null');
  assert.equal(watch.failed, true);
});

// Each open of /dev/kmsg reads the kernel's buffer independently and reading changes nothing, so
// where the test may read this machine's kernel log, the real device is used, read-only.
const kmsgReadable = ((): boolean => {
  try {
    closeSync(openSync('/dev/kmsg', constants.O_RDONLY | constants.O_NONBLOCK));
    return true;
  } catch {
    return false;
  }
})();

/** A root whose dev/kmsg is this machine's /dev/kmsg. */
function kmsgRoot(): string {
  const root = scratch();
  mkdirSync(path.join(root, 'dev'));
  symlinkSync('/dev/kmsg', path.join(root, 'dev/kmsg'));
  return root;
}

test('the kernel log device: every record a fresh descriptor sees comes out of the reader, none lost or doubled', { skip: !kmsgReadable && 'cannot read /dev/kmsg here (needs root, or CAP_SYSLOG)' }, async () => {
  const { createHost } = await import('../../src/host/host.ts');
  const log = await createHost({ root: kmsgRoot() }).openLog('/dev/kmsg', { fromStart: true });
  const seqs = (text: string): number[] => [...text.matchAll(/^\d+,(\d+),/gm)].map((m) => Number(m[1]));
  const direct: number[] = [];
  const fd = openSync('/dev/kmsg', constants.O_RDONLY | constants.O_NONBLOCK);
  const buffer = Buffer.alloc(16 * 1024);
  try {
    for (;;) {
      try {
        const n = readSync(fd, buffer);
        if (n === 0) break;
        direct.push(...seqs(buffer.toString('utf8', 0, n)));
      } catch (err) {
        if ((err as { code?: string }).code === 'EAGAIN') break;
        if ((err as { code?: string }).code !== 'EPIPE') throw err;
      }
    }
  } finally {
    closeSync(fd);
  }
  const read = seqs(await drain(log));
  await log.close();
  // The kernel may log between the two reads: the reader's records start where the direct ones do.
  assert.ok(read.length >= direct.length && direct.length > 0, `${read.length} records read, ${direct.length} directly`);
  assert.deepEqual(read.slice(0, direct.length), direct);
  assert.equal(new Set(read).size, read.length, 'a record came out twice');
});

/** A child that follows the root's dev/kmsg through the Host, as the daemon does; `then` runs once it waits. */
function followInChild(root: string, then: string): string {
  const hostModule = new URL('../../src/host/host.ts', import.meta.url).href;
  const file = path.join(root, 'follow.mjs');
  writeFileSync(
    file,
    `
    import { createHost } from ${JSON.stringify(hostModule)};
    const log = await createHost({ root: process.argv[2] }).openLog('/dev/kmsg', { fromStart: true });
    while ((await log.read()) !== '');
    const stop = new AbortController();
    ${then}
    process.stdout.write('waiting\\n');
    while (!stop.signal.aborted) {
      await log.wait(stop.signal);
      while ((await log.read()) !== '');
    }
    await log.close();
    process.stdout.write('closed\\n');
  `,
  );
  return file;
}

test('a process following the kernel log ends by itself once it stops waiting: nothing blocks in read(2)', { skip: !kmsgReadable && 'cannot read /dev/kmsg here (needs root, or CAP_SYSLOG)' }, () => {
  const root = kmsgRoot();
  // A module file, as the CLI is: a process started with -e ends without waiting for its threads.
  const file = followInChild(root, 'setTimeout(() => stop.abort(), 500);');
  const child = spawnSync(process.execPath, [file, root], { encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL' });
  assert.equal(child.error, undefined, 'the process did not exit by itself within 60 s');
  assert.equal(child.stdout, 'waiting\nclosed\n', child.stderr);
  assert.equal(child.status, 0, child.stderr);
});

test('a process waiting on the kernel log stops on SIGTERM, also through process.exit() as the CLI ends', { skip: !kmsgReadable && 'cannot read /dev/kmsg here (needs root, or CAP_SYSLOG)' }, async () => {
  const root = kmsgRoot();
  // The daemon's loop is kept alive by its server; an interval stands in for it here.
  const file = followInChild(root, "const alive = setInterval(() => {}, 1 << 30); process.once('SIGTERM', () => { clearInterval(alive); stop.abort(); setImmediate(() => process.exit(0)); });");
  const child = spawn(process.execPath, [file, root], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('waiting')) resolve();
    });
    child.once('exit', () => reject(new Error(`exited before it waited: ${err}`)));
  });
  child.kill('SIGTERM');
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await exited;
  clearTimeout(killer);
  assert.equal(child.signalCode, null, 'still running 60 s after SIGTERM: killed');
  assert.equal(code, 0, err);
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
