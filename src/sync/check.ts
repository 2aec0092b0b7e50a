// `check` (DESIGN §7): compares the source, the ledger and the destination's
// listing, and reports where they disagree, by category and key.
//
// It is one streaming three-way merge-join in key byte order: the source scan
// (walkSource), the ledger's rows (streamObjects) and the destination listing
// (backend.list) all arrive sorted by compareKeys, so one pass with one item
// of each in hand decides every key. Memory does not grow with the number of
// objects: counts are exact, and only the first `maxFindings` findings of each
// category are kept. `cleanup` (cleanup.ts) reuses the same join and the same
// judgement, so the two can never disagree about what a category means.
//
// Content is re-read only on request: `download` re-reads every completed
// object during the join; `samplePercent` re-reads the least recently verified
// share of them afterwards. Both record `verified_at` for objects whose SHA-256
// matched; that is the only thing `check` writes to the ledger.

import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Backend, BackendOptions, MultipartUploadInfo, ObjectInfo } from '../backends/backend.js';
import { prefixWithin, realLocation } from '../backends/location.js';
import { openBackend } from '../backends/registry.js';
import { HoldfastError, classifyError, throwIfAborted } from '../core/errors.js';
import type { ObjectStatus } from '../core/status.js';
import type { DestinationRow, ObjectRow, SourceFile } from '../core/types.js';
import { Limiter } from '../engine/limiter.js';
import { DEFAULT_RETRY, backoffDelay, checkRetryPolicy, sleep, withRetry, type RetryPolicy } from '../engine/retry.js';
import type { Ledger } from '../ledger/ledger.js';
import { ledgerMayExist, openLedger, openLedgerAt, resolveLedger } from '../ledger/open.js';
import { mergeJoin, sameMtimeMs, type JoinedKey } from '../scan/change-detection.js';
import { IGNORE_FILE, MATCH_NOTHING, compileExcludes, type Matcher } from '../scan/ignore.js';
import { compareKeys } from '../scan/key-order.js';
import { walkSource } from '../scan/walk.js';

// ---------------------------------------------------------------------------
// Categories and findings

/**
 * What `check` reports, each by key:
 * - missing:         a source file with no object on the destination, and no completed row (not uploaded yet).
 * - orphanedObjects: an object the ledger does not track (no row, or only a delete_completed one).
 * - orphanedRecords: a row the ledger calls upload_completed whose object the destination lacks.
 * - mismatches:      the object differs from its completed row: size, etag (when both are known), or
 *                    SHA-256 of the content (only when content is re-read: download / sample).
 * - changedLocally:  a source file whose size or mtime differs from its completed row (not pushed yet).
 * - staleUploads:    multipart uploads no ledger row references, older than `olderThanMs`.
 * - unreadable:      a source entry or an object that could not be read, so it could not be judged.
 */
export const CHECK_CATEGORIES = ['missing', 'orphanedObjects', 'orphanedRecords', 'mismatches', 'changedLocally', 'staleUploads', 'unreadable'] as const;

export type CheckCategory = (typeof CHECK_CATEGORIES)[number];

export type MismatchReason = 'size' | 'etag' | 'sha256';

export interface MissingFinding {
  readonly key: string;
  readonly size: number;
  /** The row's status, when the ledger has one (upload_pending, upload_failed, delete_*). */
  readonly ledgerStatus: ObjectStatus | null;
}

export interface OrphanedObjectFinding {
  readonly key: string;
  readonly size: number;
  readonly etag: string | null;
  /** 'delete_completed' when the ledger recorded this key's deletion; null when it has no row. */
  readonly ledgerStatus: ObjectStatus | null;
}

export interface OrphanedRecordFinding {
  readonly key: string;
  readonly size: number | null;
  readonly sha256: string | null;
}

export interface MismatchFinding {
  readonly key: string;
  readonly reasons: readonly MismatchReason[];
  readonly ledger: { readonly size: number | null; readonly etag: string | null; readonly sha256: string | null };
  /** `sha256` is present when the content was re-read. */
  readonly destination: { readonly size: number; readonly etag: string | null; readonly sha256?: string };
}

export interface ChangedLocallyFinding {
  readonly key: string;
  readonly ledger: { readonly size: number | null; readonly mtimeMs: number | null };
  readonly source: { readonly size: number; readonly mtimeMs: number };
}

export interface StaleUploadFinding {
  readonly key: string;
  readonly uploadId: string;
  /** ISO time the upload was started, when the server says. */
  readonly initiatedAt: string | null;
  readonly ageMs: number | null;
}

