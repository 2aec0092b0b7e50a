// The ledger interface: every durable fact Holdfast keeps goes through here.
// Two dialects implement it (SQLite embedded default, PostgreSQL for many
// workers) over one query layer; tests wrap it to inject faults.
//
// Conventions
// - Times are epoch milliseconds (numbers).
// - Every method that changes `objects.status` checks the transition table
//   (core/status.ts) and appends to `history` in the same transaction.
// - Batch methods are one transaction each: that is the group commit of
//   DESIGN §3. They are all-or-nothing: on error nothing of the batch is kept.
// - Outcome writes are fenced: applied only where the row's attempt_id still
//   equals the caller's. The result says which rows were applied.
// - Keys are compared in UTF-8 byte order everywhere (SQLite BINARY,
//   PostgreSQL COLLATE "C", Buffer.compare in JS), so the ledger's order and
//   the scanner's order agree for the merge-join.

import type { ObjectStatus } from '../core/status.js';
import type { DestinationRow, HistoryRow, ObjectRow, PartRow, RunRow, RunStatus, WorkerRow } from '../core/types.js';

/** A destination as a backend describes it (src/backends/location.ts). */
export interface DestinationRef {
  readonly url: string;
  readonly kind: string;
  readonly location: { readonly namespace: string; readonly prefix: string };
}

export interface PlannedUpload {
  readonly key: string;
  readonly sourcePath: string;
  readonly size: number;
  readonly mtimeMs: number;
  readonly sha256: string;
  /** Why: 'new' | 'changed' | 'retry' | 'forced' | 'missing' (shown by --dry-run and history). */
  readonly reason: string;
  /**
   * The row as the planner saw it when it decided (null: no row). If the row
   * changed since — another run planned, claimed or completed it — the item is
   * not planned (optimistic concurrency: two runs never both re-plan one file).
   * Undefined: no check.
   */
  readonly seen?: { readonly status: ObjectStatus; readonly sha256: string | null } | null;
  /** The source the file belongs to (see ObjectRow.sourceId); recorded on the row. */
  readonly sourceId?: string | null;
}

export interface TouchedObject {
  readonly objectId: number;
  readonly sourcePath: string;
  readonly size: number;
  readonly mtimeMs: number;
  /** The row as the planner saw it (content unchanged); a row that changed since is left alone. */
  readonly seen: { readonly status: ObjectStatus; readonly sha256: string | null };
  /** The source that now has the file (a row planned by another source is taken over by this one). */
  readonly sourceId?: string | null;
}

/** A row to forget, fenced on the state the planner saw (a row claimed or re-planned since is kept). */
export interface ForgottenObject {
  readonly objectId: number;
  readonly seen: { readonly status: ObjectStatus; readonly attemptId: string | null; readonly sha256: string | null };
}

/** A row the planner wants deleted because its source file is gone (sync). */
export interface PlannedDelete {
  readonly objectId: number;
  readonly key: string;
  /** The row as the planner saw it; a row that changed since is left alone. */
  readonly seen: { readonly status: ObjectStatus; readonly sha256: string | null };
}

/** An object found on the destination that the ledger did not know, recorded as uploaded (cleanup --adopt). */
export interface AdoptedObject {
  readonly key: string;
  readonly sourcePath: string;
  readonly size: number;
  readonly mtimeMs: number;
  readonly sha256: string;
  readonly etag: string | null;
}

export interface ClaimOptions {
  readonly destinationId: number;
  /** Worker identity written to lease_owner, e.g. "host:pid:random". */
  readonly owner: string;
  readonly limit: number;
  readonly leaseMs: number;
  readonly runId: number | null;
  /**
   * Only claim these statuses (default ['upload_pending']). *_pending and
   * *_failed rows move to their *_in_progress status; *_in_progress rows are
   * taken only once their lease has expired; completed statuses cannot be
   * claimed (HOLDFAST_E_INTERNAL).
   */
  readonly statuses?: readonly ObjectStatus[];
  /** Only these rows (still subject to `statuses`); default: any row of the destination. */
  readonly objectIds?: readonly number[];
  /** Only rows of this source (or of none recorded): a worker never claims a file it cannot see. */
  readonly sourceId?: string;
}

export type OutcomeStatus = 'upload_completed' | 'upload_failed' | 'upload_pending' | 'delete_completed' | 'delete_failed' | 'delete_pending';

export interface Outcome {
  readonly objectId: number;
  /** The attempt this outcome belongs to; the write is fenced on it. */
  readonly attemptId: string;
  readonly status: OutcomeStatus;
  readonly etag?: string | null;
  readonly versionId?: string | null;
  readonly errorCode?: string | null;
  readonly errorMessage?: string | null;
  readonly nextAttemptAt?: number | null;
  /** Set verified_at (e.g. recovery confirmed the object by its hash). */
  readonly verified?: boolean;
  readonly note?: string | null;
}

