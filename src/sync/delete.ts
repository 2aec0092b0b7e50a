// The delete step (DESIGN §2 promise 5, §3): deletes rows that are
// delete_pending — planned by `sync` for files gone from the source, or by
// `cleanup` for orphaned objects — after every upload of the run finished.
// Each delete follows intent → effect → outcome: the claim (delete_in_progress,
// fenced attempt id) is committed before the destination is touched; a missing
// object counts as deleted (idempotent); an interrupted delete is recovered
// like an upload. With a backup destination, the object is copied there first
// (a move instead of a delete, like rclone's --backup-dir).

import { PassThrough, pipeline } from 'node:stream';
import type { Backend, BodySource } from '../backends/backend.js';
import { classifyError, HoldfastError } from '../core/errors.js';
import type { ObjectRow } from '../core/types.js';
import { Limiter } from '../engine/limiter.js';
import type { Step, StepAction } from '../engine/pipeline.js';
import { backoffDelay, withRetry } from '../engine/retry.js';
import type { SyncContext } from './context.js';
import { OutcomeWriter } from './outcome-writer.js';
import { createVerifyingStream } from '../scan/hash.js';

export function deleteStep(options: { backup?: Backend } = {}): Step<SyncContext> {
  return {
    name: 'delete',
    async run(ctx): Promise<StepAction> {
      if (ctx.settings.dryRun || !ctx.destination) return 'continue';
      // A run whose deletions were refused (cap, empty source) deletes nothing at all.
      if (ctx.stepErrors.some((e) => e.code === 'HOLDFAST_E_DELETE_REFUSED')) return 'continue';
      // A destination that stopped answering: the deletions stay planned (delete_pending) for the next run.
      const down = ctx.breaker.openError;
      if (down !== undefined) {
        ctx.stepErrors.push({ step: 'delete', key: '', code: down.code, message: `deletions not attempted: ${down.message}` });
        return 'continue';
      }
      const destinationId = ctx.destination.id;
      const { settings, cancellation } = ctx;
      const writer = new OutcomeWriter(ctx.ledger, ctx.runId, { batch: settings.outcomeBatch, flushMs: settings.outcomeFlushMs, retry: settings.retry });
      const limiter = new Limiter(settings.transfers);
      try {
        while (!cancellation.stopping.aborted) {
          const rows = await withRetry(
            () => ctx.ledger.claim({ destinationId, owner: ctx.owner, limit: settings.claimBatch, leaseMs: settings.leaseMs, runId: ctx.runId, statuses: ['delete_pending'] }),
            { policy: settings.retry, signal: cancellation.stopping, fallback: 'HOLDFAST_E_LEDGER_WRITE' },
          );
          if (rows.length === 0) break;
          await Promise.all(rows.map((row) => limiter.run(() => deleteOne(ctx, writer, row, options.backup))));
        }
      } catch (e) {
        const err = classifyError(e, 'HOLDFAST_E_LEDGER_WRITE');
        if (err.code !== 'HOLDFAST_E_CANCELLED') ctx.stepErrors.push({ step: 'delete', key: '', code: err.code, message: `could not record delete intents: ${err.message}` });
      } finally {
        await writer.flush();
      }
      return 'continue';
    },
  };
}

async function deleteOne(ctx: SyncContext, writer: OutcomeWriter, row: ObjectRow, backup: Backend | undefined): Promise<void> {
  const attemptId = row.attemptId ?? '';
  const signal = ctx.cancellation.signal;
  if (ctx.cancellation.stopping.aborted) {
    await writer.add({ objectId: row.id, attemptId, status: 'delete_pending', note: 'run cancelled before the delete started' });
    return;
  }
  try {
    if (backup) await withRetry(() => copyObject(ctx.backend, backup, row.key, signal), { policy: ctx.settings.retry, signal, fallback: 'HOLDFAST_E_NETWORK' });
    await withRetry(() => ctx.backend.delete(row.key, { signal }), { policy: ctx.settings.retry, signal, fallback: 'HOLDFAST_E_NETWORK' });
  } catch (e) {
    const err = classifyError(e, 'HOLDFAST_E_NETWORK', { key: row.key });
    if (err.code === 'HOLDFAST_E_CANCELLED') {
      await writer.add({ objectId: row.id, attemptId, status: 'delete_pending', note: 'delete aborted by cancellation' });
      return;
    }
    await writer.add({ objectId: row.id, attemptId, status: 'delete_failed', errorCode: err.code, errorMessage: err.message, nextAttemptAt: Date.now() + backoffDelay(ctx.settings.retry, row.attempt + 1) });
    ctx.deletes.failed++;
    ctx.tally.errors.push({ key: row.key, code: err.code, message: `delete failed: ${err.message}` });
    ctx.events.emit('file:failed', { key: row.key, code: err.code, message: `delete failed: ${err.message}`, transient: err.transient });
    return;
  }
  const w = await writer.add({ objectId: row.id, attemptId, status: 'delete_completed', note: backup ? `moved to ${backup.url}` : null });
  if (w.state === 'recorded') {
    ctx.deletes.completed++;
    ctx.events.emit('file:deleted', { key: row.key });
  } else {
    // Deleted, but not recorded: the next run's recovery finds the object gone and records it.
    ctx.deletes.partial++;
    ctx.tally.note(row.key, 'deleted, but the ledger could not record it; the next run confirms it with the destination');
  }
}

/**
 * A copy through this process: streamed from one backend to the other under
 * the same key, carrying the object's identity (its SHA-256), verified on the
 * way when the SHA-256 is known.
 */
async function copyObject(from: Backend, to: Backend, key: string, signal: AbortSignal): Promise<void> {
  const info = await from.head(key, { signal });
  if (!info) return; // Nothing left to keep.
  const sha256 = info.sha256;
  // A backup never overwrites something else: another destination's or another ledger's object,
  // an earlier backup of other content. The same content is already kept: nothing to copy.
  const there = await to.head(key, { signal });
  if (there !== undefined) {
    if (sha256 !== undefined && there.sha256 === sha256 && there.size === info.size) return;
    throw new HoldfastError('HOLDFAST_E_DELETE_REFUSED', {
      detail: `${to.url} already holds other content at "${key}"; the backup never overwrites it, so the object was not moved (move that one away, or choose another --backup-dir)`,
    });
  }
  const body: BodySource = {
    size: info.size,
    open: () => {
      const out = new PassThrough();
      from.get(key, { signal }).then(
        (stream) => pipeline(stream, sha256 ? createVerifyingStream(sha256, info.size, { path: key }) : new PassThrough(), out, () => undefined),
        (e: unknown) => out.destroy(e instanceof Error ? e : new Error(String(e))),
      );
      return out;
    },
  };
  await to.put(key, body, { size: info.size, sha256: sha256 ?? '', signal, ...(info.modifiedMs !== undefined ? { mtimeMs: info.modifiedMs } : {}) });
}
