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
import type { PlannedUpload, TouchedObject } from '../ledger/ledger.js';
import { classifyChange, mergeJoin } from '../scan/change-detection.js';
import { FileHasher } from '../scan/hasher.js';
import { walkSource } from '../scan/walk.js';
import type { SyncContext } from './context.js';

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
        tally.note(key, `skipped: ${reason}`);
        events.emit('file:skipped', { key, reason });
      },
      onError: (key, error) => {
        if (key.endsWith('/')) ctx.scanErrorPrefixes.push(key);
        tally.record(key, 'failed', 0, error);
        events.emit('file:failed', { key, code: error.code, message: error.message, transient: error.transient });
      },
    });
    const hasher = new FileHasher(ctx.ledger, { useCache: settings.mode !== 'all' && !settings.force, store: !settings.dryRun });
    const forget: number[] = [];
    let batch: Candidate[] = [];

    for await (const { key, file, row } of mergeJoin(files, rows)) {
      if (ctx.cancellation.stopping.aborted) break;
      const change = classifyChange(file, row, mode);
      switch (change.kind) {
        case 'unchanged':
          if (!tally.recoveredKeys.has(key)) tally.skip();
          break;
        case 'in-progress':
          tally.note(key, 'left alone: another live run is working on it');
          break;
        case 'gone':
          // push never deletes; it only forgets work that never reached the destination.
          if (row && (row.status === 'upload_pending' || row.status === 'upload_failed') && row.etag === null) forget.push(row.id);
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
    if (forget.length > 0 && !settings.dryRun && !ctx.cancellation.stopping.aborted) {
      await withRetry(() => ctx.ledger.forgetObjects(forget, 'source file gone before it was ever uploaded', ctx.runId), {
        policy: settings.retry,
        fallback: 'HOLDFAST_E_LEDGER_WRITE',
      });
    }
    events.emit('plan:ready', { files: ctx.plan.files, bytes: ctx.plan.bytes, skipped: tally.counts.skipped });
    return 'continue';
  },
};

async function planBatch(ctx: SyncContext, hasher: FileHasher, batch: readonly Candidate[]): Promise<void> {
  const { tally, events, settings } = ctx;
  const hashes = await hasher.hashBatch(batch.map((c) => c.file));
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
    planned.push(toPlanned(c, h, reasonFor(c)));
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
            else planned.push(toPlanned(c, sha256, info ? 'mismatch' : 'missing'));
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
    for (const key of leftAlone) tally.note(key, 'left to another run that is handling it');
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
  if (c.row && (c.row.size !== c.file.size || c.row.mtimeMs !== c.file.mtimeMs || c.row.sourcePath !== c.file.path)) {
    touched.push({ objectId: c.row.id, sourcePath: c.file.path, size: c.file.size, mtimeMs: c.file.mtimeMs });
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

function toPlanned(c: Candidate, sha256: string, reason: string): PlannedUpload {
  const seen = c.row ? { status: c.row.status, sha256: c.row.sha256 } : null;
  return { key: c.file.key, sourcePath: c.file.path, size: c.file.size, mtimeMs: c.file.mtimeMs, sha256, reason, seen };
}

function addTotals(ctx: SyncContext, planned: readonly PlannedUpload[]): void {
  for (const p of planned) {
    ctx.plan.files++;
    ctx.plan.bytes += p.size;
    ctx.plan.keys.add(p.key);
  }
}
