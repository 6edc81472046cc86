import { spawn } from 'node:child_process';
import { closeSync, constants as fsc, fstatSync, openSync, readSync, watch, type FSWatcher } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { Socket, type SocketConstructorOpts } from 'node:net';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';

/**
 * Follows a log: /dev/kmsg records or a file's lines. read() hands out at most one bounded chunk,
 * so a huge file is streamed, never held in memory; wait() sleeps until there may be more.
 */
export interface LogReader {
  /** The next chunk of what was appended since the last call (whole kmsg records, or file text); '' when caught up. */
  read(): Promise<string>;
  /** Resolves once read() may have more to hand out, or when the signal aborts. */
  wait(signal: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

/** Upper bound of one read()'s text: memory per follower stays at this, whatever the log's size. */
export const LOG_CHUNK_BYTES = 256 * 1024;
/** inotify can miss changes (network filesystems, overlay quirks): re-check a quiet file this often anyway. */
const FILE_RECHECK_MS = 30_000;
/** The bytes before the read offset we remember to notice a copytruncate that grew back past it. */
const FINGERPRINT_BYTES = 64;

function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

/** Resolves on `wake()` or abort; one promise shared by every waiter until it fires. */
export class Wakeup {
  #pending: { promise: Promise<void>; resolve: () => void } | undefined;
  /** Bumped on every wake: a waiter that saw an older value has missed one and returns at once. */
  generation = 0;

  wake(): void {
    this.generation += 1;
    const pending = this.#pending;
    this.#pending = undefined;
    pending?.resolve();
  }

  wait(seen: number, signal: AbortSignal, timeoutMs?: number): Promise<void> {
    if (this.generation !== seen || signal.aborted) return Promise.resolve();
    if (this.#pending === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.#pending = { promise, resolve };
    }
    const shared = this.#pending.promise;
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = timeoutMs === undefined ? undefined : setTimeout(done, timeoutMs);
      signal.addEventListener('abort', done, { once: true });
      void shared.then(done);
    });
  }
}

// ---------------------------------------------------------------- /dev/kmsg

// The kernel keeps one read position per open /dev/kmsg, so each reader pulls records from its own
// non-blocking descriptor and nothing is buffered here. What is shared, per device, is the wait: one
// more descriptor of the device sits in the event loop's epoll set, and each record the kernel logs
// makes it readable, which wakes every waiting reader. Nothing blocks in read(2) (a read blocked in
// the kernel can be interrupted neither from JavaScript nor by worker.terminate(), and Node joins
// its threads at exit, so a thread in one kept `check` and a stopping daemon from ever exiting) and
// nothing polls: an idle agent sleeps in epoll_wait, as NPD sleeps in its read.

/** /dev/kmsg is character device 1:11 (Documentation/admin-guide/devices.txt). */
const KMSG_DEVICE = { major: 1, minor: 11 };

/**
 * Whether epoll can watch the file. libuv aborts the process when epoll refuses a descriptor (a
 * character device without poll support, such as /dev/null), so only files known to support it
 * are watched: the kernel log and FIFOs (the tests' stand-in for it).
 */
function pollable(info: { isFIFO(): boolean; isCharacterDevice(): boolean; rdev: number }): boolean {
  if (info.isFIFO()) return true;
  if (!info.isCharacterDevice()) return false;
  // Linux's dev_t: the minor's low 8 bits, then 12 bits of major, then the rest of the minor.
  const major = Math.floor(info.rdev / 256) & 0xfff;
  const minor = (info.rdev & 0xff) | (Math.floor(info.rdev / 4096) & ~0xff);
  return major === KMSG_DEVICE.major && minor === KMSG_DEVICE.minor;
}

interface PipeBinding {
  Pipe: new (type: number) => { open(fd: number): number };
  constants: { SOCKET: number };
}

/**
 * A stream on any pollable descriptor. net.Socket takes only pipes and sockets when given a
 * descriptor, but libuv's pipe handle streams any descriptor epoll accepts; the handle comes from
 * the binding child_process uses for its pipes (process.binding, deprecated in documentation
 * only, DEP0111). Throws when the binding is missing, so that the caller falls back.
 */
function pollStream(fd: number, onRecord: () => void): Socket {
  const { Pipe, constants } = (process as unknown as { binding(name: string): PipeBinding }).binding('pipe_wrap');
  const handle = new Pipe(constants.SOCKET);
  const status = handle.open(fd);
  if (status !== 0) throw new Error(`cannot watch descriptor ${fd}: libuv error ${status}`);
  // One buffer for every read: a kmsg record is at most 8 KiB with its dictionary, and the device
  // refuses (EINVAL) a read into less than the record.
  const buffer = Buffer.alloc(16 * 1024);
  const options = { handle, readable: true, writable: false, onread: { buffer, callback: (): boolean => (onRecord(), true) } };
  return new Socket(options as unknown as SocketConstructorOpts);
}

