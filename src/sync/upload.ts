// The upload step: claims planned rows in batches (the claim is the committed
// intent: upload_in_progress with a fresh attempt id, one transaction per
// batch), sends each file, and records the outcome through the group-committing
// OutcomeWriter. What is sent is always what was hashed: small files are sent
// from the very buffer that was hashed; larger ones through a verifying stream
// that refuses to complete a body whose bytes differ from the intent.

import type { Backend, PutResult } from '../backends/backend.js';
import { bufferBody } from '../backends/body.js';
import { classifyError, HoldfastError } from '../core/errors.js';
import type { ObjectRow } from '../core/types.js';
import { Limiter } from '../engine/limiter.js';
import type { Step, StepAction } from '../engine/pipeline.js';
import { backoffDelay, withRetry } from '../engine/retry.js';
import type { Outcome } from '../ledger/ledger.js';
import { createVerifyingStream, readSmallFile, sourceFileStream } from '../scan/hash.js';
import { forgetCachedHashes } from '../scan/hasher.js';
import type { SyncContext } from './context.js';
import { uploadMultipart } from './multipart.js';
import { LeaseKeeper, type RowLease } from './lease.js';
import { OutcomeWriter } from './outcome-writer.js';
import { pipeline } from 'node:stream';

/** Files up to this size are read into memory once, hashed, and sent from that buffer. */
const SMALL_FILE_MAX = 8 * 1024 * 1024;

export const uploadStep: Step<SyncContext> = {
  name: 'upload',
  async run(ctx): Promise<StepAction> {
    if (ctx.settings.dryRun || !ctx.destination) return 'continue';
    const destinationId = ctx.destination.id;
    const { settings, cancellation } = ctx;
    const writer = new OutcomeWriter(ctx.ledger, ctx.runId, { batch: settings.outcomeBatch, flushMs: settings.outcomeFlushMs, retry: settings.retry });
    // Request slots bound memory: one slot holds at most one part (or one small file) in memory.
    // They are shared by every destination of the run.
    const requests = ctx.requests;
    const files = new Limiter(settings.transfers);
    const inflight = new Set<Promise<void>>();
    const leases = new LeaseKeeper(ctx);
    const claimed = new Set<string>();

    try {
      while (!cancellation.stopping.aborted) {
        // Keep roughly one batch ahead of the transfers, no more: claimed rows hold leases.
        while (files.pending > settings.claimBatch && !cancellation.stopping.aborted) await Promise.race(inflight);
        let rows: ObjectRow[];
        // The lease runs from the moment the claim is sent: measured before it, the local deadline is never later than the ledger's.
        const claimedAt = performance.now();
        try {
          rows = await withRetry(
            () =>
              ctx.ledger.claim({
                destinationId,
                owner: ctx.owner,
                limit: settings.claimBatch,
                leaseMs: settings.leaseMs,
                runId: ctx.runId,
                // Only files this run can read: rows of its own source (another host's are that host's to send).
                ...(ctx.sourceId !== undefined ? { sourceId: ctx.sourceId } : {}),
              }),
            { policy: settings.retry, signal: cancellation.stopping, fallback: 'HOLDFAST_E_LEDGER_WRITE' },
          );
        } catch (e) {
          const err = classifyError(e, 'HOLDFAST_E_LEDGER_WRITE');
          if (err.code === 'HOLDFAST_E_CANCELLED') break;
          // No intent, no upload: every planned file not yet claimed is a clean failure.
          for (const key of ctx.plan.keys) {
            if (claimed.has(key)) continue;
            ctx.tally.record(key, 'failed', 0, err);
            ctx.events.emit('file:failed', { key, code: err.code, message: err.message, transient: err.transient });
          }
          ctx.stepErrors.push({ step: 'upload', key: '', code: err.code, message: `could not record upload intents: ${err.message}` });
          break;
        }
        if (rows.length === 0) break;
        // Held from the claim on, not from when a transfer slot frees up: a row waiting its turn is ours too.
        for (const row of rows) leases.hold(row, claimedAt);
        for (const row of rows) {
          claimed.add(row.key);
          const task = (async () => {
            const release = await files.acquire();
            try {
              const lease = leases.get(row.id);
              if (lease.lost !== undefined) {
                reportFenced(ctx, row.key, lease.lost);
                return;
              }
              if (cancellation.stopping.aborted) {
                await releaseUnstarted(ctx, writer, row);
                return;
              }
              // The slot is freed as soon as the bytes are sent; the outcome's batch commit is waited for outside it.
              await uploadOne(ctx, writer, requests, row, lease, release);
            } finally {
              leases.release(row.id);
              release();
            }
          })();
          inflight.add(task);
          void task.finally(() => inflight.delete(task));
        }
      }
      await Promise.all(inflight);
    } finally {
      leases.stop();
      await writer.flush();
    }
    return 'continue';
  },
};