export interface UnreadableFinding {
  readonly key: string;
  readonly side: 'source' | 'destination';
  readonly code: string;
  readonly message: string;
}

export interface CheckFindings {
  missing: MissingFinding[];
  orphanedObjects: OrphanedObjectFinding[];
  orphanedRecords: OrphanedRecordFinding[];
  mismatches: MismatchFinding[];
  changedLocally: ChangedLocallyFinding[];
  staleUploads: StaleUploadFinding[];
  unreadable: UnreadableFinding[];
}

export type CheckCounts = Record<CheckCategory, number>;

export interface CheckReport {
  /** consistent: source, ledger and destination agree in every category checked. */
  readonly status: 'consistent' | 'inconsistent';
  readonly destination: string;
  readonly source: string | null;
  /** Exact counts per category. */
  readonly counts: CheckCounts;
  /** The first `maxFindings` findings of each category, in key order. */
  readonly findings: CheckFindings;
  /** Categories with more findings than were kept. */
  readonly truncated: Record<CheckCategory, boolean>;
  /** Categories that could not be checked, and why (e.g. a server without ListMultipartUploads). Not a failure. */
  readonly unchecked: Partial<Record<CheckCategory, string>>;
  readonly scanned: CheckScanned;
  readonly notes: string[];
  readonly durationMs: number;
}

export interface CheckScanned {
  /** Source files walked (0 without a source). */
  files: number;
  /** Ledger rows of the destination. */
  rows: number;
  /** Objects listed on the destination. */
  objects: number;
  /** Keys left out because a run is working on them (rows in progress). */
  inProgress: number;
  /** Objects whose content was re-read (download or sample). */
  reread: number;
  /** Of those, how many matched their SHA-256 (and were marked verified). */
  verified: number;
  bytesReread: number;
  /** Multipart uploads listed on the destination. */
  uploads: number;
}

/** Keeps exact counts and the first `max` findings of each category. */
export class FindingsCollector {
  readonly counts: CheckCounts = emptyCounts();
  readonly findings: CheckFindings = { missing: [], orphanedObjects: [], orphanedRecords: [], mismatches: [], changedLocally: [], staleUploads: [], unreadable: [] };

  constructor(readonly max: number) {}

  add<C extends CheckCategory>(category: C, finding: CheckFindings[C][number]): void {
    this.counts[category]++;
    const list = this.findings[category] as CheckFindings[C][number][];
    if (list.length < this.max) list.push(finding);
  }

  get total(): number {
    return CHECK_CATEGORIES.reduce((n, c) => n + this.counts[c], 0);
  }

  truncated(): Record<CheckCategory, boolean> {
    const out = {} as Record<CheckCategory, boolean>;
    for (const c of CHECK_CATEGORIES) out[c] = this.counts[c] > this.findings[c].length;
    return out;
  }

  /** Findings in key order (re-reads finish out of order). */
  sorted(): CheckFindings {
    const byKey = (a: { key: string }, b: { key: string }): number => compareKeys(a.key, b.key);
    const f = this.findings;
    return {
      missing: [...f.missing].sort(byKey),
      orphanedObjects: [...f.orphanedObjects].sort(byKey),
      orphanedRecords: [...f.orphanedRecords].sort(byKey),
      mismatches: [...f.mismatches].sort(byKey),
      changedLocally: [...f.changedLocally].sort(byKey),
      staleUploads: [...f.staleUploads].sort(byKey),
      unreadable: [...f.unreadable].sort(byKey),
    };
  }
}

export function emptyCounts(): CheckCounts {
  return { missing: 0, orphanedObjects: 0, orphanedRecords: 0, mismatches: 0, changedLocally: 0, staleUploads: 0, unreadable: 0 };
}

// ---------------------------------------------------------------------------
// The judgement of one key (pure)

/** One key as the three sides see it. */
export interface KeyState {
  readonly key: string;
  readonly file?: SourceFile;
  readonly row?: ObjectRow;
  readonly object?: ObjectInfo;
}

export interface KeyVerdict {
  /** A run is working on this key: it belongs to that run (or to recovery), and is judged by nothing else. */
  readonly inProgress: boolean;
  readonly missing: boolean;
  readonly orphanedObject: boolean;
  readonly orphanedRecord: boolean;
  readonly changedLocally: boolean;
  /** Cheap mismatches, from the listing alone (size, etag). */
  readonly mismatch: readonly MismatchReason[];
}

