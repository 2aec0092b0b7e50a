// The ledger's delete and repair methods (sync, cleanup, check): every one
// goes through the transition table, writes history, and respects rows that
// changed or are in progress.

import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openLedger } from '../../src/ledger/open.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import type { DestinationRow } from '../../src/core/types.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { destinationRef } from '../helpers/destinations.js';

const SHA = 'a'.repeat(64);

describe('ledger repairs', () => {
  let tmp: TempDir;
  let ledger: Ledger;
  let dest: DestinationRow;

  beforeEach(async () => {
    tmp = await makeTempDir('holdfast-repairs-');
    ledger = await openLedger({ stateDir: join(tmp.path, 'state') });
    dest = await ledger.ensureDestination(destinationRef('file:///backup', 'file'));
  });
  afterEach(async () => {
    await ledger.close();
    await tmp.cleanup();
  });

  async function completed(key: string): Promise<number> {
    await ledger.planUploads(dest.id, [{ key, sourcePath: `/s/${key}`, size: 1, mtimeMs: 1, sha256: SHA, reason: 'new' }], null);
    const rows = await ledger.claim({ destinationId: dest.id, owner: 'h:1:a', limit: 10, leaseMs: 60_000, runId: null });
    const row = rows.find((r) => r.key === key)!;
    await ledger.recordOutcomes([{ objectId: row.id, attemptId: row.attemptId!, status: 'upload_completed', etag: 'e' }], null);
    return row.id;
  }

  it('planDeletes moves completed rows to delete_pending and leaves changed ones alone', async () => {
    const a = await completed('a');
    const b = await completed('b');
    const left = await ledger.planDeletes(
      [
        { objectId: a, key: 'a', seen: { status: 'upload_completed', sha256: SHA } },
        { objectId: b, key: 'b', seen: { status: 'upload_completed', sha256: 'f'.repeat(64) } },
      ],
      'gone',
      null,
    );
    assert.deepEqual(left, ['b']);
    assert.equal((await ledger.getObject(dest.id, 'a'))?.status, 'delete_pending');
    assert.equal((await ledger.getObject(dest.id, 'b'))?.status, 'upload_completed');
    const claimed = await ledger.claim({ destinationId: dest.id, owner: 'h:1:a', limit: 10, leaseMs: 60_000, runId: null, statuses: ['delete_pending'] });
    assert.deepEqual(claimed.map((r) => [r.key, r.status]), [['a', 'delete_in_progress']]);
  });

  it('requeueObjects sends completed rows back to pending and forgets their etag', async () => {
    const a = await completed('a');
    await ledger.requeueObjects([a], 'orphaned record', null);
    const row = await ledger.getObject(dest.id, 'a');
    assert.equal(row?.status, 'upload_pending');
    assert.equal(row?.etag, null);
    assert.equal((await ledger.history(dest.id, 'a')).at(-1)?.note, 'orphaned record');
  });

  it('adoptObjects records unknown objects as completed and verified, never over an existing row', async () => {
    await completed('known');
    const left = await ledger.adoptObjects(
      dest.id,
      [
        { key: 'stray', sourcePath: '/s/stray', size: 5, mtimeMs: 2, sha256: SHA, etag: 'x' },
        { key: 'known', sourcePath: '/s/known', size: 5, mtimeMs: 2, sha256: SHA, etag: 'x' },
      ],
      'adopted',
      null,
    );
    assert.deepEqual(left, ['known']);
    const row = await ledger.getObject(dest.id, 'stray');
    assert.equal(row?.status, 'upload_completed');
    assert.notEqual(row?.verifiedAt, null);
    assert.deepEqual((await ledger.history(dest.id, 'stray')).map((h) => [h.fromStatus, h.toStatus]), [[null, 'upload_completed']]);
  });

  it('markOrphansForDeletion creates delete_pending rows only for keys the ledger does not track', async () => {
    await completed('tracked');
    const left = await ledger.markOrphansForDeletion(dest.id, ['orphan', 'tracked'], 'orphaned object', null);
    assert.deepEqual(left, ['tracked']);
    assert.equal((await ledger.getObject(dest.id, 'orphan'))?.status, 'delete_pending');
  });

  it('recordNote writes history without a status change, with or without a row', async () => {
    await completed('a');
    await ledger.recordNote(dest.id, 'a', 'aborted stale multipart upload u1', null);
    await ledger.recordNote(dest.id, 'unknown', 'aborted stale multipart upload u2', null);
    const a = (await ledger.history(dest.id, 'a')).at(-1);
    assert.equal(a?.toStatus, null);
    assert.equal(a?.fromStatus, 'upload_completed');
    const u = await ledger.history(dest.id, 'unknown');
    assert.equal(u.length, 1);
    assert.equal(u[0]?.objectId, null);
  });

  it('leastRecentlyVerified prefers never-verified rows, then the oldest verification', async () => {
    const a = await completed('a');
    const b = await completed('b');
    await completed('c');
    await ledger.markVerified([a], 2000);
    await ledger.markVerified([b], 1000);
    assert.deepEqual((await ledger.leastRecentlyVerified(dest.id, 3)).map((r) => r.key), ['c', 'b', 'a']);
    assert.deepEqual((await ledger.leastRecentlyVerified(dest.id, 1)).map((r) => r.key), ['c']);
  });
});
