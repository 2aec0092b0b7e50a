// cleanup() against real directories and a real SQLite ledger: the dry run
// changes nothing; --apply repairs through the ledger (two-phase deletes,
// requeues, adoption) with every action in history; the deletion cap refuses
// all-or-nothing; keys with live rows are never touched.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { check } from '../../src/sync/check.js';
import { cleanup } from '../../src/sync/cleanup.js';
import { push } from '../../src/sync/push.js';
import { openLedger } from '../../src/ledger/open.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import type { HistoryRow, ObjectRow } from '../../src/core/types.js';
import { makeTempDir, type TempDir, listTree } from '../helpers/tmp.js';
import { destinationByUrl } from '../helpers/destinations.js';

interface Fixture {
  readonly tmp: TempDir;
  readonly src: string;
  readonly dst: string;
  readonly url: string;
  readonly state: string;
}

function write(path: string, content: string): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, content);
}


const pushAll = (f: Fixture) => push({ source: f.src, destination: f.url, stateDir: f.state, backendOptions: { fsync: false } });
const checkOf = (f: Fixture) => check({ source: f.src, destination: f.url, stateDir: f.state });
const cleanupOf = (f: Fixture, extra: Partial<Parameters<typeof cleanup>[0]> = {}) =>
  cleanup({ destination: f.url, stateDir: f.state, backendOptions: { fsync: false }, ...extra });

async function withLedger<T>(f: Fixture, fn: (ledger: Ledger, destinationId: number) => Promise<T>): Promise<T> {
  const ledger = await openLedger({ stateDir: f.state });
  try {
    const d = await destinationByUrl(ledger, f.url);
    assert.ok(d);
    return await fn(ledger, d.id);
  } finally {
    await ledger.close();
  }
}

async function snapshot(f: Fixture): Promise<{ rows: ObjectRow[]; files: string[] }> {
  const rows = await withLedger(f, async (ledger, id) => {
    const out: ObjectRow[] = [];
    for await (const r of ledger.streamObjects(id)) out.push(r);
    return out;
  });
  return { rows, files: listTree(f.dst) };
}

const historyOf = (f: Fixture, key: string): Promise<HistoryRow[]> => withLedger(f, (ledger, id) => ledger.history(id, key));

