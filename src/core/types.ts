// Domain types shared by every room of Holdfast.
//
// Terminology
// - source:       a local directory whose files are copied.
// - destination:  where objects go, named by a URL (file://, s3://, ...). A
//                 destination is served by a backend (src/backends).
// - key:          an object's name on a destination, relative to the
//                 destination's prefix; "/"-separated, the source-relative path.
// - ledger:       the durable database that records, per (destination, key),
//                 what was intended and what happened (src/ledger).
// - object row:   the ledger's row for one (destination, key).
// - attempt:      one try at a side effect; every attempt has a fresh
//                 `attemptId`, and outcome writes are fenced on it.
// - intent:       the committed ledger write that precedes a side effect
//                 (status *_in_progress with attempt id, hash and size).
// - outcome:      the ledger write that follows it (completed or failed).
// - lease:        how long a worker owns an in-progress row; after it expires,
//                 recovery may resolve the row by asking the destination.
// - recovery:     resolving rows left in progress by a crash, by `head`ing the
//                 destination, never by assuming.
// - partial:      a file whose upload succeeded but whose outcome could not be
//                 written; the next run's recovery resolves it with zero bytes.
// - run:          one execution of a command (push, sync, ...), with a status
//                 (completed | partial | failed | cancelled) and counts.

import type { ObjectStatus } from './status.js';

export type DestinationKind = 'file' | 's3' | 'azure' | 'gdrive' | (string & {});

export interface DestinationRow {
  readonly id: number;
  /** The URL as users write it (credentials removed): what reports show. Not unique: one URL on two endpoints is two rows. */
  readonly url: string;
  /**
   * What the row is keyed by: namespace (scheme, endpoint or account, bucket or
   * container) + prefix, e.g. `s3+http://127.0.0.1:9000/docs/store/`. Null for
   * a row made before identities existed, until the first run that uses it.
   */
  readonly identity: string | null;
  /** The namespace part of `identity` (see src/backends/location.ts); null with it. */
  readonly namespace: string | null;
  readonly kind: DestinationKind;
  readonly lastUploadAt: number | null;
  readonly lastStatus: string | null;
  readonly lastError: string | null;
  readonly consecutiveFailures: number;
}

/** One ledger row: the state of one key on one destination. Times are epoch ms. */
export interface ObjectRow {
  readonly id: number;
  readonly destinationId: number;
  readonly key: string;
  readonly sourcePath: string | null;
  readonly size: number | null;
  readonly mtimeMs: number | null;
  readonly sha256: string | null;
  readonly status: ObjectStatus;
  /** How many attempts have been made since the row last completed. */
  readonly attempt: number;
  readonly attemptId: string | null;
  readonly leaseOwner: string | null;
  readonly leaseUntil: number | null;
  /** Backend's multipart upload id (or resumable session) while one is open. */
  readonly uploadId: string | null;
  readonly etag: string | null;
  readonly versionId: string | null;
  readonly errorCode: string | null;
  readonly errorMessage: string | null;
  readonly nextAttemptAt: number | null;
  readonly verifiedAt: number | null;
  /** Which source the file belongs to ("host:root", or a shared source's name); null on rows from before sources were recorded. */
  readonly sourceId: string | null;
  readonly updatedAt: number;
}

/** One process working on the ledger: a CLI run, `watch`, `serve` (DESIGN §10). */
export interface WorkerRow {
  /** host:pid:nonce: what its leases name as their owner. */
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  readonly command: string;
  readonly sourceId: string | null;
  readonly startedAt: number;
  /** Last sign of life, on the ledger's clock. */
  readonly heartbeatAt: number;
  /** Set when it ended cleanly. */
  readonly stoppedAt: number | null;
  /** How long ago the last heartbeat was, on the ledger's clock. */
  readonly heartbeatAgeMs: number;
  /** Rows it holds leases on (in progress). */
  readonly leased: number;
}

export interface PartRow {
  readonly objectId: number;
  readonly uploadId: string;
  readonly partNumber: number;
  readonly size: number;
  readonly etag: string;
  readonly checksum: string | null;
}

export interface HistoryRow {
  readonly id: number;
  /** Null for an action on no ledger row (e.g. a stale multipart upload aborted by cleanup). */
  readonly objectId: number | null;
  readonly destinationId: number;
  readonly key: string;
  readonly runId: number | null;
  readonly fromStatus: ObjectStatus | null;
  /** Null for an action that changed no status; `note` says what was done. */
  readonly toStatus: ObjectStatus | null;
  readonly attemptId: string | null;
  readonly errorCode: string | null;
  readonly errorMessage: string | null;
  readonly note: string | null;
  readonly at: number;
}

export type RunStatus = 'running' | 'completed' | 'partial' | 'failed' | 'cancelled';

export interface RunRow {
  readonly id: number;
  readonly command: string;
  readonly destinationId: number | null;
  readonly source: string | null;
  readonly owner: string;
  readonly startedAt: number;
  readonly finishedAt: number | null;
  readonly status: RunStatus;
  /** JSON of the final report's counts (RunReport minus errors), or null while running. */
  readonly summary: string | null;
}

/** A file found by scanning the source. */
export interface SourceFile {
  /** Destination key: source-relative path with "/" separators, exactly as named on disk. */
  readonly key: string;
  readonly path: string;
  readonly size: number;
  readonly mtimeMs: number;
  /** Status-change time: moves with renames and `touch -d` too (watch's quiet period looks at it). */
  readonly ctimeMs?: number;
  readonly ino: number;
  /** Device of the file, where the scan knows it: with `ino`, the file's identity (checked when it is opened). */
  readonly dev?: number;
}
