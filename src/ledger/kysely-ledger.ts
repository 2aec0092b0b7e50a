// The Ledger (ledger.ts) over a Kysely<Database>: one implementation for both
// dialects. The SQL here is dialect-neutral; the few places where SQLite and
// PostgreSQL differ (how a write transaction begins, row locks for claiming)
// live in DIALECT_TRAITS and nowhere else.

import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { sql } from 'kysely';
import type { Kysely, RawBuilder, Selectable, SelectQueryBuilder } from 'kysely';
import { HoldfastError, classifyError } from '../core/errors.js';
import { IN_PROGRESS_STATUSES, canTransition, isObjectStatus } from '../core/status.js';
import type { ObjectStatus } from '../core/status.js';
import type { DestinationRow, HistoryRow, ObjectRow, PartRow, RunRow, RunStatus, WorkerRow } from '../core/types.js';
import type {
  AdoptedObject,
  PlannedDelete,
  ClaimOptions,
  DestinationRef,
  FileCacheEntry,
  ForgottenObject,
  Ledger,
  Outcome,
  OutcomeResult,
  PlannedUpload,
  StartRunInput,
  StatusCount,
  TouchedObject,
} from './ledger.js';
import type { Database, DestinationsTable, DialectName, HistoryTable, ObjectsTable, RunsTable } from './schema.js';

/** Rows per statement for IN lists and multi-row inserts: far below every dialect's parameter limit. */
const CHUNK = 500;

// ---------------------------------------------------------------------------
// Dialect seams

/**
 * What differs between dialects. Everything else is the same SQL.
 *
 * - beginWrite: SQLite takes the write lock at BEGIN IMMEDIATE, so a busy
 *   database waits in busy_timeout up front instead of failing half-way
 *   through a read-then-write transaction (SQLITE_BUSY_SNAPSHOT is not
 *   retried by the busy handler). PostgreSQL locks per row.
 * - lockRows: rows read to decide a write (fencing checks, planning) are
 *   locked until commit on PostgreSQL; SQLite's write lock already covers it.
 * - lockForClaim: the seam for many workers: on PostgreSQL `FOR UPDATE SKIP
 *   LOCKED`, so concurrent claimers take disjoint rows instead of waiting.
 */
export interface DialectTraits {
  readonly name: DialectName;
  readonly beginWrite: string;
  /** The ledger's clock, epoch ms: on PostgreSQL the server's (`now()`, the transaction's start); SQLite lives on this one machine. */
  clock(db: Kysely<Database>): Promise<number>;
  lockRows<DB, TB extends keyof DB, O>(qb: SelectQueryBuilder<DB, TB, O>): SelectQueryBuilder<DB, TB, O>;
  lockForClaim<DB, TB extends keyof DB, O>(qb: SelectQueryBuilder<DB, TB, O>): SelectQueryBuilder<DB, TB, O>;
}

export const DIALECT_TRAITS: Readonly<Record<DialectName, DialectTraits>> = {
  sqlite: {
    name: 'sqlite',
    beginWrite: 'begin immediate',
    clock: () => Promise.resolve(Date.now()),
    lockRows: (qb) => qb,
    lockForClaim: (qb) => qb,
  },
  postgres: {
    name: 'postgres',
    beginWrite: 'begin',
    clock: async (db) => {
      const r = await sql<{ now: string | number }>`select (extract(epoch from now()) * 1000)::bigint as now`.execute(db);
      return toNumber(r.rows[0]?.now ?? Date.now());
    },
    lockRows: (qb) => qb.forUpdate(),
    lockForClaim: (qb) => qb.forUpdate().skipLocked(),
  },
};

/**
 * Runs `fn` in one write transaction on one connection: all of it commits or
 * none of it does. The rollback error, if any, never hides the original one.
 */
export async function writeTransaction<T>(db: Kysely<Database>, traits: DialectTraits, fn: (trx: Kysely<Database>) => Promise<T>): Promise<T> {
  return db.connection().execute(async (conn) => {
    await sql.raw(traits.beginWrite).execute(conn);
    let result: T;
    try {
      result = await fn(conn);
      await sql.raw('commit').execute(conn);
    } catch (e) {
      try {
        await sql.raw('rollback').execute(conn);
      } catch {
        // The transaction may already be gone (e.g. a failed COMMIT rolled it back).
      }
      throw e;
    }
    return result;
  });
}

// ---------------------------------------------------------------------------
// Row mapping

/** int8 arrives as a string from PostgreSQL; SQLite gives numbers. */
export function toNumber(v: number | string | bigint): number {
  return typeof v === 'number' ? v : Number(v);
}

function toNullableNumber(v: number | string | bigint | null): number | null {
  return v === null ? null : toNumber(v);
}

function toStatus(v: string): ObjectStatus {
  if (!isObjectStatus(v)) throw new HoldfastError('HOLDFAST_E_INTERNAL', { detail: `unknown object status "${v}" in the ledger` });
  return v;
}

function toObjectRow(r: Selectable<ObjectsTable>): ObjectRow {
  return {
    id: toNumber(r.id),
    destinationId: toNumber(r.destination_id),
    key: r.key,
    sourcePath: r.source_path,
    size: toNullableNumber(r.size),
    mtimeMs: toNullableNumber(r.mtime_ms),
    sha256: r.sha256,
    status: toStatus(r.status),
    attempt: toNumber(r.attempt),
    attemptId: r.attempt_id,
    leaseOwner: r.lease_owner,
    leaseUntil: toNullableNumber(r.lease_until),
    uploadId: r.upload_id,
    etag: r.etag,
    versionId: r.version_id,
    errorCode: r.error_code,
    errorMessage: r.error_message,
    nextAttemptAt: toNullableNumber(r.next_attempt_at),
    verifiedAt: toNullableNumber(r.verified_at),
    sourceId: r.source_id,
    updatedAt: toNumber(r.updated_at),
  };
}

function toDestinationRow(r: Selectable<DestinationsTable>): DestinationRow {
  return {
    id: toNumber(r.id),
    url: r.url,
    identity: r.identity,
    namespace: r.namespace,
    kind: r.kind,
    lastUploadAt: toNullableNumber(r.last_upload_at),
    lastStatus: r.last_status,
    lastError: r.last_error,
    consecutiveFailures: toNumber(r.consecutive_failures),
  };
}

const RUN_STATUSES: readonly string[] = ['running', 'completed', 'partial', 'failed', 'cancelled'] satisfies RunStatus[];

function toRunRow(r: Selectable<RunsTable>): RunRow {
  if (!RUN_STATUSES.includes(r.status)) throw new HoldfastError('HOLDFAST_E_INTERNAL', { detail: `unknown run status "${r.status}" in the ledger` });
  return {
    id: toNumber(r.id),
    command: r.command,
    destinationId: toNullableNumber(r.destination_id),
    source: r.source,
    owner: r.owner,
    startedAt: toNumber(r.started_at),
    finishedAt: toNullableNumber(r.finished_at),
    status: r.status as RunStatus,
    summary: r.summary,
  };
}

