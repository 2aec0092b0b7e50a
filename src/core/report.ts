// Results and reports. A file's result keeps the destination's outcome and the
// ledger's outcome apart (DESIGN §2 promise 4); a run's status is derived
// from the counts, never set by hand.

import type { RunStatus } from './types.js';

/** What happened to one file in one run. */
export type FileOutcome =
  /** Sent, and the ledger recorded it. */
  | 'completed'
  /** Not sent; the reason is in `code`. */
  | 'failed'
  /** Sent, but the ledger outcome could not be written (resolved by the next run, zero bytes). */
  | 'partial'
  /** Not sent because the destination already has this content. */
  | 'skipped'
  /** Found already on the destination by recovery after an interrupted run. */
  | 'recovered';

export interface FileResult {
  readonly key: string;
  readonly outcome: FileOutcome;
  readonly bytes: number;
  readonly code?: string;
  readonly message?: string;
}

export interface ReportError {
  readonly key: string;
  readonly code: string;
  readonly message: string;
}

export interface UploadCounts {
  completed: number;
  failed: number;
  partial: number;
  skipped: number;
  recovered: number;
}

export interface RunReport {
  status: Exclude<RunStatus, 'running'>;
  uploads: UploadCounts;
  /** Bytes sent to the destination in this run (payload bytes of successful effects). */
  bytes: number;
  durationMs: number;
  errors: ReportError[];
  /** Present when the command may delete (sync, cleanup). */
  deletes?: { completed: number; failed: number; partial: number; refused: number };
  /** Notes that are not errors: skipped symlinks, files that changed and were re-queued, ... */
  notes?: { key: string; note: string }[];
}

export function emptyCounts(): UploadCounts {
  return { completed: 0, failed: 0, partial: 0, skipped: 0, recovered: 0 };
}

/**
 * completed: no errors; partial: some work failed (or is only partially
 * recorded) but the run did what it could; failed: nothing could be done, or a
 * step aborted; cancelled wins over everything else.
 */
export function deriveRunStatus(input: {
  cancelled: boolean;
  aborted: boolean;
  counts: UploadCounts;
  runErrors: number;
  deletes?: { completed: number; failed: number; partial: number; refused: number };
}): RunReport['status'] {
  if (input.cancelled) return 'cancelled';
  if (input.aborted) return 'failed';
  const c = input.counts;
  const d = input.deletes ?? { completed: 0, failed: 0, partial: 0, refused: 0 };
  const troubles = c.failed + c.partial + input.runErrors + d.failed + d.partial + d.refused;
  if (troubles === 0) return 'completed';
  // Partial files did reach the destination: that is work done, only its record is missing.
  const progress = c.completed + c.recovered + c.skipped + c.partial + d.completed + d.partial;
  return progress > 0 ? 'partial' : 'failed';
}
