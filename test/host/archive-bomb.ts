// Generates hostile tarballs for test/host/archive.test.ts and bench: a gzip bomb (one entry whose
// header and data claim `size` zero bytes, about 1000:1 compressed) and an entry-count bomb.
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { createGzip, constants } from 'node:zlib';

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

/** A ustar header for a regular file or directory. */
export function tarHeader(name: string, size: number, type: '0' | '5' = '0'): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(0o644, 8), 100);
  h.write(octal(0, 8), 108);
  h.write(octal(0, 8), 116);
  // sizes past 8 GiB would need base-256; the bombs stay below.
  h.write(octal(size, 12), 124);
  h.write(octal(0, 12), 136);
  h.write('        ', 148);
  h.write(type, 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(octal(sum, 7), 148);
  return h;
}

async function* zeros(bytes: number): AsyncGenerator<Buffer> {
  const block = Buffer.alloc(1024 * 1024);
  for (let left = bytes; left > 0; left -= block.length) yield left >= block.length ? block : block.subarray(0, left);
}

/** One file of `size` zero bytes, gzip -9: 1 GiB compresses to about 1 MB. */
export async function writeGzipBomb(file: string, size: number): Promise<void> {
  async function* body(): AsyncGenerator<Buffer> {
    yield tarHeader('payload/zeros', size);
    yield* zeros(size + ((512 - (size % 512)) % 512) + 1024);
  }
  await pipeline(Readable.from(body()), createGzip({ level: constants.Z_BEST_COMPRESSION }), createWriteStream(file));
}

/** `count` empty files. */
export async function writeEntryBomb(file: string, count: number): Promise<void> {
  async function* body(): AsyncGenerator<Buffer> {
    for (let i = 0; i < count; i++) yield tarHeader(`d/${i}`, 0);
    yield Buffer.alloc(1024);
  }
  await pipeline(Readable.from(body()), createGzip(), createWriteStream(file));
}