describe('cleanup (file:// destination, SQLite ledger)', () => {
  const temps: TempDir[] = [];
  after(async () => {
    for (const t of temps) await t.cleanup();
  });
  async function make(files: Record<string, string>): Promise<Fixture> {
    const tmp = await makeTempDir('holdfast-cleanup-');
    temps.push(tmp);
    const f = { tmp, src: join(tmp.path, 'src'), dst: join(tmp.path, 'dst'), url: `file://${join(tmp.path, 'dst')}`, state: join(tmp.path, 'state') };
    mkdirSync(f.src, { recursive: true });
    for (const [key, content] of Object.entries(files)) write(join(f.src, key), content);
    assert.equal((await pushAll(f)).status, 'completed');
    return f;
  }

  it('dry run says what it would do and changes nothing; --apply repairs; history shows it; push + check agree', async () => {
    const f = await make({ 'a.txt': 'alpha', 'b.txt': 'bravo', 'c.txt': 'charlie', 'd.txt': 'delta' });
    write(join(f.dst, 'foreign.bin'), 'not from Holdfast');
    rmSync(join(f.dst, 'b.txt'));
    assert.equal((await checkOf(f)).status, 'inconsistent');

    const before = await snapshot(f);
    const dry = await cleanupOf(f);
    assert.equal(dry.dryRun, true);
    assert.equal(dry.status, 'completed');
    assert.deepEqual(dry.planned, { delete: 1, adopt: 0, requeue: 1, abort: 0, leave: 0 });
    assert.deepEqual(dry.items.map((i) => [i.action, i.key]), [['requeue', 'b.txt'], ['delete', 'foreign.bin']]);
    assert.deepEqual(dry.done, { deleted: 0, adopted: 0, requeued: 0, aborted: 0 });
    assert.deepEqual(await snapshot(f), before, 'the dry run changed nothing');

    const applied = await cleanupOf(f, { apply: true });
    assert.equal(applied.status, 'completed', JSON.stringify(applied.errors));
    assert.deepEqual(applied.done, { deleted: 1, adopted: 0, requeued: 1, aborted: 0 });
    assert.ok(!existsSync(join(f.dst, 'foreign.bin')));
    assert.ok(applied.runId !== null);

    const orphanHistory = await historyOf(f, 'foreign.bin');
    assert.deepEqual(orphanHistory.map((h) => [h.fromStatus, h.toStatus]), [[null, 'delete_pending'], ['delete_pending', 'delete_in_progress'], ['delete_in_progress', 'delete_completed']]);
    assert.match(orphanHistory[0]?.note ?? '', /orphaned object/);
    assert.ok(orphanHistory.every((h) => h.runId === applied.runId));
    const recordHistory = await historyOf(f, 'b.txt');
    assert.deepEqual(recordHistory.at(-1) && [recordHistory.at(-1)!.fromStatus, recordHistory.at(-1)!.toStatus], ['upload_completed', 'upload_pending']);
    assert.match(recordHistory.at(-1)?.note ?? '', /orphaned record/);

    // The requeued record is "missing" now, until a push uploads it again.
    const mid = await checkOf(f);
    assert.deepEqual(mid.counts.missing, 1);
    const pushed = await pushAll(f);
    assert.equal(pushed.uploads.completed, 1);
    assert.equal((await checkOf(f)).status, 'consistent');
    const again = await cleanupOf(f, { apply: true });
    assert.equal(Object.values(again.planned).reduce((n, c) => n + c, 0), 0);
  });

  it('--adopt records orphans equal to the source file, leaves the others alone; --delete-orphans deletes those', async () => {
    const f = await make({ 'a.txt': 'alpha' });
    // The ledger lost these (say, restored from an older copy): the files are on the destination.
    write(join(f.src, 'match.txt'), 'same content');
    write(join(f.dst, 'match.txt'), 'same content');
    write(join(f.src, 'differs.txt'), 'local version');
    write(join(f.dst, 'differs.txt'), 'remote version');
    write(join(f.dst, 'stranger.txt'), 'no source file');

    await assert.rejects(cleanupOf(f, { adopt: true }), /--source/);
    const dry = await cleanupOf(f, { source: f.src, adopt: true });
    assert.deepEqual(dry.items.map((i) => [i.action, i.key]), [['leave', 'differs.txt'], ['adopt', 'match.txt'], ['leave', 'stranger.txt']]);
    assert.match(dry.items[0]?.reason ?? '', /differs from the source file/);
    assert.match(dry.items[2]?.reason ?? '', /no source file/);

    const applied = await cleanupOf(f, { source: f.src, adopt: true, apply: true });
    assert.equal(applied.done.adopted, 1);
    assert.equal(applied.done.deleted, 0);
    assert.deepEqual(listTree(f.dst), ['a.txt', 'differs.txt', 'match.txt', 'stranger.txt'], 'nothing deleted without --delete-orphans');
    const adopted = await withLedger(f, (l, id) => l.getObject(id, 'match.txt'));
    assert.equal(adopted?.status, 'upload_completed');
    assert.equal(adopted?.size, 12);
    assert.match((await historyOf(f, 'match.txt'))[0]?.note ?? '', /adopted/);

    const deleting = await cleanupOf(f, { source: f.src, adopt: true, deleteOrphans: true, apply: true, maxDelete: 10 });
    assert.equal(deleting.done.deleted, 2);
    assert.deepEqual(listTree(f.dst), ['a.txt', 'match.txt']);
    // The adopted object is not sent again; the local file whose remote copy differed is.
    const pushed = await pushAll(f);
    assert.equal(pushed.uploads.completed, 1);
    assert.equal(pushed.uploads.skipped, 2);
    assert.equal((await checkOf(f)).status, 'consistent');
  });

  it('the deletion cap is all or nothing', async () => {
    const f = await make({ 'a.txt': 'alpha', 'b.txt': 'bravo' });
    for (const k of ['x1', 'x2', 'x3']) write(join(f.dst, k), k);
    const refused = await cleanupOf(f, { apply: true, maxDelete: 2 });
    assert.equal(refused.status, 'partial');
    assert.equal(refused.refused, 3);
    assert.equal(refused.done.deleted, 0);
    assert.equal(refused.errors[0]?.code, 'HOLDFAST_E_DELETE_REFUSED');
    assert.deepEqual(listTree(f.dst), ['a.txt', 'b.txt', 'x1', 'x2', 'x3']);
    assert.equal((await historyOf(f, 'x1')).length, 0, 'not even marked');
    // The default is 50% of tracked objects: 1 of 2 here.
    assert.equal((await cleanupOf(f, { apply: true })).refused, 3);
    const allowed = await cleanupOf(f, { apply: true, maxDelete: 3 });
    assert.equal(allowed.done.deleted, 3);
    assert.deepEqual(listTree(f.dst), ['a.txt', 'b.txt']);
  });

  it('never touches keys with a live row: a pending upload, an in-progress row', async () => {
    const f = await make({ 'a.txt': 'alpha', 'b.txt': 'bravo', 'c.txt': 'charlie', 'd.txt': 'delta' });
    await withLedger(f, async (ledger, id) => {
      await ledger.planUploads(id, [{ key: 'busy.bin', sourcePath: join(f.src, 'busy.bin'), size: 4, mtimeMs: 0, sha256: 'b'.repeat(64), reason: 'new' }], null);
      await ledger.claim({ destinationId: id, owner: 'elsewhere:1:ab', limit: 10, leaseMs: 60_000, runId: null });
      await ledger.planUploads(id, [{ key: 'queued.bin', sourcePath: join(f.src, 'queued.bin'), size: 6, mtimeMs: 0, sha256: 'q'.repeat(64), reason: 'new' }], null);
    });
    write(join(f.dst, 'busy.bin'), 'busy');
    write(join(f.dst, 'queued.bin'), 'queued');
    rmSync(join(f.dst, 'a.txt'));
    const r = await cleanupOf(f, { apply: true });
    assert.equal(r.planned.delete, 0);
    assert.ok(existsSync(join(f.dst, 'busy.bin')) && existsSync(join(f.dst, 'queued.bin')));
    const busy = await withLedger(f, (l, id) => l.getObject(id, 'busy.bin'));
    assert.equal(busy?.status, 'upload_in_progress');
    assert.equal(r.done.requeued, 1, 'the orphaned record is still repaired');
  });

  it('--requeue-mismatches sends a changed object again; without it the mismatch is left and reported', async () => {
    const f = await make({ 'a.txt': 'alpha', 'b.txt': 'bravo' });
    write(join(f.dst, 'b.txt'), 'bravo, but longer');
    const left = await cleanupOf(f, { apply: true });
    assert.deepEqual(left.items.map((i) => [i.action, i.key]), [['leave', 'b.txt']]);
    assert.match(left.items[0]?.reason ?? '', /--requeue-mismatches/);
    const fixed = await cleanupOf(f, { apply: true, requeueMismatches: true });
    assert.equal(fixed.done.requeued, 1);
    assert.equal((await pushAll(f)).uploads.completed, 1);
    assert.equal((await checkOf(f)).status, 'consistent');
  });

  it('--download finds content mismatches the listing cannot show, and --requeue-mismatches repairs them', async () => {
    const f = await make({ 'a.txt': 'alpha', 'b.txt': 'bravo' });
    const p = join(f.dst, 'b.txt');
    const st = statSync(p);
    write(p, 'BRAVO');
    utimesSync(p, st.atime, st.mtime);
    assert.equal((await cleanupOf(f, { apply: true, requeueMismatches: true })).done.requeued, 0, 'the listing cannot see it');
    const seen = await cleanupOf(f, { download: true });
    assert.deepEqual(seen.items.map((i) => [i.action, i.key]), [['leave', 'b.txt']]);
    assert.match(seen.items[0]?.reason ?? '', /sha256/);
    const fixed = await cleanupOf(f, { download: true, requeueMismatches: true, apply: true });
    assert.equal(fixed.done.requeued, 1);
    assert.equal((await pushAll(f)).uploads.completed, 1);
    assert.equal((await check({ source: f.src, destination: f.url, stateDir: f.state, download: true })).status, 'consistent');
  });
});