export interface DeviceWatch {
  wakeup: Wakeup;
  /** Set when the device cannot be watched; readers then fall back to a slow re-check. */
  failed: boolean;
}

const deviceWatches = new Map<string, DeviceWatch>();

/** The one watch of a device, started on first use and kept for the life of the process. */
function deviceWatch(file: string): DeviceWatch {
  let dw = deviceWatches.get(file);
  if (dw !== undefined) return dw;
  const created: DeviceWatch = { wakeup: new Wakeup(), failed: false };
  deviceWatches.set(file, created);
  const fail = (): void => {
    created.failed = true;
    deviceWatches.delete(file);
    created.wakeup.wake();
  };
  const watch = (): void => {
    let fd: number | undefined;
    let stream: Socket;
    try {
      fd = openSync(file, fsc.O_RDONLY | fsc.O_NONBLOCK);
      if (!pollable(fstatSync(fd))) throw new Error(`${file} is not a device epoll can watch`);
      stream = pollStream(fd, () => created.wakeup.wake());
    } catch {
      if (fd !== undefined) closeSync(fd);
      fail();
      return;
    }
    // EPIPE: the kernel overwrote records before this descriptor read them (a flood while the
    // loop was busy). The position cannot be moved back, so the watch starts over on a new
    // descriptor. A descriptor that ends (a FIFO's writer went away) or fails otherwise is given up.
    let broken = false;
    stream.once('error', (err) => (broken = isErrno(err, 'EPIPE')));
    stream.once('close', () => (broken ? watch() : fail()));
    stream.unref();
  };
  watch();
  dw = created;
  return dw;
}

/** Exported for tests: the shared watch of a record device (a FIFO stands in for /dev/kmsg there). */
export function watchDevice(file: string): DeviceWatch {
  return deviceWatch(file);
}

export async function openDeviceLog(file: string): Promise<LogReader> {
  // /dev/kmsg hands out one record per read(2), and EAGAIN at the end when non-blocking. A
  // non-blocking read never waits, so it is made on this thread: no threadpool round trip per record.
  const handle = await open(file, fsc.O_RDONLY | fsc.O_NONBLOCK);
  const buffer = Buffer.alloc(16 * 1024);
  let seen = -1;
  let watcher: DeviceWatch | undefined;
  return {
    async read() {
      watcher ??= deviceWatch(file);
      seen = watcher.wakeup.generation;
      const parts: string[] = [];
      let size = 0;
      while (size < LOG_CHUNK_BYTES) {
        try {
          const bytesRead = readSync(handle.fd, buffer, 0, buffer.length, null);
          if (bytesRead === 0) break;
          parts.push(buffer.toString('utf8', 0, bytesRead));
          size += bytesRead;
        } catch (err) {
          if (isErrno(err, 'EAGAIN')) break;
          // EPIPE: records were overwritten before we read them; the next read continues after the gap.
          if (isErrno(err, 'EPIPE')) continue;
          throw err;
        }
      }
      return parts.join('');
    },
    wait(signal) {
      watcher ??= deviceWatch(file);
      return watcher.wakeup.wait(seen, signal, watcher.failed ? FILE_RECHECK_MS : undefined);
    },
    close: () => handle.close(),
  };
}

// ---------------------------------------------------------------- regular files

/**
 * A file followed across rotation: a rename (logrotate's default) is read to its end before the
 * new file at the path is opened, and a copytruncate is noticed even when the file has grown back
 * past the old offset (the bytes before the offset changed), so neither loses lines written
 * before our next read. Changes are noticed by inotify on the directory.
 */
