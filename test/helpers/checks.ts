// Small helpers the backend tests share: a buffer's SHA-256, a stream read
// whole, and the HoldfastError an operation fails with.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { isHoldfastError } from '../../src/core/errors.js';
import type { HoldfastError } from '../../src/core/errors.js';

/** Lowercase hex, as `holdfast-sha256` holds it. */
export function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks);
}

/** The HoldfastError `p` rejects with (or the function throws); fails the test on success or on any other error. */
export async function caught(p: Promise<unknown> | (() => unknown)): Promise<HoldfastError> {
  const e = await (typeof p === 'function' ? Promise.resolve().then(p) : p).then(
    () => undefined,
    (err: unknown) => err,
  );
  assert.ok(isHoldfastError(e), `expected a HoldfastError, got ${e instanceof Error ? e.stack : String(e)}`);
  return e;
}
