// Undo records: before a step of an apply run changes the host, what it will touch is recorded in
// the journal as it was (absent, a file kept as a backup, a symlink target, a package version).
// A failed first install, which has no last good spec to converge back to, replays these records
// in reverse; a failed upgrade replays the ones its last good spec does not manage. Each record is
// marked done in the journal once undone, so a kill -9 during the cleanup resumes it on restart.
import path from 'node:path';
import { listDir, readBytes, readLink, removePath, removeTempSiblings, statPath, swapSymlink, writeFileAtomicOwned } from '../host/files.ts';
import { errorMessage } from '../errors.ts';
import { crashPoint, type Journal } from './journal.ts';
import { isOwned } from './owned.ts';
import { removeVersion } from './sources/common.ts';
import { sources } from './sources/index.ts';
import { systemctlLive } from './systemd.ts';
import { execFailure } from '../errors.ts';
import type { Prior, Touch, UndoRecord } from './state.ts';
import type { InstallContext, Step } from './types.ts';

export const undoDir = (stateDir: string, component: string): string => `${stateDir}/installers/undo/${component}`;

/** Identity of what a touch changes, to match records against what a spec manages. */
export const touchKey = (t: Touch): string => (t.kind === 'package' ? `package:${t.source}:${t.name}` : `path:${t.path}`);

/** Ancestors of a host path that do not exist yet, outermost first (what a write would create). */
async function missingDirs(ctx: InstallContext, hostPath: string): Promise<string[]> {
  const out: string[] = [];
  for (let dir = path.dirname(hostPath); dir !== '/' && dir !== '.'; dir = path.dirname(dir)) {
    if ((await statPath(ctx.host, dir)) !== undefined) break;
    out.unshift(dir);
  }
  return out;
}

async function capturePath(ctx: InstallContext, hostPath: string, backup: string): Promise<Prior> {
  const info = await statPath(ctx.host, hostPath);
  if (info === undefined) return { type: 'absent', createdDirs: await missingDirs(ctx, hostPath) };
  if (info.type === 'symlink') return { type: 'symlink', target: (await readLink(ctx.host, hostPath)) ?? '' };
  if (info.type !== 'file') return { type: 'other' };
  const bytes = await readBytes(ctx.host, hostPath);
  if (bytes === undefined) return { type: 'absent', createdDirs: [] };
  await writeFileAtomicOwned(ctx.host, backup, bytes, { mode: 0o600 });
  return { type: 'file', backup, mode: info.mode, uid: info.uid, gid: info.gid };
}

/**
 * Records, before a step runs, how each thing it touches is now. The first record of a thing in a
 * run wins: after a crash the step runs again over its own half-done work, which is not "before".
 */
export async function recordPriors(ctx: InstallContext, journal: Journal, step: Step): Promise<void> {
  if (step.touches === undefined) return;
  const records = (journal.data.undo ??= []);
  const seen = new Set(records.map((r) => touchKey(r.touch)));
  let added = false;
  for (const touch of await step.touches()) {
    const key = touchKey(touch);
    if (seen.has(key)) continue;
    seen.add(key);
    let prior: Prior;
    if (touch.kind === 'package') {
      const version = await sources[touch.source].packages?.installed(ctx, touch.name);
      prior = { type: 'package', ...(version === undefined ? {} : { version }) };
    } else {
      prior = await capturePath(ctx, touch.path, `${undoDir(ctx.config.stateDir, journal.data.component)}/${records.length}`);
    }
    records.push({ touch, prior });
    added = true;
  }
  if (added) await journal.save();
}

async function removeCreatedDirs(ctx: InstallContext, dirs: readonly string[]): Promise<void> {
  for (const dir of [...dirs].reverse()) {
    await removeTempSiblings(ctx.host, dir);
    // Only if empty: something else may have put a file there meanwhile.
    if ((await statPath(ctx.host, dir))?.type === 'dir' && (await listDir(ctx.host, dir)).length === 0) await removePath(ctx.host, dir);
  }
}

