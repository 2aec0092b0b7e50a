// The plan step: merge-joins the sorted scan of the source with the ledger's
// rows for this destination (streamed in the same order), decides per key what
// to do, and records the decisions as upload_pending rows — the durable plan
// the upload step claims from. No remote listing is needed (DESIGN §5).
//
// A file whose size or mtime changed is re-hashed; if its content did not
// change only the ledger is updated (a touched file costs no upload).
// In a dry run nothing is written anywhere; the plan is only told.

import { classifyError, HoldfastError } from '../core/errors.js';
import type { ObjectRow, SourceFile } from '../core/types.js';
import type { Step, StepAction } from '../engine/pipeline.js';
import { withRetry } from '../engine/retry.js';
import { Limiter } from '../engine/limiter.js';
import type { ForgottenObject, PlannedDelete, PlannedUpload, TouchedObject } from '../ledger/ledger.js';
import { keyCollisionError, KeyCollisions } from '../backends/keys.js';
import { excludesPath } from '../scan/ignore.js';
import { classifyChange, mergeJoin } from '../scan/change-detection.js';
import { FileHasher } from '../scan/hasher.js';
import { SKIP_REASONS, walkSource } from '../scan/walk.js';
import type { SyncContext } from './context.js';
import { resolveRows } from './recover.js';

const PLAN_BATCH = 256;

interface Candidate {
  readonly file: SourceFile;
  readonly row: ObjectRow | undefined;
  readonly kind: 'new' | 'forced' | 'maybe-changed';
}

async function* noRows(): AsyncIterable<ObjectRow> {}

export const planStep: Step<SyncContext> = {
  name: 'plan',
  async run(ctx): Promise<StepAction> {
    const { tally, events, settings } = ctx;
    const mode = settings.force ? 'force' : settings.mode;
    const rows = ctx.destination ? ctx.ledger.streamObjects(ctx.destination.id) : noRows();
    const files = walkSource(ctx.sourceRoot, {
      exclude: ctx.exclude,
      followSymlinks: settings.followSymlinks,
      signal: ctx.cancellation.stopping,
      onSkip: (key, reason) => {
        // Only an entry that vanished is really gone; anything else still exists and keeps its copy.
        if (reason !== SKIP_REASONS.vanished) ctx.passedOver.add(key);
        tally.note(key, `skipped: ${reason}`);
        events.emit('file:skipped', { key, reason });
      },
      onError: (key, error) => {
        ctx.unreadable.add(key);
        tally.record(key, 'failed', 0, error);
        events.emit('file:failed', { key, code: error.code, message: error.message, transient: error.transient });
      },
    });
    const hasher = new FileHasher(ctx.ledger, {
      useCache: settings.mode !== 'all' && !settings.force,
      store: !settings.dryRun,
      followSymlinks: settings.followSymlinks,
      ...(ctx.hashMemo ? { memo: ctx.hashMemo } : {}),
    });
    const unsettled: ObjectRow[] = [];
    const deletions: PlannedDelete[] = [];
    const notSelected = new Set<string>();
    let sourceFiles = 0;
    let batch: Candidate[] = [];
    // Where the destination folds names (case-insensitive file system), keys that would share one are refused.
    const folding = ctx.backend.keyFolding;
    const collisions = folding ? new KeyCollisions(folding) : undefined;

    for await (const joined of mergeJoin(files, rows)) {
      if (ctx.cancellation.stopping.aborted) break;
      const { key, row } = joined;
      let file = joined.file;
      // Still changing (watch's quiet period): not this run's business at all, the row stays as it is.
      if (file && ctx.defer?.(file)) {
        sourceFiles++;
        continue;
      }
      // Not for this destination (rules): like an excluded file — not sent, and its old copy kept unless --delete-excluded.
      if (file && ctx.select && !ctx.select(file)) {
        notSelected.add(key);
        file = undefined;
        if (!row) continue;
      }
      if (file) sourceFiles++;
      const collision = file && collisions?.check(key);
      if (collision && folding) {
        // Only the first spelling is sent; this file fails, its row (if any) stays as it is, and it is no delete candidate.
        const err = keyCollisionError(key, collision, ctx.backend.url, folding);
        tally.record(key, 'failed', 0, err);
        events.emit('file:failed', { key, code: err.code, message: err.message, transient: err.transient });
        continue;
      }
      const change = classifyChange(file, row, mode);
      switch (change.kind) {
        case 'unchanged':
          if (!tally.recoveredKeys.has(key)) tally.skip();
          break;
        case 'in-progress':
          tally.note(key, 'left alone: another live run is working on it');
          break;
        case 'gone':
          if (!row) break;
          // Another source's row (another host's files under this destination): not this run's to forget or delete.
          if (row.sourceId !== null && ctx.sourceId !== undefined && row.sourceId !== ctx.sourceId) break;
          // The scan could not vouch for it (unreadable, or a symlink it did not follow): the row stays as it is.
          if (ctx.passedOver.covers(key)) break;
          if (ctx.unreadable.covers(key)) {
            if (ctx.deletion && row.status !== 'delete_completed') deletions.push({ objectId: row.id, key, seen: { status: row.status, sha256: row.sha256 } });
            break;
          }
          // Work that may never have reached the destination is settled below: forgotten, or asked about.
          if ((row.status === 'upload_pending' || row.status === 'upload_failed') && row.etag === null) unsettled.push(row);
          // sync mirrors: the destination's copy of a file gone from the source is a delete candidate
          // (one already planned — delete_pending from an interrupted run — is carried out by the delete step as it is).
          else if (ctx.deletion && row.status !== 'delete_completed' && row.status !== 'delete_pending') {
            deletions.push({ objectId: row.id, key, seen: { status: row.status, sha256: row.sha256 } });
          }
          break;
        default:
          if (file) batch.push({ file, row, kind: change.kind });
          if (batch.length >= PLAN_BATCH) {
            await planBatch(ctx, hasher, batch);
            batch = [];
          }
      }
    }
    if (batch.length > 0 && !ctx.cancellation.stopping.aborted) await planBatch(ctx, hasher, batch);
    if (unsettled.length > 0 && !ctx.cancellation.stopping.aborted) deletions.push(...(await settleGoneRows(ctx, unsettled)));
    if (ctx.deletion && !ctx.cancellation.stopping.aborted) await planDeletions(ctx, deletions, sourceFiles, notSelected);
    events.emit('plan:ready', { files: ctx.plan.files, bytes: ctx.plan.bytes, skipped: tally.counts.skipped });
    return 'continue';
  },
};

