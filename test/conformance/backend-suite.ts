// The one conformance suite every backend passes (DESIGN §6), in the style of
// tus-node-server's store tests: each `should…` function registers one group
// of `node:test` tests, and `backendConformance` registers them all against a
// target the caller sets up (a temp directory, an S3 server on loopback…).
//
// Tests are independent: each writes under its own fresh key prefix, so they
// share one backend without seeing each other's objects.
//
// Covered for every backend: put / head / get / delete / list, awkward keys,
// zero-byte objects, metadata (holdfast-sha256, holdfast-mtime, caller
// metadata), listing with a prefix that is a prefix of another key, byte
// order and startAfter, idempotent delete, key validation, failures that
// leave nothing behind, and multipart: several parts of at least minPartSize, parts in
// the order the backend allows (`sequentialParts`), listParts, abort, and
// resume after an interruption from a NEW backend instance (`reopen`).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { Backend, BodySource, ObjectInfo, UploadedPart } from '../../src/backends/backend.js';
import { bufferBody, fileBody } from '../../src/backends/body.js';
import { compareKeys } from '../../src/backends/keys.js';
import { HoldfastError, isHoldfastError } from '../../src/core/errors.js';
import { normalizeEtag } from '../../src/sync/check.js';
import type { ErrorCode } from '../../src/core/errors.js';
import { readAll, sha256 } from '../helpers/checks.js';
import { makeTempDir } from '../helpers/tmp.js';

export interface ConformanceTarget {
  readonly backend: Backend;
  /**
   * Opens a backend of the same kind whose destination does not exist and
   * cannot be created by `ensureReady` (a missing bucket; a directory under a
   * regular file). The suite closes it.
   */
  openUnready(): Promise<Backend>;
  /**
   * Opens a second, independent backend instance on the same destination (as
   * a later run, in a new process, would): the resume tests start an upload
   * on `backend` and finish it on this one. The suite closes it.
   */
  reopen?(): Promise<Backend>;
  cleanup(): Promise<void>;
  /**
   * Known deviations of the server under test from the real service. A test
   * that depends on one is skipped with the reason shown; keep the reason
   * specific (what the server does, why it is not Holdfast's bug).
   */
  readonly quirks?: {
    /** The server makes a partly received PUT body visible (the real service never does). */
    readonly partialPutVisible?: string;
  };
}

export type TargetRef = () => ConformanceTarget;

