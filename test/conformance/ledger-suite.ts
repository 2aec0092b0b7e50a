// The ledger conformance suite: every dialect runs these same tests against a
// real database (test/ledger/sqlite.test.ts for SQLite; PostgreSQL calls the
// same function when it arrives). It checks the Ledger contract of
// src/ledger/ledger.ts, not any one implementation.

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { isHoldfastError } from '../../src/core/errors.js';
import type { DestinationRow, ObjectRow } from '../../src/core/types.js';
import type { Ledger, PlannedUpload } from '../../src/ledger/ledger.js';
import { destinationByUrl, destinationRef } from '../helpers/destinations.js';

export interface LedgerHarness {
  readonly ledger: Ledger;
  cleanup(): Promise<void>;
}

const SHA_A = 'a'.repeat(64);
const SHA_B = 'b'.repeat(64);
const OWNER = 'test-host:1:abc';

function planned(key: string, overrides: Partial<PlannedUpload> = {}): PlannedUpload {
  return { key, sourcePath: `/src/${key}`, size: 10, mtimeMs: 1_700_000_000_123.5, sha256: SHA_A, reason: 'new', ...overrides };
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function rejectsWithCode(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isHoldfastError(e), `expected a HoldfastError, got ${String(e)}`);
    assert.equal(e.code, code);
    return true;
  });
}

