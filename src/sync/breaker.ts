// A destination that stops answering should cost seconds, not minutes: after
// a few consecutive failures that say "the destination as a whole is not
// there" (refused connections, timeouts, 5xx, credentials), the rest of the
// run's uploads to it fail at once, recorded as upload_failed with the cause,
// instead of each spending its own retries. The next run (or the next round
// of `watch`) tries again. Other destinations of the run are not affected:
// each has its own breaker.

import { HoldfastError } from '../core/errors.js';
import type { ErrorCode } from '../core/errors.js';

/** Failures that are about the destination, not about one file. */
const DESTINATION_LEVEL: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'HOLDFAST_E_DEST_UNREACHABLE',
  'HOLDFAST_E_NETWORK',
  'HOLDFAST_E_TIMEOUT',
  'HOLDFAST_E_DEST_SERVER',
  'HOLDFAST_E_AUTH',
  'HOLDFAST_E_DEST_NOT_FOUND',
]);

export class DestinationBreaker {
  readonly threshold: number;
  #consecutive = 0;
  #open: HoldfastError | undefined;

  constructor(threshold = 5) {
    this.threshold = threshold;
  }

  /** The error every further transfer fails with, once the breaker has opened. */
  get openError(): HoldfastError | undefined {
    return this.#open;
  }

  /** Opens at once (the destination could not be reached before the run began). */
  trip(cause: HoldfastError): void {
    const why = cause.code === 'HOLDFAST_E_DEST_UNREACHABLE' ? String(cause.details.detail ?? cause.message) : `${cause.code}: ${cause.message}`;
    this.#open = new HoldfastError('HOLDFAST_E_DEST_UNREACHABLE', { detail: `${why}; not tried in this run (the next run retries)` }, { cause });
  }

  failure(err: HoldfastError): void {
    if (this.#open !== undefined || !DESTINATION_LEVEL.has(err.code)) return;
    this.#consecutive++;
    if (this.#consecutive >= this.threshold) {
      this.#open = new HoldfastError(
        'HOLDFAST_E_DEST_UNREACHABLE',
        { detail: `${this.#consecutive} transfers in a row failed (last: ${err.code}: ${err.message}); the rest were not tried in this run (the next run retries)` },
        { cause: err },
      );
    }
  }

  success(): void {
    this.#consecutive = 0;
  }
}
