// Two-phase cancellation (DESIGN §5): `stop()` stops starting new work and,
// after a drain timeout, aborts; `abort()` aborts in-flight work at once.
// `stopping` is checked before starting work; `signal` is passed to every
// async call that moves bytes.

import { setMaxListeners } from 'node:events';
import { HoldfastError } from '../core/errors.js';
import { timerProblem } from '../core/units.js';

export class Cancellation {
  readonly #stop = new AbortController();
  readonly #abort = new AbortController();
  #drainTimer: NodeJS.Timeout | undefined;
  /** Removes the listeners on the linked signals (a long-lived caller such as watch links one per run). */
  readonly #unlink = new AbortController();

  constructor(links: { signal?: AbortSignal; stopSignal?: AbortSignal; drainMs?: number } = {}) {
    const { signal, stopSignal, drainMs } = links;
    const problem = drainMs === undefined ? undefined : timerProblem(drainMs);
    if (problem !== undefined) throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `drainMs: ${problem}` });
    // Every in-flight operation listens to these signals (hundreds at once is normal), so the default warning at 10 is noise.
    setMaxListeners(0, this.#stop.signal, this.#abort.signal);
    if (signal) {
      if (signal.aborted) this.abort(signal.reason);
      else signal.addEventListener('abort', () => this.abort(signal.reason), { once: true, signal: this.#unlink.signal });
    }
    if (stopSignal) {
      if (stopSignal.aborted) this.stop(drainMs);
      else stopSignal.addEventListener('abort', () => this.stop(drainMs), { once: true, signal: this.#unlink.signal });
    }
  }

  /** Aborted when no new work may start (first SIGINT, or abort). */
  get stopping(): AbortSignal {
    return this.#stop.signal;
  }

  /** Aborted when in-flight work must stop now. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  get cancelled(): boolean {
    return this.#stop.signal.aborted;
  }

  /** Stop starting new work; abort in-flight work after `drainMs` (default: never). */
  stop(drainMs?: number): void {
    if (!this.#stop.signal.aborted) this.#stop.abort(new Error('stopping'));
    if (drainMs !== undefined && drainMs >= 0 && this.#drainTimer === undefined && !this.#abort.signal.aborted) {
      this.#drainTimer = setTimeout(() => this.abort(new Error(`drain timeout (${drainMs} ms) expired`)), drainMs);
      this.#drainTimer.unref();
    }
  }

  abort(reason?: unknown): void {
    if (!this.#stop.signal.aborted) this.#stop.abort(reason);
    if (!this.#abort.signal.aborted) this.#abort.abort(reason);
    this.dispose();
  }

  /** Ends the run's use of this object: clears the drain timer and unlinks the caller's signals. */
  dispose(): void {
    if (this.#drainTimer) clearTimeout(this.#drainTimer);
    this.#drainTimer = undefined;
    this.#unlink.abort();
  }
}