export function ledgerConformance(name: string, open: () => Promise<LedgerHarness>): void {
  void describe(`ledger conformance: ${name}`, () => {
    let harness: LedgerHarness;
    let ledger: Ledger;
    let dest: DestinationRow;

    beforeEach(async () => {
      harness = await open();
      ledger = harness.ledger;
      dest = await ledger.ensureDestination(destinationRef('file:///var/backups/one', 'file'));
    });
    afterEach(async () => {
      await harness.cleanup();
    });

    async function claimAll(limit = 1000): Promise<ObjectRow[]> {
      return ledger.claim({ destinationId: dest.id, owner: OWNER, limit, leaseMs: 60_000, runId: null });
    }

    async function mustGet(key: string): Promise<ObjectRow> {
      const row = await ledger.getObject(dest.id, key);
      assert.ok(row, `row for "${key}"`);
      return row;
    }

    void describe('destinations', () => {
      void it('ensureDestination is idempotent and lookups find it', async () => {
        const again = await ledger.ensureDestination(destinationRef('file:///var/backups/one', 'file'));
        assert.equal(again.id, dest.id);
        const other = await ledger.ensureDestination(destinationRef('s3://bucket/prefix', 's3'));
        assert.notEqual(other.id, dest.id);
        assert.deepEqual(await destinationByUrl(ledger, 's3://bucket/prefix'), other);
        assert.equal(await destinationByUrl(ledger, 's3://nope'), undefined);
        assert.deepEqual(
          (await ledger.listDestinations()).map((d) => d.url),
          ['file:///var/backups/one', 's3://bucket/prefix'],
        );
        assert.equal(dest.kind, 'file');
        assert.equal(dest.consecutiveFailures, 0);
        assert.equal(dest.lastUploadAt, null);
      });

      void it('a destination is its identity: one URL on two endpoints is two rows, found by URL together', async () => {
        const aws = await ledger.ensureDestination({ url: 's3://docs/p/', kind: 's3', location: { namespace: 's3://docs/', prefix: 'p/' } });
        const minio = await ledger.ensureDestination({ url: 's3://docs/p/', kind: 's3', location: { namespace: 's3+http://127.0.0.1:9000/docs/', prefix: 'p/' } });
        assert.notEqual(aws.id, minio.id);
        assert.equal(aws.identity, 's3://docs/p/');
        assert.equal(minio.identity, 's3+http://127.0.0.1:9000/docs/p/');
        assert.equal(minio.namespace, 's3+http://127.0.0.1:9000/docs/');
        assert.equal((await ledger.ensureDestination({ url: 's3://docs/p/', kind: 's3', location: { namespace: 's3+http://127.0.0.1:9000/docs/', prefix: 'p/' } })).id, minio.id);
        assert.deepEqual(
          (await ledger.findDestinations('s3://docs/p/')).map((d) => d.id),
          [aws.id, minio.id],
        );
        assert.equal((await ledger.getDestination({ url: 's3://docs/p/', location: { namespace: 's3+http://other:1/docs/', prefix: 'p/' } }))?.id, undefined);
        assert.equal((await ledger.getDestination({ url: 's3://docs/p/', location: minio.namespace === null ? { namespace: '', prefix: '' } : { namespace: minio.namespace, prefix: 'p/' } }))?.id, minio.id);
      });

      void it('records destination health: failures count up, a success resets them', async () => {
        await ledger.recordDestinationHealth(dest.id, { at: 1000, status: 'completed', error: null });
        let d = await destinationByUrl(ledger, dest.url);
        assert.equal(d?.lastUploadAt, 1000);
        assert.equal(d?.lastStatus, 'completed');
        assert.equal(d?.consecutiveFailures, 0);

        await ledger.recordDestinationHealth(dest.id, { at: 2000, status: 'failed', error: 'HOLDFAST_E_NETWORK' });
        await ledger.recordDestinationHealth(dest.id, { at: 3000, status: 'failed', error: 'HOLDFAST_E_AUTH' });
        d = await destinationByUrl(ledger, dest.url);
        assert.equal(d?.consecutiveFailures, 2);
        assert.equal(d?.lastError, 'HOLDFAST_E_AUTH');
        assert.equal(d?.lastStatus, 'failed');
        assert.equal(d?.lastUploadAt, 1000, 'last_upload_at stays at the last success');

        await ledger.recordDestinationHealth(dest.id, { at: 4000, status: 'completed', error: null });
        d = await destinationByUrl(ledger, dest.url);
        assert.equal(d?.consecutiveFailures, 0);
        assert.equal(d?.lastError, null);
        assert.equal(d?.lastUploadAt, 4000);
      });
    });

    void describe('runs', () => {
      void it('start, finish and list', async () => {
        const before = Date.now();
        const r1 = await ledger.startRun({ command: 'push', destinationId: dest.id, source: '/src', owner: OWNER });
        assert.equal(r1.status, 'running');
        assert.equal(r1.finishedAt, null);
        assert.equal(r1.summary, null);
        assert.ok(r1.startedAt >= before);
        const r2 = await ledger.startRun({ command: 'check', destinationId: null, source: null, owner: OWNER });
        await ledger.finishRun(r1.id, 'partial', { completed: 3, failed: 1 });

        const all = await ledger.listRuns();
        assert.deepEqual(
          all.map((r) => r.id),
          [r2.id, r1.id],
          'newest first',
        );
        const done = all[1]!;
        assert.equal(done.status, 'partial');
        assert.ok(done.finishedAt !== null && done.finishedAt >= done.startedAt);
        assert.deepEqual(JSON.parse(done.summary ?? 'null'), { completed: 3, failed: 1 });
        assert.equal(done.command, 'push');
        assert.equal(done.source, '/src');
        assert.equal(done.owner, OWNER);

        assert.deepEqual(
          (await ledger.listRuns({ destinationId: dest.id })).map((r) => r.id),
          [r1.id],
        );
        assert.equal((await ledger.listRuns({ limit: 1 })).length, 1);
      });
    });

    void describe('the protocol', () => {
      void it('plan → claim → outcome round trip, with history rows', async () => {
        const run = await ledger.startRun({ command: 'push', destinationId: dest.id, source: '/src', owner: OWNER });
        await ledger.planUploads(dest.id, [planned('b'), planned('a'), planned('c', { size: 99, sha256: SHA_B })], run.id);

        const pending = await mustGet('c');
        assert.equal(pending.status, 'upload_pending');
        assert.equal(pending.size, 99);
        assert.equal(pending.sha256, SHA_B);
        assert.equal(pending.sourcePath, '/src/c');
        assert.equal(pending.mtimeMs, 1_700_000_000_123.5, 'mtime round-trips exactly, fraction included');
        assert.equal(pending.attempt, 0);
        assert.equal(pending.attemptId, null);

        const before = Date.now();
        const claimed = await ledger.claim({ destinationId: dest.id, owner: OWNER, limit: 10, leaseMs: 60_000, runId: run.id });
        assert.deepEqual(
          claimed.map((r) => r.key),
          ['a', 'b', 'c'],
          'key order',
        );
        for (const r of claimed) {
          assert.equal(r.status, 'upload_in_progress');
          assert.equal(r.attempt, 1);
          assert.equal(r.leaseOwner, OWNER);
          assert.ok(r.attemptId !== null && r.attemptId.length > 0);
          assert.ok(r.leaseUntil !== null && r.leaseUntil >= before + 60_000 && r.leaseUntil <= Date.now() + 60_000);
        }
        assert.equal(new Set(claimed.map((r) => r.attemptId)).size, 3, 'a fresh attempt id per row');

        const results = await ledger.recordOutcomes(
          claimed.map((r) => ({ objectId: r.id, attemptId: r.attemptId!, status: 'upload_completed' as const, etag: `"etag-${r.key}"`, versionId: 'v1' })),
          run.id,
        );
        assert.deepEqual(
          results,
          claimed.map((r) => ({ objectId: r.id, applied: true })),
        );

        const done = await mustGet('a');
        assert.equal(done.status, 'upload_completed');
        assert.equal(done.etag, '"etag-a"');
        assert.equal(done.versionId, 'v1');
        assert.equal(done.attempt, 0);
        assert.equal(done.leaseOwner, null);
        assert.equal(done.leaseUntil, null);
        assert.equal(done.errorCode, null);
        assert.equal(done.verifiedAt, null);

        const hist = await ledger.history(dest.id, 'a');
        assert.deepEqual(
          hist.map((h) => [h.fromStatus, h.toStatus]),
          [
            [null, 'upload_pending'],
            ['upload_pending', 'upload_in_progress'],
            ['upload_in_progress', 'upload_completed'],
          ],
        );
        assert.equal(hist[0]!.note, 'new');
        assert.equal(hist[1]!.attemptId, claimed[0]!.attemptId);
        assert.equal(hist[2]!.attemptId, claimed[0]!.attemptId);
        for (const h of hist) {
          assert.equal(h.runId, run.id);
          assert.equal(h.objectId, done.id);
          assert.equal(h.destinationId, dest.id);
          assert.equal(h.key, 'a');
          assert.ok(h.at > 0);
        }
      });

      void it('a failure records its error and a retry claims it again', async () => {
        await ledger.planUploads(dest.id, [planned('x')], null);
        const [first] = await claimAll();
        await ledger.recordOutcomes(
          [{ objectId: first!.id, attemptId: first!.attemptId!, status: 'upload_failed', errorCode: 'HOLDFAST_E_NETWORK', errorMessage: 'reset', nextAttemptAt: 5000 }],
          null,
        );
        let row = await mustGet('x');
        assert.equal(row.status, 'upload_failed');
        assert.equal(row.errorCode, 'HOLDFAST_E_NETWORK');
        assert.equal(row.errorMessage, 'reset');
        assert.equal(row.nextAttemptAt, 5000);
        assert.equal(row.leaseOwner, null);
        assert.equal(row.leaseUntil, null);
        assert.equal(row.attempt, 1);

        assert.deepEqual(await claimAll(), [], 'default claim takes pending rows only');
        const [second] = await ledger.claim({ destinationId: dest.id, owner: OWNER, limit: 5, leaseMs: 1000, runId: null, statuses: ['upload_failed'] });
        assert.equal(second?.status, 'upload_in_progress');
        assert.equal(second?.attempt, 2);
        assert.notEqual(second?.attemptId, first!.attemptId);

        await ledger.recordOutcomes([{ objectId: second.id, attemptId: second.attemptId!, status: 'upload_completed', etag: 'e', verified: true }], null);
        row = await mustGet('x');
        assert.equal(row.status, 'upload_completed');
        assert.equal(row.errorCode, null);
        assert.equal(row.errorMessage, null);
        assert.equal(row.nextAttemptAt, null);
        assert.equal(row.attempt, 0);
        assert.ok(row.verifiedAt !== null && row.verifiedAt > 0);
      });

      void it('upload_pending outcome (recovery found nothing) releases the lease', async () => {
        await ledger.planUploads(dest.id, [planned('p')], null);
        const [c] = await claimAll();
        const [res] = await ledger.recordOutcomes([{ objectId: c!.id, attemptId: c!.attemptId!, status: 'upload_pending', note: 'not on destination' }], null);
        assert.equal(res?.applied, true);
        const row = await mustGet('p');
        assert.equal(row.status, 'upload_pending');
        assert.equal(row.leaseOwner, null);
        assert.equal(row.leaseUntil, null);
        const hist = await ledger.history(dest.id, 'p');
        assert.equal(hist.at(-1)?.note, 'not on destination');
        assert.equal((await claimAll()).length, 1, 'claimable again');
      });

      void it('fencing: an outcome with a stale attempt id is not applied', async () => {
        await ledger.planUploads(dest.id, [planned('f'), planned('g')], null);
        const [f, g] = await claimAll();
        const historyBefore = await ledger.history(dest.id, 'f');

        const results = await ledger.recordOutcomes(
          [
            { objectId: f!.id, attemptId: 'stale-attempt', status: 'upload_completed', etag: 'x' },
            { objectId: g!.id, attemptId: g!.attemptId!, status: 'upload_completed', etag: 'y' },
            { objectId: 987654, attemptId: 'whatever', status: 'upload_completed' },
          ],
          null,
        );
        assert.deepEqual(results, [
          { objectId: f!.id, applied: false },
          { objectId: g!.id, applied: true },
          { objectId: 987654, applied: false },
        ]);
        const row = await mustGet('f');
        assert.equal(row.status, 'upload_in_progress');
        assert.equal(row.etag, null);
        assert.equal(row.attemptId, f!.attemptId);
        assert.deepEqual(await ledger.history(dest.id, 'f'), historyBefore, 'no history for a fenced outcome');
        assert.equal((await mustGet('g')).status, 'upload_completed');
      });

      void it('fencing: the previous attempt cannot overwrite a newer one', async () => {
        await ledger.planUploads(dest.id, [planned('n')], null);
        const [a1] = await claimAll();
        await ledger.recordOutcomes([{ objectId: a1!.id, attemptId: a1!.attemptId!, status: 'upload_failed', errorCode: 'HOLDFAST_E_TIMEOUT' }], null);
        const [a2] = await ledger.claim({ destinationId: dest.id, owner: OWNER, limit: 1, leaseMs: 1000, runId: null, statuses: ['upload_failed'] });
        // A late, duplicate write from attempt 1 must not touch attempt 2's row.
        const [late] = await ledger.recordOutcomes([{ objectId: a1!.id, attemptId: a1!.attemptId!, status: 'upload_completed', etag: 'late' }], null);
        assert.equal(late?.applied, false);
        const row = await mustGet('n');
        assert.equal(row.status, 'upload_in_progress');
        assert.equal(row.attemptId, a2!.attemptId);
        assert.equal(row.etag, null);
      });

      void it('replaying an applied outcome reports applied and writes nothing more', async () => {
        await ledger.planUploads(dest.id, [planned('r')], null);
        const [c] = await claimAll();
        const outcome = { objectId: c!.id, attemptId: c!.attemptId!, status: 'upload_completed' as const, etag: 'e' };
        await ledger.recordOutcomes([outcome], null);
        const n = (await ledger.history(dest.id, 'r')).length;
        const [again] = await ledger.recordOutcomes([outcome], null);
        assert.equal(again?.applied, true);
        assert.equal((await ledger.history(dest.id, 'r')).length, n);
        // The same attempt reporting a different ending afterwards is stale.
        const [other] = await ledger.recordOutcomes([{ ...outcome, status: 'upload_failed' }], null);
        assert.equal(other?.applied, false);
        assert.equal((await mustGet('r')).status, 'upload_completed');
      });

      void it('a forbidden transition is refused, leaves no history, and rolls back its whole batch', async () => {
        await ledger.planUploads(dest.id, [planned('k1'), planned('k2')], null);
        const [k1, k2] = await claimAll();
        const before1 = await ledger.history(dest.id, 'k1');
        const before2 = await ledger.history(dest.id, 'k2');
        await rejectsWithCode(
          ledger.recordOutcomes(
            [
              { objectId: k2!.id, attemptId: k2!.attemptId!, status: 'upload_completed', etag: 'fine' },
              // upload_in_progress → delete_completed is not in the table.
              { objectId: k1!.id, attemptId: k1!.attemptId!, status: 'delete_completed' },
            ],
            null,
          ),
          'HOLDFAST_E_INTERNAL',
        );
        assert.deepEqual(await ledger.history(dest.id, 'k1'), before1);
        assert.deepEqual(await ledger.history(dest.id, 'k2'), before2);
        assert.equal((await mustGet('k1')).status, 'upload_in_progress');
        assert.equal((await mustGet('k2')).status, 'upload_in_progress', 'all-or-nothing');
        assert.equal((await mustGet('k2')).etag, null);
      });

      void it('claim refuses statuses that cannot be claimed', async () => {
        await rejectsWithCode(
          ledger.claim({ destinationId: dest.id, owner: OWNER, limit: 1, leaseMs: 1, runId: null, statuses: ['upload_completed'] }),
          'HOLDFAST_E_INTERNAL',
        );
      });
    });

    void describe('claim', () => {
      void it('never returns the same row twice, even to concurrent callers', async () => {
        const keys = Array.from({ length: 200 }, (_, i) => `k${String(i).padStart(3, '0')}`);
        await ledger.planUploads(dest.id, keys.map((k) => planned(k)), null);
        const batches = await Promise.all(
          Array.from({ length: 10 }, (_, i) => ledger.claim({ destinationId: dest.id, owner: `w${i}`, limit: 30, leaseMs: 60_000, runId: null })),
        );
        const ids = batches.flat().map((r) => r.id);
        assert.equal(ids.length, 200);
        assert.equal(new Set(ids).size, 200);
        assert.equal(new Set(batches.flat().map((r) => r.attemptId)).size, 200);
        for (const b of batches) {
          const ks = b.map((r) => r.key);
          assert.deepEqual(ks, [...ks].sort(byteOrder), 'each batch in key order');
        }
        assert.deepEqual(await claimAll(), []);
      });

      void it('skips in-progress rows and respects the limit', async () => {
        await ledger.planUploads(dest.id, ['a', 'b', 'c', 'd'].map((k) => planned(k)), null);
        const first = await claimAll(1);
        assert.deepEqual(
          first.map((r) => r.key),
          ['a'],
        );
        const next = await ledger.claim({ destinationId: dest.id, owner: OWNER, limit: 2, leaseMs: 1000, runId: null, statuses: ['upload_pending', 'upload_failed'] });
        assert.deepEqual(
          next.map((r) => r.key),
          ['b', 'c'],
        );
        assert.deepEqual(
          (await claimAll()).map((r) => r.key),
          ['d'],
        );
        assert.deepEqual(await claimAll(), []);
        assert.deepEqual(await ledger.claim({ destinationId: dest.id, owner: OWNER, limit: 0, leaseMs: 1, runId: null }), []);
        const inProgress = await ledger.listInProgress(dest.id);
        assert.deepEqual(
          inProgress.map((r) => r.key),
          ['a', 'b', 'c', 'd'],
        );
      });

      void it('only claims rows of the given destination', async () => {
        const other = await ledger.ensureDestination(destinationRef('s3://other/x', 's3'));
        await ledger.planUploads(other.id, [planned('same-key')], null);
        await ledger.planUploads(dest.id, [planned('same-key')], null);
        const mine = await claimAll();
        assert.equal(mine.length, 1);
        assert.equal(mine[0]!.destinationId, dest.id);
        assert.equal((await ledger.getObject(other.id, 'same-key'))?.status, 'upload_pending');
      });
    });

    void describe('workers and sources', () => {
      void it('registers workers with a heartbeat on the ledger’s clock; silent ones are dead; retired ones are gone from the list', async () => {
        const before = await ledger.clock();
        await ledger.registerWorker({ id: 'h1:10:aa', host: 'h1', pid: 10, command: 'push', sourceId: 'h1:/src' });
        await ledger.registerWorker({ id: 'h2:20:bb', host: 'h2', pid: 20, command: 'watch', sourceId: null });
        let list = await ledger.listWorkers();
        assert.deepEqual(list.map((w) => w.id).sort(), ['h1:10:aa', 'h2:20:bb']);
        const h1 = list.find((w) => w.id === 'h1:10:aa')!;
        assert.equal(h1.host, 'h1');
        assert.equal(h1.pid, 10);
        assert.equal(h1.command, 'push');
        assert.equal(h1.sourceId, 'h1:/src');
        assert.ok(h1.heartbeatAt >= before && h1.heartbeatAgeMs >= 0);
        assert.equal(h1.leased, 0);
        // Nobody is silent for a minute yet; everybody is silent for 0 ms.
        assert.deepEqual(await ledger.deadWorkers(60_000), []);
        assert.deepEqual((await ledger.deadWorkers(0)).sort(), ['h1:10:aa', 'h2:20:bb']);
        assert.equal(await ledger.heartbeat('h1:10:aa'), true);
        assert.equal(await ledger.heartbeat('nobody'), false);
        // Leases held show as leased rows.
        await ledger.planUploads(dest.id, [planned('w1'), planned('w2')], null);
        await ledger.claim({ destinationId: dest.id, owner: 'h1:10:aa', limit: 10, leaseMs: 60_000, runId: null });
        assert.equal((await ledger.listWorkers()).find((w) => w.id === 'h1:10:aa')?.leased, 2);
        await ledger.retireWorker('h2:20:bb');
        list = await ledger.listWorkers();
        assert.deepEqual(
          list.map((w) => w.id),
          ['h1:10:aa'],
        );
        assert.ok((await ledger.listWorkers({ includeStopped: true })).some((w) => w.id === 'h2:20:bb' && w.stoppedAt !== null));
        assert.deepEqual(await ledger.deadWorkers(0), ['h1:10:aa'], 'a stopped worker is not dead, it is gone');
      });

      void it('takeOver takes the rows of a worker silent past deadAfterMs even while its lease runs', async () => {
        await ledger.registerWorker({ id: 'silent', host: 'h', pid: 1, command: 'push', sourceId: null });
        await ledger.planUploads(dest.id, [planned('s1')], null);
        const [s1] = await ledger.claim({ destinationId: dest.id, owner: 'silent', limit: 1, leaseMs: 60_000, runId: null });
        const ask = [{ objectId: s1!.id, attemptId: s1!.attemptId! }];
        assert.deepEqual(await ledger.takeOver(ask, OWNER, 1000, null, { deadAfterMs: 60_000 }), [], 'heard from recently: its lease stands');
        const taken = await ledger.takeOver(ask, OWNER, 1000, null, { deadAfterMs: 0 });
        assert.deepEqual(
          taken.map((r) => r.key),
          ['s1'],
        );
      });

      void it('rows carry their source; a claim for one source takes its rows and those of none, never another source’s', async () => {
        await ledger.planUploads(dest.id, [planned('a1', { sourceId: 'hostA:/data' }), planned('b1', { sourceId: 'hostB:/data' }), planned('n1')], null);
        assert.equal((await mustGet('a1')).sourceId, 'hostA:/data');
        assert.equal((await mustGet('n1')).sourceId, null);
        const forB = await ledger.claim({ destinationId: dest.id, owner: OWNER, limit: 10, leaseMs: 60_000, runId: null, sourceId: 'hostB:/data' });
        assert.deepEqual(
          forB.map((r) => r.key),
          ['b1', 'n1'],
        );
        // A row planned again from another source is that source's now.
        await ledger.planUploads(dest.id, [planned('a1', { sourceId: 'hostB:/data', sha256: SHA_B, reason: 'changed' })], null);
        assert.equal((await mustGet('a1')).sourceId, 'hostB:/data');
      });
    });

    void describe('takeOver and leases', () => {
      void it('takes over rows fenced on their current attempt; the old attempt is then refused', async () => {
        await ledger.planUploads(dest.id, [planned('t1'), planned('t2')], null);
        const [t1, t2] = await ledger.claim({ destinationId: dest.id, owner: 'dead-owner', limit: 10, leaseMs: 1, runId: null });
        const taken = await ledger.takeOver(
          [
            { objectId: t1!.id, attemptId: t1!.attemptId! },
            { objectId: t2!.id, attemptId: 'not-the-current-one' },
          ],
          OWNER,
          30_000,
          null,
          { deadOwners: ['dead-owner'] },
        );
        assert.equal(taken.length, 1);
        const row = taken[0]!;
        assert.equal(row.key, 't1');
        assert.equal(row.status, 'upload_in_progress');
        assert.equal(row.leaseOwner, OWNER);
        assert.equal(row.attempt, 2);
        assert.notEqual(row.attemptId, t1!.attemptId);
        assert.equal((await mustGet('t2')).leaseOwner, 'dead-owner');

        const [old] = await ledger.recordOutcomes([{ objectId: t1!.id, attemptId: t1!.attemptId!, status: 'upload_completed' }], null);
        assert.equal(old?.applied, false);
        const [cur] = await ledger.recordOutcomes([{ objectId: row.id, attemptId: row.attemptId!, status: 'upload_completed', etag: 'e' }], null);
        assert.equal(cur?.applied, true);
        const hist = await ledger.history(dest.id, 't1');
        assert.deepEqual(
          hist.map((h) => [h.fromStatus, h.toStatus]),
          [
            [null, 'upload_pending'],
            ['upload_pending', 'upload_in_progress'],
            ['upload_in_progress', 'upload_in_progress'],
            ['upload_in_progress', 'upload_completed'],
          ],
        );
        assert.deepEqual(await ledger.takeOver([{ objectId: row.id, attemptId: row.attemptId! }], OWNER, 1, null), [], 'completed rows are not taken over');
      });

      void it('takeOver leaves a row whose lease still runs on the ledger’s clock (its owner may have renewed it since it was judged)', async () => {
        await ledger.planUploads(dest.id, [planned('live'), planned('over')], null);
        const [live] = await ledger.claim({ destinationId: dest.id, owner: 'alive', limit: 1, leaseMs: 60_000, runId: null });
        const [over] = await ledger.claim({ destinationId: dest.id, owner: 'slow', limit: 1, leaseMs: 0, runId: null });
        const taken = await ledger.takeOver(
          [
            { objectId: live!.id, attemptId: live!.attemptId! },
            { objectId: over!.id, attemptId: over!.attemptId! },
          ],
          OWNER,
          30_000,
          null,
        );
        assert.deepEqual(
          taken.map((r) => r.key),
          ['over'],
        );
        assert.equal((await mustGet('live')).leaseOwner, 'alive');
        // The slow owner's renewal is refused from now on: its attempt is over.
        assert.deepEqual(await ledger.renewLeases([{ objectId: over!.id, attemptId: over!.attemptId! }], 'slow', 60_000), []);
      });

      void it('renewLeases extends, on the ledger’s clock, only rows still held by this owner under this attempt; it returns them', async () => {
        await ledger.planUploads(dest.id, [planned('l1'), planned('l2'), planned('l3')], null);
        const [l1] = await ledger.claim({ destinationId: dest.id, owner: 'me', limit: 1, leaseMs: 1000, runId: null });
        const [l2] = await ledger.claim({ destinationId: dest.id, owner: 'someone-else', limit: 1, leaseMs: 1000, runId: null });
        const [l3] = await ledger.claim({ destinationId: dest.id, owner: 'me', limit: 1, leaseMs: 1000, runId: null });
        const before = await ledger.clock();
        const renewed = await ledger.renewLeases(
          [
            { objectId: l1!.id, attemptId: l1!.attemptId! },
            { objectId: l2!.id, attemptId: l2!.attemptId! },
            { objectId: l3!.id, attemptId: 'an-older-attempt' },
          ],
          'me',
          10 * 60_000,
        );
        assert.deepEqual(renewed, [l1!.id]);
        const after = await ledger.clock();
        const until = (await mustGet('l1')).leaseUntil!;
        assert.ok(until >= before + 10 * 60_000 && until <= after + 10 * 60_000, `lease until ${until}, clock ${before}..${after}`);
        assert.equal((await mustGet('l2')).leaseUntil, l2!.leaseUntil);
        assert.equal((await mustGet('l3')).leaseUntil, l3!.leaseUntil);
        // Settled rows are no longer held.
        await ledger.recordOutcomes([{ objectId: l1!.id, attemptId: l1!.attemptId!, status: 'upload_completed' }], null);
        assert.deepEqual(await ledger.renewLeases([{ objectId: l1!.id, attemptId: l1!.attemptId! }], 'me', 1000), []);
      });

      void it('claim with objectIds takes only those rows', async () => {
        await ledger.planUploads(dest.id, [planned('o1'), planned('o2'), planned('o3')], null);
        const o3 = await mustGet('o3');
        const got = await ledger.claim({ destinationId: dest.id, owner: OWNER, limit: 10, leaseMs: 1000, runId: null, objectIds: [o3.id] });
        assert.deepEqual(
          got.map((r) => r.key),
          ['o3'],
        );
        assert.deepEqual(await ledger.claim({ destinationId: dest.id, owner: OWNER, limit: 10, leaseMs: 1000, runId: null, objectIds: [] }), []);
      });
    });

    void describe('planning', () => {
      void it('planUploads does not touch in-progress rows', async () => {
        await ledger.planUploads(dest.id, [planned('busy')], null);
        const [busy] = await claimAll();
        const histBefore = await ledger.history(dest.id, 'busy');
        await ledger.planUploads(dest.id, [planned('busy', { sha256: SHA_B, size: 77, reason: 'changed' }), planned('fresh')], null);
        const row = await mustGet('busy');
        assert.equal(row.status, 'upload_in_progress');
        assert.equal(row.sha256, SHA_A);
        assert.equal(row.size, 10);
        assert.equal(row.attemptId, busy!.attemptId);
        assert.deepEqual(await ledger.history(dest.id, 'busy'), histBefore);
        assert.equal((await mustGet('fresh')).status, 'upload_pending');
      });

      void it('planUploads leaves alone rows that changed since the planner saw them (two runs never re-plan one file)', async () => {
        // Run B saw no row for "raced" and a pending row for "done"; meanwhile run A created "raced" and completed "done".
        await ledger.planUploads(dest.id, [planned('raced'), planned('done')], null);
        const done = (await claimAll()).find((r) => r.key === 'done');
        await ledger.recordOutcomes([{ objectId: done!.id, attemptId: done!.attemptId!, status: 'upload_completed' }], null);
        const leftAlone = await ledger.planUploads(
          dest.id,
          [planned('raced', { seen: null }), planned('done', { seen: { status: 'upload_pending', sha256: SHA_A } }), planned('new', { seen: null })],
          null,
        );
        assert.deepEqual(leftAlone.sort(), ['done', 'raced']);
        assert.equal((await mustGet('done')).status, 'upload_completed');
        assert.equal((await mustGet('new')).status, 'upload_pending');
        // A view that still holds is honoured.
        const again = await ledger.planUploads(dest.id, [planned('done', { sha256: SHA_B, seen: { status: 'upload_completed', sha256: SHA_A } })], null);
        assert.deepEqual(again, []);
        assert.equal((await mustGet('done')).status, 'upload_pending');
      });

      void it('re-plans completed and pending rows, with the reason in history', async () => {
        await ledger.planUploads(dest.id, [planned('c'), planned('p')], null);
        const [c] = await claimAll(1);
        await ledger.recordOutcomes([{ objectId: c!.id, attemptId: c!.attemptId!, status: 'upload_completed', etag: 'e1', verified: true }], null);
        await ledger.planUploads(
          dest.id,
          [planned('c', { sha256: SHA_B, size: 20, mtimeMs: 5, sourcePath: '/elsewhere/c', reason: 'changed' }), planned('p', { reason: 'retry' })],
          null,
        );
        const row = await mustGet('c');
        assert.equal(row.status, 'upload_pending');
        assert.equal(row.sha256, SHA_B);
        assert.equal(row.size, 20);
        assert.equal(row.mtimeMs, 5);
        assert.equal(row.sourcePath, '/elsewhere/c');
        assert.equal(row.verifiedAt, null, 'verification was for the old content');
        assert.equal(row.id, c!.id, 'same row');
        const hist = await ledger.history(dest.id, 'c');
        assert.deepEqual(hist.at(-1) && [hist.at(-1)!.fromStatus, hist.at(-1)!.toStatus, hist.at(-1)!.note], ['upload_completed', 'upload_pending', 'changed']);
        const histP = await ledger.history(dest.id, 'p');
        assert.deepEqual(
          histP.map((h) => [h.fromStatus, h.toStatus, h.note]),
          [
            [null, 'upload_pending', 'new'],
            ['upload_pending', 'upload_pending', 'retry'],
          ],
        );
      });

      void it('a key listed twice in one batch keeps its last entry', async () => {
        await ledger.planUploads(dest.id, [planned('dup', { size: 1 }), planned('dup', { size: 2 })], null);
        assert.equal((await mustGet('dup')).size, 2);
        assert.equal((await ledger.history(dest.id, 'dup')).length, 1);
      });

      void it('touchObjects updates size/mtime/path without a status change', async () => {
        await ledger.planUploads(dest.id, [planned('t')], null);
        const [c] = await claimAll();
        await ledger.recordOutcomes([{ objectId: c!.id, attemptId: c!.attemptId!, status: 'upload_completed' }], null);
        const n = (await ledger.history(dest.id, 't')).length;
        assert.deepEqual(await ledger.touchObjects([{ objectId: c!.id, sourcePath: '/moved/t', size: 10, mtimeMs: 42.25, seen: { status: 'upload_completed', sha256: SHA_A } }]), []);
        const row = await mustGet('t');
        assert.equal(row.status, 'upload_completed');
        assert.equal(row.mtimeMs, 42.25);
        assert.equal(row.sourcePath, '/moved/t');
        assert.equal((await ledger.history(dest.id, 't')).length, n);
      });

      void it('touchObjects is fenced on the row the planner saw: a row re-planned with other content keeps its size and mtime', async () => {
        await ledger.planUploads(dest.id, [planned('tf')], null);
        const [c] = await claimAll();
        await ledger.recordOutcomes([{ objectId: c!.id, attemptId: c!.attemptId!, status: 'upload_completed' }], null);
        // Another run saw new content and re-planned it meanwhile.
        await ledger.planUploads(dest.id, [planned('tf', { sha256: SHA_B, size: 20, mtimeMs: 5, reason: 'changed' })], null);
        const left = await ledger.touchObjects([{ objectId: c!.id, sourcePath: '/src/tf', size: 10, mtimeMs: 42, seen: { status: 'upload_completed', sha256: SHA_A } }]);
        assert.deepEqual(left, [c!.id]);
        const row = await mustGet('tf');
        assert.equal(row.size, 20);
        assert.equal(row.mtimeMs, 5);
      });

      void it('forgetObjects deletes rows (and parts) and keeps the fact in history', async () => {
        await ledger.planUploads(dest.id, [planned('gone'), planned('kept'), planned('busy')], null);
        const gone = await mustGet('gone');
        const [busy] = await ledger.claim({ destinationId: dest.id, owner: OWNER, limit: 1, leaseMs: 1000, runId: null, statuses: ['upload_pending'] });
        assert.equal(busy?.key, 'busy');
        const run = await ledger.startRun({ command: 'push', destinationId: dest.id, source: '/src', owner: OWNER });
        const seen = (r: ObjectRow) => ({ objectId: r.id, seen: { status: r.status, attemptId: r.attemptId, sha256: r.sha256 } });
        const forgotten = await ledger.forgetObjects([seen(gone), seen(busy)], 'source file gone', run.id);
        assert.deepEqual(forgotten, [gone.id]);

        assert.equal(await ledger.getObject(dest.id, 'gone'), undefined);
        assert.equal((await mustGet('busy')).status, 'upload_in_progress', 'in-progress rows are not forgotten');
        assert.equal((await mustGet('kept')).status, 'upload_pending');
        const hist = await ledger.history(dest.id, 'gone');
        const last = hist.at(-1)!;
        assert.equal(last.toStatus, 'upload_pending');
        assert.equal(last.note, 'source file gone');
        assert.equal(last.runId, run.id);
        assert.equal(last.objectId, gone.id);
        // A re-planned key gets a new row (ids are not reused).
        await ledger.planUploads(dest.id, [planned('gone')], null);
        assert.notEqual((await mustGet('gone')).id, gone.id);
      });

      void it('forgetObjects is fenced on the row the planner saw: a row claimed or re-planned since is kept', async () => {
        await ledger.planUploads(dest.id, [planned('f1'), planned('f2')], null);
        const f1 = await mustGet('f1');
        const f2 = await mustGet('f2');
        // f1 was claimed (and failed) after the planner looked: it may have landed.
        const [c1] = await ledger.claim({ destinationId: dest.id, owner: OWNER, limit: 1, leaseMs: 1000, runId: null, objectIds: [f1.id] });
        await ledger.recordOutcomes([{ objectId: c1!.id, attemptId: c1!.attemptId!, status: 'upload_failed', errorCode: 'HOLDFAST_E_NETWORK' }], null);
        // f2 was re-planned with other content.
        await ledger.planUploads(dest.id, [planned('f2', { sha256: SHA_B, reason: 'changed' })], null);
        const seen = (r: ObjectRow) => ({ objectId: r.id, seen: { status: r.status, attemptId: r.attemptId, sha256: r.sha256 } });
        assert.deepEqual(await ledger.forgetObjects([seen(f1), seen(f2)], 'gone', null), []);
        assert.equal((await mustGet('f1')).status, 'upload_failed');
        assert.equal((await mustGet('f2')).sha256, SHA_B);
      });
    });

    void describe('multipart bookkeeping', () => {
      void it('records parts fenced on the attempt and clears them on completion', async () => {
        await ledger.planUploads(dest.id, [planned('big', { size: 3 * 1024 })], null);
        const [big] = await claimAll();
        const attempt = big!.attemptId!;
        assert.equal(await ledger.setUploadId(big!.id, 'stale', 'up-1'), false);
        assert.equal(await ledger.setUploadId(big!.id, attempt, 'up-1'), true);
        assert.equal((await mustGet('big')).uploadId, 'up-1');

        const part = (n: number, etag = `e${n}`) => ({ objectId: big!.id, uploadId: 'up-1', partNumber: n, size: 1024, etag, checksum: null });
        assert.equal(await ledger.recordPart(part(2), attempt), true);
        assert.equal(await ledger.recordPart(part(1), attempt), true);
        assert.equal(await ledger.recordPart(part(1, 'e1-again'), attempt), true, 'a re-sent part replaces its record');
        assert.equal(await ledger.recordPart(part(3), 'stale'), false);
        assert.equal(await ledger.recordPart({ ...part(3), uploadId: 'up-other' }, attempt), false, 'parts of another upload id are refused');
        assert.deepEqual(await ledger.listParts(big!.id, 'up-1'), [part(1, 'e1-again'), part(2)]);

        // A failure keeps the upload id and parts: the next attempt resumes.
        await ledger.recordOutcomes([{ objectId: big!.id, attemptId: attempt, status: 'upload_failed', errorCode: 'HOLDFAST_E_NETWORK' }], null);
        assert.equal((await mustGet('big')).uploadId, 'up-1');
        assert.equal((await ledger.listParts(big!.id, 'up-1')).length, 2);
        assert.equal(await ledger.recordPart(part(3), attempt), false, 'not in progress any more');

        const [again] = await ledger.claim({ destinationId: dest.id, owner: OWNER, limit: 1, leaseMs: 1000, runId: null, statuses: ['upload_failed'] });
        assert.equal(again?.uploadId, 'up-1');
        assert.equal(await ledger.recordPart(part(3), again.attemptId!), true);
        await ledger.recordOutcomes([{ objectId: big!.id, attemptId: again.attemptId!, status: 'upload_completed', etag: 'multi-3' }], null);
        const done = await mustGet('big');
        assert.equal(done.uploadId, null);
        assert.deepEqual(await ledger.listParts(big!.id, 'up-1'), []);
      });

      void it('a new upload id voids the parts of the old one', async () => {
        await ledger.planUploads(dest.id, [planned('m')], null);
        const [m] = await claimAll();
        await ledger.setUploadId(m!.id, m!.attemptId!, 'u1');
        await ledger.recordPart({ objectId: m!.id, uploadId: 'u1', partNumber: 1, size: 5, etag: 'x', checksum: 'c' }, m!.attemptId!);
        assert.equal(await ledger.setUploadId(m!.id, m!.attemptId!, 'u2'), true);
        assert.deepEqual(await ledger.listParts(m!.id, 'u1'), []);
        assert.equal(await ledger.setUploadId(m!.id, m!.attemptId!, null), true);
        assert.equal((await mustGet('m')).uploadId, null);
      });

      void it('forgetObjects removes the parts too', async () => {
        await ledger.planUploads(dest.id, [planned('fp')], null);
        const [fp] = await claimAll();
        await ledger.setUploadId(fp!.id, fp!.attemptId!, 'u');
        await ledger.recordPart({ objectId: fp!.id, uploadId: 'u', partNumber: 1, size: 5, etag: 'x', checksum: null }, fp!.attemptId!);
        await ledger.recordOutcomes([{ objectId: fp!.id, attemptId: fp!.attemptId!, status: 'upload_failed' }], null);
        const failed = await mustGet('fp');
        assert.deepEqual(await ledger.forgetObjects([{ objectId: failed.id, seen: { status: failed.status, attemptId: failed.attemptId, sha256: failed.sha256 } }], 'gone', null), [fp!.id]);
        assert.deepEqual(await ledger.listParts(fp!.id, 'u'), []);
      });
    });

    void describe('reading', () => {
      void it('streamObjects is in UTF-8 byte order (not UTF-16, not locale)', async () => {
        const keys = [
          'a/b',
          'a.b',
          'a b',
          'a-b',
          'ab',
          'A',
          'z',
          '\u00e9', // é, NFC
          'e\u0301', // é, NFD
          '\u{1F600}', // emoji (astral)
          '\uFFFD', // replacement character (BMP, last)
          '\u{1D11E}', // musical G clef (astral)
          '\u4e2d\u6587',
          'Z/\u00e9/x',
        ];
        await ledger.planUploads(dest.id, keys.map((k) => planned(k)), null);
        const expected = [...keys].sort(byteOrder);
        // Sanity: the test set really distinguishes UTF-8 from UTF-16 order.
        assert.notDeepEqual(expected, [...keys].sort());
        assert.deepEqual(
          (await collect(ledger.streamObjects(dest.id))).map((r) => r.key),
          expected,
        );
        assert.deepEqual(
          (await collect(ledger.streamObjects(dest.id, { pageSize: 3 }))).map((r) => r.key),
          expected,
          'same order across page boundaries',
        );
        const after = expected[5]!;
        assert.deepEqual(
          (await collect(ledger.streamObjects(dest.id, { afterKey: after, pageSize: 2 }))).map((r) => r.key),
          expected.slice(6),
        );
        assert.equal((await ledger.getObject(dest.id, 'e\u0301'))?.key, 'e\u0301', 'NFD key kept as given');
        assert.notEqual((await ledger.getObject(dest.id, 'e\u0301'))?.id, (await ledger.getObject(dest.id, '\u00e9'))?.id);
      });

      void it('pages through many rows, including exact page multiples', async () => {
        const keys = Array.from({ length: 2345 }, (_, i) => `dir${i % 7}/file-${i}`);
        for (let i = 0; i < keys.length; i += 500) await ledger.planUploads(dest.id, keys.slice(i, i + 500).map((k) => planned(k)), null);
        const expected = [...keys].sort(byteOrder);
        assert.deepEqual(
          (await collect(ledger.streamObjects(dest.id))).map((r) => r.key),
          expected,
        );
        const other = await ledger.ensureDestination(destinationRef('file:///other', 'file'));
        await ledger.planUploads(other.id, Array.from({ length: 14 }, (_, i) => planned(`k${String(i).padStart(2, '0')}`)), null);
        const rows = await collect(ledger.streamObjects(other.id, { pageSize: 7 }));
        assert.equal(rows.length, 14);
        assert.ok(rows.every((r) => r.destinationId === other.id));
      });

      void it('holds nothing between pages: writes can run while a stream is open', async () => {
        await ledger.planUploads(dest.id, ['a', 'b', 'c', 'd', 'e'].map((k) => planned(k)), null);
        const seen: string[] = [];
        for await (const row of ledger.streamObjects(dest.id, { pageSize: 2 })) {
          seen.push(row.key);
          if (row.key === 'b') await ledger.planUploads(dest.id, [planned('bb'), planned('a0')], null);
        }
        // Keyset pagination sees rows inserted after the cursor, not before it.
        assert.deepEqual(seen, ['a', 'b', 'bb', 'c', 'd', 'e']);
      });

      void it('countByStatus counts rows and bytes per destination and status', async () => {
        const other = await ledger.ensureDestination(destinationRef('s3://b/p', 's3'));
        await ledger.planUploads(dest.id, [planned('a', { size: 5 }), planned('b', { size: 7 }), planned('c', { size: 11 })], null);
        await ledger.planUploads(other.id, [planned('a', { size: 100 })], null);
        await claimAll(1);
        assert.deepEqual(await ledger.countByStatus(dest.id), [
          { destinationId: dest.id, status: 'upload_in_progress', count: 1, bytes: 5 },
          { destinationId: dest.id, status: 'upload_pending', count: 2, bytes: 18 },
        ]);
        const all = await ledger.countByStatus();
        assert.equal(all.length, 3);
        assert.deepEqual(
          all.find((c) => c.destinationId === other.id),
          { destinationId: other.id, status: 'upload_pending', count: 1, bytes: 100 },
        );
      });

      void it('listByStatus returns rows of the given statuses in key byte order, at most limit', async () => {
        const other = await ledger.ensureDestination(destinationRef('s3://b/q', 's3'));
        const keys = ['f3', 'f1', '\u00e9', 'e\u0301', 'f2', 'p1', 'p2'];
        await ledger.planUploads(dest.id, keys.map((k) => planned(k)), null);
        await ledger.planUploads(other.id, [planned('f0')], null);
        const rows = await claimAll();
        const failed = rows.filter((r) => r.key !== 'p1' && r.key !== 'p2');
        await ledger.recordOutcomes(
          failed.map((r) => ({ objectId: r.id, attemptId: r.attemptId!, status: 'upload_failed' as const, errorCode: 'HOLDFAST_E_NETWORK', nextAttemptAt: 9000 })),
          null,
        );
        const p1 = rows.find((r) => r.key === 'p1')!;
        await ledger.recordOutcomes([{ objectId: p1.id, attemptId: p1.attemptId!, status: 'upload_completed' }], null);

        const all = await ledger.listByStatus(dest.id, ['upload_failed', 'upload_in_progress'], 100);
        assert.deepEqual(
          all.map((r) => r.key),
          ['e\u0301', 'f1', 'f2', 'f3', 'p2', '\u00e9'],
          'merged across statuses in UTF-8 byte order, other destinations and statuses left out',
        );
        assert.equal(all.find((r) => r.key === 'f1')?.errorCode, 'HOLDFAST_E_NETWORK');
        assert.equal(all.find((r) => r.key === 'f1')?.nextAttemptAt, 9000);
        assert.deepEqual(
          (await ledger.listByStatus(dest.id, ['upload_failed', 'upload_in_progress'], 3)).map((r) => r.key),
          ['e\u0301', 'f1', 'f2'],
        );
        assert.deepEqual((await ledger.listByStatus(dest.id, ['upload_completed'], 10)).map((r) => r.key), ['p1']);
        assert.deepEqual(await ledger.listByStatus(dest.id, ['delete_pending'], 10), []);
        assert.deepEqual(await ledger.listByStatus(dest.id, ['upload_failed'], 0), []);
        assert.deepEqual(await ledger.listByStatus(dest.id, [], 10), []);
      });
    });

    void describe('file cache', () => {
      void it('round trip, update, and lookups larger than one IN list', async () => {
        const e = (p: string, sha = SHA_A) => ({ path: p, size: 123, mtimeMs: 1_700_000_000_000.25, ino: 987654321, sha256: sha });
        await ledger.storeFileCache([e('/src/a'), e('/src/b'), e('/src/\u00e9')]);
        let got = await ledger.lookupFileCache(['/src/a', '/src/missing', '/src/\u00e9']);
        assert.deepEqual([...got.keys()].sort(), ['/src/a', '/src/\u00e9']);
        assert.deepEqual(got.get('/src/a'), e('/src/a'));

        await ledger.storeFileCache([e('/src/a', SHA_B)]);
        got = await ledger.lookupFileCache(['/src/a']);
        assert.equal(got.get('/src/a')?.sha256, SHA_B);

        const many = Array.from({ length: 1234 }, (_, i) => e(`/many/${i}`));
        await ledger.storeFileCache(many);
        got = await ledger.lookupFileCache(many.map((m) => m.path));
        assert.equal(got.size, 1234);
        assert.deepEqual(await ledger.lookupFileCache([]), new Map());
      });
    });
  });
}
