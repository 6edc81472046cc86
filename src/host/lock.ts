import { randomBytes } from 'node:crypto';
import { link, lstat, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import { AgentError } from '../errors.ts';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { isErrno, type Host } from './host.ts';
import { resolveInRoot } from './jail.ts';

const LockHolder = Type.Object({
  pid: Type.Integer({ minimum: 1 }),
  /** /proc/sys/kernel/random/boot_id when the lock was taken: a pid means nothing after a reboot. */
  bootId: Type.String(),
  /** Field 22 of /proc/PID/stat (clock ticks since boot): tells the holder from a later process given the same pid. */
  startTime: Type.String(),
  hostname: Type.String(),
  since: Type.String(),
  purpose: Type.String(),
  /**
   * Random per acquisition: callers in one process share pid and start time, so only this tells
   * whose lock it is at release. Optional because locks written by earlier releases lack it.
   */
  token: Type.Optional(Type.String()),
});
export type LockHolder = Static<typeof LockHolder>;

export class LockBusyError extends AgentError {
  readonly holder: LockHolder | undefined;
  constructor(file: string, holder: LockHolder | undefined, waitedMs: number) {
    super(
      'LOCK',
      `${file} is held by ${holder === undefined ? 'another process' : `pid ${holder.pid} (${holder.purpose}, since ${holder.since})`}; gave up after ${Math.round(waitedMs)}ms`,
    );
    this.holder = holder;
  }
}

export interface Lock {
  release(): Promise<void>;
}

// The lock is between agents on this machine (also when they act on a --root tree), so who holds
// it is asked of this machine's own /proc, not of the tree's.
async function liveText(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
}

export const machineBootId = async (): Promise<string> => (await liveText('/proc/sys/kernel/random/boot_id'))?.trim() ?? '';

/** Start time of a live process (field 22 of /proc/PID/stat, after the parenthesised command name); undefined when it is gone. */
export async function processStartTime(pid: number): Promise<string | undefined> {
  const stat = await liveText(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  // The command name may hold spaces and parentheses: fields are counted after its last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19];
}

/** The holder still holds the lock: same boot, and its pid is still the process that took it. */
async function holds(holder: LockHolder): Promise<boolean> {
  if (holder.bootId !== (await machineBootId())) return false;
  return (await processStartTime(holder.pid)) === holder.startTime;
}

/** The lock's holder; undefined for a file that is no lock (garbage); 'gone' when there is no file. */
async function readHolder(file: string): Promise<LockHolder | undefined | 'gone'> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    return isErrno(err, 'ENOENT') ? 'gone' : undefined;
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    return Value.Check(LockHolder, parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A lock file under /run naming its holder by boot_id, pid and the pid's start time. It is written
 * whole to a temporary name and linked into place (link(2) fails if the lock exists), so a reader
 * never sees a lock half-written. A lock whose holder is gone — killed (-9), or from before a
 * reboot or power loss, even when a new process now has its pid — is taken over; a live holder is
 * waited for up to timeoutMs, then LockBusyError. onWait hears of the live holder once, when the
 * wait begins.
 */
export async function acquireLock(host: Host, hostPath: string, options: { timeoutMs: number; pollMs?: number; purpose: string; onWait?: (holder: LockHolder | undefined) => void }): Promise<Lock> {
  const file = await resolveInRoot(host.root, hostPath, { followFinal: false });
  await mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
  const started = host.clock.now();
  const me: LockHolder = {
    pid: process.pid,
    bootId: await machineBootId(),
    startTime: (await processStartTime(process.pid)) ?? '',
    hostname: os.hostname(),
    since: new Date(started).toISOString(),
    purpose: options.purpose,
    token: randomBytes(8).toString('hex'),
  };
  const poll = options.pollMs ?? 100;
  let told = false;
  // When the lock was first seen unreadable, and which file it was: garbage is only judged stale
  // once the same file has stayed unreadable for a poll.
  let unreadable: { since: number; ino: number } | undefined;
  for (;;) {
    if (await tryCreate(file, me)) {
      return {
        async release() {
          const holder = await readHolder(file);
          if (holder !== 'gone' && holder?.token === me.token) await rm(file, { force: true });
        },
      };
    }
    const ino = await inodeOf(file);
    if (ino === undefined) continue;
    const holder = await readHolder(file);
    // Released between the two looks. Counted as unreadable, it could be judged stale once a later
    // lock got the same inode number back (ext4 reuses a freed one at once): a live lock taken over
    // and two holders inside (the twelve-caller test, once in CI).
    if (holder === 'gone') continue;
    const now = host.clock.now();
    if (holder === undefined) {
      if (unreadable?.ino !== ino) unreadable = { since: now, ino };
    } else {
      unreadable = undefined;
    }
    const live = holder !== undefined && (await holds(holder));
    if (!live && (holder !== undefined || now - (unreadable?.since ?? now) > poll)) {
      await takeOver(file, ino);
      continue;
    }
    const waited = now - started;
    if (waited >= options.timeoutMs) throw new LockBusyError(hostPath, holder, waited);
    if (!told && live) {
      told = true;
      options.onWait?.(holder);
    }
    await host.clock.sleep(Math.min(poll, Math.max(1, options.timeoutMs - waited)));
  }
}

async function tryCreate(file: string, me: LockHolder): Promise<boolean> {
  const temp = `${file}.new-${me.token ?? ''}`;
  try {
    const handle = await open(temp, 'wx', 0o644);
    try {
      await handle.writeFile(JSON.stringify(me));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await link(temp, file);
    return true;
  } catch (err) {
    if (isErrno(err, 'EEXIST')) return false;
    throw err;
  } finally {
    await rm(temp, { force: true });
  }
}

async function inodeOf(file: string): Promise<number | undefined> {
  try {
    return (await lstat(file)).ino;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
}

/**
 * Moves a stale lock aside. Of two agents taking over the same stale lock only one rename
 * succeeds; if what was moved is not the file judged stale (another agent took over and locked in
 * between), it is put back.
 */
async function takeOver(file: string, staleIno: number): Promise<void> {
  const aside = `${file}.stale-${randomBytes(4).toString('hex')}`;
  try {
    await rename(file, aside);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return;
    throw err;
  }
  try {
    if ((await lstat(aside)).ino !== staleIno) await link(aside, file).catch(() => undefined);
  } finally {
    await rm(aside, { force: true });
  }
}
