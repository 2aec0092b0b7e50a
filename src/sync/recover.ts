// The recover step (DESIGN §3): rows left *_in_progress by a run that died are
// resolved by asking the destination, never by assuming. An upload whose
// object is already there with the intended SHA-256 is completed with zero
// bytes sent (counted as recovered); otherwise the row goes back to pending
// (keeping a multipart upload id, so the upload step can resume it).

import { classifyError, HoldfastError } from '../core/errors.js';
import { Limiter } from '../engine/limiter.js';
import type { Step, StepAction } from '../engine/pipeline.js';
import { withRetry } from '../engine/retry.js';
import type { Outcome } from '../ledger/ledger.js';
import type { ObjectRow } from '../core/types.js';
import type { SyncContext } from './context.js';
import { OutcomeWriter } from './outcome-writer.js';
import { isLeaseStale, isOwnerGone } from './owner.js';

export const recoverStep: Step<SyncContext> = {
  name: 'recover',
  async run(ctx): Promise<StepAction> {
    if (!ctx.destination) return 'continue';
    if (!ctx.settings.dryRun) await closeDeadRuns(ctx, ctx.destination.id);
    const rows = await ctx.ledger.listInProgress(ctx.destination.id);
    const now = Date.now();
    const stale = rows.filter((r) => isLeaseStale(r, now, ctx.owner));
    const live = rows.length - stale.length;
    if (live > 0) ctx.events.emit('run:notice', { level: 'info', message: `${live} item(s) are being worked on by another live run; leaving them to it` });
    if (stale.length === 0) return 'continue';
    if (ctx.breaker.openError !== undefined) {
      // The destination cannot be asked now; the rows stay as they are for the next run.
      ctx.events.emit('run:notice', { level: 'warn', message: `${stale.length} interrupted item(s) left for the next run: the destination is not reachable` });
      return 'continue';
    }
    if (ctx.settings.dryRun) {
      ctx.events.emit('run:notice', { level: 'info', message: `${stale.length} interrupted item(s) would be resolved by asking the destination` });
      return 'continue';
    }
    ctx.events.emit('run:notice', { level: 'info', message: `resolving ${stale.length} item(s) interrupted by an earlier run` });
    const taken = await ctx.ledger.takeOver(
      stale.map((r) => ({ objectId: r.id, attemptId: r.attemptId ?? '' })),
      ctx.owner,
      ctx.settings.leaseMs,
      ctx.runId,
    );
    const writer = new OutcomeWriter(ctx.ledger, ctx.runId, {
      batch: ctx.settings.outcomeBatch,
      flushMs: ctx.settings.outcomeFlushMs,
      retry: ctx.settings.retry,
    });
    const limiter = new Limiter(ctx.settings.transfers);
    await Promise.all(taken.map((row) => limiter.run(() => resolveRow(ctx, writer, row))));
    await writer.flush();
    return 'continue';
  },
};

/** Runs still marked running whose process is gone (killed, crashed) are closed as failed, saying so. */
async function closeDeadRuns(ctx: SyncContext, destinationId: number): Promise<void> {
  const runs = await ctx.ledger.listRuns({ limit: 50, destinationId });
  for (const run of runs) {
    if (run.status !== 'running' || run.id === ctx.runId || !isOwnerGone(run.owner)) continue;
    await ctx.ledger.finishRun(run.id, 'failed', { interrupted: true, note: `the process running it ended without finishing (noticed by run ${ctx.runId ?? '?'})` });
  }
}

async function resolveRow(ctx: SyncContext, writer: OutcomeWriter, row: ObjectRow): Promise<void> {
  const attemptId = row.attemptId ?? '';
  let outcome: Outcome;
  let recovered = false;
  try {
    const info = await withRetry(() => ctx.backend.head(row.key, { signal: ctx.cancellation.signal }), {
      policy: ctx.settings.retry,
      signal: ctx.cancellation.signal,
      fallback: 'HOLDFAST_E_NETWORK',
    });
    if (row.status === 'upload_in_progress') {
      if (info && row.sha256 !== null && info.sha256 === row.sha256 && info.size === row.size) {
        outcome = { objectId: row.id, attemptId, status: 'upload_completed', etag: info.etag ?? null, versionId: info.versionId ?? null, verified: true, note: 'recovered: the destination already has this content' };
        recovered = true;
      } else {
        outcome = { objectId: row.id, attemptId, status: 'upload_pending', note: info ? 'recovered: destination holds other content; will upload' : 'recovered: not on the destination; will upload' };
      }
    } else {
      outcome = info
        ? { objectId: row.id, attemptId, status: 'delete_pending', note: 'recovered: object still present; will delete' }
        : { objectId: row.id, attemptId, status: 'delete_completed', note: 'recovered: object already gone' };
    }
  } catch (e) {
    const err = classifyError(e, 'HOLDFAST_E_NETWORK');
    if (err.code === 'HOLDFAST_E_CANCELLED') return;
    // The row stays in progress under our lease; the next run asks again. The file counts as failed in this run.
    const failure = new HoldfastError(err.code, err.details, { cause: err });
    ctx.tally.record(row.key, 'failed', 0, failure);
    ctx.events.emit('file:failed', { key: row.key, code: err.code, message: `could not ask the destination about an interrupted upload: ${err.message}`, transient: err.transient });
    return;
  }
  const written = await writer.add(outcome);
  if (written.state !== 'recorded') {
    const message = written.state === 'failed' ? written.error.message : 'another run took this item over';
    ctx.stepErrors.push({ step: 'recover', key: row.key, code: written.state === 'failed' ? written.error.code : 'HOLDFAST_E_DEST_LOCKED', message });
    return;
  }
  if (recovered) {
    ctx.tally.record(row.key, 'recovered');
    ctx.events.emit('file:done', { key: row.key, outcome: 'recovered', bytes: 0 });
  }
}
