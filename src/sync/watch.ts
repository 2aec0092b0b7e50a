// `watch`: keeps pushing a directory as files appear and change. Each round is
// an ordinary incremental push (to one or several destinations), so everything
// the ledger promises holds round by round; watching only decides *when* to
// run one:
//
// - file-system events (recursive fs.watch) start a round after a short
//   batching delay, so a burst of writes becomes one round;
// - a file is sent only once it has stopped changing: one whose mtime or
//   ctime is within the quiet period is left for a later round, scheduled for
//   when it will have been quiet long enough (this covers tools that write a
//   temp file and rename it: the rename moves ctime, and temp names are
//   excluded by default);
// - a round with failures (a destination down) is followed by retry rounds
//   with exponential backoff; the failed items wait in the ledger
//   (upload_failed), so nothing is lost across a restart either;
// - a periodic full round catches anything the events missed (inotify queue
//   overflow, network file systems);
// - stop (SIGINT/SIGTERM in the CLI) lets the running round drain and ends.

import { watch as fsWatch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { resolve, sep } from 'node:path';
import { classifyError, HoldfastError } from '../core/errors.js';
import { timerProblem } from '../core/units.js';
import type { RunReport } from '../core/report.js';
import { RunEvents } from '../engine/events.js';
import type { Ledger } from '../ledger/ledger.js';
import { openLedgerAt, resolveLedger } from '../ledger/open.js';
import { withRetry, DEFAULT_RETRY } from '../engine/retry.js';
import type { FileFacts } from './context.js';
import { destinationSpecs, isLedgerFile, ledgerDirKey, runTransfer, type TransferOptions } from './run.js';

/** Names that are, by convention, files still being written (excluded by default while watching). */
export const TEMP_FILE_PATTERNS: readonly string[] = ['*.tmp', '*.temp', '*.part', '*.partial', '*.crdownload', '*.download', '*.swp', '*~', '.#*', '~$*', '.~lock.*'];

export interface WatchOptions extends Omit<TransferOptions, 'dryRun'> {
  /** A file is sent only after it has not changed for this long (default 2000 ms). */
  readonly quietMs?: number;
  /** After a file-system event, wait this long for more before starting a round (default 500 ms). */
  readonly batchMs?: number;
  /** A full round at least this often, events or not (default 60 s). */
  readonly rescanMs?: number;
  /** Retry rounds after failures back off from `retryBaseMs` (default 5 s) up to `retryMaxMs` (default 5 min). */
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
  /** Leave the usual temp-file names (TEMP_FILE_PATTERNS) out (default true). */
  readonly excludeTempFiles?: boolean;
  /** Told after every round. */
  readonly onRound?: (round: WatchRound) => void;
  /** Told when a round could not run at all (all destinations down, ledger locked); watching goes on. */
  readonly onRoundError?: (error: HoldfastError, retryInMs: number) => void;
  /**
   * The clock that decides when rounds run: quiet periods (compared with the
   * files' mtime and ctime, so it must read epoch ms), batching, retries and
   * rescans. Default: the system clock. Tests pass one they move by hand.
   */
  readonly clock?: WatchClock;
}

/** What `watch` needs of a clock. */
export interface WatchClock {
  /** Epoch milliseconds. */
  now(): number;
  /** Resolves once `now()` has advanced by `ms`, or at once when `signal` aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

/** The system clock: Date.now and timers. */
export const SYSTEM_CLOCK: WatchClock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, Math.min(ms, 2 ** 31 - 1)));
      signal.addEventListener('abort', done, { once: true });
    }),
};

export interface WatchRound {
  /** 1-based. */
  readonly round: number;
  /** What started it. */
  readonly reason: 'start' | 'change' | 'settle' | 'retry' | 'rescan';
  readonly report: RunReport;
  /** Files left for a later round because they changed within the quiet period. */
  readonly settling: number;
}

export interface WatchSummary {
  readonly rounds: number;
  readonly uploaded: number;
  readonly failedRounds: number;
  /** The last round's report, if any round ran. */
  readonly last?: RunReport;
  /** Whether the watcher was stopped (rather than aborted mid-round). */
  readonly stoppedCleanly: boolean;
}

