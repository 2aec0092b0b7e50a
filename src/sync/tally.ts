// The running account of a run: per-file outcomes turned into the counts,
// bytes, errors and notes of the final report. One file, one outcome.

import { emptyCounts, type FileOutcome, type ReportError, type UploadCounts } from '../core/report.js';
import type { HoldfastError } from '../core/errors.js';

export class RunTally {
  readonly counts: UploadCounts = emptyCounts();
  bytes = 0;
  readonly errors: ReportError[] = [];
  readonly notes: { key: string; note: string }[] = [];
  /** Keys whose upload succeeded but whose outcome could not be written. */
  readonly partialKeys: string[] = [];
  /** Keys resolved by recovery in this run (the plan must not count them again as skipped). */
  readonly recoveredKeys = new Set<string>();

  record(key: string, outcome: FileOutcome, bytes = 0, error?: HoldfastError): void {
    this.counts[outcome]++;
    this.bytes += bytes;
    if (outcome === 'partial') this.partialKeys.push(key);
    if (outcome === 'recovered') this.recoveredKeys.add(key);
    if (error && (outcome === 'failed' || outcome === 'partial')) {
      this.errors.push({ key, code: error.code, message: error.message });
    }
  }

  skip(count = 1): void {
    this.counts.skipped += count;
  }

  note(key: string, note: string): void {
    this.notes.push({ key, note });
  }
}