const NOTHING: KeyVerdict = { inProgress: false, missing: false, orphanedObject: false, orphanedRecord: false, changedLocally: false, mismatch: [] };

/** ETags as servers spell them differ in quoting and weak prefixes; the value is what counts. */
export function normalizeEtag(etag: string | null | undefined): string | null {
  if (etag === null || etag === undefined) return null;
  const v = etag.replace(/^W\//, '').replace(/"/g, '').trim().toLowerCase();
  return v === '' ? null : v;
}

/**
 * Which categories a key falls in. Pure; a key may be in several (a completed
 * file edited locally whose object also vanished is changedLocally and an
 * orphaned record). Without a source, only destination-vs-ledger categories
 * can be judged.
 */
export function judgeKey(s: KeyState): KeyVerdict {
  const { file, row, object } = s;
  if (row !== undefined && (row.status === 'upload_in_progress' || row.status === 'delete_in_progress')) return { ...NOTHING, inProgress: true };
  const completed = row?.status === 'upload_completed';
  const mismatch: MismatchReason[] = [];
  if (completed && object !== undefined) {
    if (row.size !== null && row.size !== object.size) mismatch.push('size');
    const a = normalizeEtag(row.etag);
    const b = normalizeEtag(object.etag);
    if (a !== null && b !== null && a !== b) mismatch.push('etag');
  }
  return {
    inProgress: false,
    missing: file !== undefined && object === undefined && !completed,
    orphanedObject: object !== undefined && (row === undefined || row.status === 'delete_completed'),
    orphanedRecord: completed && object === undefined,
    changedLocally: completed && file !== undefined && (row.size !== file.size || row.mtimeMs === null || !sameMtimeMs(row.mtimeMs, file.mtimeMs)),
    mismatch,
  };
}

// ---------------------------------------------------------------------------
// Opening the three sides

export interface ConsistencyOptions {
  /** Destination URL: file:///path, s3://bucket/prefix. */
  readonly destination: string;
  /** The source directory; without it, `missing` and `changedLocally` are not checked. */
  readonly source?: string;
  /** An open ledger to use (the caller keeps ownership); else the one `ledgerUrl` or `stateDir` names (see resolveLedger). */
  readonly ledger?: Ledger;
  readonly stateDir?: string;
  /** postgres://… or sqlite:<state directory>; wins over `stateDir`; default $HOLDFAST_LEDGER. */
  readonly ledgerUrl?: string;
  /** Glob patterns to leave out of the source scan; `.holdfastignore` in the source root is read too. */
  readonly exclude?: readonly string[];
  readonly followSymlinks?: boolean;
  readonly backendOptions?: BackendOptions;
  /** Multipart uploads unknown to the ledger count as stale once this old (default 24 h). */
  readonly olderThanMs?: number;
  /** Parallel reads (re-reads, heads); default 8. */
  readonly transfers?: number;
  readonly retry?: RetryPolicy;
  readonly signal?: AbortSignal;
}

export const DEFAULT_OLDER_THAN_MS = 24 * 60 * 60 * 1000;

/** The three sides, open. `close()` releases what this session opened. */
export interface ConsistencySession {
  readonly backend: Backend;
  readonly ledger: Ledger;
  /** Undefined when the ledger has never seen this destination (and the session may not write). */
  readonly destination: DestinationRow | undefined;
  readonly sourceRoot: string | undefined;
  readonly exclude: Matcher;
  readonly followSymlinks: boolean;
  readonly retry: RetryPolicy;
  readonly transfers: number;
  readonly signal: AbortSignal | undefined;
  close(): Promise<void>;
}

/**
 * Opens destination, ledger and source for a check or a cleanup. With
 * `write` false nothing is created: not the destination, not the ledger file
 * (a missing ledger is read as an empty one), not the destination's row.
 */
export async function openConsistencySession(options: ConsistencyOptions, mode: { readonly write: boolean; readonly recordsVerification?: boolean }): Promise<ConsistencySession> {
  const transfers = options.transfers ?? 8;
  if (!Number.isInteger(transfers) || transfers < 1 || transfers > 1024) {
    throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `transfers must be an integer from 1 to 1024, got ${transfers}` });
  }
  const retry = options.retry ?? DEFAULT_RETRY;
  checkRetryPolicy(retry);
  let sourceRoot: string | undefined;
  let exclude: Matcher = MATCH_NOTHING;
  if (options.source !== undefined) {
    sourceRoot = resolve(options.source);
    const st = await stat(sourceRoot).catch(() => undefined);
    if (!st?.isDirectory()) throw new HoldfastError('HOLDFAST_E_SOURCE_MISSING', { path: options.source });
    exclude = compileExcludes([...(options.exclude ?? [])], { ignoreFile: join(sourceRoot, IGNORE_FILE) });
  }
  const backend = await openBackend(options.destination, options.backendOptions);
  let ledger = options.ledger;
  const ownsLedger = ledger === undefined;
  try {
    await withRetry(() => backend.ensureReady({ signal: options.signal, readOnly: true }), {
      policy: retry,
      signal: options.signal,
      fallback: 'HOLDFAST_E_DEST_UNREACHABLE',
    }).catch((e: unknown) => {
      const err = classifyError(e, 'HOLDFAST_E_DEST_UNREACHABLE');
      // A per-file code here means the destination as a whole cannot be used.
      throw err.exitCode === 2 ? new HoldfastError('HOLDFAST_E_DEST_UNREACHABLE', { detail: `${backend.url}: ${err.message}` }, { cause: err }) : err;
    });
    if (ledger === undefined) {
      const target = resolveLedger(options);
      if (target.kind === 'sqlite') await refuseLedgerInside(backend, target.stateDir);
      // Reading must not create a ledger: without one, everything is judged against an empty ledger.
      const inMemory = !mode.write && !ledgerMayExist(target);
      // Only verification times are ever written by a check: without re-reads, the ledger is opened read-only.
      ledger = inMemory ? await openLedger({ inMemory: true }) : await openLedgerAt(target, mode.write || mode.recordsVerification === true ? {} : { readOnly: true });
    }
    const destination = mode.write ? await ledger.ensureDestination(backend) : await ledger.getDestination(backend);
    const opened = ledger;
    return {
      backend,
      ledger: opened,
      destination,
      sourceRoot,
      exclude,
      followSymlinks: options.followSymlinks === true,
      retry,
      transfers,
      signal: options.signal,
      async close(): Promise<void> {
        await backend.close().catch(() => undefined);
        if (ownsLedger) await opened.close().catch(() => undefined);
      },
    };
  } catch (e) {
    await backend.close().catch(() => undefined);
    if (ownsLedger) await ledger?.close().catch(() => undefined);
    throw e;
  }
}

