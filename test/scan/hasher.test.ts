// FileHasher: the file cache spares unchanged files a re-read; per-file
// errors do not fail the batch.
//
// The cache store is a tiny in-memory object implementing the two ledger
// methods the hasher uses (lookupFileCache, storeFileCache); the ledger's own
// conformance suite covers the real tables.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { HoldfastError } from '../../src/core/errors.js';
import type { SourceFile } from '../../src/core/types.js';
import type { FileCacheEntry, Ledger } from '../../src/ledger/ledger.js';
import type { FileCacheStore } from '../../src/scan/hasher.js';
import { FileHasher, HashMemo } from '../../src/scan/hasher.js';

const tmp = mkdtempSync(join(tmpdir(), 'holdfast-hasher-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

class MemoryCache implements FileCacheStore {
  readonly entries = new Map<string, FileCacheEntry>();
  lookups = 0;
  stores: number[] = [];
  failLookup = false;
  async lookupFileCache(paths: readonly string[]): Promise<Map<string, FileCacheEntry>> {
    this.lookups++;
    if (this.failLookup) throw Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
    const out = new Map<string, FileCacheEntry>();
    for (const p of paths) {
      const e = this.entries.get(p);
      if (e) out.set(p, e);
    }
    return out;
  }
  async storeFileCache(entries: readonly FileCacheEntry[]): Promise<void> {
    this.stores.push(entries.length);
    for (const e of entries) this.entries.set(e.path, e);
  }
}

function sourceFile(key: string, content: string): SourceFile {
  const path = join(tmp, key);
  writeFileSync(path, content);
  return scanned(key);
}

function scanned(key: string): SourceFile {
  const path = join(tmp, key);
  const st = statSync(path);
  return { key, path, size: st.size, mtimeMs: Math.floor(st.mtimeMs), ino: st.ino };
}

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

void test('first batch hashes and stores once; second batch is all cache hits', async () => {
  const files = Array.from({ length: 10 }, (_, i) => sourceFile(`a${i}`, `content ${i}`));
  const cache = new MemoryCache();
  const h1 = new FileHasher(cache, { concurrency: 3 });
  const r1 = await h1.hashBatch(files);
  assert.equal(h1.stats.misses, 10);
  assert.equal(h1.stats.hits, 0);
  assert.deepEqual(cache.stores, [10], 'one storeFileCache call per batch');
  for (let i = 0; i < 10; i++) assert.equal(r1.get(`a${i}`), sha(`content ${i}`));

  const h2 = new FileHasher(cache);
  const r2 = await h2.hashBatch(files);
  assert.equal(h2.stats.hits, 10);
  assert.equal(h2.stats.misses, 0);
  assert.equal(h2.stats.bytesHashed, 0);
  assert.deepEqual(cache.stores, [10], 'nothing new to store');
  assert.deepEqual(r2, r1);
});

void test('a cache entry is used only when size, mtime and inode all match', async () => {
  const cache = new MemoryCache();
  const a = sourceFile('m-a', 'aaaa');
  const b = sourceFile('m-b', 'bbbb');
  const c = sourceFile('m-c', 'cccc');
  await new FileHasher(cache).hashBatch([a, b, c]);

  // b: touched (new mtime, same content); c: replaced by a new inode with the same size and mtime.
  utimesSync(b.path, new Date(), new Date(b.mtimeMs + 10_000));
  unlinkSync(c.path);
  writeFileSync(join(tmp, 'm-filler'), 'keeps the old inode number from being reused at once');
  writeFileSync(c.path, 'CCCC');
  utimesSync(c.path, new Date(), new Date(c.mtimeMs));
  const c2 = scanned('m-c');
  const h = new FileHasher(cache);
  const r = await h.hashBatch([a, scanned('m-b'), c2]);
  assert.equal(h.stats.hits, c2.ino === c.ino ? 2 : 1);
  assert.equal(r.get('m-b'), sha('bbbb'));
  if (c2.ino !== c.ino) assert.equal(r.get('m-c'), sha('CCCC'), 'a new inode is re-hashed');
});

void test('useCache: false re-reads every file (mode "all") and still refreshes the cache', async () => {
  const cache = new MemoryCache();
  const files = [sourceFile('u-a', 'x'), sourceFile('u-b', 'y')];
  await new FileHasher(cache).hashBatch(files);
  const h = new FileHasher(cache, { useCache: false });
  await h.hashBatch(files);
  assert.equal(h.stats.misses, 2);
  assert.equal(cache.lookups, 1, 'the second hasher never looked the cache up');
  assert.deepEqual(cache.stores, [2, 2]);
});

void test('store: false (dry run) writes nothing to the cache', async () => {
  const cache = new MemoryCache();
  const h = new FileHasher(cache, { store: false });
  await h.hashBatch([sourceFile('d-a', 'x')]);
  assert.deepEqual(cache.stores, []);
});

void test('per-file errors do not fail the batch', async () => {
  const cache = new MemoryCache();
  const ok = sourceFile('e-ok', 'fine');
  const gone = sourceFile('e-gone', 'soon gone');
  unlinkSync(gone.path);
  const grown = sourceFile('e-grown', 'short');
  writeFileSync(grown.path, 'much longer now');
  const h = new FileHasher(cache);
  const r = await h.hashBatch([ok, gone, grown]);
  assert.equal(r.get('e-ok'), sha('fine'));
  const g = r.get('e-gone');
  assert.ok(g instanceof HoldfastError && g.code === 'HOLDFAST_E_SOURCE_VANISHED');
  const c = r.get('e-grown');
  assert.ok(c instanceof HoldfastError && c.code === 'HOLDFAST_E_SOURCE_CHANGED', 'hash of other content than the scan saw is refused');
  assert.equal(h.stats.errors, 2);
  assert.deepEqual(cache.stores, [1], 'only the good hash is cached');
});

void test('a failing cache lookup costs a re-hash, not the batch', async () => {
  const cache = new MemoryCache();
  cache.failLookup = true;
  const seen: string[] = [];
  const h = new FileHasher(cache, { onCacheError: (e) => seen.push(e.code) });
  const r = await h.hashBatch([sourceFile('f-a', 'x')]);
  assert.equal(r.get('f-a'), sha('x'));
  assert.deepEqual(seen, ['HOLDFAST_E_LEDGER_BUSY']);
});

void test('cancellation rejects the batch', async () => {
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(
    new FileHasher(null).hashBatch([sourceFile('c-a', 'x')], { signal: ac.signal }),
    (e: unknown) => e instanceof HoldfastError && e.code === 'HOLDFAST_E_CANCELLED',
  );
});

void test('without a cache (null) the hasher just hashes', async () => {
  const h = new FileHasher(null);
  const r = await h.hashBatch([sourceFile('n-a', ''), sourceFile('n-b', 'b')]);
  assert.equal(r.get('n-a'), sha(''));
  assert.equal(h.stats.misses, 2);
});

void test('with the real SQLite ledger: cache round-trip through file_cache', async () => {
  // A ledger that cannot open is a broken setup: the test fails, it is not skipped.
  const { openLedger } = await import('../../src/ledger/open.js');
  const ledger: Ledger = await openLedger({ stateDir: mkdtempSync(join(tmp, 'state-')) });
  try {
    const files = [sourceFile('l-a', 'ledger a'), sourceFile('l-b', 'ledger b')];
    const h1 = new FileHasher(ledger);
    await h1.hashBatch(files);
    assert.equal(h1.stats.misses, 2);
    const h2 = new FileHasher(ledger);
    const r = await h2.hashBatch(files);
    assert.equal(h2.stats.hits, 2);
    assert.equal(r.get('l-a'), sha('ledger a'));
  } finally {
    await ledger.close();
  }
});

void test('hashers sharing a memo (fan-out planners) read each file once, even hashing the same batch at the same time', async () => {
  const files = Array.from({ length: 20 }, (_, i) => sourceFile(`m${i}`, `memo content ${i}`.repeat(1000)));
  const memo = new HashMemo();
  const a = new FileHasher(null, { concurrency: 4, memo });
  const b = new FileHasher(null, { concurrency: 4, memo });
  const [ra, rb] = await Promise.all([a.hashBatch(files), b.hashBatch(files)]);
  for (const f of files) {
    assert.equal(ra.get(f.key), sha(`memo content ${f.key.slice(1)}`.repeat(1000)));
    assert.equal(rb.get(f.key), ra.get(f.key));
  }
  const total = files.reduce((n, f) => n + f.size, 0);
  assert.equal(a.stats.bytesHashed + b.stats.bytesHashed, total, 'every byte read once between the two');
  assert.equal(memo.hits, files.length);

  // A changed file is a new entry (size/mtime/inode are part of the key), never the old hash.
  writeFileSync(files[0]!.path, 'different and longer content');
  const changed = scanned(files[0]!.key);
  const rc = await new FileHasher(null, { memo }).hashBatch([changed]);
  assert.equal(rc.get(changed.key), sha('different and longer content'));
});

void test('a bounded memo forgets its oldest entries', async () => {
  const files = Array.from({ length: 5 }, (_, i) => sourceFile(`b${i}`, `bounded ${i}`));
  const memo = new HashMemo(2);
  await new FileHasher(null, { concurrency: 1, memo }).hashBatch(files);
  const again = new FileHasher(null, { concurrency: 1, memo });
  await again.hashBatch(files);
  assert.ok(memo.hits <= 2, `at most the 2 newest entries were reused (${memo.hits})`);
  assert.ok(again.stats.bytesHashed > 0);
});
