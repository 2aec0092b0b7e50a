// `cleanup` (DESIGN §7): acts on what `check` finds. Dry-run by default; with
// `apply` it repairs, and every action lands in the ledger's history.
//
// - Orphaned objects (on the destination, unknown to the ledger) are deleted
//   through the two-phase protocol: rows are created in delete_pending
//   (markOrphansForDeletion, which re-checks in its transaction that the key
//   has no live row), then the ordinary delete step claims and deletes them
//   (intent → effect → outcome). With `adopt`, an orphan whose holdfast-sha256
//   equals the SHA-256 of the source file of the same key is recorded as
//   uploaded instead; orphans that do not match are left alone unless
//   `deleteOrphans` is given too.
// - Orphaned records (completed rows whose object is gone, confirmed by a
//   second look with `head`) go back to upload_pending: the next push
//   uploads them again. Mismatches are requeued the same way only when asked.
// - Stale multipart uploads (unknown to the ledger, older than the threshold)
//   are aborted, and the abort is noted in history.
//
// Two passes over the three sides, both streaming (bounded memory): the first
// counts (it is `check`), so the deletion cap is decided before anything is
// marked; the second decides per key against the state at that moment and
// acts in batches. Rows in progress are never touched; nothing is deleted
// whose key has a live ledger row.

import { setMaxListeners } from 'node:events';
import type { ObjectInfo } from '../backends/backend.js';
import { prefixWithin, realLocation } from '../backends/location.js';
import type { AdoptedObject } from '../ledger/ledger.js';
import { HoldfastError, classifyError } from '../core/errors.js';
import type { ReportError } from '../core/report.js';
import type { ObjectRow } from '../core/types.js';
import { Cancellation } from '../engine/cancellation.js';
import { RunEvents } from '../engine/events.js';
import { Limiter } from '../engine/limiter.js';
import { DestinationBreaker } from './breaker.js';
import { withRetry } from '../engine/retry.js';
import { FileHasher } from '../scan/hasher.js';
import { KeyCover } from '../scan/key-cover.js';
import { compareKeys } from '../scan/key-order.js';
import {
  DEFAULT_MAX_FINDINGS,
  DEFAULT_OLDER_THAN_MS,
  forEachUpload,
  judgeKey,
  openConsistencySession,
  rereadObject,
  runCheck,
  streamKeys,
  type CheckCategory,
  type CheckCounts,
  type ConsistencyOptions,
  type ConsistencySession,
  type KeyState,
} from './check.js';
import { DEFAULT_SETTINGS, type SyncContext } from './context.js';
import { deleteStep } from './delete.js';
import { recoverStep } from './recover.js';
import { makeOwner, registerOwner } from './owner.js';
import { parseMaxDelete } from './sync.js';
import { RunTally } from './tally.js';

// check and cleanup are one public pair: the library exports both from here.
export { check, CHECK_CATEGORIES, type CheckOptions, type CheckReport, type CheckCategory, type CheckFindings } from './check.js';

export interface CleanupOptions extends ConsistencyOptions {
  /** Act. Without it cleanup only says what it would do (and changes nothing, not even the ledger). */
  readonly apply?: boolean;
  /** Record orphaned objects whose content equals the source file of the same key (needs `source`). */
  readonly adopt?: boolean;
  /** With `adopt`: also delete orphans that could not be adopted (without `adopt`, orphans are always deletion candidates). */
  readonly deleteOrphans?: boolean;
  /**
   * Also delete objects that carry `holdfast-sha256` but that this ledger does
   * not know: written by Holdfast under another ledger (another host, a lost
   * state directory). Kept by default: deleting them destroys copies someone
   * else tracks. (Backends that keep no metadata, file://, cannot tell.)
   */
  readonly deleteOtherLedgers?: boolean;
  /** Requeue completed rows whose object differs (size, etag; with `download` also content), so the next push sends them again. */
  readonly requeueMismatches?: boolean;
  /** Re-read every completed object, as `check --download` does, so content mismatches are found too. */
  readonly download?: boolean;
  /** Most deletions per run: a count ("100"), a percentage of tracked objects ("10%"), or a number. Default "50%". */
  readonly maxDelete?: string | number;
  /** Actions kept in the report (counts are always exact); default 1000. */
  readonly maxItems?: number;
  /** Stops starting new work; in-flight deletes get `drainMs` to finish. */
  readonly stopSignal?: AbortSignal;
  readonly drainMs?: number;
  /** Receives the delete step's events (file:deleted, file:failed, run:notice). */
  readonly events?: RunEvents;
}

