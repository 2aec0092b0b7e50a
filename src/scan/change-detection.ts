// Change detection: the merge-join of a source scan with the ledger's rows,
// and the pure rule that says what each pair means (DESIGN §5).
//
// Both sides arrive in compareKeys order, so one pass with one row and one
// file in hand decides every key: no remote listing, bounded memory. The join
// asserts the order it depends on: a side that goes backwards would make
// keys look new or gone, i.e. re-uploads or deletes, so it is an internal
// error, never tolerated.

import { HoldfastError } from '../core/errors.js';
import type { ObjectRow, SourceFile } from '../core/types.js';
import { compareKeys } from './key-order.js';

export interface JoinedKey {
  readonly key: string;
  /** Present when the key is in the source scan. */
  readonly file?: SourceFile;
  /** Present when the ledger has a row for the key. */
  readonly row?: ObjectRow;
}

function outOfOrder(side: string, prev: string, next: string): HoldfastError {
  return new HoldfastError('HOLDFAST_E_INTERNAL', {
    detail: `${side} keys are not in UTF-8 byte order: ${JSON.stringify(next)} came after ${JSON.stringify(prev)}`,
  });
}

/** Pulls from an async iterator and checks that keys strictly increase. */
class OrderedCursor<T extends { readonly key: string }> {
  private readonly it: AsyncIterator<T>;
  private last: string | undefined;
  current: T | undefined;
  done = false;

  constructor(
    iterable: AsyncIterable<T>,
    private readonly side: string,
  ) {
    this.it = iterable[Symbol.asyncIterator]();
  }

  async next(): Promise<void> {
    if (this.done) return;
    const r = await this.it.next();
    if (r.done === true) {
      this.done = true;
      this.current = undefined;
      return;
    }
    const key = r.value.key;
    if (this.last !== undefined && compareKeys(this.last, key) >= 0) throw outOfOrder(this.side, this.last, key);
    this.last = key;
    this.current = r.value;
  }

  async close(): Promise<void> {
    if (!this.done) {
      this.done = true;
      await this.it.return?.();
    }
  }
}

/**
 * Joins a source scan and ledger rows, both in compareKeys order, into one
 * stream of keys in that order, each with its file, its row, or both.
 * Throws HOLDFAST_E_INTERNAL if either side is out of order (or repeats a
 * key). Both inputs are closed when the consumer stops early or on error.
 */
export async function* mergeJoin(source: AsyncIterable<SourceFile>, ledger: AsyncIterable<ObjectRow>): AsyncGenerator<JoinedKey> {
  const files = new OrderedCursor(source, 'source');
  const rows = new OrderedCursor(ledger, 'ledger');
  try {
    await Promise.all([files.next(), rows.next()]);
    for (;;) {
      const file = files.current;
      const row = rows.current;
      if (file === undefined && row === undefined) return;
      const c = file === undefined ? 1 : row === undefined ? -1 : compareKeys(file.key, row.key);
      if (c < 0) {
        yield { key: file!.key, file: file! };
        await files.next();
      } else if (c > 0) {
        yield { key: row!.key, row: row! };
        await rows.next();
      } else {
        yield { key: file!.key, file: file!, row: row! };
        await Promise.all([files.next(), rows.next()]);
      }
    }
  } finally {
    await Promise.allSettled([files.close(), rows.close()]);
  }
}

export type ChangeMode = 'incremental' | 'all' | 'force';

/**
 * What a (file, row) pair means for the plan:
 * - new:           upload; there is no row, or the row never completed
 *                  (pending, failed, delete_*): nothing trustworthy is on the
 *                  destination for this file.
 * - unchanged:     nothing to do (completed, same size and mtime).
 * - maybe-changed: re-hash; upload only if the hash differs from the row's,
 *                  else just touch the row's size/mtime. A size change means
 *                  the content certainly differs, but the new hash is still
 *                  needed for the upload intent.
 * - forced:        upload again although the row is completed (--force).
 * - in-progress:   a side effect may be under way: leave it to recovery.
 * - gone:          a row but no file: a delete candidate (the caller decides
 *                  by the row's status, the delete rules and scan errors).
 */
export type Change =
  | { readonly kind: 'new' }
  | { readonly kind: 'unchanged' }
  | { readonly kind: 'maybe-changed'; readonly sizeChanged: boolean }
  | { readonly kind: 'forced' }
  | { readonly kind: 'in-progress' }
  | { readonly kind: 'gone' };

export type ChangeKind = Change['kind'];

/** Equal file times at the millisecond precision Holdfast stores. */
export function sameMtimeMs(a: number, b: number): boolean {
  return Math.floor(a) === Math.floor(b);
}

/**
 * Classifies one joined key. Pure: the table in test/scan/change-detection
 * walks it. Precedence: a row in progress always belongs to recovery (even
 * with --force, even if the file is gone: a new attempt would race the one
 * the lease still covers); then absence on either side; then the modes.
 * Force mode re-sends completed rows; a key without a completed row is
 * plain `new` in every mode.
 */
export function classifyChange(file: SourceFile | undefined, row: ObjectRow | undefined, mode: ChangeMode): Change {
  if (row !== undefined && (row.status === 'upload_in_progress' || row.status === 'delete_in_progress')) return { kind: 'in-progress' };
  if (file === undefined) {
    if (row === undefined) throw new HoldfastError('HOLDFAST_E_INTERNAL', { detail: 'classifyChange needs a file or a row' });
    return { kind: 'gone' };
  }
  if (row === undefined || row.status !== 'upload_completed') return { kind: 'new' };
  if (mode === 'force') return { kind: 'forced' };
  const sizeChanged = row.size !== file.size;
  const mtimeChanged = row.mtimeMs === null || !sameMtimeMs(row.mtimeMs, file.mtimeMs);
  // A completed row without a hash cannot prove anything about content.
  if (sizeChanged || mtimeChanged || row.sha256 === null || mode === 'all') return { kind: 'maybe-changed', sizeChanged };
  return { kind: 'unchanged' };
}
