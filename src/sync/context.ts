// The context every sync step shares: who we are, where the files come from and
// go to, the ledger, the options, and the running tally.

import type { Backend } from '../backends/backend.js';
import type { DestinationRow } from '../core/types.js';
import type { Cancellation } from '../engine/cancellation.js';
import type { Limiter } from '../engine/limiter.js';
import type { RunEvents } from '../engine/events.js';
import type { PipelineContext, StepError } from '../engine/pipeline.js';
import type { RetryPolicy } from '../engine/retry.js';
import type { Ledger } from '../ledger/ledger.js';
import type { HashMemo } from '../scan/hasher.js';
import type { Matcher } from '../scan/ignore.js';
import type { KeyCover } from '../scan/key-cover.js';
import type { DestinationBreaker } from './breaker.js';
import type { RunTally } from './tally.js';

/** What the rules of a run may look at to choose the destinations of a file. */
export interface FileFacts {
  readonly key: string;
  readonly size: number;
  readonly mtimeMs: number;
  /** Status-change time, where the scan knows it. */
  readonly ctimeMs?: number;
}

export type SyncMode = 'incremental' | 'all';

export interface SyncSettings {
  /** incremental: trust the ledger; all: re-hash every file and check the destination. */
  readonly mode: SyncMode;
  /** Upload every file again, whatever the ledger says. */
  readonly force: boolean;
  /** Print the plan; change nothing, not even the ledger. */
  readonly dryRun: boolean;
  /** Parallel requests (and so at most transfers × partSize bytes buffered). */
  readonly transfers: number;
  /** Files at least this large go multipart where the destination supports it. */
  readonly multipartThreshold: number;
  readonly partSize: number;
  readonly leaseMs: number;
  /** How often this run's worker row gets a heartbeat, and after how long without one another worker counts as dead. */
  readonly heartbeatMs: number;
  readonly deadAfterMs: number;
  readonly retry: RetryPolicy;
  /** Rows claimed (intents committed) per ledger transaction. */
  readonly claimBatch: number;
  /** Outcomes written per ledger transaction, and the longest an outcome waits for its batch. */
  readonly outcomeBatch: number;
  readonly outcomeFlushMs: number;
  readonly followSymlinks: boolean;
}

export const DEFAULT_SETTINGS: SyncSettings = {
  mode: 'incremental',
  force: false,
  dryRun: false,
  transfers: 16,
  multipartThreshold: 64 * 1024 * 1024,
  partSize: 16 * 1024 * 1024,
  leaseMs: 5 * 60_000,
  heartbeatMs: 10_000,
  deadAfterMs: 30_000,
  retry: { attempts: 5, baseMs: 200, maxMs: 10_000 },
  claimBatch: 64,
  outcomeBatch: 64,
  outcomeFlushMs: 20,
  followSymlinks: false,
};

export interface PlanTotals {
  files: number;
  bytes: number;
  /** Keys planned for upload in this run (to report them if the ledger fails before they are claimed). */
  readonly keys: Set<string>;
}

/** Deletes done by this run (sync mirrors deletions; cleanup removes orphans). */
export interface DeleteCounts {
  completed: number;
  failed: number;
  /** Deleted, but the outcome could not be recorded (the next run confirms it). */
  partial: number;
  /** Planned deletions refused by a safety rule (max-delete, scan errors, empty source). */
  refused: number;
}

/** How a mirroring run (sync) may delete; undefined for push, which never deletes. */
export interface DeletionPolicy {
  /** At most this many deletions per run... */
  readonly maxCount?: number;
  /** ...or at most this percentage of the destination's tracked objects (default 50). */
  readonly maxPercent?: number;
  /** Allow deleting everything when the source is empty (default: refuse). */
  readonly allowEmptySource: boolean;
  /** Also delete objects whose files still exist but are now excluded (default: keep them). */
  readonly deleteExcluded: boolean;
}

export interface SyncContext extends PipelineContext {
  readonly command: string;
  readonly sourceRoot: string;
  /** Which source the files belong to (worker.ts sourceIdentity): rows of other sources are never claimed, forgotten or deleted here. Undefined: the run reads no source (cleanup). */
  readonly sourceId: string | undefined;
  readonly exclude: Matcher;
  readonly backend: Backend;
  readonly ledger: Ledger;
  /** Undefined only in a dry run against a ledger that has never seen this destination. */
  readonly destination: DestinationRow | undefined;
  readonly runId: number | null;
  readonly owner: string;
  readonly settings: SyncSettings;
  readonly tally: RunTally;
  readonly deletes: DeleteCounts;
  /** Deletion rules of this run; undefined when the command never deletes. */
  readonly deletion: DeletionPolicy | undefined;
  readonly plan: PlanTotals;
  readonly startedAt: number;
  readonly cancellation: Cancellation;
  readonly events: RunEvents;
  readonly stepErrors: StepError[];
  /**
   * What the scan could not vouch for: entries it could not read (each covers
   * itself and everything below it). Their copies are never deleted in this run:
   * the files are missing from the scan because it failed, not because they are gone.
   */
  readonly unreadable: KeyCover;
  /** Entries the scan saw but did not take (symlinks not followed, special files): their old copies are kept, like excluded files. */
  readonly passedOver: KeyCover;
  /** Which source files go to this destination (rules); undefined: all. A file not selected is treated like an excluded one. */
  readonly select?: (file: FileFacts) => boolean;
  /** Hashes shared by the planners of a fan-out run, so each file is read once. */
  readonly hashMemo?: HashMemo;
  /** Files to leave for a later run (still being written); their rows are not touched. */
  readonly defer?: (file: FileFacts) => boolean;
  /** Request slots shared by every destination of the run: `transfers` bounds the whole run, and so its memory. */
  readonly requests: Limiter;
  /** Opens after consecutive destination-level failures; then the rest fail at once. */
  readonly breaker: DestinationBreaker;
}