/** The SQLite ledger inside the destination would be listed as objects, and a cleanup would delete it. */
async function refuseLedgerInside(backend: Backend, stateDir: string): Promise<void> {
  const inside = prefixWithin(await realLocation(backend.location), await realLocation({ namespace: 'file://', prefix: `${stateDir}/` }));
  if (inside !== undefined) {
    throw new HoldfastError('HOLDFAST_E_USAGE', {
      detail: `the ledger's directory ${stateDir} is inside the destination ${backend.url}: its files would be listed as objects (and a cleanup would delete the ledger); keep the state directory (--state) outside the destination`,
    });
  }
}

// ---------------------------------------------------------------------------
// The join

async function* nothing<T>(): AsyncGenerator<T> {}

/**
 * The destination listing, resumed after the last key seen when a page fails
 * with a transient error (a million-object listing should not restart from
 * zero, nor fail, on one reset connection).
 */
export async function* listResumable(backend: Backend, retry: RetryPolicy, signal?: AbortSignal): AsyncGenerator<ObjectInfo> {
  let after: string | undefined;
  let failures = 0;
  for (;;) {
    const it = backend.list('', { ...(signal !== undefined ? { signal } : {}), ...(after !== undefined ? { startAfter: after } : {}) })[Symbol.asyncIterator]();
    try {
      for (;;) {
        let r: IteratorResult<ObjectInfo>;
        try {
          r = await it.next();
        } catch (e) {
          const err = classifyError(e, 'HOLDFAST_E_NETWORK');
          if (signal?.aborted === true || err.code === 'HOLDFAST_E_CANCELLED') throw err;
          failures++;
          if (!err.transient || failures >= retry.attempts) throw err;
          await sleep(backoffDelay(retry, failures), signal);
          break;
        }
        if (r.done === true) return;
        failures = 0;
        after = r.value.key;
        yield r.value;
      }
    } finally {
      await it.return?.();
    }
  }
}

/**
 * Joins the (source, ledger) join with the destination listing, all in
 * compareKeys order, into one stream of keys with whatever each side has.
 * A listing that goes backwards is refused: the join would misjudge keys.
 */
