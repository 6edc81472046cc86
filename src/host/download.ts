// Streams an artifact into a host file, appending to what an earlier attempt left (HTTP Range).
import { createReadStream } from 'node:fs';
import { mkdir, open, stat, truncate } from 'node:fs/promises';
import path from 'node:path';
import { AgentError } from '../errors.ts';
import { isErrno, type Host } from './host.ts';

export interface FetchOptions {
  /** Refuse more than this many bytes in total. */
  maxBytes: number;
  /** Abort when no byte arrives for this long. */
  idleTimeoutMs: number;
  signal?: AbortSignal;
}

export interface FetchResult {
  /** Size of the partial file now. */
  bytes: number;
  /** The server honoured a Range request and this attempt appended. */
  resumed: boolean;
  /** Offset this attempt started at. */
  startedAt: number;
}

export class FetchError extends AgentError {
  /** Retrying cannot help (404, size limit). */
  readonly permanent: boolean;
  readonly bytes: number;
  constructor(message: string, permanent: boolean, bytes: number, options?: { cause?: unknown }) {
    super('DOWNLOAD', message, options);
    this.permanent = permanent;
    this.bytes = bytes;
  }
}

async function sizeOf(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return 0;
    throw err;
  }
}

/**
 * One attempt: fetches `url` into the host file `partialHostPath`, resuming at its current size.
 * http(s) URLs ask for `Range: bytes=N-` (a 200 answer restarts from zero); file:/// URLs are host
 * paths, read under the root. Throws FetchError with the bytes kept so far; the caller retries.
 */
export async function fetchInto(host: Host, url: string, partialHostPath: string, options: FetchOptions): Promise<FetchResult> {
  const file = host.path(partialHostPath);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
  let offset = await sizeOf(file);
  if (offset > options.maxBytes) {
    await truncate(file, 0);
    offset = 0;
  }
  const parsed = new URL(url);
  let body: AsyncIterable<Uint8Array>;
  let resumed = false;
  let expectedTotal: number | undefined;
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(options.signal?.reason);
  options.signal?.addEventListener('abort', onAbort, { once: true });
  let idle: NodeJS.Timeout | undefined;
  const armIdle = (): void => {
    clearTimeout(idle);
    idle = setTimeout(() => controller.abort(new Error(`no data for ${options.idleTimeoutMs}ms`)), options.idleTimeoutMs);
  };
  try {
    armIdle();
    if (parsed.protocol === 'file:') {
      const source = host.path(decodeURIComponent(parsed.pathname));
      let total: number;
      try {
        total = (await stat(source)).size;
      } catch (err) {
        throw new FetchError(`${url}: ${isErrno(err, 'ENOENT') ? 'no such file' : String(err)}`, true, offset, { cause: err });
      }
      if (total > options.maxBytes) throw new FetchError(`${url}: ${total} bytes is over the limit of ${options.maxBytes}`, true, offset);
      if (offset > total) {
        await truncate(file, 0);
        offset = 0;
      }
      expectedTotal = total;
      resumed = offset > 0;
      body = createReadStream(source, { start: offset, signal: controller.signal });
    } else {
      let response: Response;
      try {
        response = await fetch(url, {
          headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
          signal: controller.signal,
          redirect: 'follow',
        });
      } catch (err) {
        throw new FetchError(`${url}: ${err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err)}`, false, offset, { cause: err });
      }
      if (response.status === 416 && offset > 0) {
        // Everything is already here (or the partial file is longer than the artifact).
        const total = Number(/\/(\d+)$/.exec(response.headers.get('content-range') ?? '')?.[1] ?? NaN);
        await response.body?.cancel();
        if (total === offset) return { bytes: offset, resumed: true, startedAt: offset };
        await truncate(file, 0);
        throw new FetchError(`${url}: range not satisfiable, restarting from zero`, false, 0);
      }
      if (response.status === 206 && offset > 0) {
        resumed = true;
        const total = Number(/\/(\d+)$/.exec(response.headers.get('content-range') ?? '')?.[1] ?? NaN);
        if (Number.isFinite(total)) expectedTotal = total;
      } else if (response.status === 200) {
        if (offset > 0) {
          await truncate(file, 0);
          offset = 0;
        }
        const length = Number(response.headers.get('content-length') ?? NaN);
        if (Number.isFinite(length)) expectedTotal = length;
      } else {
        await response.body?.cancel();
        const permanent = response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429;
        throw new FetchError(`${url}: HTTP ${response.status} ${response.statusText}`, permanent, offset);
      }
      if (expectedTotal !== undefined && expectedTotal > options.maxBytes) {
        await response.body?.cancel();
        throw new FetchError(`${url}: ${expectedTotal} bytes is over the limit of ${options.maxBytes}`, true, offset);
      }
      if (response.body === null) throw new FetchError(`${url}: empty response`, false, offset);
      body = response.body;
    }
    const handle = await open(file, offset === 0 ? 'w' : 'a', 0o600);
    let bytes = offset;
    try {
      for await (const chunk of body) {
        armIdle();
        bytes += chunk.byteLength;
        if (bytes > options.maxBytes) {
          throw new FetchError(`${url}: more than the limit of ${options.maxBytes} bytes`, true, bytes);
        }
        await handle.write(chunk);
      }
      await handle.sync();
    } catch (err) {
      await handle.sync().catch(() => undefined);
      if (err instanceof FetchError) {
        if (err.permanent) await truncate(file, 0).catch(() => undefined);
        throw err;
      }
      const reason = controller.signal.aborted && controller.signal.reason instanceof Error ? controller.signal.reason.message : err instanceof Error ? err.message : String(err);
      throw new FetchError(`${url}: transfer interrupted after ${bytes} bytes: ${reason}`, false, bytes, { cause: err });
    } finally {
      await handle.close();
    }
    if (expectedTotal !== undefined && bytes !== expectedTotal) {
      throw new FetchError(`${url}: connection closed after ${bytes} of ${expectedTotal} bytes`, false, bytes);
    }
    return { bytes, resumed, startedAt: offset };
  } finally {
    clearTimeout(idle);
    options.signal?.removeEventListener('abort', onAbort);
  }
}