/**
 * Rows of files gone from the source (or no longer selected) that never
 * completed: pending or failed, with no etag. Each is settled by what may
 * have happened to it (DESIGN §3 "Nothing may be forgotten that may have had
 * an effect"):
 * - an older version reached the destination once (history says so): a
 *   delete candidate for sync, kept by push;
 * - never claimed since it was planned: nothing was ever sent, the row is
 *   forgotten (fenced on the state seen here);
 * - claimed, but no outcome says it landed (a lost answer, a crash): the
 *   destination is asked. An object with the intended SHA-256 is recorded as
 *   completed (then, for sync, a delete candidate); otherwise the row is
 *   forgotten. Asking follows the protocol: claim (intent), head, outcome.
 * Returns the delete candidates.
 */
async function settleGoneRows(ctx: SyncContext, rows: readonly ObjectRow[]): Promise<PlannedDelete[]> {
  const { settings, tally } = ctx;
  const retry = { policy: settings.retry, fallback: 'HOLDFAST_E_LEDGER_WRITE' as const };
  const deletions: PlannedDelete[] = [];
  const forget: ForgottenObject[] = [];
  const ask: ObjectRow[] = [];
  for (const row of rows) {
    // A backend that reports no etag leaves only history to tell whether an older version reached the destination.
    const history = await ctx.ledger.history(row.destinationId, row.key);
    if (history.some((h) => h.toStatus === 'upload_completed')) {
      if (ctx.deletion) deletions.push({ objectId: row.id, key: row.key, seen: { status: row.status, sha256: row.sha256 } });
    } else if (row.attempt === 0) {
      forget.push(forgotten(row));
    } else {
      ask.push(row);
    }
  }
  if (settings.dryRun) {
    for (const row of ask) tally.note(row.key, 'source file gone after an upload that may have landed; a real run asks the destination before forgetting it');
    return deletions;
  }
  if (ask.length > 0 && ctx.destination !== undefined && ctx.breaker.openError === undefined) {
    const claimed = await withRetry(
      () => ctx.ledger.claim({ destinationId: ctx.destination!.id, owner: ctx.owner, limit: ask.length, leaseMs: settings.leaseMs, runId: ctx.runId, statuses: ['upload_pending', 'upload_failed'], objectIds: ask.map((r) => r.id) }),
      retry,
    );
    const verdicts = await resolveRows(ctx, claimed);
    for (const row of claimed) {
      const v = verdicts.get(row.id);
      if (v === 'completed') {
        if (ctx.deletion) deletions.push({ objectId: row.id, key: row.key, seen: { status: 'upload_completed', sha256: row.sha256 } });
      } else if (v === 'pending') {
        forget.push({ objectId: row.id, seen: { status: 'upload_pending', attemptId: row.attemptId, sha256: row.sha256 } });
      }
      // Anything else (the destination could not be asked, the outcome not written): the row stays for the next run.
    }
  }
  if (forget.length > 0) await withRetry(() => ctx.ledger.forgetObjects(forget, 'source file gone before it was ever uploaded', ctx.runId), retry);
  return deletions;
}