async function restorePath(ctx: InstallContext, component: string, hostPath: string, prior: Prior): Promise<void> {
  switch (prior.type) {
    case 'absent':
      // A version directory leaves by rename-aside and its ownership record goes with it.
      if (await isOwned(ctx, component, hostPath)) await removeVersion(ctx, component, hostPath);
      else await removePath(ctx.host, hostPath);
      await removeTempSiblings(ctx.host, path.dirname(hostPath));
      await removeCreatedDirs(ctx, prior.createdDirs);
      return;
    case 'file': {
      const bytes = await readBytes(ctx.host, prior.backup);
      if (bytes === undefined) throw new Error(`backup ${prior.backup} of ${hostPath} is missing`);
      await writeFileAtomicOwned(ctx.host, hostPath, bytes, { mode: prior.mode, uid: prior.uid, gid: prior.gid });
      return;
    }
    case 'symlink':
      if ((await readLink(ctx.host, hostPath)) !== prior.target) await swapSymlink(ctx.host, hostPath, prior.target);
      return;
    default:
      return;
  }
}

async function undoOne(ctx: InstallContext, journal: Journal, record: UndoRecord): Promise<void> {
  const { touch, prior } = record;
  if (touch.kind === 'package') {
    if (prior.type !== 'package') return;
    const pm = sources[touch.source].packages;
    if (pm === undefined) return;
    const now = await pm.installed(ctx, touch.name);
    if (now === undefined || now === prior.version) return;
    if (prior.version !== undefined) throw new Error(`${touch.name} ${prior.version} was installed before and cannot be reinstalled (its package is not at hand); ${now} is left in place`);
    await pm.remove(ctx, touch.name);
    return;
  }
  if (touch.kind === 'unit') {
    if (!journal.data.pending.reload) {
      // Persisted before the unit file changes, so a crash in between still ends in a daemon-reload.
      journal.data.pending.reload = true;
      await journal.save();
    }
    if (prior.type === 'absent') {
      // The unit came with this run and may have been started by it: stop it before it disappears.
      const r = await systemctlLive(ctx, ['stop', touch.name], 'cleanup');
      const failure = r === 'skipped' ? undefined : execFailure(r);
      if (failure !== undefined) ctx.log.warn({ step: 'cleanup', unit: touch.name, err: failure.message }, 'Stopping a unit this run created failed');
    }
  }
  await restorePath(ctx, journal.data.component, touch.path, prior);
}

/**
 * Undoes the journal's records in reverse order, skipping those whose key is in `keep` (managed by
 * the spec converged back to). Returns what could not be undone; those are reported, not retried.
 */
export async function undoRecords(ctx: InstallContext, journal: Journal, keep: ReadonlySet<string>): Promise<string[]> {
  const records = journal.data.undo ?? [];
  const problems: string[] = [];
  for (let i = records.length - 1; i >= 0; i--) {
    const record = records[i] as UndoRecord;
    if (record.done === true) continue;
    if (!keep.has(touchKey(record.touch))) {
      try {
        await undoOne(ctx, journal, record);
        ctx.log.info({ step: 'cleanup', touch: touchKey(record.touch), prior: record.prior.type }, 'Undid what the failed run changed');
      } catch (err) {
        problems.push(`${touchKey(record.touch)}: ${errorMessage(err)}`);
      }
    }
    record.done = true;
    await journal.save();
    crashPoint(`undo ${touchKey(record.touch)}`);
  }
  if (journal.data.pending.reload) {
    const r = await systemctlLive(ctx, ['daemon-reload'], 'cleanup');
    const failure = r === 'skipped' ? undefined : execFailure(r);
    if (failure !== undefined) problems.push(failure.message);
    journal.data.pending.reload = false;
    await journal.save();
    crashPoint('cleanup daemon-reload');
  }
  return problems;
}

/** Keys of everything a spec's steps manage. */
export async function managedKeys(steps: readonly Step[]): Promise<Set<string>> {
  const keys = new Set<string>();
  for (const step of steps) for (const t of (await step.touches?.()) ?? []) keys.add(touchKey(t));
  return keys;
}