export type CleanupAction = 'delete' | 'adopt' | 'requeue' | 'abort' | 'leave';

export interface CleanupItem {
  readonly action: CleanupAction;
  readonly key: string;
  readonly reason: string;
  /** For `abort`: the multipart upload. */
  readonly uploadId?: string;
}

export interface CleanupReport {
  /** completed: every decided action was done (or, dry run, could be); partial: something failed or was refused. */
  readonly status: 'completed' | 'partial' | 'failed' | 'cancelled';
  readonly dryRun: boolean;
  readonly destination: string;
  readonly source: string | null;
  /** What the first pass (a check) found, per category. */
  readonly found: CheckCounts;
  readonly unchecked: Partial<Record<CheckCategory, string>>;
  /** Decisions of this cleanup, per action (in a dry run: what it would do). `leave` counts keys deliberately left alone. */
  readonly planned: Record<CleanupAction, number>;
  /** Deletions refused by --max-delete. */
  readonly refused: number;
  /** Deletions already recorded as delete_pending before this cleanup (an interrupted sync or cleanup); carried out with the others. */
  readonly pendingDeletes: number;
  /** What was done and recorded (zero in a dry run). */
  readonly done: { deleted: number; adopted: number; requeued: number; aborted: number };
  /** The first `maxItems` decisions, sorted by key. */
  readonly items: CleanupItem[];
  readonly truncated: boolean;
  readonly errors: ReportError[];
  readonly notes: string[];
  readonly runId: number | null;
  readonly durationMs: number;
}

/** What `head` said of one key. */
type HeadResult = { readonly info: ObjectInfo | undefined } | { readonly error: HoldfastError };

/** What adoption makes of one orphan. */
type Adoption =
  | { readonly kind: 'adopt'; readonly item: AdoptedObject }
  /** Not adoptable; a deletion candidate only with --delete-orphans. */
  | { readonly kind: 'no'; readonly why: string }
  /** Not adoptable, and never deleted either. */
  | { readonly kind: 'keep'; readonly why: string }
  /** Gone since it was listed: nothing to do. */
  | { readonly kind: 'gone' };

/** Keys handled per ledger transaction and per round of heads. */
const BATCH = 128;

const NOTE = {
  orphan: 'orphaned object: on the destination, unknown to the ledger (cleanup)',
  adopt: 'adopted by cleanup: found on the destination with the SHA-256 of the source file',
  record: 'orphaned record: the destination lacks the object (cleanup); the next push uploads it again',
  mismatch: 'mismatch: the object differs from the ledger (cleanup --requeue-mismatches); the next push uploads it again',
} as const;

function validate(o: CleanupOptions): void {
  if (o.adopt === true && o.source === undefined) {
    throw new HoldfastError('HOLDFAST_E_USAGE', { detail: '--adopt needs --source <dir>: an object is adopted only when it equals the source file of the same key' });
  }
  if (o.maxItems !== undefined && !(Number.isInteger(o.maxItems) && o.maxItems >= 0)) {
    throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `maxItems must be a whole number, got ${o.maxItems}` });
  }
  if (o.olderThanMs !== undefined && !(Number.isFinite(o.olderThanMs) && o.olderThanMs >= 0)) {
    throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `olderThan must be a duration of 0 or more, got ${o.olderThanMs}` });
  }
}

/** The running account of one cleanup. */
class Account {
  readonly planned: Record<CleanupAction, number> = { delete: 0, adopt: 0, requeue: 0, abort: 0, leave: 0 };
  readonly done = { deleted: 0, adopted: 0, requeued: 0, aborted: 0 };
  refused = 0;
  readonly items: CleanupItem[] = [];
  readonly errors: ReportError[] = [];
  readonly notes: string[] = [];
  constructor(private readonly maxItems: number) {}

  decide(action: CleanupAction, key: string, reason: string, uploadId?: string): void {
    this.planned[action]++;
    if (this.items.length < this.maxItems) this.items.push({ action, key, reason, ...(uploadId !== undefined ? { uploadId } : {}) });
  }

