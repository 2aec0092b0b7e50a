// Content hashing of source files, the one way a source file is opened for
// reading, and the guard that keeps uploaded bytes equal to the hash the
// ledger recorded.
//
// The ledger's intent records a file's SHA-256 before any byte is sent, and
// recovery trusts that hash to decide whether the destination holds the file.
// So every read here checks that the file did not change underneath it
// (stat before and after), and streamed uploads go through a verifying stream
// that refuses to deliver a complete body whose hash differs from the intent.
//
// Between the scan (an lstat) and the read, the file's name may be pointed at
// something else: a symbolic link to a file the run may read but should not
// send, a FIFO that would block a read forever. So `openSourceFile` opens
// without following a final symlink and without blocking (O_NOFOLLOW |
// O_NONBLOCK), then checks on the descriptor itself (fstat) that it is a
// regular file and the very file the scan saw (device and inode) or the plan
// recorded (size and mtime); anything else is HOLDFAST_E_SOURCE_CHANGED before
// a byte is read. Hashing, the small-file read, the streamed put and the
// multipart reader all open through it. Reads also give way to the run's
// abort signal: a read that never returns (a stuck network filesystem) is
// abandoned, not waited for.

import { createHash } from 'node:crypto';
import { constants, readlinkSync, type Stats } from 'node:fs';
import { open, realpath } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { sep } from 'node:path';
import { Readable, Transform } from 'node:stream';
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

/** What the caller knows the file to be: the scan's identity (dev, ino), the plan's size and mtime. Each is checked when given. */
export interface ExpectedSource {
  readonly size?: number;
  readonly mtimeMs?: number;
  readonly dev?: number;
  readonly ino?: number;
}

export interface OpenSourceOptions {
  /**
   * The run follows symbolic links (--follow-symlinks): the final name may be
   * one, so it is followed; identity and type are still checked on what was
   * opened. Default false: a symlink where the scan saw a file is refused.
   */
  readonly followSymlinks?: boolean;
  /** Abandons the open and the checks (HOLDFAST_E_CANCELLED) even if the filesystem never answers. */
  readonly signal?: AbortSignal | undefined;
  /**
   * The source root `path` lies under. Without followSymlinks, where the
   * system can tell (Linux /proc/self/fd), the opened file must be exactly
   * root + the rest of `path`: a folder below the root swapped for a symlink
   * after the scan leads elsewhere and is refused.
   */
  readonly root?: string | undefined;
}

const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0;
const O_NONBLOCK = constants.O_NONBLOCK ?? 0;