function forgotten(row: ObjectRow): ForgottenObject {
  return { objectId: row.id, seen: { status: row.status, attemptId: row.attemptId, sha256: row.sha256 } };
}

/**
 * Applies the delete safety rules (DESIGN §2 promise 5) and records what may
 * be deleted as delete_pending. Nothing is deleted here: the delete step runs
 * after every upload of the run has finished.
 */
async function planDeletions(ctx: SyncContext, candidates: PlannedDelete[], sourceFiles: number, notSelected: ReadonlySet<string>): Promise<void> {
  const policy = ctx.deletion;
  if (!policy || !ctx.destination) return;
  const { tally, events, settings } = ctx;
  const refuse = (items: readonly PlannedDelete[], why: string): void => {
    ctx.deletes.refused += items.length;
    for (const d of items) tally.note(d.key, `not deleted: ${why}`);
  };

  // Files still on disk but excluded now are kept unless asked (rclone's --delete-excluded).
  let wanted = candidates;
  // So are files the rules send elsewhere.
  if (!policy.deleteExcluded) wanted = wanted.filter((d) => !excludesPath(ctx.exclude, d.key) && !notSelected.has(d.key));
  // An entry the scan could not read (or a directory it could not list) may still exist: never delete it.
  const doubtful = wanted.filter((d) => ctx.unreadable.covers(d.key));
  if (doubtful.length > 0) {
    refuse(doubtful, 'it (or its directory) could not be read in this run, so it may still exist');
    wanted = wanted.filter((d) => !doubtful.includes(d));
  }
  if (wanted.length === 0) return;

  const counts = await ctx.ledger.countByStatus(ctx.destination.id);
  const tracked = counts.filter((c) => c.status === 'upload_completed' || c.status === 'delete_pending').reduce((n, c) => n + c.count, 0);
  let why: string | undefined;
  if (sourceFiles === 0 && !policy.allowEmptySource) {
    why = `the source directory is empty; refusing to delete all ${wanted.length} object(s) (use --allow-empty-source if that is intended)`;
  } else {
    const limit = policy.maxCount ?? Math.floor(((policy.maxPercent ?? 50) / 100) * tracked);
    if (wanted.length > limit) {
      why = `${wanted.length} deletions exceed the limit of ${limit}${policy.maxCount === undefined ? ` (${policy.maxPercent ?? 50}% of ${tracked} tracked objects)` : ''}; nothing was deleted (raise --max-delete if that is intended)`;
    }
  }
  if (why !== undefined) {
    ctx.deletes.refused += wanted.length;
    ctx.stepErrors.push({ step: 'plan', key: '', code: 'HOLDFAST_E_DELETE_REFUSED', message: why });
    events.emit('run:notice', { level: 'warn', message: why });
    return;
  }
  for (const d of wanted) events.emit('plan:item', { key: d.key, action: 'delete', reason: 'gone', size: 0 });
  if (settings.dryRun) return;
  const leftAlone = await withRetry(() => ctx.ledger.planDeletes(wanted, 'source file gone (sync)', ctx.runId), {
    policy: settings.retry,
    fallback: 'HOLDFAST_E_LEDGER_WRITE',
  });
  for (const key of leftAlone) tally.note(key, 'not deleted: it changed since it was planned (another run handled it)');
}