/** Watches `options.source` and pushes to the destinations until `stopSignal` (or `signal`) fires. */
export async function watch(options: WatchOptions): Promise<WatchSummary> {
  const quietMs = options.quietMs ?? 2000;
  const batchMs = options.batchMs ?? 500;
  const rescanMs = options.rescanMs ?? 60_000;
  const retryBaseMs = options.retryBaseMs ?? 5000;
  const retryMaxMs = options.retryMaxMs ?? 300_000;
  const clock = options.clock ?? SYSTEM_CLOCK;
  for (const [name, v] of Object.entries({ quietMs, batchMs, rescanMs, retryBaseMs, retryMaxMs })) {
    const problem = timerProblem(v);
    if (problem !== undefined) throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `${name}: ${problem}` });
  }
  const specs = destinationSpecs(options);
  const source = resolve(options.source);
  const st = await stat(source).catch(() => undefined);
  if (!st?.isDirectory()) throw new HoldfastError('HOLDFAST_E_SOURCE_MISSING', { path: options.source });
  const exclude = [...(options.exclude ?? []), ...(options.excludeTempFiles === false ? [] : TEMP_FILE_PATTERNS)];

  const stop = new AbortController();
  const onStop = (): void => stop.abort();
  options.stopSignal?.addEventListener('abort', onStop, { once: true });
  options.signal?.addEventListener('abort', onStop, { once: true });
  if (options.stopSignal?.aborted || options.signal?.aborted) stop.abort();

  let ledger: Ledger | undefined = options.ledger;
  // Where the ledger lives (when this watcher opens it): its files are never part of the source.
  const target = resolveLedger(options);
  const stateDir = target.kind === 'sqlite' ? target.stateDir : undefined;
  const ownsLedger = ledger === undefined;
  let watcher: FSWatcher | undefined;
  /** Ends the current wait early (a file-system event). */
  let waiting: AbortController | undefined;
  // Set by file-system events; cleared when a round starts (the round sees those changes).
  let dirty: boolean;
  let lastEventAt = 0;
  const nudge = (): void => {
    dirty = true;
    lastEventAt = clock.now();
    waiting?.abort();
  };
  let rounds = 0;
  let uploaded = 0;
  let failedRounds = 0;
  let last: RunReport | undefined;
  let stoppedCleanly = true;
  try {
    ledger ??= await withRetry(() => openLedgerAt(target), { policy: options.retry ?? DEFAULT_RETRY, fallback: 'HOLDFAST_E_LEDGER_OPEN' });
    try {
      // The ledger's own writes (when it lies inside the source) are not changes to send: every round would start the next.
      const ledgerKey = stateDir !== undefined && (options.ledger === undefined || options.stateDir !== undefined) ? ledgerDirKey(source, stateDir) : undefined;
      const ours = (name: string | null): boolean => {
        if (name === null || ledgerKey === undefined) return false;
        const key = name.split(sep).join('/');
        return ledgerKey === '' ? isLedgerFile(key) : key === ledgerKey || key.startsWith(`${ledgerKey}/`);
      };
      watcher = fsWatch(source, { recursive: true, persistent: false }, (_event, name) => {
        if (!ours(name)) nudge();
      });
      watcher.on('error', () => {
        // The watch is gone (directory removed, too many watches): the periodic rescan still runs.
        watcher?.close();
        watcher = undefined;
      });
    } catch {
      watcher = undefined; // No recursive watch on this platform: rounds come from the rescan timer.
    }

    let reason: WatchRound['reason'] = 'start';
    let failures = 0;
    let nextSettleAt = Infinity;
    let lastRoundAt = 0;
    while (!stop.signal.aborted) {
      // One round.
      dirty = false;
      let settling = 0;
      let earliest = Infinity;
      const roundStart = clock.now();
      const quiet = (f: FileFacts): boolean => {
        const changed = Math.max(f.mtimeMs, f.ctimeMs ?? 0);
        if (roundStart - changed >= quietMs) return true;
        settling++;
        earliest = Math.min(earliest, changed + quietMs);
        return false;
      };
      const { destination: _d, destinations: _ds, ...rest } = options;
      rounds++;
      try {
        const report = await runTransfer(
          { ...rest, destinations: specs, defer: (f) => !quiet(f), exclude, ledger, stateDir, events: options.events ?? new RunEvents(), stopSignal: stop.signal, ...(options.signal ? { signal: options.signal } : {}) },
          { command: 'watch' },
        );
        last = report;
        uploaded += report.uploads.completed;
        // Settling files were counted once per destination; say how many files.
        const round: WatchRound = { round: rounds, reason, report, settling: Math.ceil(settling / Math.max(1, specs.length)) };
        options.onRound?.(round);
        if (report.status === 'cancelled') {
          stoppedCleanly = !options.signal?.aborted;
          break;
        }
        failures = report.status === 'completed' ? 0 : failures + 1;
        if (failures > 0) failedRounds++;
      } catch (e) {
        const err = classifyError(e);
        if (err.code === 'HOLDFAST_E_CANCELLED') {
          stoppedCleanly = !options.signal?.aborted;
          break;
        }
        // Usage errors will not fix themselves; everything else (destination down, ledger busy) is waited out.
        if (err.exitCode === 1) throw err;
        failures++;
        failedRounds++;
        options.onRoundError?.(err, retryDelay(failures, retryBaseMs, retryMaxMs));
      }
      lastRoundAt = clock.now();
      nextSettleAt = earliest;

      // Wait for the next reason to run.
      const retryAt = failures > 0 ? lastRoundAt + retryDelay(failures, retryBaseMs, retryMaxMs) : Infinity;
      for (;;) {
        if (stop.signal.aborted) break;
        const now = clock.now();
        if (dirty && now - lastEventAt >= batchMs) {
          reason = 'change';
          break;
        }
        if (now >= nextSettleAt) {
          reason = 'settle';
          break;
        }
        if (now >= retryAt) {
          reason = 'retry';
          break;
        }
        if (now - lastRoundAt >= rescanMs) {
          reason = 'rescan';
          break;
        }
        const until = Math.min(dirty ? lastEventAt + batchMs : Infinity, nextSettleAt, retryAt, lastRoundAt + rescanMs) - now;
        const wait = new AbortController();
        waiting = wait;
        const endWait = (): void => wait.abort();
        stop.signal.addEventListener('abort', endWait, { once: true });
        try {
          await clock.sleep(Math.max(5, until), wait.signal);
        } finally {
          stop.signal.removeEventListener('abort', endWait);
          waiting = undefined;
        }
      }
    }
  } finally {
    watcher?.close();
    options.stopSignal?.removeEventListener('abort', onStop);
    options.signal?.removeEventListener('abort', onStop);
    if (ownsLedger) await ledger?.close().catch(() => undefined);
  }
  return { rounds, uploaded, failedRounds, ...(last ? { last } : {}), stoppedCleanly };
}

/** The wait before retry round `failures` (1-based): doubling from base, capped. */
export function retryDelay(failures: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.max(0, failures - 1));
}
