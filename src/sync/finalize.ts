// The finalize step (always runs): derives the run's status from the tally,
// writes the run row and the destination's health, and hands the report on
// (the caller emits run:done once the whole run, every destination, is over).

import { deriveRunStatus, type RunReport } from '../core/report.js';
import type { Step, StepAction } from '../engine/pipeline.js';
import type { SyncContext } from './context.js';

export function buildReport(ctx: SyncContext, aborted: boolean): RunReport {
  const { tally } = ctx;
  const status = deriveRunStatus({
    cancelled: ctx.cancellation.cancelled,
    aborted,
    counts: tally.counts,
    runErrors: ctx.stepErrors.length,
    deletes: ctx.deletes,
  });
  const errors = [...tally.errors, ...ctx.stepErrors.map((e) => ({ key: e.key, code: e.code, message: e.message }))];
  const report: RunReport = {
    status,
    uploads: { ...tally.counts },
    bytes: tally.bytes,
    durationMs: Date.now() - ctx.startedAt,
    errors,
  };
  if (ctx.deletion !== undefined) report.deletes = { ...ctx.deletes };
  if (tally.notes.length > 0) report.notes = [...tally.notes];
  return report;
}

export function finalizeStep(onReport: (r: RunReport) => void): Step<SyncContext> {
  return {
    name: 'finalize',
    always: true,
    async run(ctx, state): Promise<StepAction> {
      const report = buildReport(ctx, state.abortedBy !== undefined);
      if (!ctx.settings.dryRun && ctx.runId !== null) {
        const { errors: _errors, notes: _notes, ...summary } = report;
        try {
          await ctx.ledger.finishRun(ctx.runId, report.status, summary);
          const down = ctx.breaker.openError;
          if (ctx.destination && (report.uploads.completed > 0 || report.uploads.failed > 0 || down !== undefined)) {
            const firstError = down ?? report.errors[0];
            await ctx.ledger.recordDestinationHealth(ctx.destination.id, {
              at: Date.now(),
              status: report.status,
              error: firstError ? `${firstError.code}: ${firstError.message}` : null,
              uploaded: report.uploads.completed > 0,
            });
          }
        } catch (e) {
          // The run row is bookkeeping; the objects' rows are the truth. Say so, do not fail the run for it.
          ctx.events.emit('run:notice', { level: 'warn', message: `could not record the run's summary in the ledger: ${e instanceof Error ? e.message : String(e)}` });
        }
      }
      onReport(report);
      return 'continue';
    },
  };
}