export async function* joinWithListing(joined: AsyncIterable<JoinedKey>, listing: AsyncIterable<ObjectInfo>): AsyncGenerator<KeyState> {
  const left = joined[Symbol.asyncIterator]();
  const right = listing[Symbol.asyncIterator]();
  let lastObject: string | undefined;
  const nextObject = async (): Promise<ObjectInfo | undefined> => {
    const r = await right.next();
    if (r.done === true) return undefined;
    if (lastObject !== undefined && compareKeys(lastObject, r.value.key) >= 0) {
      throw new HoldfastError('HOLDFAST_E_DEST_REJECTED', { detail: `the destination listed ${JSON.stringify(r.value.key)} after ${JSON.stringify(lastObject)}: its listing is not in key order` });
    }
    lastObject = r.value.key;
    return r.value;
  };
  const nextJoined = async (): Promise<JoinedKey | undefined> => {
    const r = await left.next();
    return r.done === true ? undefined : r.value;
  };
  try {
    let [j, o] = await Promise.all([nextJoined(), nextObject()]);
    while (j !== undefined || o !== undefined) {
      const c = j === undefined ? 1 : o === undefined ? -1 : compareKeys(j.key, o.key);
      if (c < 0) {
        yield j!;
        j = await nextJoined();
      } else if (c > 0) {
        yield { key: o!.key, object: o! };
        o = await nextObject();
      } else {
        yield { ...j!, object: o! };
        [j, o] = await Promise.all([nextJoined(), nextObject()]);
      }
    }
  } finally {
    await Promise.allSettled([left.return?.(), right.return?.()]);
  }
}

/** Every key of the three sides, in key order. Source entries that cannot be read go to `onSourceError`. */
export function streamKeys(session: ConsistencySession, hooks: { onSourceError?: (key: string, error: HoldfastError) => void; stats?: { files: number } } = {}): AsyncGenerator<KeyState> {
  const { sourceRoot, destination, ledger, backend } = session;
  const files =
    sourceRoot === undefined
      ? nothing<SourceFile>()
      : walkSource(sourceRoot, {
          exclude: session.exclude,
          followSymlinks: session.followSymlinks,
          ...(session.signal !== undefined ? { signal: session.signal } : {}),
          ...(hooks.onSourceError !== undefined ? { onError: hooks.onSourceError } : {}),
        });
  const rows = destination === undefined ? nothing<ObjectRow>() : ledger.streamObjects(destination.id);
  return joinWithListing(mergeJoin(files, rows), listResumable(backend, session.retry, session.signal));
}

// ---------------------------------------------------------------------------
// Re-reading content

export type RereadResult =
  | { readonly kind: 'read'; readonly sha256: string; readonly size: number }
  /** The object is gone (deleted since it was listed). */
  | { readonly kind: 'gone' }
  | { readonly kind: 'error'; readonly error: HoldfastError };

/** Reads an object whole and hashes it; transient failures are retried from the start. */
export async function rereadObject(backend: Backend, key: string, retry: RetryPolicy, signal?: AbortSignal): Promise<RereadResult> {
  try {
    return await withRetry(
      async () => {
        const stream = await backend.get(key, signal !== undefined ? { signal } : {});
        const hash = createHash('sha256');
        let size = 0;
        try {
          for await (const chunk of stream as AsyncIterable<Buffer>) {
            hash.update(chunk);
            size += chunk.length;
          }
        } finally {
          stream.destroy();
        }
        return { kind: 'read' as const, sha256: hash.digest('hex'), size };
      },
      { policy: retry, ...(signal !== undefined ? { signal } : {}), fallback: 'HOLDFAST_E_NETWORK' },
    );
  } catch (e) {
    const error = classifyError(e, 'HOLDFAST_E_NETWORK', { key });
    if (error.code === 'HOLDFAST_E_CANCELLED') throw error;
    if (error.code === 'HOLDFAST_E_DEST_REJECTED') {
      // Both backends say "no such object" this way; a head tells it apart from other refusals.
      const info = await backend.head(key, signal !== undefined ? { signal } : {}).catch(() => null);
      if (info === undefined) return { kind: 'gone' };
    }
    return { kind: 'error', error };
  }
}

/** Batches verified row ids into markVerified calls (the only ledger write of a check). */
class VerifiedMarks {
  #ids: number[] = [];
  constructor(
    private readonly ledger: Ledger,
    private readonly batch = 500,
  ) {}

