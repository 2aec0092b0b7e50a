// A clock that moves only when a test moves it, for code that takes a clock
// (watch's `clock` option): time-based decisions become steps the test
// takes, never races against the machine's speed.

import type { WatchClock } from '../../src/sync/watch.js';

export class ManualClock implements WatchClock {
  private t: number;
  private sleepers: { readonly at: number; readonly wake: () => void }[] = [];

  /** Starts at `start` epoch ms (default: now, on the system clock). */
  constructor(start = Date.now()) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      const sleeper = {
        at: this.t + ms,
        wake: (): void => {
          signal.removeEventListener('abort', sleeper.wake);
          this.sleepers = this.sleepers.filter((s) => s !== sleeper);
          resolve();
        },
      };
      signal.addEventListener('abort', sleeper.wake, { once: true });
      this.sleepers.push(sleeper);
    });
  }

  /** Moves the clock forward by `ms` and wakes every sleeper that is due. */
  advance(ms: number): void {
    this.set(this.t + ms);
  }

  /** Moves the clock forward to `t` (never back) and wakes every sleeper that is due. */
  set(t: number): void {
    this.t = Math.max(this.t, t);
    for (const s of [...this.sleepers]) if (s.at <= this.t) s.wake();
  }
}
