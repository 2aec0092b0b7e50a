// Bodies of requests and responses. For `Backend.put`: sources that can be
// opened again, so a retried request reads the bytes from the start instead of
// from wherever a failed attempt left a stream, and the guard that stands
// between such a source and an SDK's request. For parts and ranged reads: a
// buffer sent with progress, a response cut to the range asked for.

import { createReadStream } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { cancelledError, classifyError, HoldfastError } from '../core/errors.js';
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

/** A stream of `buf` in 64 KiB slices, counting bytes for progress (a part body whose progress the SDK does not report). */
export function bufferStream(buf: Buffer, onProgress: (sent: number) => void): Readable {
  const CHUNK = 64 * 1024;
  let sent = 0;
  return Readable.from(
    (function* slices() {
      for (let off = 0; off < buf.length; off += CHUNK) {
        const slice = buf.subarray(off, Math.min(off + CHUNK, buf.length));
        sent += slice.length;
        onProgress(sent);
        yield slice;
      }
    })(),
    { objectMode: false },
  );
}

/**
 * At most the first `bytes` bytes of `body` (a ranged download from a server
 * that sent more than was asked for); an error of `body` before they are
 * through is passed on.
 */
export function limitBytes(body: Readable, bytes: number): Readable {
  let left = bytes;
  const limit = new Transform({
    transform(chunk: Buffer, _enc, cb): void {
      if (left <= 0) return cb();
      const part = chunk.length <= left ? chunk : chunk.subarray(0, left);
      left -= part.length;
      cb(null, part);
      // Stop reading what we would only throw away.
      if (left <= 0) {
        this.end();
        body.destroy();
      }
    },
  });
  body.on('error', (e) => {
    if (left > 0) limit.destroy(e);
  });
  return body.pipe(limit);
}

// ---- the guard between a put body and an SDK request -------------------------

/** Links an optional outer signal to a fresh controller; `dispose()` removes the listener. */
function linkedController(outer: AbortSignal | undefined): { readonly controller: AbortController; readonly dispose: () => void } {
  const controller = new AbortController();
  if (outer === undefined) return { controller, dispose: () => undefined };
  const onAbort = (): void => controller.abort(outer.reason);
  if (outer.aborted) onAbort();
  else outer.addEventListener('abort', onAbort, { once: true, signal: controller.signal });
  return { controller, dispose: () => outer.removeEventListener('abort', onAbort) };
}

export interface GuardOptions {
  /** The declared size: a body with more or fewer bytes fails with HOLDFAST_E_SOURCE_CHANGED. */
  readonly size: number;
  /** The caller's signal. */
  readonly signal?: AbortSignal;
  /** Called with the cumulative number of bytes passed on to the request. */
  readonly onProgress?: (sentBytes: number) => void;
  /**
   * Hold back the latest chunk until the next one arrives or the body ends
   * cleanly (default true); see `guardBody`. False where the request's own
   * framing already keeps a failed body from being stored.
   */
  readonly holdBackLast?: boolean;
}

/** A put body on its way into an SDK request; see `guardBody`. */
export interface GuardedBody {
  /** What to give the SDK as the request body. */
  readonly stream: Readable;
  /** What to give the SDK as its abort signal: aborted by the caller's signal or by a failing body. */
  readonly signal: AbortSignal;
  /** The body's own failure (unreadable, changed, not the declared size) as a HoldfastError; undefined while it has not failed. */
  bodyError(): HoldfastError | undefined;
  /**
   * Why a request failed when the destination is not to blame:
   * HOLDFAST_E_CANCELLED if the caller's signal fired, else `bodyError()`.
   */
  failure(): HoldfastError | undefined;
  /** After a request that succeeded: throws HOLDFAST_E_SOURCE_CHANGED unless every declared byte was passed on. */
  assertAllSent(): void;
  /** Removes the signal listener, destroys both streams and waits for the body to settle. Call in `finally`. */
  dispose(): Promise<void>;
}

/**
 * Opens `body` for a put of `key` whose request an SDK streams with `pipe()`.
 *
 * `pipe()` does not forward errors: a failing body would leave the request
 * waiting for bytes forever. So a body error aborts the request through our
 * own controller (`signal`), linked to the caller's.
 *
 * The stream holds back the latest chunk until the next one arrives or the
 * body ends cleanly: a body that fails at its very end (a verifier that finds
 * the hash wrong after the last byte) then never delivers the full
 * Content-Length, so the server cannot store a complete, wrong object. It also
 * enforces the declared size: Node does not check an outgoing Content-Length,
 * and a short body would leave the request hanging.
 */
export function guardBody(key: string, body: BodySource, opts: GuardOptions): GuardedBody {
  const holdBackLast = opts.holdBackLast ?? true;
  const { controller, dispose } = linkedController(opts.signal);
  const source = body.open();
  let sent = 0;
  let received = 0;
  let bodyError: unknown;
  const sizeMismatch = (): HoldfastError =>
    new HoldfastError('HOLDFAST_E_SOURCE_CHANGED', { path: key, detail: `expected ${opts.size} bytes, the body had ${received}` });
  let held: Buffer | undefined;
  const pass = (self: Transform, chunk: Buffer): void => {
    sent += chunk.length;
    self.push(chunk);
    opts.onProgress?.(sent);
  };
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb): void {
      received += chunk.length;
      if (received > opts.size) return cb(sizeMismatch());
      if (!holdBackLast) {
        pass(this, chunk);
        return cb();
      }
      if (held !== undefined) pass(this, held);
      held = chunk;
      cb();
    },
    flush(cb): void {
      if (received !== opts.size) return cb(sizeMismatch());
      if (held !== undefined) pass(this, held);
      held = undefined;
      cb();
    },
  });
  const piping = pipeline(source, counter).catch((e: unknown) => {
    if (bodyError === undefined && !controller.signal.aborted) {
      bodyError = e;
      controller.abort(e);
    }
  });
  const classified = (): HoldfastError | undefined =>
    bodyError === undefined ? undefined : classifyError(bodyError, 'HOLDFAST_E_SOURCE_UNREADABLE', { path: key });
  return {
    stream: counter,
    signal: controller.signal,
    bodyError: classified,
    failure: () => (opts.signal?.aborted === true ? cancelledError(opts.signal) : classified()),
    assertAllSent(): void {
      if (sent !== opts.size) {
        // Cannot normally happen (Content-Length is enforced by HTTP), but never report a short body as stored.
        throw new HoldfastError('HOLDFAST_E_SOURCE_CHANGED', { path: key, detail: `expected ${opts.size} bytes, sent ${sent}` });
      }
    },
    async dispose(): Promise<void> {
      dispose();
      source.destroy();
      counter.destroy();
      await piping;
    },
  };
}
