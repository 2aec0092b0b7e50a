// Hashing, and the guards that keep the bytes sent equal to the hash recorded.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { createReadStream, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, test } from 'node:test';
import { HoldfastError } from '../../src/core/errors.js';
import { abandonable, createVerifyingStream, hashFile, openSourceFile, readSmallFile, sourceFileStream } from '../../src/scan/hash.js';

const tmp = mkdtempSync(join(tmpdir(), 'holdfast-hash-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const isCode = (code: string) => (e: unknown) => e instanceof HoldfastError && e.code === code;
/** The code, and why (the detail: the registry's message for SOURCE_CHANGED does not carry it). */
const isCodeWhy = (code: string, why: RegExp) => (e: unknown) => isCode(code)(e) && why.test(String((e as HoldfastError).details.detail));

let n = 0;
function file(content: Buffer | string): string {
  const p = join(tmp, `f${n++}`);
  writeFileSync(p, content);
  return p;
}

void test('hashFile: a zero-byte file', async () => {
  const p = file('');
  const r = await hashFile(p);
  assert.deepEqual(r, { sha256: EMPTY_SHA256, size: 0, mtimeMs: Math.floor(statSync(p).mtimeMs) });
});

void test('hashFile: a multi-MiB file that is not a multiple of the chunk size', async () => {
  const content = randomBytes(5 * 1024 * 1024 + 123);
  const p = file(content);
  const r = await hashFile(p, { expectedSize: content.length });
  assert.equal(r.sha256, sha(content));
  assert.match(r.sha256, /^[0-9a-f]{64}$/);
  assert.equal(r.size, content.length);
});

void test('hashFile: vanished, unreadable, different from the scan, cancelled', async () => {
  await assert.rejects(hashFile(join(tmp, 'does-not-exist')), isCode('HOLDFAST_E_SOURCE_VANISHED'));
  const d = join(tmp, 'a-directory');
  mkdirSync(d);
  await assert.rejects(hashFile(d), isCode('HOLDFAST_E_SOURCE_UNREADABLE'));
  const p = file('12345');
  await assert.rejects(hashFile(p, { expectedSize: 4 }), isCode('HOLDFAST_E_SOURCE_CHANGED'));
  await assert.rejects(hashFile(p, { expectedMtimeMs: 0 }), isCode('HOLDFAST_E_SOURCE_CHANGED'));
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(hashFile(p, { signal: ac.signal }), isCode('HOLDFAST_E_CANCELLED'));
});

void test('hashFile: a file that keeps changing while it is hashed is HOLDFAST_E_SOURCE_CHANGED', async () => {
  const content = randomBytes(32 * 1024 * 1024);
  const p = file(content);
  // Rewrite the file (new mtime) continuously while hashing: whatever instant
  // the hash starts at, its before/after stats cannot both match.
  let stop = false;
  let i = 0;
  const writer = (async () => {
    while (!stop) {
      utimesSync(p, new Date(), new Date(1_000_000 + i++ * 1000));
      await new Promise((r) => setImmediate(r));
    }
  })();
  try {
    await assert.rejects(hashFile(p), isCode('HOLDFAST_E_SOURCE_CHANGED'));
  } finally {
    stop = true;
    await writer;
  }
});

void test('readSmallFile: returns the bytes and their hash, refuses a changed or vanished file', async () => {
  const content = Buffer.from('hello, holdfast');
  const p = file(content);
  const st = statSync(p);
  const r = await readSmallFile(p, { size: st.size, mtimeMs: Math.floor(st.mtimeMs) });
  assert.deepEqual(r.buffer, content);
  assert.equal(r.sha256, sha(content));
  const empty = file('');
  const e = await readSmallFile(empty, { size: 0, mtimeMs: statSync(empty).mtimeMs });
  assert.equal(e.buffer.length, 0);
  assert.equal(e.sha256, EMPTY_SHA256);

  writeFileSync(p, 'hello, holdfast!!');
  await assert.rejects(readSmallFile(p, { size: st.size, mtimeMs: st.mtimeMs }), isCode('HOLDFAST_E_SOURCE_CHANGED'));
  writeFileSync(p, 'HELLO, HOLDFAST');
  utimesSync(p, new Date(), new Date(st.mtimeMs + 5000));
  await assert.rejects(readSmallFile(p, { size: st.size, mtimeMs: st.mtimeMs }), isCode('HOLDFAST_E_SOURCE_CHANGED'));
  await assert.rejects(readSmallFile(join(tmp, 'gone'), { size: 1, mtimeMs: 0 }), isCode('HOLDFAST_E_SOURCE_VANISHED'));
});

void test('openSourceFile: a symlink, a FIFO, another file where the scan saw this one: SOURCE_CHANGED, nothing read', async () => {
  const real = file('the file the scan saw');
  const st = statSync(real);
  const other = file('another file, same len');
  const link = join(tmp, `link${n++}`);
  symlinkSync(other, link);
  await assert.rejects(openSourceFile(link, { size: statSync(other).size }), isCodeWhy('HOLDFAST_E_SOURCE_CHANGED', /symbolic link/));
  // Followed on purpose (--follow-symlinks), the identity still decides.
  await assert.rejects(hashFile(link, { followSymlinks: true, expectedDev: st.dev, expectedIno: st.ino }), isCodeWhy('HOLDFAST_E_SOURCE_CHANGED', /no longer the file the scan saw/));
  const followed = await openSourceFile(link, {}, { followSymlinks: true });
  await followed.fh.close();
  const fifo = join(tmp, `fifo${n++}`);
  execFileSync('mkfifo', [fifo]);
  await assert.rejects(readSmallFile(fifo, { size: 0, mtimeMs: 0 }), isCodeWhy('HOLDFAST_E_SOURCE_CHANGED', /FIFO/));
  await assert.rejects(hashFile(other, { expectedDev: st.dev, expectedIno: st.ino }), isCode('HOLDFAST_E_SOURCE_CHANGED'));
  const ok = await hashFile(real, { expectedDev: st.dev, expectedIno: st.ino, expectedSize: st.size });
  assert.equal(ok.sha256, sha(Buffer.from('the file the scan saw')));
});

void test('sourceFileStream: the planned bytes, checked on open; a file that changed since the plan errors', async () => {
  const content = randomBytes(3 * 1024 * 1024 + 11);
  const p = file(content);
  const st = statSync(p);
  const { sink, chunks } = countingSink();
  await pipeline(sourceFileStream(p, { size: content.length, mtimeMs: Math.floor(st.mtimeMs) }, { chunkBytes: 256 * 1024 }), sink);
  assert.deepEqual(Buffer.concat(chunks), content);
  const other = countingSink();
  await assert.rejects(pipeline(sourceFileStream(p, { size: content.length + 1 }), other.sink), isCode('HOLDFAST_E_SOURCE_CHANGED'));
  assert.equal(other.bytes(), 0, 'nothing was read from a file of another size');
});

void test('abandonable: an operation that never settles gives way to the abort signal', async () => {
  const ac = new AbortController();
  const never = new Promise<never>(() => undefined);
  const waiting = abandonable(never, ac.signal);
  ac.abort();
  await assert.rejects(waiting, isCode('HOLDFAST_E_CANCELLED'));
  assert.equal(await abandonable(Promise.resolve(7), new AbortController().signal), 7);
});

/** A consumer that counts what it was given, like an HTTP body with a Content-Length. */
function countingSink(): { sink: Writable; bytes: () => number; chunks: Buffer[] } {
  let bytes = 0;
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      chunks.push(chunk);
      cb();
    },
  });
  return { sink, bytes: () => bytes, chunks };
}