/** What an lstat/fstat type is, in words, for messages. */
function typeName(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

/**
 * `p`, or HOLDFAST_E_CANCELLED as soon as `signal` aborts. The operation
 * itself cannot be taken back from the threadpool; it is left to finish (or
 * not) on its own, and its result is ignored.
 */
export function abandonable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return p;
  if (signal.aborted) {
    p.catch(() => undefined);
    return Promise.reject(cancelledError(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(cancelledError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** Closes `fh`; after an abort a read may still hold it (FileHandle.close waits for it), so then without waiting. */
async function closeSource(fh: FileHandle, signal: AbortSignal | undefined): Promise<void> {
  const closing = fh.close().catch(() => undefined);
  if (signal?.aborted !== true) await closing;
}

const realRoots = new Map<string, Promise<string | undefined>>();

/** The root with its own symlinks resolved (a root may well be reached through one); cached per process. */
function realRoot(root: string): Promise<string | undefined> {
  let p = realRoots.get(root);
  if (p === undefined) {
    p = realpath(root).catch(() => undefined);
    realRoots.set(root, p);
  }
  return p;
}

/** Where the system says an open descriptor's file is (Linux); undefined where it cannot tell. */
export function descriptorPath(fd: number): string | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }
}

function checkExpected(path: string, st: Stats, expected: ExpectedSource): void {
  if (expected.dev !== undefined && expected.ino !== undefined && (st.dev !== expected.dev || st.ino !== expected.ino)) {
    throw changedError(path, `it is no longer the file the scan saw (device/inode ${st.dev}/${st.ino}, the scan saw ${expected.dev}/${expected.ino})`);
  }
  if (expected.dev === undefined && expected.ino !== undefined && st.ino !== expected.ino) {
    throw changedError(path, `it is no longer the file the scan saw (inode ${st.ino}, the scan saw ${expected.ino})`);
  }
  if (expected.size !== undefined && st.size !== expected.size) {
    throw changedError(path, `size is ${st.size}, expected ${expected.size}`);
  }
  if (expected.mtimeMs !== undefined && toMtimeMs(st) !== Math.floor(expected.mtimeMs)) {
    throw changedError(path, `mtime is ${toMtimeMs(st)}, expected ${Math.floor(expected.mtimeMs)}`);
  }
}

/**
 * Opens a source file for reading, the only way Holdfast does: without
 * following a final symlink (unless `followSymlinks`), without blocking (a
 * FIFO answers at once instead of waiting for a writer), and checked on the
 * descriptor: a regular file, with the identity, size and mtime given in
 * `expected`. Throws HOLDFAST_E_SOURCE_CHANGED when the name now leads to
 * something else (a symlink, a FIFO, another file), HOLDFAST_E_SOURCE_VANISHED
 * when it is gone, HOLDFAST_E_SOURCE_UNREADABLE for other errors,
 * HOLDFAST_E_CANCELLED when `signal` aborts. The caller closes the handle.
 */
export async function openSourceFile(path: string, expected: ExpectedSource = {}, opts: OpenSourceOptions = {}): Promise<{ fh: FileHandle; stats: Stats }> {
  const { signal } = opts;
  throwIfAborted(signal);
  const follow = opts.followSymlinks === true;
  let fh: FileHandle;
  const opening = open(path, constants.O_RDONLY | O_NONBLOCK | (follow ? 0 : O_NOFOLLOW));
  try {
    fh = await abandonable(opening, signal);
  } catch (e) {
    // Abandoned: should the open still succeed, close what it opens (not left to the garbage collector).
    if (signal?.aborted === true) opening.then((h) => h.close()).catch(() => undefined);
    const code = (e as NodeJS.ErrnoException).code;
    // O_NOFOLLOW on a symlink: ELOOP (Linux), EMLINK (FreeBSD), EFTYPE (NetBSD). A socket cannot be opened: ENXIO.
    if (code === 'ELOOP' || code === 'EMLINK' || code === 'EFTYPE') throw changedError(path, 'it is now a symbolic link (not followed)');
    if (code === 'ENXIO') throw changedError(path, 'it is now a socket or a device without a driver');
    throw classifyError(e, 'HOLDFAST_E_SOURCE_UNREADABLE', { path });
  }
  try {
    const stats = await abandonable(fh.stat(), signal);
    if (!stats.isFile()) {
      const what = typeName(stats);
      const hasExpectation = Object.values(expected).some((v) => v !== undefined);
      throw hasExpectation ? changedError(path, `it is now ${what}, not a regular file`) : new HoldfastError('HOLDFAST_E_SOURCE_UNREADABLE', { path, detail: `${what}, not a regular file` });
    }
    checkExpected(path, stats, expected);
    if (!follow && opts.root !== undefined) await checkUnderRoot(fh, path, opts.root);
    return { fh, stats };
  } catch (e) {
    await closeSource(fh, signal);
    throw classifyError(e, 'HOLDFAST_E_SOURCE_UNREADABLE', { path });
  }
}

/** The opened file must be root/<the rest of path> as the system sees it: no folder on the way was swapped for a symlink. */
async function checkUnderRoot(fh: FileHandle, path: string, root: string): Promise<void> {
  // Plain string work (this runs once per file sent): `path` is the scan's join(root, key).
  const prefix = root.endsWith(sep) ? root : root + sep;
  if (!path.startsWith(prefix)) return;
  const actual = descriptorPath(fh.fd);
  if (actual === undefined) return;
  const wanted = async (): Promise<string | undefined> => {
    const base = await realRoot(root);
    return base === undefined ? undefined : (base.endsWith(sep) ? base : base + sep) + path.slice(prefix.length);
  };
  let want = await wanted();
  if (want !== undefined && actual !== want) {
    // The cached real root may be stale (a long-running watch whose root symlink was re-pointed): ask once more.
    realRoots.delete(root);
    want = await wanted();
  }
  if (want !== undefined && actual !== want) {
    throw changedError(path, `it now leads to "${actual}", outside the scanned tree (a folder on the way was replaced by a symbolic link?)`);
  }
}

/** Reads into `buf` at `offset` from file `position`, giving way to `signal`. */
function readAt(fh: FileHandle, buf: Buffer, offset: number, length: number, position: number | null, signal: AbortSignal | undefined): Promise<number> {
  return abandonable(fh.read(buf, offset, length, position), signal).then((r) => r.bytesRead);
}

/**
 * Streams a file through SHA-256. Throws HOLDFAST_E_SOURCE_CHANGED when the
 * file changed while it was read (or is not what `expected*` describe),
 * HOLDFAST_E_SOURCE_VANISHED when it is gone, HOLDFAST_E_SOURCE_UNREADABLE
 * for other read errors, HOLDFAST_E_CANCELLED when `signal` aborts (a read
 * that does not return is abandoned).
 */
export async function hashFile(
  path: string,
  opts: { signal?: AbortSignal; expectedSize?: number; expectedMtimeMs?: number; expectedDev?: number; expectedIno?: number; followSymlinks?: boolean } = {},
): Promise<HashResult> {
  const { signal } = opts;
  const { fh, stats: before } = await openSourceFile(
    path,
    { size: opts.expectedSize, mtimeMs: opts.expectedMtimeMs, dev: opts.expectedDev, ino: opts.expectedIno },
    { signal, followSymlinks: opts.followSymlinks === true },
  );
  try {
    const hash = createHash('sha256');
    // One reused buffer per call; +1 so that a file that grew shows up as extra bytes.
    const buf = Buffer.allocUnsafe(Math.max(1, Math.min(HASH_CHUNK_BYTES, before.size + 1)));
    let total = 0;
    for (;;) {
      if (signal?.aborted) throw cancelledError(signal);
      const bytesRead = await readAt(fh, buf, 0, buf.length, null, signal);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      total += bytesRead;
      if (total > before.size) break;
    }
    const after = await abandonable(fh.stat(), signal);
    if (total !== before.size || !sameVersion(before, after)) {
      throw changedError(path, `read ${total} bytes of ${before.size}; size/mtime before ${before.size}/${before.mtimeMs}, after ${after.size}/${after.mtimeMs}`);
    }
    return { sha256: hash.digest('hex'), size: before.size, mtimeMs: toMtimeMs(before) };
  } catch (e) {
    throw classifyError(e, 'HOLDFAST_E_SOURCE_UNREADABLE', { path });
  } finally {
    await closeSource(fh, signal);
  }
}

/**
 * Reads a whole small file into memory once and hashes that buffer. Small
 * uploads send this very buffer, so the bytes sent are the bytes hashed.
 * `expected` is what the plan recorded; a different size or mtime, a name
 * that now leads to something else, or a change during the read, throws
 * HOLDFAST_E_SOURCE_CHANGED.
 */
export async function readSmallFile(
  path: string,
  expected: { size: number; mtimeMs: number },
  opts: OpenSourceOptions = {},
): Promise<{ buffer: Buffer; sha256: string }> {
  const { signal } = opts;
  const { fh, stats: before } = await openSourceFile(path, expected, opts);
  try {
    // Read one byte more than expected so growth is seen, not truncated away.
    const buffer = Buffer.allocUnsafe(expected.size + 1);
    let total = 0;
    while (total < buffer.length) {
      const bytesRead = await readAt(fh, buffer, total, buffer.length - total, null, signal);
      if (bytesRead === 0) break;
      total += bytesRead;
    }
    const after = await abandonable(fh.stat(), signal);
    if (total !== expected.size || !sameVersion(before, after)) {
      throw changedError(path, `read ${total} bytes of ${expected.size}`);
    }
    const body = buffer.subarray(0, total);
    return { buffer: body, sha256: createHash('sha256').update(body).digest('hex') };
  } catch (e) {
    throw classifyError(e, 'HOLDFAST_E_SOURCE_UNREADABLE', { path });
  } finally {
    await closeSource(fh, signal);
  }
}

/**
 * The first `expected.size` bytes of a source file as a stream, opened
 * through `openSourceFile` when the stream is first read (each call is a
 * fresh open, so a retried request reads from the start and is checked
 * again). Errors (changed, vanished, unreadable, cancelled) are the stream's.
 * A file that ends early is HOLDFAST_E_SOURCE_CHANGED; the caller's verifying
 * stream judges the content.
 */
export function sourceFileStream(path: string, expected: { size: number; mtimeMs?: number | undefined }, opts: OpenSourceOptions & { chunkBytes?: number } = {}): Readable {
  const { signal } = opts;
  const chunk = Math.max(1, opts.chunkBytes ?? HASH_CHUNK_BYTES);
  async function* read(): AsyncGenerator<Buffer> {
    const { fh } = await openSourceFile(path, { size: expected.size, mtimeMs: expected.mtimeMs }, opts);
    try {
      let position = 0;
      while (position < expected.size) {
        const buf = Buffer.allocUnsafe(Math.min(chunk, expected.size - position));
        const n = await readAt(fh, buf, 0, buf.length, position, signal);
        if (n === 0) throw changedError(path, `it ended after ${position} of ${expected.size} bytes`);
        position += n;
        yield n === buf.length ? buf : buf.subarray(0, n);
      }
    } catch (e) {
      throw classifyError(e, 'HOLDFAST_E_SOURCE_UNREADABLE', { path });
    } finally {
      await closeSource(fh, signal);
    }
  }
  return Readable.from(read(), { objectMode: false });
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
