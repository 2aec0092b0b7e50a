// Content hashing of source files, and the guard that keeps uploaded bytes
// equal to the hash the ledger recorded.
//
// The ledger's intent records a file's SHA-256 before any byte is sent, and
// recovery trusts that hash to decide whether the destination holds the file.
// So every read here checks that the file did not change underneath it
// (stat before and after), and streamed uploads go through a verifying stream
// that refuses to deliver a complete body whose hash differs from the intent.

import { createHash } from 'node:crypto';
import type { Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { HoldfastError, cancelledError, classifyError, throwIfAborted } from '../core/errors.js';

/** Read size for hashing: large reads keep syscalls few on multi-GiB files. */
export const HASH_CHUNK_BYTES = 1024 * 1024;

export interface HashResult {
  /** Lowercase hex SHA-256 of the whole content. */
  readonly sha256: string;
  readonly size: number;
  /** Whole milliseconds, as the walker reports them (see `toMtimeMs`). */
  readonly mtimeMs: number;
}

/**
 * File times as Holdfast stores them: whole milliseconds. Both ledger
 * dialects then hold them exactly (an integer column in PostgreSQL could not
 * take a fraction), so "mtime equal" means the same thing everywhere.
 */
export function toMtimeMs(stats: Pick<Stats, 'mtimeMs'>): number {
  return Math.floor(stats.mtimeMs);
}

function changedError(path: string, detail: string): HoldfastError {
  return new HoldfastError('HOLDFAST_E_SOURCE_CHANGED', { path, detail });
}

/** Same file version: size and full-precision mtime (sub-millisecond when the filesystem has it). */
function sameVersion(a: Stats, b: Stats): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino;
}

async function openForRead(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (e) {
    throw classifyError(e, 'HOLDFAST_E_SOURCE_UNREADABLE', { path });
  }
}

function checkExpected(path: string, st: Stats, expected: { size?: number; mtimeMs?: number }): void {
  if (expected.size !== undefined && st.size !== expected.size) {
    throw changedError(path, `size is ${st.size}, expected ${expected.size}`);
  }
  if (expected.mtimeMs !== undefined && toMtimeMs(st) !== Math.floor(expected.mtimeMs)) {
    throw changedError(path, `mtime is ${toMtimeMs(st)}, expected ${Math.floor(expected.mtimeMs)}`);
  }
}

/**
 * Streams a file through SHA-256. Throws HOLDFAST_E_SOURCE_CHANGED when the
 * file changed while it was read (or does not have `expectedSize` /
 * `expectedMtimeMs`), HOLDFAST_E_SOURCE_VANISHED when it is gone,
 * HOLDFAST_E_SOURCE_UNREADABLE for other read errors, HOLDFAST_E_CANCELLED
 * when `signal` aborts.
 */
export async function hashFile(
  path: string,
  opts: { signal?: AbortSignal; expectedSize?: number; expectedMtimeMs?: number } = {},
): Promise<HashResult> {
  throwIfAborted(opts.signal);
  const fh = await openForRead(path);
  try {
    const before = await fh.stat();
    if (!before.isFile()) throw new HoldfastError('HOLDFAST_E_SOURCE_UNREADABLE', { path, detail: 'not a regular file' });
    checkExpected(path, before, { size: opts.expectedSize, mtimeMs: opts.expectedMtimeMs });
    const hash = createHash('sha256');
    // One reused buffer per call; +1 so that a file that grew shows up as extra bytes.
    const buf = Buffer.allocUnsafe(Math.max(1, Math.min(HASH_CHUNK_BYTES, before.size + 1)));
    let total = 0;
    for (;;) {
      if (opts.signal?.aborted) throw cancelledError(opts.signal);
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      total += bytesRead;
      if (total > before.size) break;
    }
    const after = await fh.stat();
    if (total !== before.size || !sameVersion(before, after)) {
      throw changedError(path, `read ${total} bytes of ${before.size}; size/mtime before ${before.size}/${before.mtimeMs}, after ${after.size}/${after.mtimeMs}`);
    }
    return { sha256: hash.digest('hex'), size: before.size, mtimeMs: toMtimeMs(before) };
  } catch (e) {
    throw classifyError(e, 'HOLDFAST_E_SOURCE_UNREADABLE', { path });
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/**
 * Reads a whole small file into memory once and hashes that buffer. Small
 * uploads send this very buffer, so the bytes sent are the bytes hashed.
 * `expected` is what the scan saw; a different size or mtime, or a change
 * during the read, throws HOLDFAST_E_SOURCE_CHANGED.
 */
export async function readSmallFile(path: string, expected: { size: number; mtimeMs: number }): Promise<{ buffer: Buffer; sha256: string }> {
  const fh = await openForRead(path);
  try {
    const before = await fh.stat();
    if (!before.isFile()) throw new HoldfastError('HOLDFAST_E_SOURCE_UNREADABLE', { path, detail: 'not a regular file' });
    checkExpected(path, before, expected);
    // Read one byte more than expected so growth is seen, not truncated away.
    const buffer = Buffer.allocUnsafe(expected.size + 1);
    let total = 0;
    while (total < buffer.length) {
      const { bytesRead } = await fh.read(buffer, total, buffer.length - total, null);
      if (bytesRead === 0) break;
      total += bytesRead;
    }
    const after = await fh.stat();
    if (total !== expected.size || !sameVersion(before, after)) {
      throw changedError(path, `read ${total} bytes of ${expected.size}`);
    }
    const body = buffer.subarray(0, total);
    return { buffer: body, sha256: createHash('sha256').update(body).digest('hex') };
  } catch (e) {
    throw classifyError(e, 'HOLDFAST_E_SOURCE_UNREADABLE', { path });
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/**
 * A pass-through that hashes what flows through it and holds back the last
 * chunk until the digest is known. If the byte count or the SHA-256 differs
 * from the expectation, it errors with HOLDFAST_E_SOURCE_CHANGED without
 * emitting that chunk, so the consumer (an HTTP body with a fixed
 * Content-Length, a temp file about to be renamed) never receives a complete
 * body that contradicts the hash recorded in the intent. Growth past
 * `expectedSize` errors at once, before the excess is passed on.
 */
export function createVerifyingStream(expectedSha256: string, expectedSize: number, opts: { path?: string } = {}): Transform {
  const hash = createHash('sha256');
  const path = opts.path ?? '(stream)';
  let received = 0;
  let held: Buffer | undefined;
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      if (chunk.length === 0) return cb();
      received += chunk.length;
      if (received > expectedSize) {
        return cb(changedError(path, `more than the expected ${expectedSize} bytes`));
      }
      hash.update(chunk);
      const prev = held;
      held = chunk;
      cb(null, prev);
    },
    flush(cb: TransformCallback) {
      if (received !== expectedSize) {
        return cb(changedError(path, `${received} bytes, expected ${expectedSize}`));
      }
      const digest = hash.digest('hex');
      if (digest !== expectedSha256.toLowerCase()) {
        return cb(changedError(path, `SHA-256 ${digest}, expected ${expectedSha256}`));
      }
      cb(null, held);
    },
  });
}
