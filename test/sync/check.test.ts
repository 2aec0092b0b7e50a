// check() against real directories and a real SQLite ledger: each category is
// provoked behind Holdfast's back and found under the right name; re-reads
// catch same-size corruption and record verification; the sample prefers
// never-verified objects; memory stays bounded (findings capped, counts exact).

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { check, joinWithListing, judgeKey } from '../../src/sync/check.js';
import { push } from '../../src/sync/push.js';
import { openLedger } from '../../src/ledger/open.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import type { ObjectRow, SourceFile } from '../../src/core/types.js';
import type { JoinedKey } from '../../src/scan/change-detection.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { destinationByUrl } from '../helpers/destinations.js';

interface Fixture {
  readonly tmp: TempDir;
  readonly src: string;
  readonly dst: string;
  readonly url: string;
  readonly state: string;
}

async function fixture(files: Record<string, string>): Promise<Fixture> {
  const tmp = await makeTempDir('holdfast-check-');
  const src = join(tmp.path, 'src');
  const dst = join(tmp.path, 'dst');
  const state = join(tmp.path, 'state');
  for (const [key, content] of Object.entries(files)) write(join(src, key), content);
  mkdirSync(src, { recursive: true });
  const f = { tmp, src, dst, url: `file://${dst}`, state };
  const r = await pushAll(f);
  assert.equal(r.status, 'completed');
  return f;
}

function write(path: string, content: string | Buffer): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, content);
}

const pushAll = (f: Fixture) => push({ source: f.src, destination: f.url, stateDir: f.state, backendOptions: { fsync: false } });
const checkOf = (f: Fixture, extra: Partial<Parameters<typeof check>[0]> = {}) => check({ source: f.src, destination: f.url, stateDir: f.state, ...extra });

async function withLedger<T>(f: Fixture, fn: (ledger: Ledger, destinationId: number) => Promise<T>): Promise<T> {
  const ledger = await openLedger({ stateDir: f.state });
  try {
    const d = await destinationByUrl(ledger, f.url);
    assert.ok(d, 'destination known to the ledger');
    return await fn(ledger, d.id);
  } finally {
    await ledger.close();
  }
}

async function rows(f: Fixture): Promise<ObjectRow[]> {
  return withLedger(f, async (ledger, id) => {
    const out: ObjectRow[] = [];
    for await (const r of ledger.streamObjects(id)) out.push(r);
    return out;
  });
}

