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
  | 'recovered'
  /**
   * Handed over: another run took the item over (its lease had ended) while
   * this one worked on it, so this run's outcome was refused (fenced) or its
   * transfer stopped. The other run records what happened; not a failure here.
   */
  | 'fenced';

export interface FileResult {
  readonly key: string;
  readonly outcome: FileOutcome;
  readonly bytes: number;
  readonly code?: string;
  readonly message?: string;
}

export interface ReportError {
  /** The destination (URL) the error belongs to, in a report of several destinations. */
  readonly destination?: string;
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
  /** Taken over by another run mid-way (see FileOutcome 'fenced'). */
  fenced: number;
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
  notes?: { destination?: string; key: string; note: string }[];
  /**
   * One section per destination, each with the counts above for that
   * destination alone; the top-level counts are their sums. Present on every
   * push/sync report (a single destination gives one section).
   */
  destinations?: DestinationReport[];
}

/** One destination's part of a run: its own status, counts, errors and notes. */
export interface DestinationReport extends Omit<RunReport, 'destinations'> {
  /** The destination URL (credentials removed). */
  readonly destination: string;
  /** Its name in the configuration file, if it came from one. */
  readonly name?: string;
  /** The ledger's run id for this destination's part (undefined in a dry run). */
  readonly runId?: number;
}

/**
 * The status of a run over several destinations: cancelled if any part was
 * cancelled, completed if all completed, failed if all failed, else partial
 * (some destination did its work, another did not).
 */
export function combineStatuses(statuses: readonly RunReport['status'][]): RunReport['status'] {
  if (statuses.includes('cancelled')) return 'cancelled';
  if (statuses.every((s) => s === 'completed')) return 'completed';
  if (statuses.every((s) => s === 'failed')) return 'failed';
  return 'partial';
}

/** Sums destination sections into one run report (the sections are kept under `destinations`). */
export function combineReports(sections: readonly DestinationReport[], durationMs: number): RunReport {
  const uploads = emptyCounts();
  let bytes = 0;
  const errors: ReportError[] = [];
  const notes: { destination?: string; key: string; note: string }[] = [];
  let deletes: RunReport['deletes'];
  const tag = sections.length > 1;
  for (const s of sections) {
    for (const k of Object.keys(uploads) as (keyof UploadCounts)[]) uploads[k] += s.uploads[k];
    bytes += s.bytes;
    for (const e of s.errors) errors.push(tag ? { destination: s.destination, ...e } : e);
    for (const n of s.notes ?? []) notes.push(tag ? { destination: s.destination, ...n } : n);
    if (s.deletes) {
      deletes ??= { completed: 0, failed: 0, partial: 0, refused: 0 };
      deletes.completed += s.deletes.completed;
      deletes.failed += s.deletes.failed;
      deletes.partial += s.deletes.partial;
      deletes.refused += s.deletes.refused;
    }
  }
  const report: RunReport = { status: combineStatuses(sections.map((s) => s.status)), uploads, bytes, durationMs, errors };
  if (deletes) report.deletes = deletes;
  if (notes.length > 0) report.notes = notes;
  report.destinations = [...sections];
  return report;
}

export function emptyCounts(): UploadCounts {
  return { completed: 0, failed: 0, partial: 0, skipped: 0, recovered: 0, fenced: 0 };
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
