import { removeOlderThan } from '../../host/cleanup.ts';
import { durationWithin, expectedDuration, type DurationBounds } from '../../util/duration.ts';
import { ActionParamError, type ActionContext, type ActionParams, type RemedyAction } from '../types.ts';
import { ExecError } from '../../errors.ts';

const NAME = 'clean-disk';
/** Files younger than a minute may still be being written; a year is as old as "old" needs to be. */
const OLDER_THAN: DurationBounds = { min: '1m', max: '8760h' };

function targets(ctx: ActionContext, params: ActionParams): { path: string; olderThanMs: number }[] {
  // NodeRemedier params are a string map: one path and olderThan per step.
  if (params.path !== undefined) return targets(ctx, { paths: [{ path: params.path, olderThan: params.olderThan ?? '72h' }] });
  if (params.paths === undefined) return [...ctx.settings.cleanPaths];
  if (!Array.isArray(params.paths)) throw new ActionParamError(NAME, 'paths', 'expected a list of { path, olderThan }');
  return params.paths.map((entry: unknown, i) => {
    const e = entry as { path?: unknown; olderThan?: unknown };
    if (typeof e.path !== 'string' || !e.path.startsWith('/') || e.path === '/') throw new ActionParamError(NAME, `paths[${i}].path`, 'expected an absolute directory other than /');
    const ms = durationWithin(e.olderThan, OLDER_THAN);
    if (ms === undefined) throw new ActionParamError(NAME, `paths[${i}].olderThan`, `expected ${expectedDuration(OLDER_THAN)}, got ${JSON.stringify(e.olderThan)}`);
    return { path: e.path, olderThanMs: ms };
  });
}

function journalSize(ctx: ActionContext, params: ActionParams): string {
  const size = params.journalMaxSize ?? ctx.settings.journalMaxSize;
  if (typeof size !== 'string' || !/^[0-9]+[KMGT]?$/.test(size)) throw new ActionParamError(NAME, 'journalMaxSize', `expected a size such as 500M, got ${JSON.stringify(size)}`);
  return size;
}

/** Unused images, old journal files and configured scratch paths: all things the node recreates or does not need. */
export const cleanDisk: RemedyAction = {
  name: NAME,
  risk: 'safe',
  description: 'Free disk: crictl rmi --prune, journalctl --vacuum-size, configured paths by age',
  async plan(ctx, params) {
    try {
      return {
        action: NAME,
        risk: this.risk,
        steps: [
          'crictl rmi --prune (unused images)',
          `journalctl --vacuum-size=${journalSize(ctx, params)}`,
          ...targets(ctx, params).map((t) => `remove files under ${t.path} older than ${Math.round(t.olderThanMs / 3_600_000)}h`),
        ],
      };
    } catch (err) {
      return { action: NAME, risk: this.risk, steps: [], blocked: (err as Error).message };
    }
  },
  async stillNeeded() {
    // Cheap and idempotent: whether space is still short is the triggering condition's job.
    return { needed: true, why: 'cleanup is idempotent' };
  },
  async execute(ctx, params) {
    const done: string[] = [];
    const failed: string[] = [];
    const opts = { timeoutMs: ctx.settings.commandTimeoutMs };
    const prune = await ctx.host.exec(['crictl', 'rmi', '--prune'], opts);
    if (prune.notFound) done.push('crictl absent: images skipped');
    else if (prune.exitCode === 0) done.push('images pruned');
    else failed.push(new ExecError(prune).message);
    const vacuum = await ctx.host.exec(['journalctl', `--vacuum-size=${journalSize(ctx, params)}`], opts);
    if (vacuum.notFound) done.push('journalctl absent: journal skipped');
    else if (vacuum.exitCode === 0) done.push('journal vacuumed');
    else failed.push(new ExecError(vacuum).message);
    for (const t of targets(ctx, params)) {
      try {
        const removed = await removeOlderThan(ctx.host, t.path, t.olderThanMs, ctx.host.clock.now());
        done.push(`${t.path}: ${removed.length} files, ${removed.reduce((n, r) => n + r.bytes, 0)} bytes`);
      } catch (err) {
        failed.push(`${t.path}: ${(err as Error).message}`);
      }
    }
    return failed.length === 0 ? { ok: true, message: done.join('; ') } : { ok: false, message: [...failed, ...done].join('; ') };
  },
};