describe('check (file:// destination, SQLite ledger)', () => {
  const fixtures: Fixture[] = [];
  const make = async (files: Record<string, string>): Promise<Fixture> => {
    const f = await fixture(files);
    fixtures.push(f);
    return f;
  };
  after(async () => {
    for (const f of fixtures) await f.tmp.cleanup();
  });

  it('a destination that agrees with source and ledger is consistent, and nothing is written', async () => {
    const f = await make({ 'a.txt': 'alpha', 'dir/b.txt': 'bravo', 'dir/sub/c.txt': 'charlie' });
    const before = await rows(f);
    const r = await checkOf(f);
    assert.equal(r.status, 'consistent');
    assert.deepEqual(Object.values(r.counts), [0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(r.scanned.files, 3);
    assert.deepEqual(r.scanned.objects, 3);
    assert.deepEqual(r.scanned.rows, 3);
    assert.deepEqual(await rows(f), before, 'check changed no row');
  });

  it('finds each inconsistency in its own category', async () => {
    const f = await make({ 'keep.txt': 'keep', 'gone.txt': 'gone', 'resized.txt': 'resized', 'edited.txt': 'edited' });
    write(join(f.dst, 'foreign.bin'), 'put behind Holdfast’s back');
    rmSync(join(f.dst, 'gone.txt'));
    write(join(f.dst, 'resized.txt'), 'resized, and longer now');
    write(join(f.src, 'new.txt'), 'never pushed');
    write(join(f.src, 'edited.txt'), 'edited locally, longer');

    const r = await checkOf(f);
    assert.equal(r.status, 'inconsistent');
    assert.deepEqual(r.counts, { missing: 1, orphanedObjects: 1, orphanedRecords: 1, mismatches: 1, changedLocally: 1, staleUploads: 0, unreadable: 0 });
    assert.deepEqual(r.findings.missing, [{ key: 'new.txt', size: 12, ledgerStatus: null }]);
    assert.deepEqual(r.findings.orphanedObjects.map((o) => [o.key, o.ledgerStatus]), [['foreign.bin', null]]);
    assert.deepEqual(r.findings.orphanedRecords.map((o) => o.key), ['gone.txt']);
    assert.deepEqual(r.findings.mismatches.map((m) => [m.key, m.reasons]), [['resized.txt', ['size']]]);
    assert.equal(r.findings.mismatches[0]?.destination.size, 23);
    assert.deepEqual(r.findings.changedLocally.map((c) => [c.key, c.ledger.size, c.source.size]), [['edited.txt', 6, 22]]);
    // file:// cannot have multipart uploads: the category is checked (and empty), not skipped.
    assert.deepEqual(r.unchecked, {});
  });

  it('a touched file (same size, new mtime) is changedLocally; without a source, only destination-vs-ledger is judged', async () => {
    const f = await make({ 'a.txt': 'alpha' });
    const st = statSync(join(f.src, 'a.txt'));
    utimesSync(join(f.src, 'a.txt'), st.atime, new Date(st.mtimeMs + 5000));
    const r = await checkOf(f);
    assert.deepEqual(r.findings.changedLocally.map((c) => c.key), ['a.txt']);
    const noSource = await check({ destination: f.url, stateDir: f.state });
    assert.equal(noSource.status, 'consistent');
    assert.ok(noSource.unchecked.missing !== undefined && noSource.unchecked.changedLocally !== undefined);
  });

  it('respects excludes like push: an excluded file is not missing', async () => {
    const f = await make({ 'a.txt': 'alpha' });
    write(join(f.src, 'scratch.tmp'), 'excluded');
    write(join(f.src, 'cache/x.bin'), 'excluded by the ignore file');
    write(join(f.src, '.holdfastignore'), 'cache/\n');
    const pushed = await push({ source: f.src, destination: f.url, stateDir: f.state, exclude: ['*.tmp'], backendOptions: { fsync: false } });
    assert.equal(pushed.uploads.completed, 1, 'only .holdfastignore itself was new');
    const r = await checkOf(f, { exclude: ['*.tmp'] });
    assert.equal(r.counts.missing, 0, JSON.stringify(r.findings.missing));
    const without = await check({ source: f.src, destination: f.url, stateDir: f.state });
    assert.deepEqual(without.findings.missing.map((m) => m.key), ['scratch.tmp']);
  });

  it('an object under an in-progress row is not an orphan', async () => {
    const f = await make({ 'a.txt': 'alpha' });
    await withLedger(f, async (ledger, id) => {
      await ledger.planUploads(id, [{ key: 'busy.bin', sourcePath: join(f.src, 'busy.bin'), size: 4, mtimeMs: 0, sha256: 'x'.repeat(64), reason: 'new' }], null);
      const claimed = await ledger.claim({ destinationId: id, owner: 'elsewhere:1:ab', limit: 10, leaseMs: 60_000, runId: null });
      assert.equal(claimed.length, 1);
    });
    write(join(f.dst, 'busy.bin'), 'busy');
    const r = await checkOf(f);
    assert.equal(r.status, 'consistent');
    assert.equal(r.scanned.inProgress, 1);
  });

  it('a destination the ledger has never seen: every object is orphaned, and no ledger is created', async () => {
    const tmp = await makeTempDir('holdfast-check-');
    try {
      const dst = join(tmp.path, 'dst');
      write(join(dst, 'x.txt'), 'x');
      const state = join(tmp.path, 'state');
      const r = await check({ destination: `file://${dst}`, stateDir: state });
      assert.equal(r.counts.orphanedObjects, 1);
      assert.match(r.notes.join('\n'), /no record of this destination/);
      assert.throws(() => statSync(join(state, 'holdfast.db')), /ENOENT/);
    } finally {
      await tmp.cleanup();
    }
  });

  it('keeps exact counts but only the first N findings per category', async () => {
    const f = await make({ 'a.txt': 'alpha' });
    for (let i = 0; i < 25; i++) write(join(f.dst, `orphans/o${String(i).padStart(2, '0')}.bin`), `orphan ${i}`);
    const r = await checkOf(f, { maxFindings: 10 });
    assert.equal(r.counts.orphanedObjects, 25);
    assert.equal(r.findings.orphanedObjects.length, 10);
    assert.equal(r.truncated.orphanedObjects, true);
    assert.equal(r.truncated.missing, false);
    assert.equal(r.findings.orphanedObjects[0]?.key, 'orphans/o00.bin');
  });

  it('download finds same-size corruption the listing cannot see, and marks the others verified', async () => {
    const f = await make({ 'a.txt': 'alpha', 'b.txt': 'bravo', 'c.txt': 'charlie' });
    // Same size, different bytes, mtime put back: nothing cheap tells them apart.
    const p = join(f.dst, 'b.txt');
    const st = statSync(p);
    write(p, 'BRAVO');
    utimesSync(p, st.atime, st.mtime);
    assert.equal((await checkOf(f)).status, 'consistent', 'the listing alone cannot see it');

    const r = await checkOf(f, { download: true });
    assert.equal(r.status, 'inconsistent');
    assert.deepEqual(r.findings.mismatches.map((m) => [m.key, m.reasons]), [['b.txt', ['sha256']]]);
    assert.equal(r.scanned.reread, 3);
    assert.equal(r.scanned.verified, 2);
    const verified = (await rows(f)).filter((row) => row.verifiedAt !== null).map((row) => row.key);
    assert.deepEqual(verified, ['a.txt', 'c.txt']);
  });

  it('sample 50% re-reads half, never-verified objects first', async () => {
    const f = await make({ 'k1': '1', 'k2': '22', 'k3': '333', 'k4': '4444' });
    assert.ok((await rows(f)).every((r) => r.verifiedAt === null));
    const first = await checkOf(f, { samplePercent: 50 });
    assert.equal(first.status, 'consistent');
    assert.equal(first.scanned.reread, 2);
    const after1 = await rows(f);
    const verified1 = after1.filter((r) => r.verifiedAt !== null);
    assert.equal(verified1.length, 2);

    const second = await checkOf(f, { samplePercent: 50 });
    assert.equal(second.scanned.reread, 2);
    const after2 = await rows(f);
    assert.ok(after2.every((r) => r.verifiedAt !== null), 'the second sample took the two never verified');
    for (const r of verified1) assert.equal(after2.find((x) => x.key === r.key)?.verifiedAt, r.verifiedAt, `${r.key} was not re-read`);

    // A corrupted object found by the sample is a sha256 mismatch and is not marked verified.
    const third = await checkOf(f, { samplePercent: 100 });
    assert.equal(third.scanned.reread, 4);
    write(join(f.dst, 'k2'), 'XX');
    const fourth = await checkOf(f, { samplePercent: 100 });
    assert.deepEqual(fourth.findings.mismatches.map((m) => [m.key, m.reasons]), [['k2', ['sha256']]]);
  });

  it('refuses contradictory or invalid options', async () => {
    await assert.rejects(check({ destination: 'file:///nowhere', download: true, samplePercent: 5 }), /HOLDFAST_E_USAGE|cannot be combined/);
    await assert.rejects(check({ destination: 'file:///nowhere', samplePercent: 0 }), /percentage/);
    await assert.rejects(check({ destination: 'file:///nowhere', source: '/does/not/exist' }), (e: Error & { code?: string }) => e.code === 'HOLDFAST_E_SOURCE_MISSING');
  });
});

describe('the three-way join', () => {
  const row = (key: string, status: ObjectRow['status']): ObjectRow => ({
    id: 1, destinationId: 1, key, sourcePath: null, size: 3, mtimeMs: 1000, sha256: 'h', status, attempt: 0, attemptId: null,
    leaseOwner: null, leaseUntil: null, uploadId: null, etag: '"abc"', versionId: null, errorCode: null, errorMessage: null,
    nextAttemptAt: null, verifiedAt: null, sourceId: null, updatedAt: 0,
  });
  const file = (key: string, size = 3, mtimeMs = 1000): SourceFile => ({ key, path: `/s/${key}`, size, mtimeMs, ino: 1 });

  it('judges keys by the table of categories', () => {
    assert.equal(judgeKey({ key: 'k', row: row('k', 'upload_in_progress'), object: { key: 'k', size: 9 } }).inProgress, true);
    assert.equal(judgeKey({ key: 'k', object: { key: 'k', size: 1 } }).orphanedObject, true);
    assert.equal(judgeKey({ key: 'k', row: row('k', 'delete_completed'), object: { key: 'k', size: 1 } }).orphanedObject, true);
    assert.equal(judgeKey({ key: 'k', row: row('k', 'delete_pending'), object: { key: 'k', size: 1 } }).orphanedObject, false);
    assert.equal(judgeKey({ key: 'k', row: row('k', 'upload_completed') }).orphanedRecord, true);
    assert.equal(judgeKey({ key: 'k', file: file('k'), row: row('k', 'upload_pending') }).missing, true);
    assert.equal(judgeKey({ key: 'k', file: file('k'), row: row('k', 'upload_completed') }).missing, false);
    assert.deepEqual(judgeKey({ key: 'k', row: row('k', 'upload_completed'), object: { key: 'k', size: 3, etag: 'ABC' } }).mismatch, [], 'etags compare without quotes or case');
    assert.deepEqual(judgeKey({ key: 'k', row: row('k', 'upload_completed'), object: { key: 'k', size: 4, etag: '"def"' } }).mismatch, ['size', 'etag']);
    assert.deepEqual(judgeKey({ key: 'k', row: row('k', 'upload_completed'), object: { key: 'k', size: 3 } }).mismatch, [], 'no etag on the destination: not compared');
    assert.equal(judgeKey({ key: 'k', file: file('k', 3, 2000), row: row('k', 'upload_completed'), object: { key: 'k', size: 3 } }).changedLocally, true);
  });

  it('refuses a listing that is not in key order', async () => {
    async function* joined(): AsyncGenerator<JoinedKey> {}
    async function* listing() {
      yield { key: 'b', size: 1 };
      yield { key: 'a', size: 1 };
    }
    await assert.rejects(
      (async () => {
        for await (const _ of joinWithListing(joined(), listing())) void _;
      })(),
      /not in key order/,
    );
  });

  it('merges in UTF-8 byte order (astral characters after U+FFFD)', async () => {
    const keys = ['a', '\u{FFFD}', '\u{1F600}'];
    async function* joined(): AsyncGenerator<JoinedKey> {
      yield { key: 'a', row: row('a', 'upload_completed') };
      yield { key: '\u{1F600}', row: row('\u{1F600}', 'upload_completed') };
    }
    async function* listing() {
      for (const key of keys) yield { key, size: 3 };
    }
    const seen: string[] = [];
    for await (const s of joinWithListing(joined(), listing())) seen.push(`${s.key}:${s.row ? 'r' : ''}${s.object ? 'o' : ''}`);
    assert.deepEqual(seen, ['a:ro', '\u{FFFD}:o', '\u{1F600}:ro']);
  });
});