  async add(id: number): Promise<void> {
    this.#ids.push(id);
    if (this.#ids.length >= this.batch) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.#ids.length === 0) return;
    const ids = this.#ids;
    this.#ids = [];
    await this.ledger.markVerified(ids, Date.now());
  }
}

// ---------------------------------------------------------------------------
// Stale multipart uploads

export interface UploadVerdict {
  readonly upload: MultipartUploadInfo;
  /** A ledger row of this key holds this upload id: resumable work, never stale. */
  readonly referenced: boolean;
  readonly ageMs: number | null;
  /** Unknown to the ledger and older than the threshold. */
  readonly stale: boolean;
}

/**
 * Judges each open multipart upload. Returns true when every upload was
 * judged, or — calling nothing — the reason the destination cannot list them
 * (its HOLDFAST_E_NOT_SUPPORTED message), so the caller can say the category
 * was not checked. A destination without
 * multipart support has no uploads: checked, none found.
 *
 * Stale = no row references it AND it is older than `olderThanMs`. The age
 * matters: an upload another run just created is unreferenced for the moment
 * between CreateMultipartUpload and the ledger write of its id.
 */
export async function forEachUpload(session: ConsistencySession, olderThanMs: number, fn: (v: UploadVerdict) => Promise<void>): Promise<true | string> {
  const mp = session.backend.multipart;
  if (mp === undefined) return true;
  const now = Date.now();
  const it = mp.listUploads('', session.signal !== undefined ? { signal: session.signal } : {})[Symbol.asyncIterator]();
  try {
    for (;;) {
      let r: IteratorResult<MultipartUploadInfo>;
      try {
        r = await it.next();
      } catch (e) {
        const err = classifyError(e, 'HOLDFAST_E_NETWORK');
        if (err.code === 'HOLDFAST_E_NOT_SUPPORTED') return err.message;
        throw err;
      }
      if (r.done === true) return true;
      const upload = r.value;
      const row = session.destination === undefined ? undefined : await session.ledger.getObject(session.destination.id, upload.key);
      const referenced = row?.uploadId === upload.uploadId;
      const ageMs = upload.initiatedMs === undefined ? null : Math.max(0, now - upload.initiatedMs);
      await fn({ upload, referenced, ageMs, stale: !referenced && ageMs !== null && ageMs >= olderThanMs });
    }
  } finally {
    await it.return?.();
  }
}

export function staleUploadFinding(v: UploadVerdict): StaleUploadFinding {
  return {
    key: v.upload.key,
    uploadId: v.upload.uploadId,
    initiatedAt: v.upload.initiatedMs === undefined ? null : new Date(v.upload.initiatedMs).toISOString(),
    ageMs: v.ageMs,
  };
}

// ---------------------------------------------------------------------------
// check()

export interface CheckOptions extends ConsistencyOptions {
  /** Re-read every completed object and compare its SHA-256 with the ledger's. */
  readonly download?: boolean;
  /** Re-read this percentage (0 < p ≤ 100) of completed objects, least recently verified first. */
  readonly samplePercent?: number;
  /** Findings kept per category (counts are always exact); default 1000. */
  readonly maxFindings?: number;
}

export const DEFAULT_MAX_FINDINGS = 1000;

function validateCheckOptions(o: CheckOptions): void {
  if (o.download === true && o.samplePercent !== undefined) {
    throw new HoldfastError('HOLDFAST_E_USAGE', { detail: '--download already re-reads every object; --sample cannot be combined with it' });
  }
  if (o.samplePercent !== undefined && !(Number.isFinite(o.samplePercent) && o.samplePercent > 0 && o.samplePercent <= 100)) {
    throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `sample must be a percentage above 0 and at most 100, got ${o.samplePercent}` });
  }
  if (o.maxFindings !== undefined && !(Number.isInteger(o.maxFindings) && o.maxFindings >= 0)) {
    throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `maxFindings must be a whole number, got ${o.maxFindings}` });
  }
  if (o.olderThanMs !== undefined && !(Number.isFinite(o.olderThanMs) && o.olderThanMs >= 0)) {
    throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `olderThan must be a duration of 0 or more, got ${o.olderThanMs}` });
  }
}

/**
 * Compares source, ledger and destination. Resolves with the report whatever
 * it finds; rejects only when the check cannot run (source missing,
 * destination or ledger unavailable, cancelled).
 */
