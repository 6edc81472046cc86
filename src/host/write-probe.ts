import { open, readdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Host } from './host.ts';
import { resolveInRoot } from './jail.ts';

export type WriteProbeResult =
  | { ok: true; durationMs: number }
  | { ok: false; code: string; message: string; durationMs: number };

const PROBE_NAME = /^\.kubenode-write-probe-[0-9]+$/;
/** Directories whose leftover probe files (a kill -9 mid-probe) this process has removed. */
const swept = new Set<string>();

async function sweepOnce(dir: string): Promise<void> {
  if (swept.has(dir)) return;
  swept.add(dir);
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (PROBE_NAME.test(name)) await unlink(path.join(dir, name)).catch(() => undefined);
  }
}

/**
 * Proves a host directory is writable: creates a small file, writes it, fsyncs it and removes
 * it. Never call it from `check` (check is read-only). The errno code (EROFS, ENOSPC, EIO…) says why a write failed.
 */
export async function writeProbe(host: Host, hostDir: string): Promise<WriteProbeResult> {
  const started = performance.now();
  let created = false;
  let file = '';
  try {
    const dir = await resolveInRoot(host.root, hostDir, { followFinal: true });
    await sweepOnce(dir);
    file = path.join(dir, `.kubenode-write-probe-${process.pid}`);
    // O_EXCL: never opens through a link planted under the probe's name.
    const handle = await open(file, 'wx', 0o600);
    created = true;
    try {
      await handle.writeFile(`kubenode-agent write probe ${new Date().toISOString()}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await unlink(file);
    created = false;
    return { ok: true, durationMs: performance.now() - started };
  } catch (err) {
    const code = typeof (err as { code?: unknown }).code === 'string' ? ((err as { code: string }).code) : 'UNKNOWN';
    if (created) await unlink(file).catch(() => undefined);
    return { ok: false, code, message: err instanceof Error ? err.message : String(err), durationMs: performance.now() - started };
  }
}