void test('createVerifyingStream passes an unchanged file through intact', async () => {
  const content = randomBytes(3 * 1024 * 1024 + 7);
  const p = file(content);
  const { sink, chunks } = countingSink();
  await pipeline(createReadStream(p, { highWaterMark: 64 * 1024 }), createVerifyingStream(sha(content), content.length), sink);
  assert.deepEqual(Buffer.concat(chunks), content);
  // Zero bytes expected, zero bytes received.
  const empty = countingSink();
  await pipeline(Readable.from([]), createVerifyingStream(EMPTY_SHA256, 0), empty.sink);
  assert.equal(empty.bytes(), 0);
});

for (const [name, mutate] of [
  ['same size, different bytes', (b: Buffer) => Buffer.concat([b.subarray(0, 1000), Buffer.from('X'), b.subarray(1001)])],
  ['grew', (b: Buffer) => Buffer.concat([b, Buffer.from('more')])],
  ['shrank', (b: Buffer) => b.subarray(0, b.length - 10)],
  ['last byte only', (b: Buffer) => Buffer.concat([b.subarray(0, b.length - 1), Buffer.from([b[b.length - 1]! ^ 1])])],
] as const) {
  for (const size of [100, 3 * 1024 * 1024]) {
    void test(`createVerifyingStream: a file mutated after planning (${name}, ${size} bytes) errors and the consumer gets less than size`, async () => {
      const planned = randomBytes(size);
      const p = file(planned);
      const plannedSha = sha(planned); // what the intent recorded
      writeFileSync(p, mutate(planned)); // changed between planning and streaming
      const { sink, bytes } = countingSink();
      await assert.rejects(
        pipeline(createReadStream(p, { highWaterMark: 64 * 1024 }), createVerifyingStream(plannedSha, size, { path: p }), sink),
        (e: unknown) => isCode('HOLDFAST_E_SOURCE_CHANGED')(e) && (e as Error).message.includes(p),
      );
      assert.ok(bytes() < size, `consumer received ${bytes()} of ${size} bytes`);
    });
  }
}