/** A claimed row whose transfer never started (the run is stopping) goes back to pending. */
async function releaseUnstarted(ctx: SyncContext, writer: OutcomeWriter, row: ObjectRow): Promise<void> {
  await writer.add({ objectId: row.id, attemptId: row.attemptId ?? '', status: 'upload_pending', note: 'run cancelled before the transfer started' });
}

/** Another run took the item over: this run records nothing for it, and says so. */
function reportFenced(ctx: SyncContext, key: string, why: HoldfastError, bytes = 0): void {
  ctx.tally.record(key, 'fenced', bytes);
  ctx.tally.note(key, `fenced: ${why.message}`);
  ctx.events.emit('file:done', { key, outcome: 'fenced', bytes, message: why.message });
}

async function uploadOne(ctx: SyncContext, writer: OutcomeWriter, requests: Limiter, row: ObjectRow, lease: RowLease, transferDone: () => void): Promise<void> {
  const { backend, events, settings } = ctx;
  const key = row.key;
  const size = row.size ?? 0;
  const attemptId = row.attemptId ?? '';
  events.emit('file:start', { key, size });
  let result: PutResult;
  let sentBytes = size;
  try {
    // A destination that has stopped answering: fail at once, the next run retries.
    const down = ctx.breaker.openError;
    if (down !== undefined) throw down;
    if (row.sha256 === null || row.sourcePath === null || row.size === null) {
      throw new HoldfastError('HOLDFAST_E_INTERNAL', { detail: `planned row for "${key}" lacks its hash, path or size` });
    }
    backend.validateKey(key);
    if (size > backend.capabilities.maxObjectSize) {
      throw new HoldfastError('HOLDFAST_E_TOO_LARGE', { key, size, max: backend.capabilities.maxObjectSize });
    }
    const onProgress = (sentBytes: number): void => events.emit('file:progress', { key, sentBytes, size });
    if (backend.multipart && size >= settings.multipartThreshold) {
      ({ result, sentBytes } = await uploadMultipart(ctx, requests, row, onProgress, lease));
    } else {
      result = await requests.run(() => putWhole(ctx, backend, row, onProgress, lease));
    }
  } catch (e) {
    transferDone();
    // The lease ended under the transfer: the row is another run's now; nothing of ours to record.
    if (lease.lost !== undefined) {
      reportFenced(ctx, key, lease.lost);
      return;
    }
    const err = classifyError(e, 'HOLDFAST_E_NETWORK', { key, path: row.sourcePath ?? key });
    if (err.code === 'HOLDFAST_E_CANCELLED') {
      // Interrupted by a hard abort: nothing is known to be on the destination beyond
      // what recovery can find; pending keeps a multipart upload id for resuming.
      await writer.add({ objectId: row.id, attemptId, status: 'upload_pending', note: 'transfer aborted by cancellation' });
      return;
    }
    ctx.breaker.failure(err);
    // The content was not what the plan hashed: a cached hash may be stale (rewritten, mtime put back); the next run reads the file again.
    if (err.code === 'HOLDFAST_E_SOURCE_CHANGED' && row.sourcePath !== null) await forgetCachedHashes(ctx.ledger, [row.sourcePath]);
    const nextAttemptAt = Date.now() + backoffDelay(settings.retry, row.attempt + 1);
    const w = await writer.add({ objectId: row.id, attemptId, status: 'upload_failed', errorCode: err.code, errorMessage: err.message, nextAttemptAt });
    if (w.state === 'failed') ctx.tally.note(key, `the failure could not be recorded in the ledger (${w.error.message}); the next run asks the destination`);
    ctx.tally.record(key, 'failed', 0, err);
    events.emit('file:failed', { key, code: err.code, message: err.message, transient: err.transient });
    return;
  }
  transferDone();
  ctx.breaker.success();
  // Outcome: the ledger may only now say completed (promise 3).
  const outcome: Outcome = { objectId: row.id, attemptId, status: 'upload_completed', etag: result.etag ?? null, versionId: result.versionId ?? null };
  const w = await writer.add(outcome);
  if (w.state === 'recorded') {
    ctx.tally.record(key, 'completed', sentBytes);
    events.emit('file:done', { key, outcome: 'completed', bytes: sentBytes });
    return;
  }
  if (w.state === 'fenced') {
    // Sent, but a newer attempt owns the row: its run settles it (recovery asks the destination).
    reportFenced(ctx, key, lease.lost ?? new HoldfastError('HOLDFAST_E_FENCED', { key, detail: 'a newer attempt owns the row; the object this run sent is checked by that run' }), sentBytes);
    return;
  }
  // Partial keeps one meaning: the effect happened, its outcome could not be written.
  const err = new HoldfastError('HOLDFAST_E_LEDGER_OUTCOME', { key, detail: w.error.message }, { cause: w.error });
  ctx.tally.record(key, 'partial', sentBytes, err);
  events.emit('file:done', { key, outcome: 'partial', bytes: sentBytes, message: err.message });
}

