// Body sources for `Backend.put`: something that can be opened again, so a
// retried request reads the bytes from the start instead of from wherever a
// failed attempt left a stream.

import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import type { BodySource } from './backend.js';

/**
 * The first `size` bytes of the file at `path`. Each `open()` is a fresh read
 * stream; reading stops at `size` even if the file has grown since it was
 * hashed (the caller's verifying stream detects a file that shrank or changed).
 */
export function fileBody(path: string, size: number): BodySource {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`fileBody: invalid size ${size}`);
  return {
    size,
    open(): Readable {
      // createReadStream's `end` is inclusive and cannot express "zero bytes",
      // so an empty body is an empty stream rather than a read of the file.
      if (size === 0) return Readable.from([], { objectMode: false });
      return createReadStream(path, { start: 0, end: size - 1, highWaterMark: 256 * 1024 });
    },
  };
}

/** A body held in memory (small objects, tests). */
export function bufferBody(buf: Buffer | Uint8Array | string): BodySource {
  const data = typeof buf === 'string' ? Buffer.from(buf, 'utf8') : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  return {
    size: data.length,
    open(): Readable {
      // One chunk, not objectMode: consumers count bytes by chunk length.
      return Readable.from(data.length === 0 ? [] : [data], { objectMode: false });
    },
  };
}