  /** A decision undone at the last moment (the ledger's transaction found the key taken). */
  /** Decisions counted without an item (past what the report keeps anyway). */
  count(action: CleanupAction, n: number): void {
    this.planned[action] += n;
  }

  undo(action: CleanupAction, key: string, reason: string): void {
    this.planned[action]--;
    this.decide('leave', key, reason);
  }

  error(key: string, code: string, message: string): void {
    this.errors.push({ key, code, message });
  }
}

export async function cleanup(options: CleanupOptions): Promise<CleanupReport> {
  validate(options);
  const started = Date.now();
  const limits = parseMaxDelete(options.maxDelete);
  const apply = options.apply === true;
  const cancellation = new Cancellation({ signal: options.signal, stopSignal: options.stopSignal, drainMs: options.drainMs });
  // Every parallel request (heads, re-reads, deletes) listens to this one signal.
  setMaxListeners(16 + 4 * (options.transfers ?? DEFAULT_SETTINGS.transfers), cancellation.signal);
  let unregister: (() => void) | undefined;
  let session: ConsistencySession | undefined;
  let runId: number | null = null;
  try {
    session = await openConsistencySession({ ...options, signal: cancellation.signal }, { write: apply });
    const { ledger, destination } = session;
    const olderThanMs = options.olderThanMs ?? DEFAULT_OLDER_THAN_MS;
    const acc = new Account(options.maxItems ?? DEFAULT_MAX_FINDINGS);

    const owner = makeOwner();
    unregister = registerOwner(owner);
    const run = apply && destination !== undefined ? await ledger.startRun({ command: 'cleanup', destinationId: destination.id, source: session.sourceRoot ?? null, owner }) : undefined;
    runId = run?.id ?? null;
    const events = options.events ?? new RunEvents();
    const deletes = { completed: 0, failed: 0, partial: 0, refused: 0 };
    const stepErrors: SyncContext['stepErrors'] = [];
    const tally = new RunTally();
    const opened = session;
    /** The context the sync steps cleanup borrows (recover, delete) work in. */
    const stepContext = (): SyncContext => ({
      command: 'cleanup',
      sourceRoot: opened.sourceRoot ?? '',
      // Deletes and recovery need no source file: any row of the destination is theirs.
      sourceId: undefined,
      exclude: opened.exclude,
      backend: opened.backend,
      ledger,
      destination,
      runId,
      owner,
      settings: { ...DEFAULT_SETTINGS, transfers: opened.transfers, retry: opened.retry },
      tally,
      deletes,
      deletion: { ...limits, allowEmptySource: false, deleteExcluded: false },
      plan: { files: 0, bytes: 0, keys: new Set() },
      startedAt: started,
      cancellation,
      events,
      stepErrors,
      unreadable: new KeyCover(),
      passedOver: new KeyCover(),
      requests: new Limiter(opened.transfers),
      breaker: new DestinationBreaker(),
    });
    // An interrupted run (a killed cleanup or sync) may have left deletes or uploads in progress:
    // settle them first, by asking the destination, so this cleanup sees (and can finish) them.
    if (apply && destination !== undefined) await recoverStep.run(stepContext(), { abortedBy: undefined });

    // Pass 1: count, so the deletion cap is decided before anything is marked.
    const first = await runCheck(session, { maxFindings: 0, olderThanMs });
    const found = first.counts;
    const unchecked = { ...first.unchecked };
    if (unchecked.staleUploads !== undefined) acc.notes.push(`stale multipart uploads were not looked for: ${unchecked.staleUploads}`);

    const statusCounts = destination === undefined ? [] : await ledger.countByStatus(destination.id);
    const countOf = (s: string): number => statusCounts.find((c) => c.status === s)?.count ?? 0;
    const pendingDeletes = countOf('delete_pending');
    const tracked = countOf('upload_completed') + pendingDeletes;
    const limit = limits.maxCount ?? Math.floor(((limits.maxPercent ?? 50) / 100) * tracked);
    const limitText = `${limit}${limits.maxCount === undefined ? ` (${limits.maxPercent ?? 50}% of ${tracked} tracked objects)` : ''}`;

    // Pass 2 decides every key; the deletions it wants are marked only if, with the ones
    // already pending, they stay within the cap: all of them, or none (DESIGN §2 promise 5).
    const worker = new Pass2(session, options, acc, { apply, runId, budget: Math.max(0, limit - pendingDeletes) });
    await worker.loadNeighbours();
    // Content mismatches are only found by re-reading, which the first pass does not do.
    const anything = options.download === true || CHECK_ACTIONABLE.some((c) => found[c] > 0);
    if (anything) await worker.run(cancellation);
    let refusal: string | undefined;
    if (worker.candidates + pendingDeletes > limit) {
      const pending = pendingDeletes > 0 ? ` (with ${pendingDeletes} deletion(s) already pending)` : '';
      refusal = `${worker.candidates + pendingDeletes} deletions${pending} exceed the limit of ${limitText}; nothing was deleted (raise --max-delete if that is intended)`;
      acc.error('', 'HOLDFAST_E_DELETE_REFUSED', refusal);
    } else if (pendingDeletes > 0) {
      acc.notes.push(`${pendingDeletes} deletion(s) recorded by an earlier interrupted sync or cleanup are ${apply ? 'carried out' : 'would be carried out'} too`);
    }
    if (!cancellation.stopping.aborted) await worker.settleDeletions(refusal);
    await worker.staleUploads(olderThanMs, cancellation);

    // The deletions themselves: the ordinary delete step, intent → effect → outcome per object.
    if (apply && destination !== undefined && refusal === undefined && (worker.marked > 0 || pendingDeletes > 0) && !cancellation.stopping.aborted) {
      await deleteStep().run(stepContext(), { abortedBy: undefined });
      acc.done.deleted = deletes.completed;
    }
    // What recovery and the delete step reported.
    for (const e of tally.errors) acc.error(e.key, e.code, e.message);
    for (const e of stepErrors) acc.error(e.key, e.code, e.message);
    for (const n of tally.notes) acc.notes.push(`${n.key}: ${n.note}`);
    if (tally.counts.recovered > 0) acc.notes.push(`${tally.counts.recovered} upload(s) interrupted by an earlier run were found on the destination and recorded`);
    acc.refused += worker.refused;

    const cancelled = cancellation.cancelled;
    const status: CleanupReport['status'] = cancelled ? 'cancelled' : acc.errors.length > 0 || acc.refused > 0 || deletes.partial > 0 ? 'partial' : 'completed';
    const report: CleanupReport = {
      status,
      dryRun: !apply,
      destination: session.backend.url,
      source: session.sourceRoot ?? null,
      found,
      unchecked,
      planned: { ...acc.planned },
      refused: acc.refused,
      pendingDeletes,
      done: { ...acc.done },
      items: [...acc.items].sort((a, b) => compareKeys(a.key, b.key)),
      truncated: Object.values(acc.planned).reduce((n, c) => n + c, 0) > acc.items.length,
      errors: acc.errors,
      notes: acc.notes,
      runId,
      durationMs: Date.now() - started,
    };
    if (runId !== null) {
      const { items: _items, errors: _errors, notes: _notes, ...summary } = report;
      await ledger.finishRun(runId, status, summary).catch((e: unknown) => {
        acc.notes.push(`could not record the run's summary in the ledger: ${e instanceof Error ? e.message : String(e)}`);
      });
    }
    return report;
  } catch (e) {
    // The run row must not stay "running": record how it ended (the objects' rows are consistent either way).
    if (runId !== null && session !== undefined) {
      const err = classifyError(e);
      await session.ledger.finishRun(runId, err.code === 'HOLDFAST_E_CANCELLED' ? 'cancelled' : 'failed', { error: { code: err.code, message: err.message } }).catch(() => undefined);
    }
    throw e;
  } finally {
    unregister?.();
    cancellation.dispose();
    await session?.close();
  }
}