async function planBatch(ctx: SyncContext, hasher: FileHasher, batch: readonly Candidate[]): Promise<void> {
  const { tally, events, settings } = ctx;
  // The abort signal: a read that never returns (a stuck network filesystem) is abandoned on the second Ctrl-C.
  const hashes = await hasher.hashBatch(batch.map((c) => c.file), { signal: ctx.cancellation.signal });
  const planned: PlannedUpload[] = [];
  const touched: TouchedObject[] = [];
  const verifyRemote: { c: Candidate; sha256: string }[] = [];

  for (const c of batch) {
    const h = hashes.get(c.file.key);
    if (h === undefined || h instanceof HoldfastError) {
      const err = h ?? new HoldfastError('HOLDFAST_E_INTERNAL', { detail: `no hash for ${c.file.key}` });
      tally.record(c.file.key, 'failed', 0, err);
      events.emit('file:failed', { key: c.file.key, code: err.code, message: err.message, transient: err.transient });
      continue;
    }
    if (c.kind === 'maybe-changed' && c.row && h === c.row.sha256) {
      if (settings.mode === 'all') verifyRemote.push({ c, sha256: h });
      else skipTouched(ctx, c, touched);
      continue;
    }
    planned.push(toPlanned(c, h, reasonFor(c), ctx.sourceId));
  }

  // Mode "all": content matches the ledger; make sure the destination agrees.
  if (verifyRemote.length > 0) {
    const limiter = new Limiter(settings.transfers);
    await Promise.all(
      verifyRemote.map(({ c, sha256 }) =>
        limiter.run(async () => {
          try {
            const info = await withRetry(() => ctx.backend.head(c.file.key, { signal: ctx.cancellation.signal }), {
              policy: settings.retry,
              signal: ctx.cancellation.signal,
              fallback: 'HOLDFAST_E_NETWORK',
            });
            if (info && info.sha256 === sha256 && info.size === c.file.size) skipTouched(ctx, c, touched);
            else planned.push(toPlanned(c, sha256, info ? 'mismatch' : 'missing', ctx.sourceId));
          } catch (e) {
            const err = classifyError(e, 'HOLDFAST_E_NETWORK');
            if (err.code === 'HOLDFAST_E_CANCELLED') return;
            tally.record(c.file.key, 'failed', 0, err);
            events.emit('file:failed', { key: c.file.key, code: err.code, message: err.message, transient: err.transient });
          }
        }),
      ),
    );
  }

  for (const p of planned) {
    events.emit('plan:item', { key: p.key, action: 'upload', reason: p.reason, size: p.size });
  }
  if (settings.dryRun || !ctx.destination) {
    addTotals(ctx, planned);
    return;
  }
  const destId = ctx.destination.id;
  try {
    if (touched.length > 0) {
      await withRetry(() => ctx.ledger.touchObjects(touched), { policy: settings.retry, fallback: 'HOLDFAST_E_LEDGER_WRITE' });
    }
    const leftAlone = new Set(
      planned.length > 0
        ? await withRetry(() => ctx.ledger.planUploads(destId, planned, ctx.runId), { policy: settings.retry, fallback: 'HOLDFAST_E_LEDGER_WRITE' })
        : [],
    );
    for (const key of leftAlone) tally.note(key, 'planned by another run meanwhile (whichever run claims it first sends it)');
    addTotals(
      ctx,
      planned.filter((p) => !leftAlone.has(p.key)),
    );
  } catch (e) {
    // No plan row, no intent, no upload: a clean failure for each file of the batch.
    const err = classifyError(e, 'HOLDFAST_E_LEDGER_WRITE');
    for (const p of planned) {
      tally.record(p.key, 'failed', 0, err);
      events.emit('file:failed', { key: p.key, code: err.code, message: err.message, transient: err.transient });
    }
  }
}

function skipTouched(ctx: SyncContext, c: Candidate, touched: TouchedObject[]): void {
  if (c.row && (c.row.size !== c.file.size || c.row.mtimeMs !== c.file.mtimeMs || c.row.sourcePath !== c.file.path || (ctx.sourceId !== undefined && c.row.sourceId !== ctx.sourceId))) {
    touched.push({
      objectId: c.row.id,
      sourcePath: c.file.path,
      size: c.file.size,
      mtimeMs: c.file.mtimeMs,
      seen: { status: c.row.status, sha256: c.row.sha256 },
      ...(ctx.sourceId !== undefined ? { sourceId: ctx.sourceId } : {}),
    });
  }
  ctx.tally.skip();
}

function reasonFor(c: Candidate): string {
  if (c.kind === 'forced') return 'forced';
  if (c.kind === 'maybe-changed') return 'changed';
  if (c.row?.status === 'upload_failed') return 'retry';
  if (c.row?.status === 'upload_pending') return 'pending';
  return 'new';
}

function toPlanned(c: Candidate, sha256: string, reason: string, sourceId: string | undefined): PlannedUpload {
  const seen = c.row ? { status: c.row.status, sha256: c.row.sha256 } : null;
  return { key: c.file.key, sourcePath: c.file.path, size: c.file.size, mtimeMs: c.file.mtimeMs, sha256, reason, seen, ...(sourceId !== undefined ? { sourceId } : {}) };
}

function addTotals(ctx: SyncContext, planned: readonly PlannedUpload[]): void {
  for (const p of planned) {
    ctx.plan.files++;
    ctx.plan.bytes += p.size;
    ctx.plan.keys.add(p.key);
  }
}
