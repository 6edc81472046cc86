// Streams an artifact into a host file, appending to what an earlier attempt left (HTTP Range).
import { createReadStream, createWriteStream, ftruncateSync } from 'node:fs';
import { mkdir, open, stat, truncate, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { AgentError } from '../errors.ts';
import { isErrno, type Host } from './host.ts';
import { describeNetworkError, HttpError, httpRequest, type HttpResponse } from './http.ts';

export interface FetchOptions {
  /** Refuse more than this many bytes in total. */
  maxBytes: number;
  /** Abort when no byte arrives for this long. */
  idleTimeoutMs: number;
  /** Abort this attempt when it has not finished after this long, however steadily bytes arrive. */
  deadlineMs: number;
  signal?: AbortSignal;
  /** Told the bytes in the partial file as they arrive, and the artifact's size when the server said it. */
  onProgress?: (bytes: number, total: number | undefined) => void;
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
  let body: Readable;
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
  // Not permanent by itself: the caller decides whether its overall budget allows another attempt.
  const deadline = setTimeout(() => controller.abort(new Error(`not finished within ${options.deadlineMs}ms`)), options.deadlineMs);
  let response: HttpResponse | undefined;
  // Opened before the request, so that no await lies between the response and the listeners on its
  // body: a short body whose connection closes while we waited was destroyed unseen, and the
  // download hung past both of its timers. O_APPEND writes land at the end, also after a truncate.
  const handle = await open(file, 'a', 0o600);
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
        await handle.truncate(0);
        offset = 0;
      }
      expectedTotal = total;
      resumed = offset > 0;
      body = createReadStream(source, { start: offset, signal: controller.signal });
    } else {
      try {
        response = await httpRequest(url, { headers: offset > 0 ? { range: `bytes=${offset}-` } : {}, signal: controller.signal });
      } catch (err) {
        const permanent = err instanceof HttpError && err.permanent;
        throw new FetchError(permanent ? (err as Error).message : `${url}: ${abortReason(controller.signal) ?? describeNetworkError(err)}`, permanent, offset, { cause: err });
      }
      const contentRangeTotal = Number(/\/(\d+)$/.exec(response.headers['content-range'] ?? '')?.[1] ?? NaN);
      if (response.status === 416 && offset > 0) {
        // Everything is already here (or the partial file is longer than the artifact).
        if (contentRangeTotal === offset) return { bytes: offset, resumed: true, startedAt: offset };
        await handle.truncate(0);
        throw new FetchError(`${url}: range not satisfiable, restarting from zero`, false, 0);
      }
      if (response.status === 206 && offset > 0) {
        resumed = true;
        if (Number.isFinite(contentRangeTotal)) expectedTotal = contentRangeTotal;
      } else if (response.status === 200) {
        if (offset > 0) {
          ftruncateSync(handle.fd, 0);
          offset = 0;
        }
        const length = Number(response.headers['content-length'] ?? NaN);
        if (Number.isFinite(length)) expectedTotal = length;
      } else {
        const permanent = response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429;
        throw new FetchError(`${url}: HTTP ${response.status} ${response.statusText}`, permanent, offset);
      }
      if (expectedTotal !== undefined && expectedTotal > options.maxBytes) {
        throw new FetchError(`${url}: ${expectedTotal} bytes is over the limit of ${options.maxBytes}`, true, offset);
      }
      body = response.body;
    }
    let bytes = offset;
    try {
      await writeAll(body, handle, (chunk) => {
        armIdle();
        bytes += chunk.byteLength;
        if (bytes > options.maxBytes) throw new FetchError(`${url}: more than the limit of ${options.maxBytes} bytes`, true, bytes);
        options.onProgress?.(bytes, expectedTotal);
      });
    } catch (err) {
      bytes = (await handle.stat()).size;
      if (err instanceof FetchError) {
        if (err.permanent) await handle.truncate(0).catch(() => undefined);
        throw new FetchError(err.message, err.permanent, bytes);
      }
      const reason = abortReason(controller.signal) ?? describeNetworkError(err);
      throw new FetchError(`${url}: transfer interrupted after ${bytes} bytes: ${reason}`, false, bytes, { cause: err });
    }
    if (expectedTotal !== undefined && bytes !== expectedTotal) {
      throw new FetchError(`${url}: connection closed after ${bytes} of ${expectedTotal} bytes`, false, bytes);
    }
    return { bytes, resumed, startedAt: offset };
  } finally {
    clearTimeout(idle);
    clearTimeout(deadline);
    response?.body.destroy();
    await handle.close();
    options.signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * Writes a body into the file as it arrives, pausing the body only while the disk is behind. Every
 * byte that arrived is on disk (and synced) when this settles, also when the transfer breaks off:
 * a body read at the disk's pace would lose what was still buffered when the connection dropped.
 * `check` sees every chunk first and may throw to stop the transfer.
 */
function writeAll(body: Readable, handle: FileHandle, check: (chunk: Buffer) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const out = createWriteStream('', { fd: handle.fd, autoClose: false });
    let failure: unknown;
    let ending = false;
    const end = (err?: unknown): void => {
      failure ??= err;
      if (ending) return;
      ending = true;
      body.off('data', onData);
      out.end();
    };
    const onData = (chunk: Buffer): void => {
      try {
        check(chunk);
      } catch (err) {
        end(err);
        body.destroy();
        return;
      }
      if (!out.write(chunk)) body.pause();
    };
    body.on('data', onData);
    out.on('drain', () => {
      if (!ending) body.resume();
    });
    body.once('end', () => end());
    body.once('error', (err) => end(err));
    body.once('close', () => end(body.readableEnded ? undefined : new Error('the server closed the connection')));
    out.once('error', (err) => {
      failure ??= err;
      reject(failure);
    });
    out.once('finish', () => {
      handle.sync().then(
        () => (failure === undefined ? resolve() : reject(failure)),
        (err: unknown) => reject(failure ?? err),
      );
    });
  });
}

function abortReason(signal: AbortSignal): string | undefined {
  if (!signal.aborted) return undefined;
  return signal.reason instanceof Error ? signal.reason.message : String(signal.reason);
}
