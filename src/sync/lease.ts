// Leases (DESIGN §3 "Fencing"): a run owns a claimed row for a limited time,
// on the ledger's clock, and must renew it to keep it. The keeper renews every
// row this run holds, from the claim until its outcome, and tells each
// transfer the moment its row is no longer ours, so that no effect of this run
// lands after another run may have taken the row over.

import { HoldfastError } from '../core/errors.js';
import type { ObjectRow } from '../core/types.js';
import { withRetry } from '../engine/retry.js';
import type { SyncContext } from './context.js';

/**
 * The lease on one claimed row, as this run knows it. `signal` aborts the
 * row's transfer (a hard cancellation of the run, or the lease lost);
 * `check()` is the fence right before a side effect, from what the keeper
 * knows locally; `confirm()` asks the ledger (before completing a multipart
 * upload, the effect that must never land after a new owner's).
 */
export interface RowLease {
  readonly signal: AbortSignal;
  /** Why the lease is lost, once it is. */
  readonly lost: HoldfastError | undefined;
  /** Throws HOLDFAST_E_FENCED when the lease is lost or about to end without a renewal. */
  check(): void;
  /** Renews the lease with the ledger now; throws HOLDFAST_E_FENCED if the row is no longer ours. */
  confirm(): Promise<void>;
}

interface Held extends RowLease {
  readonly row: ObjectRow;
  /** performance.now() by which the lease ends unless renewed (a local, conservative bound). */
  deadline: number;
  lost: HoldfastError | undefined;
  readonly controller: AbortController;
}

/**
 * Keeps the leases of every row this run holds, from the claim until its
 * outcome, renewing them on the ledger's clock every third of the lease
 * (DESIGN §3 "Fencing"). A row the ledger no longer lets us renew was taken
 * over: its transfer is aborted at once. A row whose renewals keep failing
 * (the ledger unreachable) is given up before its lease can end, so that no
 * effect of this run lands after another run may have taken it over.
 */
export class LeaseKeeper {
  readonly #ctx: SyncContext;
  readonly #held = new Map<number, Held>();
  readonly #timer: NodeJS.Timeout;
  readonly #leaseMs: number;
  /** Give a lease up when less than this is left of it and no renewal came through. */
  readonly #margin: number;
  #renewing: Promise<void> | undefined;

  constructor(ctx: SyncContext) {
    this.#ctx = ctx;
    this.#leaseMs = ctx.settings.leaseMs;
    this.#margin = Math.max(1, Math.floor(this.#leaseMs / 4));
    this.#timer = setInterval(() => void this.#renew(), Math.max(250, Math.floor(this.#leaseMs / 3)));
    this.#timer.unref();
  }

  hold(row: ObjectRow, claimedAt: number): void {
    const controller = new AbortController();
    const runSignal = this.#ctx.cancellation.signal;
    const held: Held = {
      row,
      deadline: claimedAt + this.#leaseMs,
      lost: undefined,
      controller,
      signal: AbortSignal.any([runSignal, controller.signal]),
      check: () => this.#check(held),
      confirm: () => this.#confirm(held),
    };
    this.#held.set(row.id, held);
  }

  get(id: number): RowLease {
    const held = this.#held.get(id);
    if (held === undefined) throw new HoldfastError('HOLDFAST_E_INTERNAL', { detail: `no lease held for row ${id}` });
    return held;
  }

  release(id: number): void {
    this.#held.delete(id);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  #lose(held: Held, detail: string): void {
    if (held.lost !== undefined) return;
    held.lost = new HoldfastError('HOLDFAST_E_FENCED', { key: held.row.key, detail });
    held.controller.abort(held.lost);
  }

  #check(held: Held): void {
    if (held.lost === undefined && performance.now() > held.deadline - this.#margin) {
      this.#lose(held, 'its lease could not be renewed in time (the ledger did not answer)');
    }
    if (held.lost !== undefined) throw held.lost;
  }

  async #confirm(held: Held): Promise<void> {
    this.#check(held);
    const askedAt = performance.now();
    const renewed = await withRetry(() => this.#ctx.ledger.renewLeases([{ objectId: held.row.id, attemptId: held.row.attemptId ?? '' }], this.#ctx.owner, this.#leaseMs), {
      policy: this.#ctx.settings.retry,
      fallback: 'HOLDFAST_E_LEDGER_WRITE',
    }).catch(() => undefined);
    if (renewed === undefined) this.#check(held);
    else if (renewed.includes(held.row.id)) held.deadline = askedAt + this.#leaseMs;
    else this.#lose(held, 'another run took it over under a new attempt');
    if (held.lost !== undefined) throw held.lost;
  }

  #renew(): Promise<void> {
    // One renewal at a time: a slow ledger must not pile them up.
    this.#renewing ??= this.#renewAll().finally(() => (this.#renewing = undefined));
    return this.#renewing;
  }

  async #renewAll(): Promise<void> {
    const held = [...this.#held.values()].filter((h) => h.lost === undefined);
    if (held.length === 0) return;
    const askedAt = performance.now();
    let renewed: Set<number> | undefined;
    try {
      const ids = await this.#ctx.ledger.renewLeases(
        held.map((h) => ({ objectId: h.row.id, attemptId: h.row.attemptId ?? '' })),
        this.#ctx.owner,
        this.#leaseMs,
      );
      renewed = new Set(ids);
    } catch {
      // The ledger did not answer: the leases run on; those about to end are given up below.
    }
    for (const h of held) {
      if (renewed === undefined) {
        if (performance.now() > h.deadline - this.#margin) this.#lose(h, 'its lease could not be renewed in time (the ledger did not answer)');
      } else if (renewed.has(h.row.id)) {
        h.deadline = askedAt + this.#leaseMs;
      } else if (this.#held.get(h.row.id) === h) {
        // Not renewed although still held: another run took it over (or it was settled meanwhile by us: released above).
        this.#lose(h, 'another run took it over under a new attempt');
      }
    }
  }
}