/** One request for the whole body, retried on transient errors. */
async function putWhole(ctx: SyncContext, backend: Backend, row: ObjectRow, onProgress: (n: number) => void, lease: RowLease): Promise<PutResult> {
  const size = row.size ?? 0;
  const sha256 = row.sha256 ?? '';
  const path = row.sourcePath ?? '';
  const signal = lease.signal;
  const putOpts = { size, sha256, signal, onProgress, ...(row.mtimeMs !== null ? { mtimeMs: row.mtimeMs } : {}) };
  // Opened without following a swapped-in symlink or blocking on a FIFO, checked against the plan's size and mtime.
  const openOpts = { signal, followSymlinks: ctx.settings.followSymlinks, root: ctx.sourceRoot };
  if (size <= SMALL_FILE_MAX) {
    // Read and hash once; the bytes sent are the bytes hashed.
    const { buffer, sha256: actual } = await readSmallFile(path, { size, mtimeMs: row.mtimeMs ?? 0 }, openOpts);
    if (actual !== sha256) throw new HoldfastError('HOLDFAST_E_SOURCE_CHANGED', { path: row.key });
    return withRetry(
      () => {
        lease.check();
        return backend.put(row.key, bufferBody(buffer), putOpts);
      },
      { policy: ctx.settings.retry, signal, fallback: 'HOLDFAST_E_NETWORK' },
    );
  }
  const body = {
    size,
    // pipeline, not pipe: a read error (file vanished, EIO) must reach the consumer and fail the request.
    open: () =>
      pipeline(sourceFileStream(path, { size, mtimeMs: row.mtimeMs ?? undefined }, openOpts), createVerifyingStream(sha256, size, { path: row.key }), () => undefined),
  };
  return withRetry(
    () => {
      lease.check();
      return backend.put(row.key, body, putOpts);
    },
    { policy: ctx.settings.retry, signal, fallback: 'HOLDFAST_E_NETWORK' },
  );
}