export interface OutcomeResult {
  readonly objectId: number;
  /** False when the row's attempt_id no longer matched (a newer attempt owns it). */
  readonly applied: boolean;
}

export interface StartRunInput {
  readonly command: string;
  readonly destinationId: number | null;
  readonly source: string | null;
  readonly owner: string;
}

export interface FileCacheEntry {
  readonly path: string;
  readonly size: number;
  readonly mtimeMs: number;
  readonly ino: number;
  readonly sha256: string;
}

export interface StatusCount {
  readonly destinationId: number;
  readonly status: ObjectStatus;
  readonly count: number;
  readonly bytes: number;
}

export interface Ledger {
  /** 'sqlite' | 'postgres'. */
  readonly dialect: string;
  /** Where it lives (file path or connection URL without password). */
  readonly location: string;

  // destinations
  /**
   * The row of this destination, created if needed. Keyed by identity
   * (namespace + prefix); a row from before identities existed with the same
   * URL is claimed for this identity (its endpoint was never recorded).
   */
  ensureDestination(destination: DestinationRef): Promise<DestinationRow>;
  /** The row of this destination (by identity, or an unclaimed older row with its URL), without creating one. */
  getDestination(destination: Omit<DestinationRef, 'kind'>): Promise<DestinationRow | undefined>;
  /** Rows with this display URL: more than one when the same URL was used on several endpoints or accounts. */
  findDestinations(url: string): Promise<DestinationRow[]>;
  listDestinations(): Promise<DestinationRow[]>;
  recordDestinationHealth(destinationId: number, input: { at: number; status: string; error: string | null; uploaded?: boolean }): Promise<void>;

  // runs
  startRun(input: StartRunInput): Promise<RunRow>;
  finishRun(runId: number, status: Exclude<RunStatus, 'running'>, summary: unknown): Promise<void>;
  listRuns(opts?: { limit?: number; destinationId?: number }): Promise<RunRow[]>;

  // objects: reading
  /** Every row of a destination in key byte order, read in pages (bounded memory, no long-held connection). */
  streamObjects(destinationId: number, opts?: { pageSize?: number; afterKey?: string }): AsyncIterable<ObjectRow>;
  getObject(destinationId: number, key: string): Promise<ObjectRow | undefined>;
  /** Rows in upload_in_progress / delete_in_progress (for recovery to judge their leases). */
  listInProgress(destinationId: number): Promise<ObjectRow[]>;
  countByStatus(destinationId?: number): Promise<StatusCount[]>;
  /**
   * At most `limit` rows of a destination in the given statuses, in key byte
   * order (status pages: failing items, stale work, pending deletes). Costs
   * O(limit) per status on any ledger size.
   */
  listByStatus(destinationId: number, statuses: readonly ObjectStatus[], limit: number): Promise<ObjectRow[]>;

  // objects: planning (one transaction per call)
  /**
   * Creates or moves rows to upload_pending with the planned size/mtime/hash.
   * Returns the keys it left alone: rows in progress, or rows that changed since `seen`.
   */
  planUploads(destinationId: number, items: readonly PlannedUpload[], runId: number | null): Promise<string[]>;
  /** Updates size/mtime of rows whose content did not change (a touched file costs no upload). Returns the ids left alone (changed since seen). */
  touchObjects(items: readonly TouchedObject[]): Promise<number[]>;
  /**
   * Removes rows for work that never reached the destination and no longer
   * exists in the source. Fenced: a row whose status, attempt id or hash
   * differs from `seen` (claimed, re-planned, completed since) is kept.
   * Returns the ids forgotten.
   */
  forgetObjects(items: readonly ForgottenObject[], note: string, runId: number | null): Promise<number[]>;

  // objects: deletes and repairs (sync, cleanup), one transaction per call
  /** Moves rows to delete_pending (two-phase delete: the delete step claims them later). Returns keys left alone. */
  planDeletes(items: readonly PlannedDelete[], note: string, runId: number | null): Promise<string[]>;
  /** Orphaned records (completed, but the destination lacks the object): back to upload_pending. */
  requeueObjects(objectIds: readonly number[], note: string, runId: number | null): Promise<void>;
  /** Records objects found on the destination with a matching holdfast-sha256 as upload_completed. Returns keys left alone (a row exists). */
  adoptObjects(destinationId: number, items: readonly AdoptedObject[], note: string, runId: number | null): Promise<string[]>;
  /** Orphaned objects (on the destination, unknown to the ledger) to delete: rows created (or moved) in delete_pending. Returns keys left alone. */
  markOrphansForDeletion(destinationId: number, keys: readonly string[], note: string, runId: number | null): Promise<string[]>;
  /** A history entry that changes no status (e.g. "aborted stale multipart upload X"); tied to the key's row if there is one. */
  recordNote(destinationId: number, key: string, note: string, runId: number | null): Promise<void>;
  /** Completed rows verified longest ago (never-verified first): what `check --sample` re-reads. */
  leastRecentlyVerified(destinationId: number, limit: number): Promise<ObjectRow[]>;
  markVerified(objectIds: readonly number[], at: number): Promise<void>;

