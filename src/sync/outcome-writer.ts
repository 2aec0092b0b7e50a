// Group commit for outcomes (DESIGN §3): outcomes are buffered and written in
// batches, one ledger transaction per batch, retried with backoff when the
// ledger is busy or failing. Each caller learns whether its own outcome was
// recorded, was fenced out by a newer attempt, or could not be written — the
// last one is what turns a successful upload into a "partial" result.

import { classifyError, type HoldfastError } from '../core/errors.js';
import { withRetry, type RetryPolicy } from '../engine/retry.js';
import type { Ledger, Outcome } from '../ledger/ledger.js';

export type OutcomeWrite = { readonly state: 'recorded' } | { readonly state: 'fenced' } | { readonly state: 'failed'; readonly error: HoldfastError };

interface Pending {
  readonly outcome: Outcome;
  readonly resolve: (w: OutcomeWrite) => void;
}

export class OutcomeWriter {
  readonly #ledger: Ledger;
  readonly #runId: number | null;
  readonly #batch: number;
  readonly #flushMs: number;
  readonly #retry: RetryPolicy;
  #queue: Pending[] = [];
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> = Promise.resolve();

  constructor(ledger: Ledger, runId: number | null, opts: { batch: number; flushMs: number; retry: RetryPolicy }) {
    this.#ledger = ledger;
    this.#runId = runId;
    this.#batch = opts.batch;
    this.#flushMs = opts.flushMs;
    this.#retry = opts.retry;
  }

  /** Queues an outcome; resolves once its batch was written (or definitively failed). Never rejects. */
  add(outcome: Outcome): Promise<OutcomeWrite> {
    return new Promise<OutcomeWrite>((resolve) => {
      this.#queue.push({ outcome, resolve });
      if (this.#queue.length >= this.#batch) this.#kick();
      else this.#timer ??= setTimeout(() => this.#kick(), this.#flushMs);
    });
  }

  /** Writes everything queued so far. */
  async flush(): Promise<void> {
    this.#kick();
    await this.#writing;
  }

  #kick(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#queue.length === 0) return;
    const batch = this.#queue;
    this.#queue = [];
    // Batches are written one after another, in order, so a later outcome for a row never overtakes an earlier one.
    this.#writing = this.#writing.then(() => this.#write(batch));
  }

  async #write(batch: Pending[]): Promise<void> {
    try {
      // Outcomes are retried whatever the error: the effect already happened, and a
      // lost outcome costs a head() on the next run, not data. No signal: outcome
      // writes must be attempted even while the run is being cancelled.
      const results = await withRetry(() => this.#ledger.recordOutcomes(batch.map((p) => p.outcome), this.#runId), {
        policy: this.#retry,
        fallback: 'HOLDFAST_E_LEDGER_WRITE',
      });
      const applied = new Map(results.map((r) => [r.objectId, r.applied]));
      for (const p of batch) p.resolve(applied.get(p.outcome.objectId) === false ? { state: 'fenced' } : { state: 'recorded' });
    } catch (e) {
      const error = classifyError(e, 'HOLDFAST_E_LEDGER_WRITE');
      for (const p of batch) p.resolve({ state: 'failed', error });
    }
  }
}
