import { writeInPlace } from '../../host/cleanup.ts';
import type { RemedyAction } from '../types.ts';

const FILE = '/proc/sys/vm/drop_caches';

/** Frees clean page cache, dentries and inodes ("3"); dirty pages are untouched, so nothing is lost. */
export const dropCaches: RemedyAction = {
  name: 'drop-caches',
  risk: 'safe',
  description: 'Drop the page cache, dentries and inodes (echo 3 > /proc/sys/vm/drop_caches)',
  async plan() {
    return { action: this.name, risk: this.risk, steps: ['sync', `write 3 to ${FILE}`] };
  },
  async stillNeeded(ctx) {
    return (await ctx.host.exists(FILE)) ? { needed: true, why: `${FILE} is present` } : { needed: false, why: `${FILE} does not exist on this host` };
  },
  async execute(ctx) {
    // sync first so more of the cache is clean and droppable; a missing sync is not fatal.
    await ctx.host.exec(['sync'], { timeoutMs: ctx.settings.commandTimeoutMs });
    await writeInPlace(ctx.host, FILE, '3\n');
    return { ok: true, message: 'page cache dropped' };
  },
};