export async function check(options: CheckOptions): Promise<CheckReport> {
  validateCheckOptions(options);
  const session = await openConsistencySession(options, { write: false, recordsVerification: options.download === true || (options.samplePercent ?? 0) > 0 });
  try {
    return await runCheck(session, options);
  } finally {
    await session.close();
  }
}

/** The check over an open session (cleanup runs it as its first pass). */
export async function runCheck(session: ConsistencySession, options: Omit<CheckOptions, keyof ConsistencyOptions> & { readonly olderThanMs?: number }): Promise<CheckReport> {
  const started = Date.now();
  const signal = session.signal;
  const collector = new FindingsCollector(options.maxFindings ?? DEFAULT_MAX_FINDINGS);
  const scanned: CheckScanned = { files: 0, rows: 0, objects: 0, inProgress: 0, reread: 0, verified: 0, bytesReread: 0, uploads: 0 };
  const unchecked: Partial<Record<CheckCategory, string>> = {};
  const notes: string[] = [];
  if (session.sourceRoot === undefined) {
    unchecked.missing = 'no source directory given';
    unchecked.changedLocally = 'no source directory given';
  }
  if (session.destination === undefined) notes.push('the ledger has no record of this destination: every object on it is unknown to the ledger');
  const marks = new VerifiedMarks(session.ledger);
  const limiter = new Limiter(session.transfers);
  const inflight = new Set<Promise<void>>();
  let firstFailure: unknown;

  /** Re-reads a completed object and files the outcome, with the cheap reasons the listing already gave. */
  const reread = async (row: ObjectRow, object: ObjectInfo, cheap: readonly MismatchReason[]): Promise<void> => {
    const r = await rereadObject(session.backend, row.key, session.retry, signal);
    scanned.reread++;
    if (r.kind === 'gone') {
      collector.add('orphanedRecords', { key: row.key, size: row.size, sha256: row.sha256 });
      return;
    }
    if (r.kind === 'error') {
      if (cheap.length > 0) collector.add('mismatches', mismatchFinding(row, object, cheap));
      collector.add('unreadable', { key: row.key, side: 'destination', code: r.error.code, message: r.error.message });
      return;
    }
    scanned.bytesReread += r.size;
    const reasons = [...cheap];
    if (r.size !== row.size && !reasons.includes('size')) reasons.push('size');
    if (r.sha256 !== row.sha256) reasons.push('sha256');
    if (reasons.length > 0) {
      collector.add('mismatches', mismatchFinding(row, { ...object, size: r.size }, reasons, r.sha256));
    } else {
      scanned.verified++;
      await marks.add(row.id);
    }
  };

  const schedule = async (task: () => Promise<void>): Promise<void> => {
    // Backpressure: the join waits for a free slot, so at most `transfers` reads are in flight.
    const release = await limiter.acquire();
    const p = task()
      .catch((e: unknown) => {
        firstFailure ??= e;
      })
      .finally(() => {
        release();
        inflight.delete(p);
      });
    inflight.add(p);
  };

  try {
    for await (const s of streamKeys(session, {
      onSourceError: (key, error) => collector.add('unreadable', { key, side: 'source', code: error.code, message: error.message }),
    })) {
      if (firstFailure !== undefined) throw classifyError(firstFailure, 'HOLDFAST_E_NETWORK');
      if (s.file) scanned.files++;
      if (s.row) scanned.rows++;
      if (s.object) scanned.objects++;
      const v = judgeKey(s);
      if (v.inProgress) {
        scanned.inProgress++;
        continue;
      }
      const { file, row, object } = s;
      if (v.missing && file) collector.add('missing', { key: s.key, size: file.size, ledgerStatus: row?.status ?? null });
      if (v.orphanedObject && object) collector.add('orphanedObjects', { key: s.key, size: object.size, etag: object.etag ?? null, ledgerStatus: row?.status ?? null });
      if (v.orphanedRecord && row) collector.add('orphanedRecords', { key: s.key, size: row.size, sha256: row.sha256 });
      if (v.changedLocally && row && file) {
        collector.add('changedLocally', { key: s.key, ledger: { size: row.size, mtimeMs: row.mtimeMs }, source: { size: file.size, mtimeMs: file.mtimeMs } });
      }
      // A size difference already proves a mismatch: no need to read the content.
      const rereadable = options.download === true && row?.status === 'upload_completed' && object !== undefined && row.sha256 !== null && !v.mismatch.includes('size');
      if (rereadable) {
        const cheap = v.mismatch;
        await schedule(() => reread(row, object, cheap));
      } else if (v.mismatch.length > 0 && row && object) {
        collector.add('mismatches', mismatchFinding(row, object, v.mismatch));
      }
    }
    await Promise.all(inflight);
    if (firstFailure !== undefined) throw classifyError(firstFailure, 'HOLDFAST_E_NETWORK');

    if (options.samplePercent !== undefined && session.destination !== undefined) {
      await sample(session, options.samplePercent, started, collector, scanned, marks);
    }
    await marks.flush();

    const checkedUploads = await forEachUpload(session, options.olderThanMs ?? DEFAULT_OLDER_THAN_MS, async (u) => {
      scanned.uploads++;
      if (u.stale) collector.add('staleUploads', staleUploadFinding(u));
    });
    if (checkedUploads !== true) {
      unchecked.staleUploads = `${session.backend.url} cannot list unfinished uploads: ${checkedUploads}`;
    }
  } finally {
    await Promise.allSettled(inflight);
  }
  throwIfAborted(signal);
  return {
    status: collector.total === 0 ? 'consistent' : 'inconsistent',
    destination: session.backend.url,
    source: session.sourceRoot ?? null,
    counts: { ...collector.counts },
    findings: collector.sorted(),
    truncated: collector.truncated(),
    unchecked,
    scanned,
    notes,
    durationMs: Date.now() - started,
  };
}

