import { open, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Host } from './host.ts';

export type WriteProbeResult =
  | { ok: true; durationMs: number }
  | { ok: false; code: string; message: string; durationMs: number };

/**
 * Proves a host directory is writable: creates a small file, writes it, fsyncs it and removes
 * it. Never call it from `check` (check is read-only). The errno code (EROFS, ENOSPC, EIO…) says why a write failed.
 */
export async function writeProbe(host: Host, hostDir: string): Promise<WriteProbeResult> {
  const started = performance.now();
  const file = path.join(host.path(hostDir), `.kubenode-write-probe-${process.pid}`);
  let created = false;
  try {
    const handle = await open(file, 'w', 0o600);
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