export async function openFileLog(file: string, fromStart: boolean): Promise<LogReader> {
  let handle: FileHandle = await open(file, 'r');
  let info = await handle.stat();
  let inode = info.ino;
  let offset = fromStart ? 0 : info.size;
  let fingerprint: Buffer | undefined;
  const buffer = Buffer.alloc(LOG_CHUNK_BYTES);
  // A read can end inside a multi-byte character that a writer is still appending.
  let decoder = new StringDecoder('utf8');
  const wakeup = new Wakeup();
  let seen = -1;
  let watcher: FSWatcher | undefined;
  const base = path.basename(file);

  const startWatching = (): void => {
    if (watcher !== undefined) return;
    try {
      watcher = watch(path.dirname(file), { persistent: false }, (_event, name) => {
        if (name === null || name === base) wakeup.wake();
      });
      watcher.on('error', () => {
        watcher?.close();
        watcher = undefined;
        wakeup.wake();
      });
    } catch {
      // No inotify (limits reached, unusual filesystem): the periodic re-check still follows the file.
    }
  };

  const remember = async (): Promise<void> => {
    const length = Math.min(FINGERPRINT_BYTES, offset);
    if (length === 0) {
      fingerprint = undefined;
      return;
    }
    const fp = Buffer.alloc(length);
    const { bytesRead } = await handle.read(fp, 0, length, offset - length);
    fingerprint = fp.subarray(0, bytesRead);
  };

  /** Whether the file at our handle was truncated (and maybe rewritten) since we last read it. */
  const truncated = async (): Promise<boolean> => {
    info = await handle.stat();
    if (info.size < offset) return true;
    if (fingerprint === undefined || fingerprint.length === 0) return false;
    const now = Buffer.alloc(fingerprint.length);
    const { bytesRead } = await handle.read(now, 0, now.length, offset - fingerprint.length);
    return bytesRead !== fingerprint.length || !now.equals(fingerprint);
  };

  const restartAtTop = (): void => {
    offset = 0;
    fingerprint = undefined;
    decoder = new StringDecoder('utf8');
  };

  return {
    async read() {
      startWatching();
      seen = wakeup.generation;
      if (await truncated()) restartAtTop();
      let { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
      if (bytesRead === 0) {
        // At the end of what we hold open: if the path now names another file, it was rotated
        // by rename and we have just read the old one to its end; continue with the new one.
        let current;
        try {
          current = await stat(file);
        } catch (err) {
          if (isErrno(err, 'ENOENT')) return '';
          throw err;
        }
        if (current.ino === inode) return '';
        await handle.close();
        handle = await open(file, 'r');
        inode = (await handle.stat()).ino;
        restartAtTop();
        ({ bytesRead } = await handle.read(buffer, 0, buffer.length, offset));
        if (bytesRead === 0) return '';
      }
      offset += bytesRead;
      const text = decoder.write(buffer.subarray(0, bytesRead));
      await remember();
      return text;
    },
    wait(signal) {
      startWatching();
      return wakeup.wait(seen, signal, FILE_RECHECK_MS);
    },
    async close() {
      watcher?.close();
      watcher = undefined;
      await handle.close();
    },
  };
}

// ---------------------------------------------------------------- a command's output (journalctl -f)

/** A follower of a long-running command's stdout; after it ended, `ended()` says how. */
export interface CommandLog extends LogReader {
  /** undefined while the command runs (or its output is not yet all read); else how it ended and its stderr's tail. */
  ended(): string | undefined;
}

/** Between SIGTERM to the follower's process group and SIGKILL. */
const COMMAND_KILL_GRACE_MS = 2_000;
const STDERR_TAIL_BYTES = 2048;

/**
 * Runs `file args` once and hands out its stdout as it comes, at most LOG_CHUNK_BYTES held: past
 * that the pipe is paused, so a command that floods waits for us instead of filling memory.
 * close() ends its whole process group.
 */
export function openCommandLog(file: string, args: readonly string[]): CommandLog {
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const wakeup = new Wakeup();
  let seen = -1;
  const queued: Buffer[] = [];
  let queuedBytes = 0;
  let stderr = '';
  let exit: string | undefined;
  const decoder = new StringDecoder('utf8');
  const exited = new Promise<void>((resolve) => {
    child.once('close', (code, sig) => {
      exit = sig !== null ? `killed by ${sig}` : `exited with status ${code}`;
      wakeup.wake();
      resolve();
    });
  });
  child.once('error', (err) => {
    exit = err.message;
    wakeup.wake();
  });
  child.stdout.on('data', (chunk: Buffer) => {
    queued.push(chunk);
    queuedBytes += chunk.length;
    if (queuedBytes >= LOG_CHUNK_BYTES) child.stdout.pause();
    wakeup.wake();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_TAIL_BYTES);
  });
  const killGroup = (signal: NodeJS.Signals): void => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, signal);
    } catch {
      // already gone
    }
  };
  return {
    async read() {
      seen = wakeup.generation;
      if (queued.length === 0) return '';
      const chunk = Buffer.concat(queued.splice(0));
      queuedBytes = 0;
      child.stdout.resume();
      return decoder.write(chunk);
    },
    wait(signal) {
      return wakeup.wait(seen, signal);
    },
    ended() {
      if (exit === undefined || queued.length > 0) return undefined;
      const tail = stderr.trim();
      return tail === '' ? exit : `${exit}: ${tail}`;
    },
    async close() {
      if (exit !== undefined) return;
      killGroup('SIGTERM');
      const timer = setTimeout(() => killGroup('SIGKILL'), COMMAND_KILL_GRACE_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}
