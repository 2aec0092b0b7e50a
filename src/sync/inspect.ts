// A readable ledger: what `holdfast status`, `history` and `runs` show, as
// plain data (the CLI renders it; the HTTP service can serve it as is). All
// read-only: these functions never create a ledger or change one.
//
// Built to stay fast on a ledger of millions of rows: counts come from one
// grouped query over the (destination, status, key) index, and lists of
// items are index ranges with a LIMIT, never scans.

import { openBackend } from '../backends/registry.js';
import { HoldfastError } from '../core/errors.js';
import { IN_PROGRESS_STATUSES, OBJECT_STATUSES, type ObjectStatus } from '../core/status.js';
import type { DestinationRow, ObjectRow, RunRow, RunStatus } from '../core/types.js';
import type { Ledger } from '../ledger/ledger.js';
import { openLedgerAt, resolveLedger } from '../ledger/open.js';
import { DEFAULT_DEAD_AFTER_MS } from './worker.js';
import { isLeaseStale } from './owner.js';

export interface InspectOptions {
  /** An open ledger to read (the caller keeps ownership); else the one in `stateDir`. */
  readonly ledger?: Ledger;
  /** Directory of the SQLite ledger (default: $HOLDFAST_STATE, $XDG_STATE_HOME/holdfast, ~/.local/state/holdfast). */
  readonly stateDir?: string;
  /** postgres://… or sqlite:<state directory>; wins over `stateDir`; default $HOLDFAST_LEDGER. */
  readonly ledgerUrl?: string;
}

/** Times in these reports are ISO 8601 strings (UTC), or null. */
export type IsoTime = string;

export interface RunSummary {
  readonly id: number;
  readonly command: string;
  readonly destination: string | null;
  readonly source: string | null;
  readonly status: RunStatus;
  readonly startedAt: IsoTime;
  readonly finishedAt: IsoTime | null;
  readonly durationMs: number | null;
  /** The run's final counts as recorded (uploads, bytes, deletes…); null while running or if unreadable. */
  readonly summary: Record<string, unknown> | null;
}

export interface ItemSummary {
  readonly key: string;
  readonly status: ObjectStatus;
  readonly size: number | null;
  /** Attempts since the row last completed. */
  readonly attempt: number;
  readonly errorCode: string | null;
  readonly errorMessage: string | null;
  /** When the next run may retry it (failed items). */
  readonly nextAttemptAt: IsoTime | null;
  readonly leaseOwner: string | null;
  readonly leaseUntil: IsoTime | null;
  readonly updatedAt: IsoTime;
}

export interface DestinationStatus {
  readonly url: string;
  /** Where it is, endpoint or account included (src/backends/location.ts); null for a row not used since identities were introduced. */
  readonly identity: string | null;
  readonly kind: string;
  /** Every status, zero or not: count of rows and their bytes. */
  readonly objects: Record<ObjectStatus, { count: number; bytes: number }>;
  /**
   * What the ledger tracks on this destination: rows `upload_completed` or
   * `delete_pending` (objects it recorded as stored there and not yet
   * deleted), the same count `--max-delete` takes its percentage of. A failed
   * or pending upload is not tracked: nothing of it is recorded as stored.
   */
  readonly tracked: { readonly count: number; readonly bytes: number };
  readonly lastRun: RunSummary | null;
  readonly health: {
    readonly lastUploadAt: IsoTime | null;
    readonly lastStatus: string | null;
    readonly lastError: string | null;
    readonly consecutiveFailures: number;
  };
  /** upload_failed and delete_failed rows: `count` in all, `items` the first `limit` in key order. */
  readonly failing: { readonly count: number; readonly items: ItemSummary[] };
  /** In-progress rows whose lease expired or whose owner is gone (a crashed run): the next run resolves them. */
  /** Rows in progress (`inProgress`), of which `count` have an expired lease or a dead owner (of the first 1000 looked at); the first `limit` of those. */
  readonly stale: { readonly inProgress: number; readonly count: number; readonly items: ItemSummary[] };
  /** Deletes recorded but not yet done (sync, cleanup). */
  readonly deletePending: { readonly count: number; readonly items: ItemSummary[] };
  /** failing + stale + delete_pending: zero means nothing needs a look. */
  readonly needsAttention: number;
}

