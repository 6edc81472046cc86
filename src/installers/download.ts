// Artifacts: streamed into the cache under the state dir, sha256-verified before anything uses
// them, resumed with Range after an interrupted transfer, size-limited, retried with backoff.
import { FetchError, fetchInto } from '../host/download.ts';
import { hashFile, removePath, renamePath, statPath, touch } from '../host/files.ts';
import type { InstallContext } from './types.ts';
import { StepError } from './types.ts';
import { backoffDelay } from '../util/backoff.ts';

export class ChecksumError extends StepError {
  readonly expected: string;
  readonly actual: string;
  constructor(url: string, expected: string, actual: string) {
    super('fetch', `sha256 mismatch for ${url}: expected ${expected}, got ${actual}; nothing was installed`);
    this.expected = expected;
    this.actual = actual;
  }
}

export const artifactPath = (ctx: InstallContext, component: string, sha256: string): string => `${ctx.config.cacheRoot}/${component}/${sha256}`;

/** True when the verified artifact is in the cache. */
export async function haveArtifact(ctx: InstallContext, component: string, sha256: string): Promise<boolean> {
  return (await statPath(ctx.host, artifactPath(ctx, component, sha256)))?.type === 'file';
}

/**
 * Returns the host path of the verified artifact, downloading it when the cache lacks it.
 * Cached files are named by their sha256 and only renamed into place once verified.
 */
export async function ensureArtifact(ctx: InstallContext, component: string, url: string, sha256: string, maxBytes?: number): Promise<string> {
  try {
    return await cachedOrFetched(ctx, component, url, sha256, maxBytes);
  } finally {
    ctx.progress?.downloadEnd(component);
  }
}

async function cachedOrFetched(ctx: InstallContext, component: string, url: string, sha256: string, maxBytes: number | undefined): Promise<string> {
  const final = artifactPath(ctx, component, sha256);
  if ((await statPath(ctx.host, final))?.type === 'file') {
    const actual = await hashFile(ctx.host, final);
    if (actual === sha256) {
      await touch(ctx.host, final);
      return final;
    }
    ctx.log.warn({ component, file: final, actual }, 'Cached artifact is corrupt; downloading again');
    await removePath(ctx.host, final);
  }
  const partial = `${final}.partial`;
  const started = performance.now();
  const limit = maxBytes ?? ctx.config.maxDownloadBytes;
  let restartedAfterMismatch = false;
  const overall = ctx.config.downloadTimeoutMs;
  for (let attempt = 1; ; attempt++) {
    try {
      const result = await fetchInto(ctx.host, url, partial, {
        maxBytes: limit,
        idleTimeoutMs: ctx.config.idleTimeoutMs,
        deadlineMs: Math.max(1, Math.round(overall - (performance.now() - started))),
        ...(ctx.signal === undefined ? {} : { signal: ctx.signal }),
        ...(ctx.progress === undefined ? {} : { onProgress: (bytes: number, total: number | undefined) => ctx.progress?.download(component, bytes, total) }),
      });
      ctx.log.info({ component, url, bytes: result.bytes, resumedFrom: result.resumed ? result.startedAt : undefined, attempt }, 'Downloaded artifact');
      const actual = (await hashFile(ctx.host, partial)) ?? '';
      if (actual !== sha256) {
        await removePath(ctx.host, partial);
        // A resumed transfer may have joined two different files: one clean retry from zero.
        if (result.resumed && !restartedAfterMismatch) {
          restartedAfterMismatch = true;
          continue;
        }
        ctx.metrics?.downloaded(component, 'checksum_mismatch', performance.now() - started, 0);
        throw new ChecksumError(url, sha256, actual);
      }
      await renamePath(ctx.host, partial, final);
      ctx.metrics?.downloaded(component, 'ok', performance.now() - started, result.bytes);
      return final;
    } catch (err) {
      if (!(err instanceof FetchError)) throw err;
      const wait = backoffDelay(attempt - 1, ctx.config.backoffMs, 30_000);
      const outOfTime = performance.now() - started + wait >= overall;
      if (err.permanent || attempt >= ctx.config.downloadAttempts || ctx.signal?.aborted === true || outOfTime) {
        const why = outOfTime && !err.permanent ? ` (installers.downloadTimeout: ${overall}ms for all attempts)` : '';
        ctx.metrics?.downloaded(component, 'failed', performance.now() - started, 0);
        throw new StepError('fetch', `download failed after ${attempt} attempt${attempt === 1 ? '' : 's'}: ${err.message}${why}`, { cause: err });
      }
      ctx.log.warn({ component, url, attempt, bytes: err.bytes, retryInMs: Math.round(wait), err: err.message }, 'Download interrupted; will resume');
      await ctx.host.clock.sleep(wait, ctx.signal);
    }
  }
}