let counter = 0;
/** A fresh prefix ("t7-1a2b3c/") so each test sees only its own keys. */
function ns(): string {
  counter++;
  return `t${counter}-${randomBytes(3).toString('hex')}/`;
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function keysUnder(backend: Backend, prefix: string, startAfter?: string): Promise<string[]> {
  return (await collect(backend.list(prefix, startAfter === undefined ? {} : { startAfter }))).map((o: ObjectInfo) => o.key);
}

function byteSorted(keys: readonly string[]): string[] {
  return [...keys].sort(compareKeys);
}

async function putBuffer(backend: Backend, key: string, data: Buffer): Promise<void> {
  await backend.put(key, bufferBody(data), { size: data.length, sha256: sha256(data) });
}

/** Asserts `fn` throws a HoldfastError with `code`; returns it. */
async function rejectsWith(fn: () => unknown, code: ErrorCode): Promise<HoldfastError> {
  let caught: unknown;
  try {
    await fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught !== undefined, `expected ${code}, but nothing was thrown`);
  assert.ok(isHoldfastError(caught), `expected a HoldfastError ${code}, got ${caught instanceof Error ? caught.stack : JSON.stringify(caught)}`);
  assert.equal(caught.code, code, `expected ${code}, got ${caught.code}: ${caught.message}`);
  return caught;
}

/** A body that sends `good` bytes and then fails with `error` (at the very end if `good` is the whole size). */
function failingBody(size: number, good: number, error: Error): BodySource {
  return {
    size,
    open(): Readable {
      const data = randomBytes(good);
      let sent = false;
      return new Readable({
        read(): void {
          if (!sent) {
            sent = true;
            // Two chunks, so a failure after the last byte comes after a separate read.
            this.push(data.subarray(0, Math.floor(good / 2)));
            this.push(data.subarray(Math.floor(good / 2)));
            return;
          }
          setImmediate(() => this.destroy(error));
        },
      });
    },
  };
}

export function shouldRoundTripObjects(target: TargetRef): void {
  describe('put / head / get', () => {
    it('round-trips content byte for byte and returns holdfast-sha256 from head', async () => {
      const { backend } = target();
      const key = `${ns()}data/object.bin`;
      const data = randomBytes(300 * 1024 + 17);
      const progress: number[] = [];
      await backend.put(key, bufferBody(data), { size: data.length, sha256: sha256(data), onProgress: (n) => progress.push(n) });
      const info = await backend.head(key);
      assert.ok(info, 'head finds the object');
      assert.equal(info.key, key);
      assert.equal(info.size, data.length);
      assert.equal(info.sha256, sha256(data));
      assert.ok(Buffer.compare(await readAll(await backend.get(key)), data) === 0, 'content is identical');
      assert.equal(progress.at(-1), data.length, 'progress ends at the full size');
      for (let i = 1; i < progress.length; i++) assert.ok(progress[i]! >= progress[i - 1]!, 'progress never goes back');
    });

    it('puts from a file body (fileBody) and can re-open it', async () => {
      const { backend } = target();
      const tmp = await makeTempDir('holdfast-conf-src-');
      try {
        const data = randomBytes(70_000);
        const path = join(tmp.path, 'src.bin');
        // The file is longer than the body: fileBody must send exactly `size` bytes.
        await writeFile(path, Buffer.concat([data, Buffer.from('trailing bytes not part of the body')]));
        const body = fileBody(path, data.length);
        assert.equal((await readAll(body.open())).length, data.length);
        const key = `${ns()}from-file.bin`;
        await backend.put(key, body, { size: data.length, sha256: sha256(data) });
        assert.ok(Buffer.compare(await readAll(await backend.get(key)), data) === 0);
      } finally {
        await tmp.cleanup();
      }
    });

    it('stores zero-byte objects', async () => {
      const { backend } = target();
      const prefix = ns();
      const key = `${prefix}empty`;
      await backend.put(key, bufferBody(Buffer.alloc(0)), { size: 0, sha256: sha256(Buffer.alloc(0)) });
      const info = await backend.head(key);
      assert.ok(info);
      assert.equal(info.size, 0);
      assert.equal(info.sha256, sha256(Buffer.alloc(0)));
      assert.equal((await readAll(await backend.get(key))).length, 0);
      const listed = await collect(backend.list(prefix));
      assert.deepEqual(
        listed.map((o) => [o.key, o.size]),
        [[key, 0]],
      );
      const emptyFile = fileBody('/nonexistent/never-opened', 0);
      await backend.put(`${prefix}empty-file`, emptyFile, { size: 0, sha256: sha256(Buffer.alloc(0)) });
      assert.equal((await backend.head(`${prefix}empty-file`))?.size, 0);
    });

    it('head of a missing key is undefined; get of a missing key fails', async () => {
      const { backend } = target();
      const key = `${ns()}missing`;
      assert.equal(await backend.head(key), undefined);
      await rejectsWith(() => backend.get(key), 'HOLDFAST_E_DEST_REJECTED');
    });

    it('gets a byte range (inclusive), clamped at the end of the object', async () => {
      const { backend } = target();
      const key = `${ns()}ranged`;
      const data = randomBytes(10_000);
      await putBuffer(backend, key, data);
      const mid = await readAll(await backend.get(key, { range: { start: 10, end: 19 } }));
      assert.ok(Buffer.compare(mid, data.subarray(10, 20)) === 0, 'bytes 10..19');
      const tail = await readAll(await backend.get(key, { range: { start: data.length - 5, end: data.length + 100 } }));
      assert.ok(Buffer.compare(tail, data.subarray(data.length - 5)) === 0, 'range past the end is clamped');
      const first = await readAll(await backend.get(key, { range: { start: 0, end: 0 } }));
      assert.equal(first.length, 1);
      assert.equal(first[0], data[0]);
    });

    it('overwriting a key replaces its content and hash', async () => {
      const { backend } = target();
      const key = `${ns()}overwritten`;
      const a = randomBytes(5000);
      const b = randomBytes(1234);
      await putBuffer(backend, key, a);
      await putBuffer(backend, key, b);
      const info = await backend.head(key);
      assert.equal(info?.size, b.length);
      assert.equal(info?.sha256, sha256(b));
      assert.ok(Buffer.compare(await readAll(await backend.get(key)), b) === 0);
    });

    it('keeps caller metadata alongside holdfast-sha256 where metadata is supported', async () => {
      const { backend } = target();
      const key = `${ns()}with-meta`;
      const data = Buffer.from('metadata');
      await backend.put(key, bufferBody(data), { size: data.length, sha256: sha256(data), metadata: { 'holdfast-attempt': 'a1' } });
      assert.equal((await backend.head(key))?.sha256, sha256(data));
    });

    it('metadata round-trips: head returns the sha256 and source mtime put was given, and an overwrite replaces both', async () => {
      const { backend } = target();
      const key = `${ns()}meta/round-trip.bin`;
      const a = randomBytes(2048);
      // Whole seconds: file times are kept at the filesystem's precision.
      const mtimeA = 1_600_000_000_000;
      await backend.put(key, bufferBody(a), { size: a.length, sha256: sha256(a), mtimeMs: mtimeA });
      const infoA = await backend.head(key);
      assert.equal(infoA?.sha256, sha256(a));
      assert.equal(infoA?.mtimeMs, mtimeA, 'holdfast-mtime (or the file time) comes back from head');
      assert.equal(infoA?.size, a.length);
      const b = randomBytes(100);
      const mtimeB = 1_700_000_000_000;
      await backend.put(key, bufferBody(b), { size: b.length, sha256: sha256(b), mtimeMs: mtimeB });
      const infoB = await backend.head(key);
      assert.equal(infoB?.sha256, sha256(b));
      assert.equal(infoB?.mtimeMs, mtimeB);
      assert.equal(infoB?.size, b.length);
      const listed = await collect(backend.list(key));
      assert.deepEqual(
        listed.map((o) => [o.key, o.size]),
        [[key, b.length]],
        'one object after the overwrite',
      );
      // Compared as check compares them: quotes and W/ do not count.
      if (infoB?.etag !== undefined && listed[0]?.etag !== undefined) assert.equal(normalizeEtag(listed[0].etag), normalizeEtag(infoB.etag), 'list and head agree on the etag');
    });
  });
}

/** Keys that trip up URL encoding, normalisation, shells and sort orders. */
export const AWKWARD_KEYS: readonly string[] = [
  'with space.txt',
  'caf\u00e9.txt', // NFC: é as one code point
  'cafe\u0301.txt', // NFD: e + combining acute; looks the same, is a different key
  'hash#tag',
  'question?.txt',
  'percent%20literal',
  'plus+sign',
  'new\nline',
  'emoji \u{1F980}.bin',
  'folder with space/\u00fc/\u00f1.txt',
  'amp&eq=semi;colon',
  "quote'double\"",
];

export function shouldHandleAwkwardKeys(target: TargetRef): void {
  describe('awkward keys', () => {
    it('NFC and NFD spellings are two distinct keys', () => {
      assert.notEqual('caf\u00e9.txt', 'cafe\u0301.txt');
      assert.equal('caf\u00e9.txt'.normalize('NFD'), 'cafe\u0301.txt');
    });

    it('round-trip exactly through put → list → head → get', async () => {
      const { backend } = target();
      const prefix = ns();
      const keys = AWKWARD_KEYS.map((k) => prefix + k);
      for (const key of keys) {
        backend.validateKey(key);
        await putBuffer(backend, key, Buffer.from(`content of ${key}`, 'utf8'));
      }
      assert.deepEqual(await keysUnder(backend, prefix), byteSorted(keys), 'list returns every key, unchanged, in byte order');
      for (const key of keys) {
        const content = Buffer.from(`content of ${key}`, 'utf8');
        const info = await backend.head(key);
        assert.ok(info, `head finds ${JSON.stringify(key)}`);
        assert.equal(info.key, key);
        assert.equal(info.sha256, sha256(content), `sha256 of ${JSON.stringify(key)}`);
        assert.equal((await readAll(await backend.get(key))).toString('utf8'), content.toString('utf8'));
      }
    });
  });
}

export function shouldList(target: TargetRef): void {
  describe('list', () => {
    it('a prefix that is a prefix of another key matches both; with "/" only the folder', async () => {
      const { backend } = target();
      const p = ns();
      for (const k of ['a/b', 'a/bc', 'a/bd/x', 'q/b/x', 'q/bc', 'other']) await putBuffer(backend, p + k, Buffer.from(k));
      assert.deepEqual(await keysUnder(backend, `${p}a/b`), [`${p}a/b`, `${p}a/bc`, `${p}a/bd/x`]);
      assert.deepEqual(await keysUnder(backend, `${p}a/bc`), [`${p}a/bc`]);
      assert.deepEqual(await keysUnder(backend, `${p}q/b/`), [`${p}q/b/x`]);
      assert.deepEqual(await keysUnder(backend, `${p}q/b`), [`${p}q/b/x`, `${p}q/bc`]);
      assert.deepEqual(await keysUnder(backend, `${p}nothing`), []);
      assert.deepEqual(await keysUnder(backend, `${p}a/b/`), []);
    });

    it('lists in UTF-8 byte order (not UTF-16 order) and reports sizes', async () => {
      const { backend } = target();
      const p = ns();
      // "\uFF01" < "\u{1F600}" in UTF-8 bytes (EF.. < F0..) but > in UTF-16 units (FF01 > D83D).
      // "a.c" < "a/b" < "a0": a folder sorts by its keys, i.e. as "a/".
      const names = ['z', 'a.c', 'a/b', 'a/c/d', 'a0', 'A', '\u00e9', '\uFF01', '\u{1F600}', 'b-', 'b/x'];
      const keys = names.map((n) => p + n);
      for (const k of keys) await putBuffer(backend, k, Buffer.from(k));
      const listed = await collect(backend.list(p));
      assert.deepEqual(
        listed.map((o) => o.key),
        byteSorted(keys),
      );
      for (const o of listed) assert.equal(o.size, Buffer.byteLength(o.key));
      // Sanity: the two orders really differ for these keys.
      assert.notDeepEqual(byteSorted(keys), [...keys].sort());
    });

    it('startAfter is exclusive and compares bytes', async () => {
      const { backend } = target();
      const p = ns();
      const names = ['a-', 'a.c', 'a/b', 'a/c/d', 'a0', 'b', '\uFF01', '\u{1F600}'];
      const keys = byteSorted(names.map((n) => p + n));
      for (const k of keys) await putBuffer(backend, k, Buffer.from(k));
      const after = (s: string): string[] => keys.filter((k) => compareKeys(k, s) > 0);
      for (const start of [`${p}a`, `${p}a/b`, `${p}a/`, `${p}a/c`, `${p}a0`, `${p}\uFF01`, `${p}`, `${p}zzz`, 'a-before-the-prefix']) {
        assert.deepEqual(await keysUnder(backend, p, start), after(start), `startAfter ${JSON.stringify(start)}`);
      }
    });

    it('an empty or missing prefix lists nothing under unrelated prefixes', async () => {
      const { backend } = target();
      const p = ns();
      assert.deepEqual(await keysUnder(backend, p), []);
    });
  });
}

export function shouldDelete(target: TargetRef): void {
  describe('delete', () => {
    it('is idempotent: twice, and for a key that never existed', async () => {
      const { backend } = target();
      const p = ns();
      const key = `${p}deep/er/gone.txt`;
      await putBuffer(backend, key, Buffer.from('bye'));
      await putBuffer(backend, `${p}kept`, Buffer.from('stay'));
      await backend.delete(key);
      assert.equal(await backend.head(key), undefined);
      await backend.delete(key);
      await backend.delete(`${p}never/existed`);
      assert.deepEqual(await keysUnder(backend, p), [`${p}kept`]);
    });

    it('a key that is only a folder of other keys is not an object', async () => {
      const { backend } = target();
      const p = ns();
      await putBuffer(backend, `${p}dir/child`, Buffer.from('x'));
      assert.equal(await backend.head(`${p}dir`), undefined);
      await backend.delete(`${p}dir`);
      assert.deepEqual(await keysUnder(backend, p), [`${p}dir/child`]);
    });
  });
}

export function shouldValidateKeys(target: TargetRef): void {
  describe('validateKey', () => {
    const invalid: readonly [string, string][] = [
      ['empty', ''],
      ['dot-dot', '..'],
      ['dot-dot segment', 'a/../b'],
      ['escaping', '../../etc/passwd'],
      ['dot segment', 'a/./b'],
      ['absolute', '/abs/path'],
      ['NUL', 'a\0b'],
      ['empty segment', 'a//b'],
      ['trailing slash', 'a/b/'],
      ['lone surrogate', 'a\uD800b'],
    ];
    for (const [what, key] of invalid) {
      it(`rejects ${what} (${JSON.stringify(key)}) with HOLDFAST_E_KEY_INVALID, and put does nothing`, async () => {
        const { backend } = target();
        await rejectsWith(() => backend.validateKey(key), 'HOLDFAST_E_KEY_INVALID');
        await rejectsWith(() => putBuffer(backend, key, Buffer.from('x')), 'HOLDFAST_E_KEY_INVALID');
        await rejectsWith(() => backend.head(key), 'HOLDFAST_E_KEY_INVALID');
        await rejectsWith(() => backend.delete(key), 'HOLDFAST_E_KEY_INVALID');
      });
    }

    it('rejects a key longer than maxKeyBytes (counted in UTF-8) with HOLDFAST_E_KEY_TOO_LONG', async () => {
      const { backend } = target();
      const max = backend.capabilities.maxKeyBytes;
      // 100-character segments of "é" (2 bytes each): long in bytes, short in characters.
      const segment = '\u00e9'.repeat(100);
      let key = segment;
      while (Buffer.byteLength(key) <= max) key += `/${segment}`;
      assert.ok(key.length <= max, 'the key is within the limit in UTF-16 units: only bytes make it too long');
      const err = await rejectsWith(() => backend.validateKey(key), 'HOLDFAST_E_KEY_TOO_LONG');
      assert.ok(Number(err.details.bytes) >= Buffer.byteLength(key), 'details.bytes counts UTF-8 bytes');
      assert.equal(err.details.max, max);
      await rejectsWith(() => putBuffer(backend, key, Buffer.from('x')), 'HOLDFAST_E_KEY_TOO_LONG');
    });

    it('accepts ordinary keys', () => {
      const { backend } = target();
      for (const k of ['a', 'a/b/c.txt', '.hidden', 'a/.config/x', '...', 'a..b', ...AWKWARD_KEYS]) backend.validateKey(k);
    });
  });
}

export function shouldFailCleanly(target: TargetRef): void {
  describe('failures leave nothing behind', () => {
    const partialSkip = (): string | undefined => target().quirks?.partialPutVisible;

    it('a body that errors mid-way: put rejects, no object, no stray listing entry', async (t) => {
      const skip = partialSkip();
      if (skip !== undefined) return t.skip(skip);
      const { backend } = target();
      const p = ns();
      const key = `${p}sub/broken.bin`;
      const size = 200_000;
      await rejectsWith(
        () => backend.put(key, failingBody(size, 80_000, new Error('disk read failed')), { size, sha256: '0'.repeat(64) }),
        'HOLDFAST_E_SOURCE_UNREADABLE',
      );
      assert.equal(await backend.head(key), undefined);
      assert.deepEqual(await keysUnder(backend, p), []);
    });

    it("the caller's own HoldfastError from the body (source changed) is passed through unchanged", async (t) => {
      const skip = partialSkip();
      if (skip !== undefined) return t.skip(skip);
      const { backend } = target();
      const p = ns();
      const key = `${p}changed.bin`;
      const size = 100_000;
      const changed = new HoldfastError('HOLDFAST_E_SOURCE_CHANGED', { path: 'src/changed.bin' });
      const err = await rejectsWith(() => backend.put(key, failingBody(size, 30_000, changed), { size, sha256: '0'.repeat(64) }), 'HOLDFAST_E_SOURCE_CHANGED');
      assert.equal(err, changed);
      assert.deepEqual(await keysUnder(backend, p), []);
    });

    it('a body that fails after its last byte (a verifier finding the wrong hash) stores nothing', async (t) => {
      const skip = partialSkip();
      if (skip !== undefined) return t.skip(skip);
      const { backend } = target();
      const p = ns();
      const key = `${p}verified-late.bin`;
      const size = 150_000;
      const changed = new HoldfastError('HOLDFAST_E_SOURCE_CHANGED', { path: 'late' });
      await rejectsWith(() => backend.put(key, failingBody(size, size, changed), { size, sha256: '0'.repeat(64) }), 'HOLDFAST_E_SOURCE_CHANGED');
      assert.equal(await backend.head(key), undefined);
      assert.deepEqual(await keysUnder(backend, p), []);
    });

    it('a failed overwrite keeps the previous object intact', async (t) => {
      const skip = partialSkip();
      if (skip !== undefined) return t.skip(skip);
      const { backend } = target();
      const key = `${ns()}precious`;
      const good = randomBytes(4000);
      await putBuffer(backend, key, good);
      await rejectsWith(() => backend.put(key, failingBody(90_000, 40_000, new Error('boom')), { size: 90_000, sha256: '0'.repeat(64) }), 'HOLDFAST_E_SOURCE_UNREADABLE');
      const info = await backend.head(key);
      assert.equal(info?.sha256, sha256(good));
      assert.ok(Buffer.compare(await readAll(await backend.get(key)), good) === 0);
    });

    it('a body shorter than the declared size is rejected and stores nothing', async () => {
      const { backend } = target();
      const p = ns();
      const key = `${p}short.bin`;
      const data = randomBytes(1000);
      const err = await backend.put(key, bufferBody(data), { size: 2000, sha256: sha256(data) }).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(isHoldfastError(err), `put rejects with a HoldfastError (got ${String(err)})`);
      assert.equal(await backend.head(key), undefined);
    });

    it('an already-aborted signal: HOLDFAST_E_CANCELLED, nothing stored', async () => {
      const { backend } = target();
      const p = ns();
      const ac = new AbortController();
      ac.abort();
      const data = Buffer.from('never');
      await rejectsWith(() => backend.put(`${p}x`, bufferBody(data), { size: data.length, sha256: sha256(data), signal: ac.signal }), 'HOLDFAST_E_CANCELLED');
      await rejectsWith(() => backend.head(`${p}x`, { signal: ac.signal }), 'HOLDFAST_E_CANCELLED');
      assert.deepEqual(await keysUnder(backend, p), []);
    });

    it('aborting during the body: HOLDFAST_E_CANCELLED, nothing stored', async (t) => {
      const skip = partialSkip();
      if (skip !== undefined) return t.skip(skip);
      const { backend } = target();
      const p = ns();
      const ac = new AbortController();
      const size = 500_000;
      const body: BodySource = {
        size,
        open: () => {
          let reads = 0;
          return new Readable({
            read(): void {
              reads++;
              if (reads === 1) this.push(randomBytes(64 * 1024));
              // Asked for more: the put has taken the first chunk and is mid-body. Abort, and
              // stall from here on: the abort must end the put, not the body.
              else if (reads === 2) ac.abort();
            },
          });
        },
      };
      await rejectsWith(() => backend.put(`${p}x`, body, { size, sha256: '0'.repeat(64), signal: ac.signal }), 'HOLDFAST_E_CANCELLED');
      assert.deepEqual(await keysUnder(backend, p), []);
    });

    it('ensureReady succeeds on the target and fails with HOLDFAST_E_DEST_NOT_FOUND when the destination is missing', async () => {
      const t = target();
      await t.backend.ensureReady();
      const missing = await t.openUnready();
      try {
        const err = await rejectsWith(() => missing.ensureReady(), 'HOLDFAST_E_DEST_NOT_FOUND');
        assert.ok(err.message.length > 20, 'the message says what is missing');
      } finally {
        await missing.close();
      }
    });
  });
}

/** `fn` or, if the server lacks the operation (s3rver's ListParts, AbortMultipartUpload…), `undefined`. */
async function unlessNotSupported<T>(fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (e) {
    if (isHoldfastError(e) && e.code === 'HOLDFAST_E_NOT_SUPPORTED') return undefined;
    throw e;
  }
}

/**
 * The part size the multipart tests use: the backend's minPartSize, but at
 * least 64 KiB (where parts may be tiny, as Azure blocks may), rounded up to
 * its part-size multiple.
 */
function testPartSize(backend: Backend): number {
  const caps = backend.capabilities;
  const unit = caps.partSizeMultiple ?? 1;
  return Math.ceil(Math.max(caps.minPartSize, 64 * 1024) / unit) * unit;
}

/** `count` random parts of `partSize` bytes, then a shorter last one of `tail` bytes (none if 0). */
function partsOf(partSize: number, count: number, tail: number): Buffer[] {
  const parts = Array.from({ length: count }, () => randomBytes(partSize));
  if (tail > 0) parts.push(randomBytes(tail));
  return parts;
}

export function shouldDoMultipart(target: TargetRef): void {
  describe('multipart', () => {
    const skipReason = (): string | undefined =>
      target().backend.multipart === undefined ? `${target().backend.kind} has no multipart API (capabilities.multipart = false): puts are single requests` : undefined;
    /** Part numbers in the order this backend takes them: any order (shown by sending them backwards), or in order. */
    const sendOrder = (backend: Backend, count: number): number[] => {
      const inOrder = Array.from({ length: count }, (_, i) => i + 1);
      return backend.capabilities.sequentialParts ? inOrder : inOrder.reverse();
    };

    it('capabilities agree with the presence of the multipart API', () => {
      const { backend } = target();
      assert.equal(backend.capabilities.multipart, backend.multipart !== undefined);
      if (backend.multipart !== undefined) {
        const caps = backend.capabilities;
        assert.ok(caps.minPartSize > 0 && caps.minPartSize <= caps.maxPartSize, 'minPartSize ≤ maxPartSize');
        if (caps.partSizeMultiple !== undefined) assert.equal(caps.minPartSize % caps.partSizeMultiple, 0, 'minPartSize is a multiple of partSizeMultiple');
      }
    });

    it('create → parts (any order, or in order where sequentialParts) → complete gives the content and sha256 metadata', async (t) => {
      const reason = skipReason();
      if (reason !== undefined) return t.skip(reason);
      const { backend } = target();
      const mp = backend.multipart!;
      const key = `${ns()}big.bin`;
      const partSize = testPartSize(backend);
      const data = [randomBytes(partSize), randomBytes(12_345)];
      const whole = Buffer.concat(data);
      const uploadId = await mp.create(key, { sha256: sha256(whole), size: whole.length, partSize });
      assert.ok(uploadId.length > 0);
      const progress: number[] = [];
      const sent: UploadedPart[] = [];
      for (const [i, n] of sendOrder(backend, 2).entries()) {
        const part = await mp.uploadPart(key, uploadId, n, data[n - 1]!, n === 2 ? { onProgress: (b) => progress.push(b) } : {});
        assert.equal(part.partNumber, n);
        assert.equal(part.size, data[n - 1]!.length);
        assert.ok(part.etag.length > 0);
        sent.push(part);
        // Drive completes the upload with the last part's answer; elsewhere nothing shows before complete().
        if (i === 0 || !backend.capabilities.sequentialParts) assert.equal(await backend.head(key), undefined, 'nothing is visible before the upload is complete');
      }
      assert.equal(progress.at(-1), data[1]!.length, 'progress of a part ends at its size');
      await mp.complete(key, uploadId, sent);
      const info = await backend.head(key);
      assert.equal(info?.size, whole.length);
      assert.equal(info?.sha256, sha256(whole));
      assert.ok(Buffer.compare(await readAll(await backend.get(key)), whole) === 0);
    });

    it('a large object in several parts (of at least minPartSize): content, size, sha256 and mtime are right, and it lists once', async (t) => {
      const reason = skipReason();
      if (reason !== undefined) return t.skip(reason);
      const { backend } = target();
      const mp = backend.multipart!;
      const p = ns();
      const key = `${p}several/parts.bin`;
      const partSize = testPartSize(backend);
      const data = partsOf(partSize, 4, 777);
      const whole = Buffer.concat(data);
      const mtimeMs = 1_650_000_000_000;
      const uploadId = await mp.create(key, { sha256: sha256(whole), size: whole.length, partSize, mtimeMs });
      const sent: UploadedPart[] = [];
      for (const n of sendOrder(backend, data.length)) sent.push(await mp.uploadPart(key, uploadId, n, data[n - 1]!));
      await mp.complete(key, uploadId, sent);
      const info = await backend.head(key);
      assert.equal(info?.size, whole.length);
      assert.equal(info?.sha256, sha256(whole));
      assert.equal(info?.mtimeMs, mtimeMs, 'holdfast-mtime given to create comes back');
      assert.ok(Buffer.compare(await readAll(await backend.get(key)), whole) === 0, 'content is identical');
      const mid = await readAll(await backend.get(key, { range: { start: partSize - 3, end: partSize + 2 } }));
      assert.ok(Buffer.compare(mid, whole.subarray(partSize - 3, partSize + 3)) === 0, 'a range across a part boundary');
      assert.deepEqual(await keysUnder(backend, p), [key]);
    });

    it('listParts returns the confirmed parts, or throws HOLDFAST_E_NOT_SUPPORTED', async (t) => {
      const reason = skipReason();
      if (reason !== undefined) return t.skip(reason);
      const { backend } = target();
      const mp = backend.multipart!;
      const key = `${ns()}listed.bin`;
      const partSize = testPartSize(backend);
      // Three parts, two sent: the upload stays open everywhere.
      const data = partsOf(partSize, 2, 100);
      const uploadId = await mp.create(key, { sha256: '0'.repeat(64), size: Buffer.concat(data).length, partSize });
      const sent: UploadedPart[] = [await mp.uploadPart(key, uploadId, 1, data[0]!), await mp.uploadPart(key, uploadId, 2, data[1]!)];
      try {
        const parts = await mp.listParts(key, uploadId);
        assert.ok(parts, 'the upload exists');
        assert.deepEqual(
          parts.map((p) => [p.partNumber, p.size, p.etag]),
          sent.map((p) => [p.partNumber, p.size, p.etag]),
        );
      } catch (e) {
        // s3rver has no ListParts (405 MethodNotAllowed): the backend says so with
        // NOT_SUPPORTED, and the engine falls back to the ledger's parts table.
        assert.ok(isHoldfastError(e) && e.code === 'HOLDFAST_E_NOT_SUPPORTED', `unexpected ${String(e)}`);
      } finally {
        await unlessNotSupported(() => mp.abort(key, uploadId));
      }
    });

    it('abort discards the upload (or throws HOLDFAST_E_NOT_SUPPORTED), and leaves no object', async (t) => {
      const reason = skipReason();
      if (reason !== undefined) return t.skip(reason);
      const { backend } = target();
      const mp = backend.multipart!;
      const key = `${ns()}aborted.bin`;
      const partSize = testPartSize(backend);
      // Not the last part: on Drive the last part's answer completes the upload.
      const uploadId = await mp.create(key, { sha256: '0'.repeat(64), size: partSize + 10, partSize });
      await mp.uploadPart(key, uploadId, 1, randomBytes(partSize));
      let aborted = true;
      try {
        await mp.abort(key, uploadId);
      } catch (e) {
        // s3rver answers AbortMultipartUpload with 405 MethodNotAllowed.
        assert.ok(isHoldfastError(e) && e.code === 'HOLDFAST_E_NOT_SUPPORTED', `unexpected ${String(e)}`);
        aborted = false;
      }
      assert.equal(await backend.head(key), undefined);
      if (aborted) {
        // Aborting again is not an error: the goal (no open upload) holds.
        await mp.abort(key, uploadId);
        const parts = await unlessNotSupported(() => mp.listParts(key, uploadId));
        assert.equal(parts, undefined, 'an aborted upload has no parts');
      }
    });

    it('resumes after an interruption from a new backend instance: lists parts, sends the missing ones, completes', async (t) => {
      const reason = skipReason();
      if (reason !== undefined) return t.skip(reason);
      const first = target();
      if (first.reopen === undefined) return t.skip('the target provides no reopen(): it cannot open a second instance of the destination');
      const mp1 = first.backend.multipart!;
      const key = `${ns()}resumed/large.bin`;
      const partSize = testPartSize(first.backend);
      const data = partsOf(partSize, 4, 4321);
      const whole = Buffer.concat(data);
      const uploadId = await mp1.create(key, { sha256: sha256(whole), size: whole.length, partSize, mtimeMs: 1_600_000_000_000 });
      // The first "run" confirms parts 1 and 2 and records them; part 3 reaches
      // the destination, but the run dies before recording it.
      const recorded: UploadedPart[] = [await mp1.uploadPart(key, uploadId, 1, data[0]!), await mp1.uploadPart(key, uploadId, 2, data[1]!)];
      await mp1.uploadPart(key, uploadId, 3, data[2]!);

      const second = await first.reopen();
      try {
        const mp2 = second.multipart!;
        const listed = await unlessNotSupported(() => mp2.listParts(key, uploadId));
        if (listed !== undefined) {
          // The destination may know more than the ledger did (part 3); never less.
          for (const p of recorded) {
            assert.deepEqual(
              listed.find((l) => l.partNumber === p.partNumber),
              { partNumber: p.partNumber, size: p.size, etag: p.etag },
              `part ${p.partNumber} is listed with the etag uploadPart returned`,
            );
          }
        }
        // Like the engine: keep the parts both know, send the others again (3 included).
        const keep = recorded.filter((p) => listed === undefined || listed.some((l) => l.partNumber === p.partNumber && l.etag === p.etag));
        const parts = [...keep];
        for (let n = keep.length + 1; n <= data.length; n++) parts.push(await mp2.uploadPart(key, uploadId, n, data[n - 1]!));
        await mp2.complete(key, uploadId, parts);
        for (const b of [second, first.backend]) {
          const info = await b.head(key);
          assert.equal(info?.size, whole.length);
          assert.equal(info?.sha256, sha256(whole));
          assert.ok(Buffer.compare(await readAll(await b.get(key)), whole) === 0, 'content is identical');
        }
        assert.deepEqual(await keysUnder(second, key), [key], 'one object');
      } finally {
        await second.close();
      }
    });

    it('listUploads yields open uploads under a prefix, or throws HOLDFAST_E_NOT_SUPPORTED', async (t) => {
      const reason = skipReason();
      if (reason !== undefined) return t.skip(reason);
      const { backend } = target();
      const mp = backend.multipart!;
      const p = ns();
      const key = `${p}open.bin`;
      const uploadId = await mp.create(key, { sha256: '0'.repeat(64), size: 1, partSize: testPartSize(backend) });
      try {
        const uploads = await collect(mp.listUploads(p));
        assert.deepEqual(
          uploads.map((u) => [u.key, u.uploadId]),
          [[key, uploadId]],
        );
      } catch (e) {
        // s3rver answers ListMultipartUploads with 501 NotImplemented; Drive cannot list its sessions.
        assert.ok(isHoldfastError(e) && e.code === 'HOLDFAST_E_NOT_SUPPORTED', `unexpected ${String(e)}`);
      } finally {
        await mp.abort(key, uploadId).catch(() => undefined);
      }
    });
  });
}

/** Registers the whole suite against the target `setup` creates (once, before the tests). */
export function backendConformance(name: string, setup: () => Promise<ConformanceTarget>): void {
  describe(`backend conformance: ${name}`, () => {
    let current: ConformanceTarget | undefined;
    const target: TargetRef = () => {
      if (current === undefined) throw new Error('conformance target not set up');
      return current;
    };
    before(async () => {
      current = await setup();
    });
    after(async () => {
      await current?.cleanup();
    });
    shouldRoundTripObjects(target);
    shouldHandleAwkwardKeys(target);
    shouldList(target);
    shouldDelete(target);
    shouldValidateKeys(target);
    shouldFailCleanly(target);
    shouldDoMultipart(target);
  });
}