export interface StatusReport {
  /** Where the ledger is (file path, or the PostgreSQL URL without its password). */
  readonly ledger: string;
  readonly destinations: DestinationStatus[];
  /** The workers running on the ledger now (every host): see `holdfast workers`. */
  readonly workers: WorkerSummary[];
}

export interface HistoryEntry {
  readonly destination: string;
  readonly runId: number | null;
  readonly at: IsoTime;
  readonly from: ObjectStatus | null;
  /** Null for an action that changed no status (the note says what was done). */
  readonly to: ObjectStatus | null;
  readonly attemptId: string | null;
  readonly errorCode: string | null;
  readonly errorMessage: string | null;
  readonly note: string | null;
}

export interface HistoryReport {
  readonly key: string;
  /** The key's current row on each destination that has one. */
  readonly current: (ItemSummary & { readonly destination: string })[];
  /** Every transition, oldest first (per destination, in the order they were written). */
  readonly entries: HistoryEntry[];
}

export interface RunsReport {
  /** Most recent first. */
  readonly runs: RunSummary[];
}

const DEFAULT_ITEM_LIMIT = 20;
/** Statuses counted as "tracked" (docs/cli.md, --max-delete). */
const TRACKED_STATUSES: readonly ObjectStatus[] = ['upload_completed', 'delete_pending'];
/** In-progress rows read to find the stale ones: normally a handful (the claim batches of live runs). */
const IN_PROGRESS_SCAN = 1000;

function iso(ms: number | null): IsoTime | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/** Opens the existing ledger for reading; there being none is an error (exit 3), never a reason to create one. */
async function withLedger<T>(opts: InspectOptions, fn: (ledger: Ledger) => Promise<T>): Promise<T> {
  if (opts.ledger !== undefined) return fn(opts.ledger);
  // Read-only: a missing ledger is an error (never created), a read-only mount or a ledger the user may only read is fine.
  const ledger = await openLedgerAt(resolveLedger(opts), { readOnly: true });
  try {
    return await fn(ledger);
  } finally {
    await ledger.close().catch(() => undefined);
  }
}

/**
 * The ledger's rows for a destination URL as typed: exactly, or after the
 * normalisation the backends apply (`s3://b/p` is stored as `s3://b/p/`,
 * `file:///x/` as `file:///x`). Several when the URL was used on several
 * endpoints or accounts (each is its own destination). Unknown:
 * HOLDFAST_E_UNKNOWN_DESTINATION naming the known ones.
 */
export async function findDestinations(ledger: Ledger, url: string): Promise<DestinationRow[]> {
  const exact = await ledger.findDestinations(url);
  if (exact.length > 0) return exact;
  const backend = await openBackend(url);
  try {
    const normalised = await ledger.findDestinations(backend.url);
    if (normalised.length > 0) return normalised;
  } finally {
    await backend.close().catch(() => undefined);
  }
  const known = (await ledger.listDestinations()).map((d) => d.url);
  throw new HoldfastError('HOLDFAST_E_UNKNOWN_DESTINATION', { url, known: known.length > 0 ? [...new Set(known)].join(', ') : '(none yet)' });
}

function runSummary(run: RunRow, urls: ReadonlyMap<number, string>): RunSummary {
  let summary: Record<string, unknown> | null = null;
  if (run.summary !== null) {
    try {
      const parsed: unknown = JSON.parse(run.summary);
      if (typeof parsed === 'object' && parsed !== null) summary = parsed as Record<string, unknown>;
    } catch {
      // A summary that does not parse is shown as missing, not as an error of the whole listing.
    }
  }
  return {
    id: run.id,
    command: run.command,
    destination: run.destinationId === null ? null : (urls.get(run.destinationId) ?? null),
    source: run.source,
    status: run.status,
    startedAt: new Date(run.startedAt).toISOString(),
    finishedAt: iso(run.finishedAt),
    durationMs: run.finishedAt === null ? null : run.finishedAt - run.startedAt,
    summary,
  };
}