/** Categories cleanup may act on (the rest are for push: missing, changedLocally). */
const CHECK_ACTIONABLE: readonly CheckCategory[] = ['orphanedObjects', 'orphanedRecords', 'mismatches'];

/** The second pass: decides per key and acts in batches. */
class Pass2 {
  /** Orphans recorded as delete_pending by this cleanup. */
  marked = 0;
  refused = 0;
  /** Orphans this cleanup would delete (all of them count, also past the budget). */
  candidates = 0;
  /** The first `budget + 1` of them: enough to carry out, or to know the cap refuses them all. */
  readonly #wanted: { key: string; why: string }[] = [];
  /** Destinations of this ledger inside this one: the key prefixes that belong to them. */
  readonly #nested: { prefix: string; url: string }[] = [];
  /** Destinations of this ledger that contain this one: where this one's keys sit among theirs. */
  readonly #containing: { id: number; prefix: string; url: string }[] = [];
  readonly #limiter: Limiter;
  readonly #hasher: FileHasher;
  #orphans: KeyState[] = [];
  #records: ObjectRow[] = [];
  #mismatches: ObjectRow[] = [];
  #rereads: ObjectRow[] = [];

  constructor(
    private readonly session: ConsistencySession,
    private readonly options: CleanupOptions,
    private readonly acc: Account,
    private readonly mode: { readonly apply: boolean; readonly runId: number | null; readonly budget: number },
  ) {
    this.#limiter = new Limiter(session.transfers);
    // A dry run changes nothing, not even the file cache.
    this.#hasher = new FileHasher(session.ledger, { store: mode.apply, concurrency: Math.min(8, session.transfers), followSymlinks: session.followSymlinks });
  }

