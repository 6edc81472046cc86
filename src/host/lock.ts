import { link, open, readFile, rename, rm, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { isErrno, type Host } from './host.ts';

export interface LockHolder {
  pid: number;
  hostname: string;
  since: string;
  purpose: string;
}

export class LockBusyError extends Error {
  readonly holder: LockHolder | undefined;
  constructor(file: string, holder: LockHolder | undefined, waitedMs: number) {
    super(
      `${file} is held by ${holder === undefined ? 'another process' : `pid ${holder.pid} (${holder.purpose}, since ${holder.since})`}; gave up after ${Math.round(waitedMs)}ms`,
    );
    this.holder = holder;
  }
}

export interface Lock {
  release(): Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return !isErrno(err, 'ESRCH');
  }
}

async function readHolder(file: string): Promise<LockHolder | undefined> {
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as Partial<LockHolder>;
    return typeof parsed.pid === 'number' ? (parsed as LockHolder) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A lock file (O_EXCL) holding the owner's pid. A lock left by a dead process (kill -9) is taken
 * over; a live holder is waited for up to timeoutMs, then LockBusyError. Pids are those of this
 * machine's processes: the lock is for agents on one machine, even when they act on a --root tree.
 */
export async function acquireLock(host: Host, hostPath: string, options: { timeoutMs: number; pollMs?: number; purpose: string }): Promise<Lock> {
  const file = host.path(hostPath);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
  const started = host.clock.now();
  const me: LockHolder = { pid: process.pid, hostname: os.hostname(), since: new Date(started).toISOString(), purpose: options.purpose };
  for (;;) {
    try {
      const handle = await open(file, 'wx', 0o644);
      try {
        await handle.writeFile(JSON.stringify(me));
        await handle.sync();
      } finally {
        await handle.close();
      }
      return {
        async release() {
          const holder = await readHolder(file);
          if (holder?.pid === process.pid) await rm(file, { force: true });
        },
      };
    } catch (err) {
      if (!isErrno(err, 'EEXIST')) throw err;
    }
    const holder = await readHolder(file);
    if (holder === undefined || !alive(holder.pid)) {
      // Stale (or being written this instant: an unreadable holder gets one poll of grace).
      if (holder !== undefined || host.clock.now() - started > (options.pollMs ?? 100)) {
        // Rename first: of two agents taking over the same stale lock, only one rename succeeds.
        const aside = `${file}.stale-${randomBytes(4).toString('hex')}`;
        try {
          await rename(file, aside);
          const moved = await readHolder(aside);
          // Another agent took the stale lock over between our read and our rename: give it back.
          if (moved !== undefined && moved.pid !== holder?.pid && alive(moved.pid)) await link(aside, file).catch(() => undefined);
          await rm(aside, { force: true });
        } catch (err) {
          if (!isErrno(err, 'ENOENT')) throw err;
        }
        continue;
      }
    }
    const waited = host.clock.now() - started;
    if (waited >= options.timeoutMs) throw new LockBusyError(hostPath, holder, waited);
    await host.clock.sleep(Math.min(options.pollMs ?? 100, Math.max(1, options.timeoutMs - waited)));
  }
}
