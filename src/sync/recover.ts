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
    // Leases are judged on the ledger's clock, the one every worker's lease was written with.
    const now = await ctx.ledger.clock();
    // A worker silent for deadAfterMs is dead, whatever its leases say: its rows are settled now.
    const silent = new Set(rows.length > 0 ? await ctx.ledger.deadWorkers(ctx.settings.deadAfterMs) : []);
    const stale = rows.filter((r) => isLeaseStale(r, now, ctx.owner) || (r.leaseOwner !== null && silent.has(r.leaseOwner)));
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
    // Owners known to be dead (a process of this host that is gone) lose their leases at once;
    // anyone else's lease must have run out on the ledger's clock, checked again in the takeover's transaction.
    const deadOwners = [...new Set(stale.map((r) => r.leaseOwner).filter((o): o is string => o !== null && isOwnerGone(o)))];
    const taken = await ctx.ledger.takeOver(
      stale.map((r) => ({ objectId: r.id, attemptId: r.attemptId ?? '' })),
      ctx.owner,
      ctx.settings.leaseMs,
      ctx.runId,
      { deadOwners, deadAfterMs: ctx.settings.deadAfterMs },
    );
    await resolveRows(ctx, taken);
    return 'continue';
  },
};

/** What asking the destination made of a row: its new status, or undefined when it could not be settled now. */
export type Resolution = 'completed' | 'pending' | 'deleted' | 'delete_pending' | undefined;

/**
 * Settles rows this run holds in progress (taken over, or claimed to be asked
 * about) by asking the destination: `head`, then the outcome, fenced on the
 * row's attempt. Returns what each row became.
 */
export async function resolveRows(ctx: SyncContext, rows: readonly ObjectRow[]): Promise<Map<number, Resolution>> {
  const writer = new OutcomeWriter(ctx.ledger, ctx.runId, {
    batch: ctx.settings.outcomeBatch,
    flushMs: ctx.settings.outcomeFlushMs,
    retry: ctx.settings.retry,
  });
  const limiter = new Limiter(ctx.settings.transfers);
  const out = new Map<number, Resolution>();
  await Promise.all(rows.map((row) => limiter.run(async () => out.set(row.id, await resolveRow(ctx, writer, row)))));
  await writer.flush();
  return out;
}

/** Runs still marked running whose process is gone (killed, crashed) are closed as failed, saying so. */
async function closeDeadRuns(ctx: SyncContext, destinationId: number): Promise<void> {
  const runs = await ctx.ledger.listRuns({ limit: 50, destinationId });
  for (const run of runs) {
    if (run.status !== 'running' || run.id === ctx.runId || !isOwnerGone(run.owner)) continue;
    await ctx.ledger.finishRun(run.id, 'failed', { interrupted: true, note: `the process running it ended without finishing (noticed by run ${ctx.runId ?? '?'})` });
  }
}

async function resolveRow(ctx: SyncContext, writer: OutcomeWriter, row: ObjectRow): Promise<Resolution> {
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
    if (err.code === 'HOLDFAST_E_CANCELLED') return undefined;
    // The row stays in progress under our lease; the next run asks again. The file counts as failed in this run.
    const failure = new HoldfastError(err.code, err.details, { cause: err });
    ctx.tally.record(row.key, 'failed', 0, failure);
    ctx.events.emit('file:failed', { key: row.key, code: err.code, message: `could not ask the destination about an interrupted upload: ${err.message}`, transient: err.transient });
    return undefined;
  }
  const written = await writer.add(outcome);
  if (written.state !== 'recorded') {
    const message = written.state === 'failed' ? written.error.message : 'another run took this item over';
    ctx.stepErrors.push({ step: 'recover', key: row.key, code: written.state === 'failed' ? written.error.code : 'HOLDFAST_E_DEST_LOCKED', message });
    return undefined;
  }
  if (recovered) {
    ctx.tally.record(row.key, 'recovered');
    ctx.events.emit('file:done', { key: row.key, outcome: 'recovered', bytes: 0 });
  }
  return RESOLUTION[outcome.status];
}

const RESOLUTION: Readonly<Record<Outcome['status'], Resolution>> = {
  upload_completed: 'completed',
  upload_pending: 'pending',
  delete_completed: 'deleted',
  delete_pending: 'delete_pending',
  upload_failed: undefined,
  delete_failed: undefined,
};