  /**
   * The other destinations of this ledger that share objects with this one
   * (DESIGN §2 promise 6): pushed to `file:///dst` and `file:///dst/nested`,
   * the objects under "nested/" are the second one's, never orphans here.
   */
  async loadNeighbours(): Promise<void> {
    // Compared with symbolic links resolved: /mnt/backup and /srv/disk/backup may be one place.
    const here = await realLocation(this.session.backend.location);
    for (const d of await this.session.ledger.listDestinations()) {
      if (d.id === this.session.destination?.id || d.namespace === null || d.identity === null) continue;
      const there = await realLocation({ namespace: d.namespace, prefix: d.identity.slice(d.namespace.length) });
      const inner = prefixWithin(here, there);
      if (inner !== undefined && inner !== '') this.#nested.push({ prefix: inner, url: d.url });
      const outer = prefixWithin(there, here);
      if (outer !== undefined && outer !== '') this.#containing.push({ id: d.id, prefix: outer, url: d.url });
    }
  }

  get #signal(): AbortSignal | undefined {
    return this.session.signal;
  }

  async run(cancellation: Cancellation): Promise<void> {
    for await (const s of streamKeys(this.session)) {
      if (cancellation.stopping.aborted) break;
      const v = judgeKey(s);
      if (v.inProgress) continue;
      if (v.orphanedObject) {
        this.#orphans.push(s);
        if (this.#orphans.length >= BATCH) await this.#flushOrphans();
      }
      if (v.orphanedRecord && s.row) {
        this.#records.push(s.row);
        if (this.#records.length >= BATCH) await this.#flushRecords();
      }
      if (this.options.download === true && v.mismatch.length === 0 && s.object && s.row?.status === 'upload_completed' && s.row.sha256 !== null) {
        this.#rereads.push(s.row);
        if (this.#rereads.length >= BATCH) await this.#flushRereads();
      }
      if (v.mismatch.length > 0 && s.row) {
        if (this.options.requeueMismatches === true) {
          this.#mismatches.push(s.row);
          if (this.#mismatches.length >= BATCH) await this.#flushMismatches();
        } else {
          this.acc.decide('leave', s.key, `differs from the ledger (${v.mismatch.join(', ')}); --requeue-mismatches sends it again from the source`);
        }
      }
    }
    if (!cancellation.stopping.aborted) {
      await this.#flushOrphans();
      await this.#flushRecords();
      await this.#flushRereads();
      await this.#flushMismatches();
    }
  }

  #head(key: string): Promise<Awaited<ReturnType<ConsistencySession['backend']['head']>>> {
    return this.#limiter.run(() =>
      withRetry(() => this.session.backend.head(key, this.#signal !== undefined ? { signal: this.#signal } : {}), {
        policy: this.session.retry,
        ...(this.#signal !== undefined ? { signal: this.#signal } : {}),
        fallback: 'HOLDFAST_E_NETWORK',
      }),
    );
  }

  /** Orphans another destination of this ledger tracks: key → why it is kept. */
  async #trackedElsewhere(batch: readonly KeyState[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const s of batch) {
      const nested = this.#nested.find((n) => s.key.startsWith(n.prefix));
      if (nested !== undefined) out.set(s.key, `belongs to ${nested.url}, another destination of this ledger (inside this one)`);
    }
    for (const c of this.#containing) {
      for (const s of batch) {
        if (out.has(s.key)) continue;
        const row = await this.session.ledger.getObject(c.id, c.prefix + s.key);
        if (row !== undefined && row.status !== 'delete_completed') out.set(s.key, `tracked by ${c.url}, another destination of this ledger (around this one), as "${c.prefix}${s.key}"`);
      }
    }
    return out;
  }

  /** One head per key, in parallel (bounded), errors kept per key. */
  async #heads(batch: readonly KeyState[]): Promise<Map<string, HeadResult>> {
    const heads = await Promise.all(batch.map((s) => this.#head(s.key).then((info): HeadResult => ({ info }), (e: unknown): HeadResult => ({ error: classifyError(e, 'HOLDFAST_E_NETWORK') }))));
    return new Map(batch.map((s, i) => [s.key, heads[i]!]));
  }

  /** Whether an orphan may be adopted: its holdfast-sha256 (from `head`) and size equal the source file of its key. */
  #adoption(s: KeyState, head: HeadResult | undefined, hash: string | HoldfastError | undefined): Adoption {
    const file = s.file;
    if (file === undefined) return { kind: 'no', why: 'no source file with this key' };
    if (head === undefined || 'error' in head) return { kind: 'no', why: `could not read it: ${head === undefined ? 'not asked' : `${head.error.code}: ${head.error.message}`}` };
    if (head.info === undefined) return { kind: 'gone' };
    if (typeof hash !== 'string') return { kind: 'no', why: `the source file could not be hashed: ${hash?.message ?? 'unknown error'}` };
    if (head.info.sha256 === undefined) return { kind: 'no', why: 'the object carries no holdfast-sha256 to compare' };
    if (head.info.sha256 !== hash || head.info.size !== file.size) return { kind: 'no', why: 'its content differs from the source file' };
    // adoptObjects never overwrites a row; and deleting what equals the source would only make the next push send it again.
    if (s.row !== undefined) return { kind: 'keep', why: 'it equals the source file, but the ledger recorded its deletion; the next push uploads it again' };
    const etag = head.info.etag ?? s.object?.etag ?? null;
    return { kind: 'adopt', item: { key: s.key, sourcePath: file.path, size: file.size, mtimeMs: file.mtimeMs, sha256: hash, etag } };
  }

  async #flushOrphans(): Promise<void> {
    const batch = this.#orphans;
    this.#orphans = [];
    if (batch.length === 0) return;
    const elsewhere = await this.#trackedElsewhere(batch);
    for (const [key, why] of elsewhere) this.acc.decide('leave', key, why);
    const rest = batch.filter((s) => !elsewhere.has(s.key));
    const adopt = this.options.adopt === true;
    // Where objects carry metadata, each orphan is asked whether Holdfast wrote it (another ledger's copy).
    const metadata = this.session.backend.capabilities.metadata;
    const signalOpt = this.#signal !== undefined ? { signal: this.#signal } : {};
    const [heads, hashes] = await Promise.all([
      adopt || metadata ? this.#heads(rest) : Promise.resolve(undefined),
      adopt
        ? this.#hasher.hashBatch(
            rest.flatMap((s) => (s.file !== undefined ? [s.file] : [])),
            signalOpt,
          )
        : Promise.resolve(undefined),
    ]);
    const toAdopt: AdoptedObject[] = [];
    for (const s of rest) {
      const head = heads?.get(s.key);
      if (head !== undefined && !('error' in head) && head.info === undefined) continue; // Gone since it was listed.
      let why = s.row?.status === 'delete_completed' ? 'the ledger recorded its deletion, but the object is back' : 'unknown to the ledger';
      if (adopt) {
        const a = this.#adoption(s, head, hashes?.get(s.key));
        if (a.kind === 'gone') continue;
        if (a.kind === 'adopt') {
          toAdopt.push(a.item);
          this.acc.decide('adopt', s.key, 'equals the source file (holdfast-sha256 matches)');
          continue;
        }
        if (a.kind === 'keep') {
          this.acc.decide('leave', s.key, `not adopted: ${a.why}`);
          continue;
        }
        // With --adopt, an orphan that does not match may be someone else's: kept unless --delete-orphans.
        if (this.options.deleteOrphans !== true) {
          this.acc.decide('leave', s.key, `not adopted: ${a.why} (--delete-orphans deletes such objects)`);
          continue;
        }
        why = `${why}; not adopted: ${a.why}`;
      }
      if (metadata && head !== undefined && 'error' in head) {
        // Whose it is cannot be told: kept (a cleanup never deletes what it could not look at).
        this.acc.decide('leave', s.key, `not deleted: could not look at it (${head.error.code}: ${head.error.message})`);
        this.acc.error(s.key, head.error.code, `could not look at an orphaned object: ${head.error.message}`);
        continue;
      }
      if (metadata && head !== undefined && !('error' in head) && head.info?.sha256 !== undefined && this.options.deleteOtherLedgers !== true) {
        this.acc.decide(
          'leave',
          s.key,
          'another ledger’s: it carries holdfast-sha256, so Holdfast wrote it, but this ledger does not track it (another host or state directory); kept (--delete-other-ledgers deletes such objects)',
        );
        continue;
      }
      this.candidates++;
      if (this.#wanted.length <= this.mode.budget) this.#wanted.push({ key: s.key, why });
    }
    if (!this.mode.apply || toAdopt.length === 0) return;
    const destinationId = this.session.destination!.id;
    const left = await this.#ledgerWrite(() => this.session.ledger.adoptObjects(destinationId, toAdopt, NOTE.adopt, this.mode.runId));
    for (const key of left) this.acc.undo('adopt', key, 'not adopted: a ledger row for it appeared meanwhile');
    this.acc.done.adopted += toAdopt.length - left.length;
  }

  /**
   * The orphans to delete, all together: refused as a whole when they exceed
   * the cap, else recorded as delete_pending (markOrphansForDeletion re-checks
   * in its transaction that no row appeared for the key meanwhile).
   */
  async settleDeletions(refusal: string | undefined): Promise<void> {
    if (refusal !== undefined) {
      for (const w of this.#wanted) this.acc.decide('leave', w.key, `not deleted: the deletions exceed --max-delete (${w.why})`);
      this.acc.count('leave', this.candidates - this.#wanted.length);
      this.refused += this.candidates;
      return;
    }
    for (const w of this.#wanted) this.acc.decide('delete', w.key, w.why);
    if (!this.mode.apply) return;
    const destinationId = this.session.destination!.id;
    for (let i = 0; i < this.#wanted.length; i += BATCH) {
      const keys = this.#wanted.slice(i, i + BATCH).map((w) => w.key);
      const left = await this.#ledgerWrite(() => this.session.ledger.markOrphansForDeletion(destinationId, keys, NOTE.orphan, this.mode.runId));
      for (const key of left) this.acc.undo('delete', key, 'not deleted: a ledger row for it appeared meanwhile (another run is handling it)');
      this.marked += keys.length - left.length;
    }
  }

  /** A completed row whose object the listing lacked is requeued only if a head agrees it is gone. */
  async #flushRecords(): Promise<void> {
    const batch = this.#records;
    this.#records = [];
    if (batch.length === 0) return;
    const heads = await Promise.all(batch.map((r) => this.#head(r.key).then((info) => ({ info }), (e: unknown) => ({ error: classifyError(e, 'HOLDFAST_E_NETWORK') }))));
    const ids: number[] = [];
    batch.forEach((row, i) => {
      const h = heads[i]!;
      if ('error' in h) this.acc.error(row.key, h.error.code, `could not confirm the object is gone: ${h.error.message}`);
      else if (h.info !== undefined) this.acc.decide('leave', row.key, 'present on a second look (the listing was behind)');
      else {
        ids.push(row.id);
        this.acc.decide('requeue', row.key, 'the destination lacks the object; the next push uploads it again');
      }
    });
    if (!this.mode.apply || ids.length === 0) return;
    await this.#ledgerWrite(() => this.session.ledger.requeueObjects(ids, NOTE.record, this.mode.runId));
    this.acc.done.requeued += ids.length;
  }

  async #flushMismatches(): Promise<void> {
    const batch = this.#mismatches;
    this.#mismatches = [];
    if (batch.length === 0) return;
    for (const row of batch) this.acc.decide('requeue', row.key, 'the object differs from the ledger; the next push sends it again from the source');
    if (!this.mode.apply) return;
    await this.#ledgerWrite(() =>
      this.session.ledger.requeueObjects(
        batch.map((r) => r.id),
        NOTE.mismatch,
        this.mode.runId,
      ),
    );
    this.acc.done.requeued += batch.length;
  }

  /** Re-reads objects the listing cannot fault; a content mismatch is handled like any other mismatch. */
  async #flushRereads(): Promise<void> {
    const batch = this.#rereads;
    this.#rereads = [];
    if (batch.length === 0) return;
    const results = await Promise.all(batch.map((row) => this.#limiter.run(() => rereadObject(this.session.backend, row.key, this.session.retry, this.#signal))));
    for (const [i, row] of batch.entries()) {
      const r = results[i]!;
      if (r.kind === 'error') this.acc.error(row.key, r.error.code, `could not re-read it: ${r.error.message}`);
      // Gone since it was listed: the next check reports it as an orphaned record.
      if (r.kind !== 'read' || (r.sha256 === row.sha256 && r.size === row.size)) continue;
      if (this.options.requeueMismatches === true) {
        this.#mismatches.push(row);
        if (this.#mismatches.length >= BATCH) await this.#flushMismatches();
      } else {
        this.acc.decide('leave', row.key, 'its content differs from the ledger (sha256); --requeue-mismatches sends it again from the source');
      }
    }
  }

  #ledgerWrite<T>(fn: () => Promise<T>): Promise<T> {
    return withRetry(fn, { policy: this.session.retry, fallback: 'HOLDFAST_E_LEDGER_WRITE' });
  }

  /** Aborts multipart uploads no ledger row references, older than the threshold, and notes each abort in history. */
  async staleUploads(olderThanMs: number, cancellation: Cancellation): Promise<void> {
    const mp = this.session.backend.multipart;
    if (mp === undefined || cancellation.stopping.aborted) return;
    const signalOpt = this.#signal !== undefined ? { signal: this.#signal } : {};
    let unsupported = false;
    await forEachUpload(this.session, olderThanMs, async (u) => {
      if (!u.stale) return;
      const { key, uploadId } = u.upload;
      const age = u.ageMs === null ? 'unknown age' : `${Math.round(u.ageMs / 60_000)} min old`;
      if (unsupported) {
        this.acc.decide('leave', key, 'not aborted: the server does not implement AbortMultipartUpload', uploadId);
        return;
      }
      this.acc.decide('abort', key, `multipart upload unknown to the ledger, ${age}`, uploadId);
      if (!this.mode.apply) return;
      try {
        await withRetry(() => mp.abort(key, uploadId, signalOpt), { policy: this.session.retry, ...signalOpt, fallback: 'HOLDFAST_E_NETWORK' });
      } catch (e) {
        const err = classifyError(e, 'HOLDFAST_E_NETWORK', { key });
        if (err.code === 'HOLDFAST_E_CANCELLED') throw err;
        if (err.code === 'HOLDFAST_E_NOT_SUPPORTED') {
          unsupported = true;
          this.acc.undo('abort', key, 'not aborted: the server does not implement AbortMultipartUpload');
          this.acc.notes.push(`${this.session.backend.url} cannot abort multipart uploads (${err.message}); abort them with the provider's tools or a lifecycle rule`);
        } else if (err.code === 'HOLDFAST_E_DELETE_REFUSED') {
          // This upload only (azure://: its blob holds another upload's blocks, or content): left, with the reason.
          this.acc.undo('abort', key, err.message);
        } else {
          this.acc.error(key, err.code, `could not abort multipart upload ${uploadId}: ${err.message}`);
        }
        return;
      }
      this.acc.done.aborted++;
      await this.#ledgerWrite(() =>
        this.session.ledger.recordNote(this.session.destination!.id, key, `aborted stale multipart upload ${uploadId} (${age}, unknown to the ledger) (cleanup)`, this.mode.runId),
      );
    });
  }
}