function itemSummary(row: ObjectRow): ItemSummary {
  return {
    key: row.key,
    status: row.status,
    size: row.size,
    attempt: row.attempt,
    errorCode: row.errorCode,
    errorMessage: row.errorMessage,
    nextAttemptAt: iso(row.nextAttemptAt),
    leaseOwner: row.leaseOwner,
    leaseUntil: iso(row.leaseUntil),
    updatedAt: new Date(row.updatedAt).toISOString(),
  };
}

/** `holdfast status`: per destination (or the one given), counts, health, last run, and what needs attention. */
export async function status(opts: InspectOptions & { readonly destination?: string; readonly limit?: number } = {}): Promise<StatusReport> {
  const limit = opts.limit ?? DEFAULT_ITEM_LIMIT;
  return withLedger(opts, async (ledger) => {
    const destinations = opts.destination !== undefined ? await findDestinations(ledger, opts.destination) : await ledger.listDestinations();
    const counts = opts.destination !== undefined && destinations.length === 1 ? await ledger.countByStatus(destinations[0]!.id) : await ledger.countByStatus();
    const urls = new Map(destinations.map((d) => [d.id, d.url]));
    const now = Date.now();
    const out: DestinationStatus[] = [];
    for (const d of destinations) {
      const objects = Object.fromEntries(OBJECT_STATUSES.map((s) => [s, { count: 0, bytes: 0 }])) as Record<ObjectStatus, { count: number; bytes: number }>;
      for (const c of counts) if (c.destinationId === d.id) objects[c.status] = { count: c.count, bytes: c.bytes };
      // The same "tracked" as --max-delete's percentage (plan.ts): objects the ledger says are on the destination.
      const tracked = { count: 0, bytes: 0 };
      for (const s of TRACKED_STATUSES) {
        tracked.count += objects[s].count;
        tracked.bytes += objects[s].bytes;
      }
      const failingCount = objects.upload_failed.count + objects.delete_failed.count;
      const inProgressCount = IN_PROGRESS_STATUSES.reduce((n, s) => n + objects[s].count, 0);
      const [lastRun] = await ledger.listRuns({ limit: 1, destinationId: d.id });
      const failing = failingCount > 0 ? await ledger.listByStatus(d.id, ['upload_failed', 'delete_failed'], limit) : [];
      const inProgress = inProgressCount > 0 ? await ledger.listByStatus(d.id, IN_PROGRESS_STATUSES, IN_PROGRESS_SCAN) : [];
      // A status command owns no lease: every row is judged as another process's.
      const stale = inProgress.filter((r) => isLeaseStale(r, now, ''));
      const deletePending = objects.delete_pending.count > 0 ? await ledger.listByStatus(d.id, ['delete_pending'], limit) : [];
      out.push({
        url: d.url,
        identity: d.identity,
        kind: d.kind,
        objects,
        tracked,
        lastRun: lastRun === undefined ? null : runSummary(lastRun, urls),
        health: { lastUploadAt: iso(d.lastUploadAt), lastStatus: d.lastStatus, lastError: d.lastError, consecutiveFailures: d.consecutiveFailures },
        failing: { count: failingCount, items: failing.map(itemSummary) },
        stale: { inProgress: inProgressCount, count: stale.length, items: stale.slice(0, limit).map(itemSummary) },
        deletePending: { count: objects.delete_pending.count, items: deletePending.map(itemSummary) },
        needsAttention: failingCount + stale.length + objects.delete_pending.count,
      });
    }
    return { ledger: ledger.location, destinations: out, workers: await workerSummaries(ledger, false, DEFAULT_DEAD_AFTER_MS) };
  });
}