  // objects: the protocol
  /**
   * The intent, for a batch: moves up to `limit` claimable rows to
   * *_in_progress with a fresh attempt id and lease, in one transaction, and
   * returns them. Rows are returned in key order.
   */
  claim(opts: ClaimOptions): Promise<ObjectRow[]>;
  /**
   * Recovery's intent: takes over in-progress rows whose lease expired on the
   * ledger's clock (or whose owner is one of `deadOwners`), fenced on their
   * current attempt id, giving each a fresh attempt id and this owner's lease
   * (status unchanged: in_progress → in_progress). Returns the rows actually
   * taken over; a row whose attempt id changed meanwhile, or whose lease was
   * renewed meanwhile, is left alone. From then on, the old owner's outcome
   * writes and lease renewals are refused.
   */
  takeOver(
    rows: readonly { objectId: number; attemptId: string }[],
    owner: string,
    leaseMs: number,
    runId: number | null,
    opts?: { readonly deadOwners?: readonly string[]; readonly deadAfterMs?: number },
  ): Promise<ObjectRow[]>;
  /**
   * Extends to `leaseMs` from now (the ledger's clock) the leases of rows this
   * owner still holds under these attempts. Returns the ids renewed: a row
   * missing from it was taken over (or settled), and its attempt must stop.
   */
  renewLeases(rows: readonly { objectId: number; attemptId: string }[], owner: string, leaseMs: number): Promise<number[]>;
  /** The ledger's clock (epoch ms): what leases are written and judged with, the same for every worker. */
  clock(): Promise<number>;

  // workers (DESIGN §10): every process that works on the ledger, with a heartbeat
  /** Records a worker (or refreshes one), its heartbeat now. */
  registerWorker(worker: { readonly id: string; readonly host: string; readonly pid: number; readonly command: string; readonly sourceId: string | null }): Promise<void>;
  /** A worker's sign of life, on the ledger's clock. Returns false if its row is gone. */
  heartbeat(id: string): Promise<boolean>;
  /** A worker that ended cleanly. */
  retireWorker(id: string): Promise<void>;
  /** Workers, newest first: running ones, and (with `includeStopped`) those that ended. */
  listWorkers(opts?: { readonly includeStopped?: boolean }): Promise<WorkerRow[]>;
  /** Workers not stopped whose heartbeat is older than `deadAfterMs` on the ledger's clock: dead, their leases may be taken over. */
  deadWorkers(deadAfterMs: number): Promise<string[]>;
  /** Outcomes for a batch, fenced on attempt id, in one transaction. */
  recordOutcomes(outcomes: readonly Outcome[], runId: number | null): Promise<OutcomeResult[]>;

  // multipart bookkeeping (fenced on attempt id)
  setUploadId(objectId: number, attemptId: string, uploadId: string | null): Promise<boolean>;
  recordPart(part: PartRow, attemptId: string): Promise<boolean>;
  listParts(objectId: number, uploadId: string): Promise<PartRow[]>;

  // history
  history(destinationId: number, key: string): Promise<HistoryRow[]>;

  // file cache: (path, size, mtime, inode) → sha256
  lookupFileCache(paths: readonly string[]): Promise<Map<string, FileCacheEntry>>;
  storeFileCache(entries: readonly FileCacheEntry[]): Promise<void>;

  close(): Promise<void>;
}

export interface OpenLedgerOptions {
  /** Directory holding holdfast.db (SQLite). Default: $HOLDFAST_STATE, $XDG_STATE_HOME/holdfast, ~/.local/state/holdfast. */
  readonly stateDir?: string;
  /** An empty ledger in memory, gone when closed (a dry run before any real run). */
  readonly inMemory?: boolean;
  /** A postgres:// URL selects the PostgreSQL dialect. */
  readonly url?: string;
  /** PostgreSQL: connections in the pool (default 4). */
  readonly poolSize?: number;
  /** Milliseconds to wait on a locked database before failing (SQLite busy_timeout). */
  readonly busyTimeoutMs?: number;
  /**
   * Read an existing ledger only (status, history, runs, check): nothing is
   * created or written, a missing ledger is HOLDFAST_E_LEDGER_OPEN, and one
   * that needs a migration is refused with a message saying to run a
   * writing command first. Writing methods then fail.
   */
  readonly readOnly?: boolean;
}