function toHistoryRow(r: Selectable<HistoryTable>): HistoryRow {
  return {
    id: toNumber(r.id),
    objectId: toNullableNumber(r.object_id),
    destinationId: toNumber(r.destination_id),
    key: r.key,
    runId: toNullableNumber(r.run_id),
    fromStatus: r.from_status === null ? null : toStatus(r.from_status),
    toStatus: r.to_status === null ? null : toStatus(r.to_status),
    attemptId: r.attempt_id,
    errorCode: r.error_code,
    errorMessage: r.error_message,
    note: r.note,
    at: toNumber(r.at),
  };
}

/** `column + 1`, typed as the number it is written as (the read type also admits PostgreSQL's int8 strings). */
function plusOne(column: 'attempt' | 'consecutive_failures'): RawBuilder<number> {
  return sql<number>`${sql.ref(column)} + 1`;
}

function chunks<T>(items: readonly T[], size = CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function isInProgress(status: ObjectStatus): boolean {
  return IN_PROGRESS_STATUSES.includes(status);
}

/** claim: which in-progress status each claimable status moves to. */
const CLAIM_TARGET: Partial<Record<ObjectStatus, ObjectStatus>> = {
  upload_pending: 'upload_in_progress',
  upload_failed: 'upload_in_progress',
  // Taking over an expired lease (a recovered multipart upload resumes under a new attempt).
  upload_in_progress: 'upload_in_progress',
  delete_pending: 'delete_in_progress',
  delete_failed: 'delete_in_progress',
  delete_in_progress: 'delete_in_progress',
};

// ---------------------------------------------------------------------------
// The ledger

/** One status change, checked against the transition table and recorded in history. */
interface StatusChange {
  /** null for a row the write is about to create; filled from the write's result. */
  objectId: number | null;
  readonly destinationId: number;
  readonly key: string;
  readonly from: ObjectStatus | undefined;
  readonly to: ObjectStatus;
  readonly attemptId: string | null;
  readonly errorCode?: string | null;
  readonly errorMessage?: string | null;
  readonly note?: string | null;
}

export interface KyselyLedgerOptions {
  readonly dialect: DialectName;
  /** File path or connection URL without password. */
  readonly location: string;
  /** Clock (epoch ms); tests may pass their own. Default: the dialect's clock (the database server's on PostgreSQL). */
  readonly now?: () => number;
  /** Turns a driver error into the HoldfastError to report (a lost connection is not a failed write); default: the shared classifier. */
  readonly classify?: (e: unknown) => HoldfastError;
  /** The machine this process runs on: the file cache's entries are this host's files (default os.hostname()). */
  readonly host?: string;
}

export class KyselyLedger implements Ledger {
  readonly dialect: string;
  readonly location: string;
  readonly #db: Kysely<Database>;
  readonly #traits: DialectTraits;
  /** A clock given by a test; otherwise the dialect's (the database's own). */
  readonly #fixedNow: (() => number) | undefined;
  readonly #classify: ((e: unknown) => HoldfastError) | undefined;
  readonly #host: string;
  #closed = false;

  constructor(db: Kysely<Database>, options: KyselyLedgerOptions) {
    this.#db = db;
    this.#traits = DIALECT_TRAITS[options.dialect];
    this.dialect = options.dialect;
    this.location = options.location;
    this.#fixedNow = options.now;
    this.#classify = options.classify;
    this.#host = options.host ?? hostname();
  }

  /** Every driver error leaves the ledger as a HoldfastError (BUSY stays BUSY: it is transient). */
  async #guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      const err = this.#classify?.(e) ?? classifyError(e, 'HOLDFAST_E_LEDGER_WRITE');
      if (err.code !== 'HOLDFAST_E_LEDGER_BUSY' || String(err.details.detail ?? '').includes(this.location)) throw err;
      // Say which ledger, and what to do about it.
      throw new HoldfastError(
        'HOLDFAST_E_LEDGER_BUSY',
        { detail: `${this.location}: ${String(err.details.detail ?? err.message)}; another holdfast run (or a program with this database open) holds a write lock — wait for it to finish, or stop it` },
        { cause: e },
      );
    }
  }

  /**
   * One write transaction; `now` is the ledger's clock at its start (the
   * database server's on PostgreSQL), the one time every lease, heartbeat and
   * row timestamp of the transaction is written and compared with.
   */
  #write<T>(fn: (trx: Kysely<Database>, now: number) => Promise<T>): Promise<T> {
    return this.#guard(() => writeTransaction(this.#db, this.#traits, async (trx) => fn(trx, this.#fixedNow?.() ?? (await this.#traits.clock(trx)))));
  }

  /**
   * The one way `objects.status` changes. Checks every change against the
   * transition table before anything is written (a forbidden one throws
   * HOLDFAST_E_INTERNAL and the caller's transaction rolls back), runs
   * `write` (the caller's UPDATE/INSERT; it returns key → id for rows it
   * created), then appends the history rows in the same transaction.
   */
  async #transition(
    trx: Kysely<Database>,
    changes: readonly StatusChange[],
    runId: number | null,
    at: number,
    write: () => Promise<ReadonlyMap<string, number> | void>,
  ): Promise<void> {
    for (const c of changes) {
      if (!canTransition(c.from, c.to)) {
        throw new HoldfastError('HOLDFAST_E_INTERNAL', {
          detail: `forbidden status transition ${c.from ?? '(new row)'} → ${c.to} for key "${c.key}"`,
        });
      }
    }
    const created = await write();
    for (const c of changes) {
      if (c.objectId === null) {
        const id = created?.get(c.key);
        if (id === undefined) throw new HoldfastError('HOLDFAST_E_INTERNAL', { detail: `no id for created row "${c.key}"` });
        c.objectId = id;
      }
    }
    for (const chunk of chunks(changes)) {
      await trx
        .insertInto('history')
        .values(
          chunk.map((c) => ({
            object_id: c.objectId ?? 0,
            destination_id: c.destinationId,
            key: c.key,
            run_id: runId,
            from_status: c.from ?? null,
            to_status: c.to,
            attempt_id: c.attemptId,
            error_code: c.errorCode ?? null,
            error_message: c.errorMessage ?? null,
            note: c.note ?? null,
            at,
          })),
        )
        .execute();
    }
  }

  // ----- destinations

  async ensureDestination(destination: DestinationRef): Promise<DestinationRow> {
    const { url, kind } = destination;
    const { namespace } = destination.location;
    const identity = namespace + destination.location.prefix;
    return this.#write(async (trx, now) => {
      const known = await trx.selectFrom('destinations').selectAll().where('identity', '=', identity).executeTakeFirst();
      if (known !== undefined) return toDestinationRow(known);
      // A row made before identities existed (migration 002): its endpoint was never recorded, so the first identity to use its URL claims it.
      const older = await trx.selectFrom('destinations').select('id').where('url', '=', url).where('identity', 'is', null).orderBy('id').executeTakeFirst();
      if (older !== undefined) {
        await trx.updateTable('destinations').set({ identity, namespace }).where('id', '=', older.id).execute();
      } else {
        await trx
          .insertInto('destinations')
          .values({ url, identity, namespace, kind, created_at: now })
          .onConflict((oc) => oc.column('identity').doNothing())
          .execute();
      }
      return toDestinationRow(await trx.selectFrom('destinations').selectAll().where('identity', '=', identity).executeTakeFirstOrThrow());
    });
  }

  async getDestination(destination: Omit<DestinationRef, 'kind'>): Promise<DestinationRow | undefined> {
    const identity = destination.location.namespace + destination.location.prefix;
    return this.#guard(async () => {
      const row =
        (await this.#db.selectFrom('destinations').selectAll().where('identity', '=', identity).executeTakeFirst()) ??
        (await this.#db.selectFrom('destinations').selectAll().where('url', '=', destination.url).where('identity', 'is', null).orderBy('id').executeTakeFirst());
      return row === undefined ? undefined : toDestinationRow(row);
    });
  }

  async findDestinations(url: string): Promise<DestinationRow[]> {
    return this.#guard(async () => {
      const rows = await this.#db.selectFrom('destinations').selectAll().where('url', '=', url).orderBy('id').execute();
      return rows.map(toDestinationRow);
    });
  }

  async listDestinations(): Promise<DestinationRow[]> {
    return this.#guard(async () => {
      const rows = await this.#db.selectFrom('destinations').selectAll().orderBy('id').execute();
      return rows.map(toDestinationRow);
    });
  }

  /**
   * A success (error null) sets last_upload_at and resets the failure streak;
   * a run with failures counts the streak up and keeps last_upload_at (the
   * last time an upload worked) unless some of its uploads did complete.
   */
  async recordDestinationHealth(destinationId: number, input: { at: number; status: string; error: string | null; uploaded?: boolean }): Promise<void> {
    await this.#write(async (trx) => {
      const q = trx.updateTable('destinations').where('id', '=', destinationId);
      if (input.error === null) {
        await q.set({ last_upload_at: input.at, last_status: input.status, last_error: null, consecutive_failures: 0 }).execute();
      } else {
        await q
          .set({
            ...(input.uploaded === true ? { last_upload_at: input.at } : {}),
            last_status: input.status,
            last_error: input.error,
            consecutive_failures: plusOne('consecutive_failures'),
          })
          .execute();
      }
    });
  }

  // ----- runs

  async startRun(input: StartRunInput): Promise<RunRow> {
    return this.#write(async (trx, now) => {
      const row = await trx
        .insertInto('runs')
        .values({
          command: input.command,
          destination_id: input.destinationId,
          source: input.source,
          owner: input.owner,
          started_at: now,
          status: 'running',
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toRunRow(row);
    });
  }

  async finishRun(runId: number, status: Exclude<RunStatus, 'running'>, summary: unknown): Promise<void> {
    const text = summary === undefined || summary === null ? null : JSON.stringify(summary);
    await this.#write(async (trx, now) => {
      await trx.updateTable('runs').set({ status, finished_at: now, summary: text }).where('id', '=', runId).execute();
    });
  }

  async listRuns(opts: { limit?: number; destinationId?: number } = {}): Promise<RunRow[]> {
    return this.#guard(async () => {
      let q = this.#db
        .selectFrom('runs')
        .selectAll()
        .orderBy('id', 'desc')
        .limit(opts.limit ?? 20);
      if (opts.destinationId !== undefined) q = q.where('destination_id', '=', opts.destinationId);
      return (await q.execute()).map(toRunRow);
    });
  }

  // ----- objects: reading

  async *streamObjects(destinationId: number, opts: { pageSize?: number; afterKey?: string } = {}): AsyncIterable<ObjectRow> {
    const pageSize = Math.max(1, opts.pageSize ?? 1000);
    let after = opts.afterKey;
    for (;;) {
      // Keyset pagination: each page is its own short query; nothing is held
      // between pages, so a slow consumer never blocks writers.
      const page = await this.#guard(() => {
        let q = this.#db.selectFrom('objects').selectAll().where('destination_id', '=', destinationId);
        if (after !== undefined) q = q.where('key', '>', after);
        return q.orderBy('key').limit(pageSize).execute();
      });
      for (const row of page) yield toObjectRow(row);
      const last = page[page.length - 1];
      if (page.length < pageSize || last === undefined) return;
      after = last.key;
    }
  }

  async getObject(destinationId: number, key: string): Promise<ObjectRow | undefined> {
    return this.#guard(async () => {
      const row = await this.#db
        .selectFrom('objects')
        .selectAll()
        .where('destination_id', '=', destinationId)
        .where('key', '=', key)
        .executeTakeFirst();
      return row === undefined ? undefined : toObjectRow(row);
    });
  }

  async listInProgress(destinationId: number): Promise<ObjectRow[]> {
    return this.#guard(async () => {
      const rows = await this.#db
        .selectFrom('objects')
        .selectAll()
        .where('destination_id', '=', destinationId)
        .where('status', 'in', IN_PROGRESS_STATUSES)
        .orderBy('key')
        .execute();
      return rows.map(toObjectRow);
    });
  }

  async countByStatus(destinationId?: number): Promise<StatusCount[]> {
    return this.#guard(async () => {
      let q = this.#db
        .selectFrom('objects')
        .select((eb) => [
          'destination_id',
          'status',
          eb.fn.countAll<number | string>().as('count'),
          eb.fn.coalesce(eb.fn.sum<number | string | null>('size'), eb.lit(0)).as('bytes'),
        ])
        .groupBy(['destination_id', 'status'])
        .orderBy('destination_id')
        .orderBy('status');
      if (destinationId !== undefined) q = q.where('destination_id', '=', destinationId);
      const rows = await q.execute();
      return rows.map((r) => ({
        destinationId: toNumber(r.destination_id),
        status: toStatus(r.status),
        count: toNumber(r.count),
        bytes: toNumber(r.bytes),
      }));
    });
  }

  // ----- objects: planning

  async planUploads(destinationId: number, items: readonly PlannedUpload[], runId: number | null): Promise<string[]> {
    if (items.length === 0) return [];
    let leftAlone: string[] = [];
    // One key, one plan: a key listed twice keeps its last entry.
    const byKey = new Map<string, PlannedUpload>();
    for (const item of items) byKey.set(item.key, item);
    const unique = [...byKey.values()];

    await this.#write(async (trx, now) => {
      leftAlone = [];
      for (const chunk of chunks(unique)) {
        const existing = await trx
          .selectFrom('objects')
          .select(['id', 'key', 'status', 'sha256', 'upload_id'])
          .where('destination_id', '=', destinationId)
          .where(
            'key',
            'in',
            chunk.map((i) => i.key),
          )
          .$call((qb) => this.#traits.lockRows(qb))
          .execute();
        const rows = new Map(existing.map((r) => [r.key, { ...r, id: toNumber(r.id), status: toStatus(r.status) }]));

        const changes: StatusChange[] = [];
        const updates: { id: number; item: PlannedUpload; dropUpload: boolean }[] = [];
        const inserts: PlannedUpload[] = [];
        for (const item of chunk) {
          const row = rows.get(item.key);
          // An in-progress row belongs to its attempt (or to recovery): never overwrite it.
          // A row that changed since the planner looked was handled by another run.
          if ((row !== undefined && isInProgress(row.status)) || changedSinceSeen(item, row)) {
            leftAlone.push(item.key);
            continue;
          }
          changes.push({
            objectId: row?.id ?? null,
            destinationId,
            key: item.key,
            from: row?.status,
            to: 'upload_pending',
            attemptId: null,
            note: item.reason,
          });
          if (row === undefined) inserts.push(item);
          // A multipart upload left open for other content can't be resumed for this one.
          else updates.push({ id: row.id, item, dropUpload: row.upload_id !== null && row.sha256 !== item.sha256 });
        }
        if (changes.length === 0) continue;

        await this.#transition(trx, changes, runId, now, async () => {
          for (const { id, item, dropUpload } of updates) {
            await trx
              .updateTable('objects')
              .set({
                source_path: item.sourcePath,
                size: item.size,
                mtime_ms: item.mtimeMs,
                sha256: item.sha256,
                status: 'upload_pending',
                next_attempt_at: null,
                verified_at: null,
                updated_at: now,
                ...(item.sourceId !== undefined ? { source_id: item.sourceId } : {}),
                ...(dropUpload ? { upload_id: null } : {}),
              })
              .where('id', '=', id)
              .execute();
          }
          const dropped = updates.filter((u) => u.dropUpload).map((u) => u.id);
          if (dropped.length > 0) await trx.deleteFrom('parts').where('object_id', 'in', dropped).execute();
          if (inserts.length === 0) return;
          const created = await trx
            .insertInto('objects')
            .values(
              inserts.map((item) => ({
                destination_id: destinationId,
                key: item.key,
                source_path: item.sourcePath,
                size: item.size,
                mtime_ms: item.mtimeMs,
                sha256: item.sha256,
                status: 'upload_pending',
                source_id: item.sourceId ?? null,
                created_at: now,
                updated_at: now,
              })),
            )
            .returning(['id', 'key'])
            .execute();
          return new Map(created.map((r) => [r.key, toNumber(r.id)]));
        });
      }
    });
    return leftAlone;
  }

  async touchObjects(items: readonly TouchedObject[]): Promise<number[]> {
    if (items.length === 0) return [];
    return this.#write(async (trx, now) => {
      const leftAlone: number[] = [];
      for (const item of items) {
        // Fenced on what the planner saw: a row re-planned (or completed with other content)
        // since must not take this file's size and mtime, or the next run would skip the file.
        let q = trx
          .updateTable('objects')
          .set({ source_path: item.sourcePath, size: item.size, mtime_ms: item.mtimeMs, updated_at: now, ...(item.sourceId !== undefined ? { source_id: item.sourceId } : {}) })
          .where('id', '=', item.objectId)
          .where('status', '=', item.seen.status);
        q = item.seen.sha256 === null ? q.where('sha256', 'is', null) : q.where('sha256', '=', item.seen.sha256);
        const res = await q.executeTakeFirst();
        if (res.numUpdatedRows === 0n) leftAlone.push(item.objectId);
      }
      return leftAlone;
    });
  }

  /**
   * Deletes the rows and their parts; history keeps the fact (to_status is
   * the row's last status). Fenced: only rows still exactly as the planner saw
   * them (status, attempt id, hash), never a row in progress.
   */
  async forgetObjects(items: readonly ForgottenObject[], note: string, runId: number | null): Promise<number[]> {
    if (items.length === 0) return [];
    const wanted = new Map(items.map((i) => [i.objectId, i.seen]));
    return this.#write(async (trx, now) => {
      const forgotten: number[] = [];
      for (const chunk of chunks([...wanted.keys()])) {
        const rows = await trx
          .selectFrom('objects')
          .select(['id', 'destination_id', 'key', 'status', 'attempt_id', 'sha256'])
          .where('id', 'in', chunk)
          .$call((qb) => this.#traits.lockRows(qb))
          .execute();
        const doomed = rows.filter((r) => {
          const seen = wanted.get(toNumber(r.id));
          return seen !== undefined && !isInProgress(toStatus(r.status)) && r.status === seen.status && r.attempt_id === seen.attemptId && r.sha256 === seen.sha256;
        });
        if (doomed.length === 0) continue;
        const ids = doomed.map((r) => toNumber(r.id));
        await trx.deleteFrom('parts').where('object_id', 'in', ids).execute();
        await trx.deleteFrom('objects').where('id', 'in', ids).execute();
        // Not a status change (the row is gone), so not #transition: a plain audit row.
        await trx
          .insertInto('history')
          .values(
            doomed.map((r) => ({
              object_id: toNumber(r.id),
              destination_id: toNumber(r.destination_id),
              key: r.key,
              run_id: runId,
              from_status: r.status,
              to_status: r.status,
              attempt_id: r.attempt_id,
              note,
              at: now,
            })),
          )
          .execute();
        forgotten.push(...ids);
      }
      return forgotten;
    });
  }

  // ----- objects: the protocol

  async claim(opts: ClaimOptions): Promise<ObjectRow[]> {
    const statuses = opts.statuses ?? ['upload_pending'];
    for (const s of statuses) {
      if (CLAIM_TARGET[s] === undefined) throw new HoldfastError('HOLDFAST_E_INTERNAL', { detail: `rows in status ${s} cannot be claimed` });
    }
    if (opts.limit <= 0 || statuses.length === 0) return [];
    const settled = statuses.filter((s) => !isInProgress(s));
    const held = statuses.filter((s) => isInProgress(s));
    return this.#write(async (trx, now) => {
      const leaseUntil = now + opts.leaseMs;
      // Step 1: pick the rows. On PostgreSQL lockForClaim adds FOR UPDATE SKIP
      // LOCKED, so concurrent workers pick disjoint rows.
      let pick = trx.selectFrom('objects').select(['id', 'key', 'status']).where('destination_id', '=', opts.destinationId);
      if (opts.objectIds !== undefined) pick = pick.where('id', 'in', opts.objectIds.length > 0 ? [...opts.objectIds] : [-1]);
      // A worker claims only files it can see: rows of its own source, or of none recorded.
      const source = opts.sourceId;
      if (source !== undefined) pick = pick.where((eb) => eb.or([eb('source_id', '=', source), eb('source_id', 'is', null)]));
      const picked = await pick
        .where((eb) => {
          const ors = [];
          if (settled.length > 0) ors.push(eb('status', 'in', settled));
          // In-progress rows only once their lease has expired (a takeover).
          if (held.length > 0) {
            ors.push(eb.and([eb('status', 'in', held), eb.or([eb('lease_until', 'is', null), eb('lease_until', '<=', now)])]));
          }
          return eb.or(ors);
        })
        .orderBy('key')
        .limit(opts.limit)
        .$call((qb) => this.#traits.lockForClaim(qb))
        .execute();
      if (picked.length === 0) return [];

      // Step 2: move them, each with its own attempt id: batch UUID + ':' + row id.
      const batch = randomUUID();
      const changes: StatusChange[] = picked.map((r) => {
        const from = toStatus(r.status);
        const id = toNumber(r.id);
        return {
          objectId: id,
          destinationId: opts.destinationId,
          key: r.key,
          from,
          to: CLAIM_TARGET[from] ?? from,
          attemptId: `${batch}:${id}`,
        };
      });
      const updated = new Map<number, ObjectRow>();
      await this.#transition(trx, changes, opts.runId, now, async () => {
        for (const to of ['upload_in_progress', 'delete_in_progress'] as const) {
          const ids = changes.filter((c) => c.to === to).map((c) => c.objectId ?? 0);
          if (ids.length === 0) continue;
          const rows = await trx
            .updateTable('objects')
            .set({
              status: to,
              attempt: plusOne('attempt'),
              attempt_id: sql<string>`${`${batch}:`} || cast(${sql.ref('id')} as text)`,
              lease_owner: opts.owner,
              lease_until: leaseUntil,
              updated_at: now,
            })
            .where('id', 'in', ids)
            .returningAll()
            .execute();
          for (const r of rows) updated.set(toNumber(r.id), toObjectRow(r));
        }
      });
      // Key order, as picked (RETURNING order is unspecified).
      return changes.map((c) => {
        const row = updated.get(c.objectId ?? 0);
        if (row === undefined) throw new HoldfastError('HOLDFAST_E_INTERNAL', { detail: `claimed row "${c.key}" was not updated` });
        return row;
      });
    });
  }

  async takeOver(
    rows: readonly { objectId: number; attemptId: string }[],
    owner: string,
    leaseMs: number,
    runId: number | null,
    opts: { readonly deadOwners?: readonly string[]; readonly deadAfterMs?: number } = {},
  ): Promise<ObjectRow[]> {
    if (rows.length === 0) return [];
    const wanted = new Map(rows.map((r) => [r.objectId, r.attemptId]));
    const deadAfterMs = opts.deadAfterMs;
    return this.#write(async (trx, now) => {
      // Dead: named by the caller (a process of this host that is gone), or silent for too long on the ledger's clock.
      const dead = new Set(opts.deadOwners ?? []);
      if (deadAfterMs !== undefined) for (const id of await this.#deadWorkers(trx, now, deadAfterMs)) dead.add(id);
      const current = [];
      for (const chunk of chunks([...wanted.keys()])) {
        current.push(
          ...(await trx
            .selectFrom('objects')
            .select(['id', 'destination_id', 'key', 'status', 'attempt_id', 'lease_owner', 'lease_until'])
            .where('id', 'in', chunk)
            .$call((qb) => this.#traits.lockRows(qb))
            .execute()),
        );
      }
      // Fenced: only rows still in progress under the attempt recovery judged, and
      // whose lease is still over (a live owner may have renewed it since it was judged).
      const leaseOver = (r: { lease_owner: string | null; lease_until: number | string | bigint | null }): boolean =>
        r.lease_until === null || toNumber(r.lease_until) <= now || r.lease_owner === null || dead.has(r.lease_owner);
      const taken = current
        .filter((r) => r.attempt_id !== null && wanted.get(toNumber(r.id)) === r.attempt_id && isInProgress(toStatus(r.status)) && leaseOver(r))
        .sort((a, b) => Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)));
      if (taken.length === 0) return [];
      const batch = randomUUID();
      const changes: StatusChange[] = taken.map((r) => {
        const status = toStatus(r.status);
        const id = toNumber(r.id);
        return { objectId: id, destinationId: toNumber(r.destination_id), key: r.key, from: status, to: status, attemptId: `${batch}:${id}`, note: 'takeover' };
      });
      const out: ObjectRow[] = [];
      await this.#transition(trx, changes, runId, now, async () => {
        for (const [i, c] of changes.entries()) {
          const row = await trx
            .updateTable('objects')
            .set({ attempt: plusOne('attempt'), attempt_id: c.attemptId, lease_owner: owner, lease_until: now + leaseMs, updated_at: now })
            .where('id', '=', c.objectId ?? 0)
            .where('attempt_id', '=', taken[i]?.attempt_id ?? '')
            .returningAll()
            .executeTakeFirstOrThrow();
          out.push(toObjectRow(row));
        }
      });
      return out;
    });
  }

  // ----- objects: deletes and repairs

  async planDeletes(items: readonly PlannedDelete[], note: string, runId: number | null): Promise<string[]> {
    if (items.length === 0) return [];
    let leftAlone: string[] = [];
    await this.#write(async (trx, now) => {
      leftAlone = [];
      for (const chunk of chunks(items)) {
        const rows = await trx
          .selectFrom('objects')
          .select(['id', 'destination_id', 'key', 'status', 'sha256'])
          .where('id', 'in', chunk.map((i) => i.objectId))
          .$call((qb) => this.#traits.lockRows(qb))
          .execute();
        const byId = new Map(rows.map((r) => [toNumber(r.id), r]));
        const changes: StatusChange[] = [];
        for (const item of chunk) {
          const row = byId.get(item.objectId);
          const status = row === undefined ? undefined : toStatus(row.status);
          if (row === undefined || status !== item.seen.status || row.sha256 !== item.seen.sha256 || !canTransition(status, 'delete_pending')) {
            leftAlone.push(item.key);
            continue;
          }
          changes.push({ objectId: item.objectId, destinationId: toNumber(row.destination_id), key: row.key, from: status, to: 'delete_pending', attemptId: null, note });
        }
        if (changes.length === 0) continue;
        await this.#transition(trx, changes, runId, now, async () => {
          await trx
            .updateTable('objects')
            .set({ status: 'delete_pending', next_attempt_at: null, error_code: null, error_message: null, updated_at: now })
            .where('id', 'in', changes.map((c) => c.objectId ?? 0))
            .execute();
        });
      }
    });
    return leftAlone;
  }

  async requeueObjects(objectIds: readonly number[], note: string, runId: number | null): Promise<void> {
    if (objectIds.length === 0) return;
    await this.#write(async (trx, now) => {
      for (const chunk of chunks([...new Set(objectIds)])) {
        const rows = await trx
          .selectFrom('objects')
          .select(['id', 'destination_id', 'key', 'status'])
          .where('id', 'in', chunk)
          .where('status', '=', 'upload_completed')
          .$call((qb) => this.#traits.lockRows(qb))
          .execute();
        if (rows.length === 0) continue;
        const changes: StatusChange[] = rows.map((r) => ({
          objectId: toNumber(r.id),
          destinationId: toNumber(r.destination_id),
          key: r.key,
          from: 'upload_completed',
          to: 'upload_pending',
          attemptId: null,
          note,
        }));
        await this.#transition(trx, changes, runId, now, async () => {
          await trx
            .updateTable('objects')
            .set({ status: 'upload_pending', etag: null, version_id: null, verified_at: null, updated_at: now })
            .where('id', 'in', changes.map((c) => c.objectId ?? 0))
            .execute();
        });
      }
    });
  }

  async adoptObjects(destinationId: number, items: readonly AdoptedObject[], note: string, runId: number | null): Promise<string[]> {
    if (items.length === 0) return [];
    let leftAlone: string[] = [];
    await this.#write(async (trx, now) => {
      leftAlone = [];
      for (const chunk of chunks(items)) {
        const existing = await trx
          .selectFrom('objects')
          .select(['key'])
          .where('destination_id', '=', destinationId)
          .where('key', 'in', chunk.map((i) => i.key))
          .execute();
        const taken = new Set(existing.map((r) => r.key));
        const fresh = chunk.filter((i) => !taken.has(i.key));
        leftAlone.push(...chunk.filter((i) => taken.has(i.key)).map((i) => i.key));
        if (fresh.length === 0) continue;
        const changes: StatusChange[] = fresh.map((i) => ({ objectId: null, destinationId, key: i.key, from: undefined, to: 'upload_completed', attemptId: null, note }));
        await this.#transition(trx, changes, runId, now, async () => {
          const created = await trx
            .insertInto('objects')
            .values(
              fresh.map((i) => ({
                destination_id: destinationId,
                key: i.key,
                source_path: i.sourcePath,
                size: i.size,
                mtime_ms: i.mtimeMs,
                sha256: i.sha256,
                etag: i.etag,
                status: 'upload_completed',
                verified_at: now,
                created_at: now,
                updated_at: now,
              })),
            )
            .returning(['id', 'key'])
            .execute();
          return new Map(created.map((r) => [r.key, toNumber(r.id)]));
        });
      }
    });
    return leftAlone;
  }

  async markOrphansForDeletion(destinationId: number, keys: readonly string[], note: string, runId: number | null): Promise<string[]> {
    if (keys.length === 0) return [];
    let leftAlone: string[] = [];
    await this.#write(async (trx, now) => {
      leftAlone = [];
      for (const chunk of chunks([...new Set(keys)])) {
        const existing = await trx
          .selectFrom('objects')
          .select(['id', 'key', 'status'])
          .where('destination_id', '=', destinationId)
          .where('key', 'in', chunk)
          .$call((qb) => this.#traits.lockRows(qb))
          .execute();
        const rows = new Map(existing.map((r) => [r.key, { id: toNumber(r.id), status: toStatus(r.status) }]));
        const changes: StatusChange[] = [];
        const revived: number[] = [];
        const fresh: string[] = [];
        for (const key of chunk) {
          const row = rows.get(key);
          // Only keys the ledger does not track (no row, or a row whose delete completed) are orphans.
          if (row !== undefined && row.status !== 'delete_completed') {
            leftAlone.push(key);
            continue;
          }
          changes.push({ objectId: row?.id ?? null, destinationId, key, from: row?.status, to: 'delete_pending', attemptId: null, note });
          if (row) revived.push(row.id);
          else fresh.push(key);
        }
        if (changes.length === 0) continue;
        await this.#transition(trx, changes, runId, now, async () => {
          if (revived.length > 0) {
            await trx.updateTable('objects').set({ status: 'delete_pending', updated_at: now }).where('id', 'in', revived).execute();
          }
          if (fresh.length === 0) return;
          const created = await trx
            .insertInto('objects')
            .values(fresh.map((key) => ({ destination_id: destinationId, key, status: 'delete_pending', created_at: now, updated_at: now })))
            .returning(['id', 'key'])
            .execute();
          return new Map(created.map((r) => [r.key, toNumber(r.id)]));
        });
      }
    });
    return leftAlone;
  }

  async recordNote(destinationId: number, key: string, note: string, runId: number | null): Promise<void> {
    await this.#write(async (trx, now) => {
      const row = await trx
        .selectFrom('objects')
        .select(['id', 'status'])
        .where('destination_id', '=', destinationId)
        .where('key', '=', key)
        .executeTakeFirst();
      await trx
        .insertInto('history')
        .values({
          object_id: row ? toNumber(row.id) : null,
          destination_id: destinationId,
          key,
          run_id: runId,
          from_status: row?.status ?? null,
          to_status: null,
          attempt_id: null,
          note,
          at: now,
        })
        .execute();
    });
  }

  async leastRecentlyVerified(destinationId: number, limit: number): Promise<ObjectRow[]> {
    if (limit <= 0) return [];
    return this.#guard(async () => {
      const rows = await this.#db
        .selectFrom('objects')
        .selectAll()
        .where('destination_id', '=', destinationId)
        .where('status', '=', 'upload_completed')
        // Never-verified first, then oldest verification; key order breaks ties deterministically.
        .orderBy(sql`case when verified_at is null then 0 else 1 end`)
        .orderBy('verified_at')
        .orderBy('key')
        .limit(limit)
        .execute();
      return rows.map(toObjectRow);
    });
  }

  async markVerified(objectIds: readonly number[], at: number): Promise<void> {
    if (objectIds.length === 0) return;
    await this.#write(async (trx) => {
      for (const chunk of chunks([...new Set(objectIds)])) {
        await trx.updateTable('objects').set({ verified_at: at }).where('id', 'in', chunk).where('status', '=', 'upload_completed').execute();
      }
    });
  }

  async renewLeases(rows: readonly { objectId: number; attemptId: string }[], owner: string, leaseMs: number): Promise<number[]> {
    if (rows.length === 0) return [];
    const wanted = new Map(rows.map((r) => [r.objectId, r.attemptId]));
    return this.#write(async (trx, now) => {
      const renewed: number[] = [];
      for (const chunk of chunks([...wanted.keys()])) {
        // Held = still ours, in progress, under the attempt we are running. Read then
        // write in one transaction: on PostgreSQL the rows are locked until commit.
        const held = await trx
          .selectFrom('objects')
          .select(['id', 'attempt_id'])
          .where('id', 'in', chunk)
          .where('lease_owner', '=', owner)
          .where('status', 'in', IN_PROGRESS_STATUSES)
          .$call((qb) => this.#traits.lockRows(qb))
          .execute();
        const ids = held.filter((r) => r.attempt_id !== null && wanted.get(toNumber(r.id)) === r.attempt_id).map((r) => toNumber(r.id));
        if (ids.length === 0) continue;
        await trx
          .updateTable('objects')
          .set({ lease_until: now + leaseMs, updated_at: now })
          .where('id', 'in', ids)
          .execute();
        renewed.push(...ids);
      }
      return renewed;
    });
  }

  async clock(): Promise<number> {
    return this.#fixedNow?.() ?? this.#guard(() => this.#traits.clock(this.#db));
  }

  /**
   * Fencing: an outcome applies only while its attempt is the row's current
   * one and the row is still in progress. Replaying an outcome that already
   * applied (same attempt, same status: the caller retried a write whose
   * commit it could not confirm) reports applied without writing again.
   */
  async recordOutcomes(outcomes: readonly Outcome[], runId: number | null): Promise<OutcomeResult[]> {
    if (outcomes.length === 0) return [];
    return this.#write(async (trx, now) => {
      const state = new Map<number, { destinationId: number; key: string; status: ObjectStatus; attemptId: string | null }>();
      for (const chunk of chunks([...new Set(outcomes.map((o) => o.objectId))])) {
        const rows = await trx
          .selectFrom('objects')
          .select(['id', 'destination_id', 'key', 'status', 'attempt_id'])
          .where('id', 'in', chunk)
          .$call((qb) => this.#traits.lockRows(qb))
          .execute();
        for (const r of rows) {
          state.set(toNumber(r.id), { destinationId: toNumber(r.destination_id), key: r.key, status: toStatus(r.status), attemptId: r.attempt_id });
        }
      }

      const results: OutcomeResult[] = [];
      const changes: StatusChange[] = [];
      const toApply: Outcome[] = [];
      for (const o of outcomes) {
        const row = state.get(o.objectId);
        if (row === undefined || row.attemptId !== o.attemptId) {
          results.push({ objectId: o.objectId, applied: false });
        } else if (!isInProgress(row.status)) {
          results.push({ objectId: o.objectId, applied: row.status === o.status });
        } else {
          changes.push({
            objectId: o.objectId,
            destinationId: row.destinationId,
            key: row.key,
            from: row.status,
            to: o.status,
            attemptId: o.attemptId,
            errorCode: o.errorCode ?? null,
            errorMessage: o.errorMessage ?? null,
            note: o.note ?? null,
          });
          toApply.push(o);
          row.status = o.status;
          results.push({ objectId: o.objectId, applied: true });
        }
      }
      if (changes.length === 0) return results;

      await this.#transition(trx, changes, runId, now, async () => {
        for (const o of toApply) {
          await trx
            .updateTable('objects')
            .set({ ...outcomeFields(o), ...(o.verified === true ? { verified_at: now } : {}), updated_at: now })
            .where('id', '=', o.objectId)
            .where('attempt_id', '=', o.attemptId)
            .execute();
        }
        const completed = toApply.filter((o) => o.status === 'upload_completed').map((o) => o.objectId);
        for (const chunk of chunks(completed)) await trx.deleteFrom('parts').where('object_id', 'in', chunk).execute();
      });
      return results;
    });
  }

  // ----- multipart bookkeeping

  async setUploadId(objectId: number, attemptId: string, uploadId: string | null): Promise<boolean> {
    return this.#write(async (trx, now) => {
      const res = await trx
        .updateTable('objects')
        .set({ upload_id: uploadId, updated_at: now })
        .where('id', '=', objectId)
        .where('attempt_id', '=', attemptId)
        .where('status', 'in', IN_PROGRESS_STATUSES)
        .executeTakeFirst();
      if (res.numUpdatedRows === 0n) return false;
      // Parts belong to one upload id; those of any other are void now.
      let del = trx.deleteFrom('parts').where('object_id', '=', objectId);
      if (uploadId !== null) del = del.where('upload_id', '<>', uploadId);
      await del.execute();
      return true;
    });
  }

  async recordPart(part: PartRow, attemptId: string): Promise<boolean> {
    return this.#write(async (trx, now) => {
      // The fence is an UPDATE, not a SELECT: on PostgreSQL it also locks the
      // row until commit, so a concurrent claim cannot slip in between.
      const res = await trx
        .updateTable('objects')
        .set({ updated_at: now })
        .where('id', '=', part.objectId)
        .where('attempt_id', '=', attemptId)
        .where('upload_id', '=', part.uploadId)
        .where('status', 'in', IN_PROGRESS_STATUSES)
        .executeTakeFirst();
      if (res.numUpdatedRows === 0n) return false;
      await trx
        .insertInto('parts')
        .values({
          object_id: part.objectId,
          upload_id: part.uploadId,
          part_number: part.partNumber,
          size: part.size,
          etag: part.etag,
          checksum: part.checksum,
        })
        .onConflict((oc) =>
          oc.columns(['object_id', 'upload_id', 'part_number']).doUpdateSet((eb) => ({
            size: eb.ref('excluded.size'),
            etag: eb.ref('excluded.etag'),
            checksum: eb.ref('excluded.checksum'),
          })),
        )
        .execute();
      return true;
    });
  }

  async listParts(objectId: number, uploadId: string): Promise<PartRow[]> {
    return this.#guard(async () => {
      const rows = await this.#db
        .selectFrom('parts')
        .selectAll()
        .where('object_id', '=', objectId)
        .where('upload_id', '=', uploadId)
        .orderBy('part_number')
        .execute();
      return rows.map((r) => ({
        objectId: toNumber(r.object_id),
        uploadId: r.upload_id,
        partNumber: toNumber(r.part_number),
        size: toNumber(r.size),
        etag: r.etag,
        checksum: r.checksum,
      }));
    });
  }

  // ----- workers

  async registerWorker(worker: { readonly id: string; readonly host: string; readonly pid: number; readonly command: string; readonly sourceId: string | null }): Promise<void> {
    await this.#write(async (trx, now) => {
      await trx
        .insertInto('workers')
        .values({ id: worker.id, host: worker.host, pid: worker.pid, command: worker.command, source_id: worker.sourceId, started_at: now, heartbeat_at: now })
        .onConflict((oc) => oc.column('id').doUpdateSet({ heartbeat_at: now, stopped_at: null }))
        .execute();
    });
  }

  async heartbeat(id: string): Promise<boolean> {
    return this.#write(async (trx, now) => {
      const res = await trx.updateTable('workers').set({ heartbeat_at: now }).where('id', '=', id).where('stopped_at', 'is', null).executeTakeFirst();
      return res.numUpdatedRows > 0n;
    });
  }

  async retireWorker(id: string): Promise<void> {
    await this.#write(async (trx, now) => {
      await trx.updateTable('workers').set({ stopped_at: now, heartbeat_at: now }).where('id', '=', id).execute();
    });
  }

  async listWorkers(opts: { readonly includeStopped?: boolean } = {}): Promise<WorkerRow[]> {
    return this.#guard(async () => {
      const now = this.#fixedNow?.() ?? (await this.#traits.clock(this.#db));
      let q = this.#db
        .selectFrom('workers')
        .selectAll('workers')
        .select((eb) =>
          eb
            .selectFrom('objects')
            .select(eb.fn.countAll<number | string>().as('n'))
            .whereRef('objects.lease_owner', '=', 'workers.id')
            .where('objects.status', 'in', IN_PROGRESS_STATUSES)
            .as('leased'),
        )
        .orderBy('started_at', 'desc')
        .orderBy('id');
      if (opts.includeStopped !== true) q = q.where('stopped_at', 'is', null);
      const rows = await q.execute();
      return rows.map((r) => ({
        id: r.id,
        host: r.host,
        pid: toNumber(r.pid),
        command: r.command,
        sourceId: r.source_id,
        startedAt: toNumber(r.started_at),
        heartbeatAt: toNumber(r.heartbeat_at),
        stoppedAt: toNullableNumber(r.stopped_at),
        heartbeatAgeMs: Math.max(0, now - toNumber(r.heartbeat_at)),
        leased: toNumber(r.leased ?? 0),
      }));
    });
  }

  async deadWorkers(deadAfterMs: number): Promise<string[]> {
    return this.#guard(async () => this.#deadWorkers(this.#db, this.#fixedNow?.() ?? (await this.#traits.clock(this.#db)), deadAfterMs));
  }

  async #deadWorkers(db: Kysely<Database>, now: number, deadAfterMs: number): Promise<string[]> {
    const rows = await db.selectFrom('workers').select('id').where('stopped_at', 'is', null).where('heartbeat_at', '<=', now - deadAfterMs).execute();
    return rows.map((r) => r.id);
  }

  // ----- history

  async history(destinationId: number, key: string): Promise<HistoryRow[]> {
    return this.#guard(async () => {
      const rows = await this.#db
        .selectFrom('history')
        .selectAll()
        .where('destination_id', '=', destinationId)
        .where('key', '=', key)
        .orderBy('id')
        .execute();
      return rows.map(toHistoryRow);
    });
  }

  // ----- file cache

  async lookupFileCache(paths: readonly string[]): Promise<Map<string, FileCacheEntry>> {
    const out = new Map<string, FileCacheEntry>();
    if (paths.length === 0) return out;
    return this.#guard(async () => {
      for (const chunk of chunks([...new Set(paths)])) {
        const rows = await this.#db.selectFrom('file_cache').selectAll().where('host', '=', this.#host).where('path', 'in', chunk).execute();
        for (const r of rows) {
          out.set(r.path, { path: r.path, size: toNumber(r.size), mtimeMs: toNumber(r.mtime_ms), ino: toNumber(r.ino), sha256: r.sha256 });
        }
      }
      return out;
    });
  }

  async storeFileCache(entries: readonly FileCacheEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const byPath = new Map(entries.map((e) => [e.path, e]));
    await this.#write(async (trx, now) => {
      for (const chunk of chunks([...byPath.values()])) {
        await trx
          .insertInto('file_cache')
          .values(chunk.map((e) => ({ host: this.#host, path: e.path, size: e.size, mtime_ms: e.mtimeMs, ino: e.ino, sha256: e.sha256, updated_at: now })))
          .onConflict((oc) =>
            oc.columns(['host', 'path']).doUpdateSet((eb) => ({
              size: eb.ref('excluded.size'),
              mtime_ms: eb.ref('excluded.mtime_ms'),
              ino: eb.ref('excluded.ino'),
              sha256: eb.ref('excluded.sha256'),
              updated_at: eb.ref('excluded.updated_at'),
            })),
          )
          .execute();
      }
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#guard(() => this.#db.destroy());
  }

  // ----- objects: status pages (status, the dashboard)

  async listByStatus(destinationId: number, statuses: readonly ObjectStatus[], limit: number): Promise<ObjectRow[]> {
    const wanted = [...new Set(statuses)];
    if (limit <= 0 || wanted.length === 0) return [];
    return this.#guard(async () => {
      // One query per status, each a range of the (destination_id, status, key)
      // index read in order: O(limit) whatever the table size. A single
      // `status IN (...) ORDER BY key` would sort every matching row first.
      const pages = await Promise.all(
        wanted.map((status) =>
          this.#db
            .selectFrom('objects')
            .selectAll()
            .where('destination_id', '=', destinationId)
            .where('status', '=', status)
            .orderBy('key')
            .limit(limit)
            .execute(),
        ),
      );
      const rows = pages.flat().map(toObjectRow);
      rows.sort((a, b) => Buffer.compare(Buffer.from(a.key, 'utf8'), Buffer.from(b.key, 'utf8')));
      return rows.slice(0, limit);
    });
  }
}

/** The columns an outcome writes, besides status-independent ones (verified_at, updated_at). */
function outcomeFields(o: Outcome): Partial<{
  status: string;
  etag: string | null;
  version_id: string | null;
  error_code: string | null;
  error_message: string | null;
  next_attempt_at: number | null;
  lease_owner: null;
  lease_until: null;
  upload_id: null;
  attempt: number;
}> {
  const released = { status: o.status, lease_owner: null, lease_until: null } as const;
  switch (o.status) {
    case 'upload_completed':
      return {
        ...released,
        etag: o.etag ?? null,
        version_id: o.versionId ?? null,
        error_code: null,
        error_message: null,
        next_attempt_at: null,
        upload_id: null,
        attempt: 0,
      };
    case 'delete_completed':
      return { ...released, error_code: null, error_message: null, next_attempt_at: null, attempt: 0 };
    case 'upload_failed':
    case 'delete_failed':
      return { ...released, error_code: o.errorCode ?? null, error_message: o.errorMessage ?? null, next_attempt_at: o.nextAttemptAt ?? null };
    case 'upload_pending':
    case 'delete_pending':
      // Recovery found nothing (or will retry): the row is free for the next claim.
      return released;
  }
}

/** True when the planner's view of the row (`item.seen`) no longer holds. */
function changedSinceSeen(item: PlannedUpload, row: { status: ObjectStatus; sha256: string | null } | undefined): boolean {
  if (item.seen === undefined) return false;
  if (item.seen === null) return row !== undefined;
  return row === undefined || row.status !== item.seen.status || row.sha256 !== item.seen.sha256;
}