/** `holdfast history <key>`: every transition of one key, on one destination or on every destination that has it. */
export async function history(opts: InspectOptions & { readonly key: string; readonly destination?: string }): Promise<HistoryReport> {
  return withLedger(opts, async (ledger) => {
    const destinations = opts.destination !== undefined ? await findDestinations(ledger, opts.destination) : await ledger.listDestinations();
    const current: HistoryReport['current'] = [];
    const entries: HistoryEntry[] = [];
    for (const d of destinations) {
      const row = await ledger.getObject(d.id, opts.key);
      if (row !== undefined) current.push({ destination: d.url, ...itemSummary(row) });
      for (const h of await ledger.history(d.id, opts.key)) {
        entries.push({
          destination: d.url,
          runId: h.runId,
          at: new Date(h.at).toISOString(),
          from: h.fromStatus,
          to: h.toStatus,
          attemptId: h.attemptId,
          errorCode: h.errorCode,
          errorMessage: h.errorMessage,
          note: h.note,
        });
      }
    }
    return { key: opts.key, current, entries };
  });
}

/** `holdfast runs`: the most recent runs, newest first, with their recorded counts. */
export async function runs(opts: InspectOptions & { readonly limit?: number; readonly destination?: string } = {}): Promise<RunsReport> {
  return withLedger(opts, async (ledger) => {
    const limit = opts.limit ?? DEFAULT_ITEM_LIMIT;
    const urls = new Map((await ledger.listDestinations()).map((d) => [d.id, d.url]));
    if (opts.destination === undefined) return { runs: (await ledger.listRuns({ limit })).map((r) => runSummary(r, urls)) };
    // One URL may name several destinations (several endpoints): their runs, newest first.
    const rows = [];
    for (const d of await findDestinations(ledger, opts.destination)) rows.push(...(await ledger.listRuns({ limit, destinationId: d.id })));
    rows.sort((a, b) => b.id - a.id);
    return { runs: rows.slice(0, limit).map((r) => runSummary(r, urls)) };
  });
}

export interface WorkerSummary {
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  readonly command: string;
  readonly source: string | null;
  readonly startedAt: IsoTime;
  /** Seconds since its last heartbeat, on the ledger's clock. */
  readonly heartbeatAgeMs: number;
  /** running: heartbeat within the dead-after time; silent: past it (dead to the others, its rows are taken over); stopped: ended cleanly. */
  readonly state: 'running' | 'silent' | 'stopped';
  readonly stoppedAt: IsoTime | null;
  /** Rows it holds leases on. */
  readonly leased: number;
}

export interface WorkersReport {
  readonly ledger: string;
  readonly workers: WorkerSummary[];
}

/** `holdfast workers`: the processes working on this ledger (every host), with heartbeat age and leased rows. */
export async function workers(opts: InspectOptions & { readonly all?: boolean; readonly deadAfterMs?: number } = {}): Promise<WorkersReport> {
  return withLedger(opts, async (ledger) => ({ ledger: ledger.location, workers: await workerSummaries(ledger, opts.all === true, opts.deadAfterMs ?? DEFAULT_DEAD_AFTER_MS) }));
}

async function workerSummaries(ledger: Ledger, all: boolean, deadAfterMs: number): Promise<WorkerSummary[]> {
  return (await ledger.listWorkers({ includeStopped: all })).map((w) => ({
    id: w.id,
    host: w.host,
    pid: w.pid,
    command: w.command,
    source: w.sourceId,
    startedAt: new Date(w.startedAt).toISOString(),
    heartbeatAgeMs: w.heartbeatAgeMs,
    state: w.stoppedAt !== null ? 'stopped' : w.heartbeatAgeMs >= deadAfterMs ? 'silent' : 'running',
    stoppedAt: iso(w.stoppedAt),
    leased: w.leased,
  }));
}
