// `sync` mirrors deletions safely (DESIGN §2 promise 5), tested against real
// directories with the real SQLite ledger: two-phase deletes recorded in
// history, the max-delete cap, the empty-source rule, excluded files kept,
// dry runs, --backup-dir moves, a file that comes back, and a delete whose
// outcome could not be recorded being confirmed by the next run.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sync, parseMaxDelete } from '../../src/sync/sync.js';
import { openLedger } from '../../src/ledger/open.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import { RunEvents } from '../../src/engine/events.js';
import { faultyLedger } from '../helpers/faulty-ledger.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { destinationByUrl } from '../helpers/destinations.js';

const fast = { retry: { attempts: 2, baseMs: 1, maxMs: 2 } };

describe('sync', () => {
  let tmp: TempDir;
  let n = 0;
  before(async () => (tmp = await makeTempDir('holdfast-sync-')));
  after(async () => tmp.cleanup());

  async function fixture(count: number): Promise<{ src: string; dst: string; ledger: Ledger; url: string }> {
    const base = join(tmp.path, `case${n++}`);
    const src = join(base, 'src');
    mkdirSync(join(src, 'sub'), { recursive: true });
    for (let i = 0; i < count; i++) writeFileSync(join(src, i % 2 ? `sub/f${i}.txt` : `f${i}.txt`), `file ${i}`);
    const ledger = await openLedger({ stateDir: join(base, 'state') });
    const dst = join(base, 'dst');
    return { src, dst, ledger, url: `file://${dst}` };
  }

  it('deletes what is gone from the source, two-phase, recorded in history', async () => {
    const { src, dst, ledger, url } = await fixture(10);
    const first = await sync({ source: src, destination: url, ledger, ...fast });
    assert.equal(first.status, 'completed');
    assert.equal(first.uploads.completed, 10);
    assert.deepEqual(first.deletes, { completed: 0, failed: 0, partial: 0, refused: 0 });

    rmSync(join(src, 'f0.txt'));
    rmSync(join(src, 'sub/f1.txt'));
    const second = await sync({ source: src, destination: url, ledger, ...fast });
    assert.equal(second.status, 'completed');
    assert.equal(second.deletes?.completed, 2);
    assert.equal(existsSync(join(dst, 'f0.txt')), false);
    assert.equal(existsSync(join(dst, 'sub/f1.txt')), false);
    assert.equal(existsSync(join(dst, 'f2.txt')), true);

    const dest = await destinationByUrl(ledger, url);
    const history = await ledger.history(dest!.id, 'f0.txt');
    assert.deepEqual(
      history.map((h) => h.toStatus),
      ['upload_pending', 'upload_in_progress', 'upload_completed', 'delete_pending', 'delete_in_progress', 'delete_completed'],
    );
    const third = await sync({ source: src, destination: url, ledger, ...fast });
    assert.deepEqual(third.deletes, { completed: 0, failed: 0, partial: 0, refused: 0 });
    await ledger.close();
  });

  it('push never deletes', async () => {
    const { src, dst, ledger, url } = await fixture(4);
    await sync({ source: src, destination: url, ledger, ...fast });
    rmSync(join(src, 'f0.txt'));
    const { push } = await import('../../src/sync/push.js');
    const r = await push({ source: src, destination: url, ledger, ...fast });
    assert.equal(r.status, 'completed');
    assert.equal(r.deletes, undefined);
    assert.ok(existsSync(join(dst, 'f0.txt')));
    await ledger.close();
  });

  it('refuses to delete more than --max-delete and deletes nothing at all', async () => {
    const { src, dst, ledger, url } = await fixture(10);
    await sync({ source: src, destination: url, ledger, ...fast });
    for (const f of ['f0.txt', 'f2.txt', 'f4.txt', 'f6.txt', 'f8.txt', 'sub/f1.txt']) rmSync(join(src, f));
    const refused = await sync({ source: src, destination: url, ledger, ...fast });
    assert.equal(refused.status, 'partial');
    assert.equal(refused.deletes?.completed, 0);
    assert.equal(refused.deletes?.refused, 6);
    const err = refused.errors.find((e) => e.code === 'HOLDFAST_E_DELETE_REFUSED');
    assert.match(err?.message ?? '', /6 deletions exceed the limit of 5 \(50% of 10 tracked objects\)/);
    assert.ok(existsSync(join(dst, 'f0.txt')), 'nothing deleted');

    const allowed = await sync({ source: src, destination: url, ledger, maxDelete: 6, ...fast });
    assert.equal(allowed.status, 'completed');
    assert.equal(allowed.deletes?.completed, 6);
    assert.ok(!existsSync(join(dst, 'f0.txt')));
    await ledger.close();
  });

  it('an empty source never wipes the destination without --allow-empty-source', async () => {
    const { src, dst, ledger, url } = await fixture(3);
    await sync({ source: src, destination: url, ledger, ...fast });
    rmSync(src, { recursive: true });
    mkdirSync(src);
    const refused = await sync({ source: src, destination: url, ledger, maxDelete: '100%', ...fast });
    assert.equal(refused.deletes?.completed, 0);
    assert.equal(refused.deletes?.refused, 3);
    assert.match(refused.errors[0]?.message ?? '', /source directory is empty/);
    assert.ok(existsSync(join(dst, 'f0.txt')));
    const wiped = await sync({ source: src, destination: url, ledger, maxDelete: '100%', allowEmptySource: true, ...fast });
    assert.equal(wiped.deletes?.completed, 3);
    assert.ok(!existsSync(join(dst, 'f0.txt')));
    await ledger.close();
  });

  it('keeps objects whose files are merely excluded now, unless --delete-excluded', async () => {
    const { src, dst, ledger, url } = await fixture(4);
    await sync({ source: src, destination: url, ledger, ...fast });
    const kept = await sync({ source: src, destination: url, ledger, exclude: ['sub/'], ...fast });
    assert.equal(kept.deletes?.completed, 0);
    assert.ok(existsSync(join(dst, 'sub/f1.txt')));
    const removed = await sync({ source: src, destination: url, ledger, exclude: ['sub/'], deleteExcluded: true, ...fast });
    assert.equal(removed.deletes?.completed, 2);
    assert.ok(!existsSync(join(dst, 'sub/f1.txt')));
    await ledger.close();
  });

  it('a dry run lists the deletes and deletes nothing', async () => {
    const { src, dst, ledger, url } = await fixture(4);
    await sync({ source: src, destination: url, ledger, ...fast });
    rmSync(join(src, 'f0.txt'));
    const events = new RunEvents();
    const items: string[] = [];
    events.on('plan:item', (p) => items.push(`${p.action}:${p.key}`));
    const r = await sync({ source: src, destination: url, ledger, dryRun: true, events, ...fast });
    assert.deepEqual(items, ['delete:f0.txt']);
    assert.equal(r.deletes?.completed, 0);
    assert.ok(existsSync(join(dst, 'f0.txt')));
    const row = await ledger.getObject((await destinationByUrl(ledger, url))!.id, 'f0.txt');
    assert.equal(row?.status, 'upload_completed', 'the dry run wrote nothing to the ledger');
    await ledger.close();
  });

  it('--backup-dir moves deleted objects instead of deleting them', async () => {
    const { src, dst, ledger, url } = await fixture(2);
    const attic = join(tmp.path, `attic${n}`);
    await sync({ source: src, destination: url, ledger, ...fast });
    rmSync(join(src, 'f0.txt'));
    const r = await sync({ source: src, destination: url, ledger, backupDir: `file://${attic}`, ...fast });
    assert.equal(r.deletes?.completed, 1);
    assert.ok(!existsSync(join(dst, 'f0.txt')));
    assert.equal(readFileSync(join(attic, 'f0.txt'), 'utf8'), 'file 0');
    await ledger.close();
  });

  it('a file that comes back after its object was deleted is uploaded again', async () => {
    const { src, dst, ledger, url } = await fixture(2);
    await sync({ source: src, destination: url, ledger, ...fast });
    rmSync(join(src, 'f0.txt'));
    await sync({ source: src, destination: url, ledger, maxDelete: '100%', ...fast });
    writeFileSync(join(src, 'f0.txt'), 'back again');
    const r = await sync({ source: src, destination: url, ledger, ...fast });
    assert.equal(r.uploads.completed, 1);
    assert.equal(readFileSync(join(dst, 'f0.txt'), 'utf8'), 'back again');
    await ledger.close();
  });

  it('a delete whose outcome could not be recorded is confirmed by the next run', async () => {
    const { src, dst, ledger, url } = await fixture(4);
    await sync({ source: src, destination: url, ledger, ...fast });
    rmSync(join(src, 'f0.txt'));
    const faulty = faultyLedger(ledger, [
      { method: 'recordOutcomes', when: (args) => (args[0] as { status: string }[]).some((o) => o.status === 'delete_completed') },
    ]);
    const r = await sync({ source: src, destination: url, ledger: faulty, ...fast });
    assert.equal(r.deletes?.partial, 1);
    assert.ok(!existsSync(join(dst, 'f0.txt')), 'the object is gone');
    const dest = await destinationByUrl(ledger, url);
    assert.equal((await ledger.getObject(dest!.id, 'f0.txt'))?.status, 'delete_in_progress');
    const again = await sync({ source: src, destination: url, ledger, ...fast });
    assert.equal(again.status, 'completed');
    assert.equal((await ledger.getObject(dest!.id, 'f0.txt'))?.status, 'delete_completed');
    await ledger.close();
  });

  it('parses --max-delete', () => {
    assert.deepEqual(parseMaxDelete(undefined), { maxPercent: 50 });
    assert.deepEqual(parseMaxDelete('10%'), { maxPercent: 10 });
    assert.deepEqual(parseMaxDelete('7'), { maxCount: 7 });
    assert.deepEqual(parseMaxDelete(0), { maxCount: 0 });
    assert.throws(() => parseMaxDelete('lots'), /max-delete/);
    assert.throws(() => parseMaxDelete('150%'), /at most 100%/);
  });
});
