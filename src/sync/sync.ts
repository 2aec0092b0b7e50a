// `sync`: push, then mirror deletions — an object whose source file is gone is
// deleted from the destination, two-phase and under safety rules (DESIGN §2
// promise 5): a cap on deletions per run, no deletes under a directory whose
// scan failed, no mass deletion from an empty source, excluded files kept.

import { HoldfastError } from '../core/errors.js';
import type { RunReport } from '../core/report.js';
import { parseDecimal, parseWholeNumber } from '../core/units.js';
import { runTransfer, type TransferOptions } from './run.js';

export interface SyncOptions extends TransferOptions {
  /** Most deletions per run: a count ("100"), a percentage of tracked objects ("10%"), or a number. Default "50%". */
  readonly maxDelete?: string | number;
  /** Allow deleting everything when the source directory is empty. */
  readonly allowEmptySource?: boolean;
  /** Delete objects whose files still exist but are now excluded. */
  readonly deleteExcluded?: boolean;
  /** Move deleted objects to this destination instead of deleting them. */
  readonly backupDir?: string;
}

/** Parses --max-delete: "N", "N%". */
export function parseMaxDelete(value: string | number | undefined): { maxCount?: number; maxPercent?: number } {
  if (value === undefined) return { maxPercent: 50 };
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0) throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `max-delete must be a whole number or a percentage, got ${value}` });
    return { maxCount: value };
  }
  // Strict: "100" or "10%", nothing around them (core/units.ts).
  const percent = value.endsWith('%');
  const n = percent ? parseDecimal(value.slice(0, -1)) : parseWholeNumber(value);
  if (n === undefined) throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `max-delete must be a count like 100 or a percentage like 10%, got "${value}"` });
  if (percent) {
    if (n > 100) throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `max-delete percentage must be at most 100%, got "${value}"` });
    return { maxPercent: n };
  }
  return { maxCount: n };
}

export function sync(options: SyncOptions): Promise<RunReport> {
  const limits = parseMaxDelete(options.maxDelete);
  return runTransfer(options, {
    command: 'sync',
    deletion: { ...limits, allowEmptySource: options.allowEmptySource === true, deleteExcluded: options.deleteExcluded === true },
    ...(options.backupDir !== undefined ? { backupUrl: options.backupDir } : {}),
  });
}