function mismatchFinding(row: ObjectRow, object: ObjectInfo, reasons: readonly MismatchReason[], sha256?: string): MismatchFinding {
  return {
    key: row.key,
    reasons,
    ledger: { size: row.size, etag: row.etag, sha256: row.sha256 },
    destination: { size: object.size, etag: object.etag ?? null, ...(sha256 !== undefined ? { sha256 } : {}) },
  };
}

/**
 * Re-reads `percent` of the completed objects, least recently verified first
 * (never-verified before all others), in rounds: each round asks the ledger
 * for the next rows, and the ones that verify get verified_at = now, which
 * moves them to the back of that order. Rows that did not verify are
 * remembered so a later round does not pick them again.
 *
 * A content mismatch whose size or etag also differ was already reported by
 * the join (cheaply); it is not reported twice.
 */
async function sample(session: ConsistencySession, percent: number, started: number, collector: FindingsCollector, scanned: CheckScanned, marks: VerifiedMarks): Promise<void> {
  const destinationId = session.destination!.id;
  const counts = await session.ledger.countByStatus(destinationId);
  const completed = counts.find((c) => c.status === 'upload_completed')?.count ?? 0;
  const target = Math.ceil((percent / 100) * completed);
  const failed = new Set<number>();
  const limiter = new Limiter(session.transfers);
  let done = 0;
  while (done < target) {
    throwIfAborted(session.signal);
    await marks.flush();
    const want = Math.min(256, target - done);
    const rows = await session.ledger.leastRecentlyVerified(destinationId, want + failed.size);
    const fresh = rows.filter((r) => !failed.has(r.id) && !(r.verifiedAt !== null && r.verifiedAt >= started)).slice(0, want);
    if (fresh.length === 0) break;
    done += fresh.length;
    await Promise.all(
      fresh.map((row) =>
        limiter.run(async () => {
          const r = await rereadObject(session.backend, row.key, session.retry, session.signal);
          // Gone: the join reports it as an orphaned record.
          if (r.kind === 'gone') {
            failed.add(row.id);
            return;
          }
          scanned.reread++;
          if (r.kind === 'error') {
            failed.add(row.id);
            collector.add('unreadable', { key: row.key, side: 'destination', code: r.error.code, message: r.error.message });
            return;
          }
          scanned.bytesReread += r.size;
          if (r.sha256 === row.sha256 && r.size === row.size) {
            scanned.verified++;
            await marks.add(row.id);
            return;
          }
          failed.add(row.id);
          const info = await session.backend.head(row.key, session.signal !== undefined ? { signal: session.signal } : {}).catch(() => undefined);
          const cheap = info === undefined ? [] : judgeKey({ key: row.key, row, object: info }).mismatch;
          if (cheap.length > 0) return;
          const reasons: MismatchReason[] = r.size !== row.size ? ['size', 'sha256'] : ['sha256'];
          collector.add('mismatches', mismatchFinding(row, info ?? { key: row.key, size: r.size }, reasons, r.sha256));
        }),
      ),
    );
  }
  await marks.flush();
}
