// Running a transfer: opens the destinations and the ledger, builds each
// destination's context, and runs the pipeline recover → plan → upload
// [→ delete] → finalize once per destination, all at the same time (DESIGN §6
// "Many destinations"). `push` (src/sync/push.ts) and `sync` (src/sync/sync.ts)
// are the two ways in.
//
// Fan-out: every (destination, key) row is independent; the destinations share
// the ledger, the owner, the cancellation and the request slots (so
// `transfers` bounds the whole run, and its memory), and nothing else. A
// destination that cannot be reached, or stops answering mid-run, fails its
// own items only; the run's status is then partial.

import { stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { Backend, BackendOptions } from '../backends/backend.js';
import { openBackend } from '../backends/registry.js';
import { HoldfastError, classifyError } from '../core/errors.js';
import { timerProblem } from '../core/units.js';
import { combineReports, type DestinationReport, type RunReport } from '../core/report.js';
import { Cancellation } from '../engine/cancellation.js';
import { RunEvents } from '../engine/events.js';
import { Limiter } from '../engine/limiter.js';
import { Pipeline } from '../engine/pipeline.js';
import { checkRetryPolicy, withRetry } from '../engine/retry.js';
import type { Ledger } from '../ledger/ledger.js';
import { LEDGER_FILE_NAME, ledgerMayExist, openLedger, openLedgerAt, resolveLedger, type LedgerTarget } from '../ledger/open.js';
import { HashMemo } from '../scan/hasher.js';
import { KeyCover } from '../scan/key-cover.js';
import { compileExcludes, excludingDirectory, type Matcher } from '../scan/ignore.js';
import { DestinationBreaker } from './breaker.js';
import { DEFAULT_SETTINGS, type DeletionPolicy, type FileFacts, type SyncContext, type SyncSettings } from './context.js';
import { deleteStep } from './delete.js';
import { finalizeStep } from './finalize.js';
import { makeOwner, registerOwner } from './owner.js';
import { refuseBackupOverTracked, refuseOverlaps } from './overlap.js';
import { sourceIdentity, WorkerPresence } from './worker.js';
import { planStep } from './plan.js';
import { recoverStep } from './recover.js';
import { RunTally } from './tally.js';
import { uploadStep } from './upload.js';

export type { FileFacts } from './context.js';

/** One destination of a run, with its own backend settings and rules. */
export interface DestinationSpec {
  /** file:///path, s3://bucket/prefix, azure://container/prefix, gdrive://folder-id */
  readonly url: string;
  /** A name to show in reports (from the configuration file). */
  readonly name?: string;
  /** Backend settings for this destination (override the run's `backendOptions`). */
  readonly backendOptions?: BackendOptions;
  /** Which source files go to this destination; default: all. Files not selected are treated like excluded ones. */
  readonly select?: (file: FileFacts) => boolean;
}

export interface TransferOptions extends Partial<SyncSettings> {
  /** The local directory to copy. */
  readonly source: string;
  /** Destination URL: file:///path, s3://bucket/prefix, azure://container/prefix, gdrive://folder-id. */
  readonly destination?: string;
  /** Several destinations (fan-out), each tracked and retried on its own; instead of, or besides, `destination`. */
  readonly destinations?: readonly (string | DestinationSpec)[];
  /** An open ledger to use (the caller keeps ownership); else one is opened in `stateDir`. */
  readonly ledger?: Ledger;
  /**
   * Directory of the SQLite ledger (default: $HOLDFAST_STATE, $XDG_STATE_HOME/holdfast, ~/.local/state/holdfast).
   * Its files are left out of the source when it lies inside it (with `ledger` given, only if this is given too).
   */
  readonly stateDir?: string;
  /** Which ledger: postgres://… (many workers) or sqlite:<state directory>; wins over `stateDir`; default $HOLDFAST_LEDGER, then the state directory. */
  readonly ledgerUrl?: string;
  /**
   * The source is a shared file system (NFS, SMB) that several hosts mount:
   * give it the same name on each, and their runs split its work. Without it a
   * source is this host's directory, and rows planned from another host's
   * source are never claimed, forgotten or deleted by this one.
   */
  readonly sharedSource?: string;
  /** Glob patterns to leave out (gitignore-like); `.holdfastignore` in the source root is read too. */
  readonly exclude?: readonly string[];
  /** Backend settings for every destination (a DestinationSpec's own options win). */
  readonly backendOptions?: BackendOptions;
  /** Aborts in-flight transfers at once (a multipart upload stays resumable). */
  readonly signal?: AbortSignal;
  /** Stops starting new work; in-flight transfers get `drainMs` to finish. */
  readonly stopSignal?: AbortSignal;
  readonly drainMs?: number;
  /** Receives the run's events (progress, per-file results); with several destinations each event carries `destination`. */
  readonly events?: RunEvents;
  /** Files to leave alone in this run, for a later one (watch: still being written). Called once per destination. */
  readonly defer?: (file: FileFacts) => boolean;
}

function checkSettings(s: SyncSettings): void {
  const positiveInt = (name: string, v: number, max: number): void => {
    if (!Number.isInteger(v) || v < 1 || v > max) throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `${name} must be an integer from 1 to ${max}, got ${v}` });
  };
  positiveInt('transfers', s.transfers, 1024);
  positiveInt('partSize', s.partSize, 5 * 1024 ** 3);
  positiveInt('multipartThreshold', s.multipartThreshold, Number.MAX_SAFE_INTEGER);
  positiveInt('claimBatch', s.claimBatch, 10_000);
  positiveInt('outcomeBatch', s.outcomeBatch, 10_000);
  for (const [name, v] of [
    ['leaseMs', s.leaseMs],
    ['heartbeatMs', s.heartbeatMs],
    ['deadAfterMs', s.deadAfterMs],
    ['outcomeFlushMs', s.outcomeFlushMs],
  ] as const) {
    const problem = timerProblem(v);
    if (problem !== undefined) throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `${name}: ${problem}` });
  }
  if (s.heartbeatMs < 1) throw new HoldfastError('HOLDFAST_E_USAGE', { detail: 'heartbeatMs must be at least 1' });
  checkRetryPolicy(s.retry);
  if (s.mode !== 'incremental' && s.mode !== 'all') throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `mode must be "incremental" or "all", got "${String(s.mode)}"` });
}

export interface TransferKind {
  /** Recorded in the runs table and reports: "push", "sync". */
  readonly command: string;
  /** How the run may delete; undefined: never. */
  readonly deletion?: DeletionPolicy;
  /** Where deleted objects are moved instead (rclone's --backup-dir). */
  readonly backupUrl?: string;
}

/** The destinations of `options`, as specs, in the order given; at least one, no URL twice. */
export function destinationSpecs(options: Pick<TransferOptions, 'destination' | 'destinations'>): DestinationSpec[] {
  const specs: DestinationSpec[] = [];
  if (options.destination !== undefined) specs.push({ url: options.destination });
  for (const d of options.destinations ?? []) specs.push(typeof d === 'string' ? { url: d } : d);
  if (specs.length === 0) throw new HoldfastError('HOLDFAST_E_USAGE', { detail: 'no destination given' });
  return specs;
}

interface OpenDestination {
  readonly spec: DestinationSpec;
  readonly backend: Backend;
  /** Why ensureReady failed (only kept when the run has other destinations). */
  notReady?: HoldfastError;
}

export async function runTransfer(options: TransferOptions, kind: TransferKind): Promise<RunReport> {
  const settings = pickSettings(options);
  checkSettings(settings);
  const specs = destinationSpecs(options);
  const sourceRoot = resolve(options.source);
  const st = await stat(sourceRoot).catch(() => undefined);
  if (!st?.isDirectory()) throw new HoldfastError('HOLDFAST_E_SOURCE_MISSING', { path: options.source });
  const target = resolveLedger(options);
  const ledgerDir = target.kind === 'sqlite' && (options.ledger === undefined || options.stateDir !== undefined || options.ledgerUrl !== undefined) ? target.stateDir : undefined;
  const exclude = withoutLedgerDir(compileExcludes([...(options.exclude ?? [])], { ignoreFile: join(sourceRoot, '.holdfastignore') }), sourceRoot, ledgerDir);
  if (kind.backupUrl !== undefined && specs.length > 1) {
    throw new HoldfastError('HOLDFAST_E_USAGE', { detail: '--backup-dir works with one destination; run sync once per destination to keep a backup of each' });
  }

  const startedAt = Date.now();
  const opened: OpenDestination[] = [];
  let backup: Backend | undefined;
  let ledger = options.ledger;
  const ownsLedger = ledger === undefined;
  const cancellation = new Cancellation({ signal: options.signal, stopSignal: options.stopSignal, drainMs: options.drainMs });
  let unregister: (() => void) | undefined;
  let presence: WorkerPresence | undefined;
  try {
    for (const spec of specs) {
      const backend = await openBackend(spec.url, { ...options.backendOptions, ...spec.backendOptions });
      opened.push({ spec, backend });
    }
    if (kind.backupUrl !== undefined) backup = await openBackend(kind.backupUrl, options.backendOptions);
    await refuseOverlaps({ sourceRoot, exclude, destinations: opened.map((o) => o.backend), backup, ledgerDir });
    const fanOut = opened.length > 1;
    await Promise.all(
      [...opened.map((o) => ({ o, b: o.backend })), ...(backup ? [{ o: undefined, b: backup }] : [])].map(async ({ o, b }) => {
        try {
          await ensureReady(b, settings, cancellation);
        } catch (e) {
          // One destination down never stops the others; alone, it stops the run (below).
          if (o === undefined || classifyError(e).code === 'HOLDFAST_E_CANCELLED') throw e;
          o.notReady = classifyError(e);
        }
      }),
    );
    if (opened.every((o) => o.notReady !== undefined)) {
      // Nothing can be done; the destinations' health still says so (status, monitoring).
      if (!settings.dryRun) await recordUnreachable(ledger, target, opened);
      const first = opened[0]?.notReady;
      if (first) throw first;
    }
    if (ledger === undefined) {
      // A dry run changes nothing, not even the ledger: with no ledger yet, plan against an empty one in memory.
      const inMemory = settings.dryRun && !ledgerMayExist(target);
      // A locked ledger (another run migrating or writing) is waited for, with backoff.
      ledger = await withRetry(() => (inMemory ? openLedger({ inMemory: true }) : settings.dryRun ? openForDryRun(target) : openLedgerAt(target)), {
        policy: settings.retry,
        signal: cancellation.signal,
        fallback: 'HOLDFAST_E_LEDGER_OPEN',
      });
    }
    if (backup !== undefined) await refuseBackupOverTracked(ledger, backup);
    const owner = makeOwner();
    unregister = registerOwner(owner);
    const sourceId = await sourceIdentity(sourceRoot, options.sharedSource);
    // Seen by the other workers of the ledger (other processes, other hosts) until the run ends.
    if (!settings.dryRun) presence = await WorkerPresence.start(ledger, { id: owner, command: kind.command, sourceId, heartbeatMs: settings.heartbeatMs });
    const events = options.events ?? new RunEvents();
    const shared: SharedRun = {
      ledger,
      kind,
      settings,
      sourceRoot,
      sourceId,
      exclude,
      owner,
      cancellation,
      requests: new Limiter(settings.transfers),
      events,
      backup,
      tagEvents: fanOut,
      defer: options.defer,
      hashMemo: fanOut ? new HashMemo() : undefined,
    };
    events.emit('run:start', { runId: null, command: kind.command, source: sourceRoot, destination: opened.map((o) => o.backend.url).join(' '), dryRun: settings.dryRun });
    // allSettled: a destination whose pipeline throws (its ledger rows could not be
    // set up) must not leave the others running while the backends are closed.
    const settled = await Promise.allSettled(opened.map((o) => runDestination(shared, o)));
    const sections: DestinationReport[] = [];
    for (const r of settled) {
      if (r.status === 'rejected') throw r.reason;
      sections.push(r.value);
    }
    const report = combineReports(sections, Date.now() - startedAt);
    events.emit('run:done', { report });
    return report;
  } finally {
    await presence?.stop();
    unregister?.();
    cancellation.dispose();
    for (const o of opened) await o.backend.close().catch(() => undefined);
    await backup?.close().catch(() => undefined);
    if (ownsLedger) await ledger?.close().catch(() => undefined);
  }
}

/**
 * A dry run changes nothing, not even the ledger: a SQLite ledger that exists is
 * opened as usual (it is only read), a PostgreSQL one read-only (no migration),
 * and a database with no ledger yet is planned against an empty one in memory.
 */
async function openForDryRun(target: LedgerTarget): Promise<Ledger> {
  if (target.kind === 'sqlite') return openLedgerAt(target);
  try {
    return await openLedgerAt(target, { readOnly: true });
  } catch (e) {
    if (e instanceof HoldfastError && e.code === 'HOLDFAST_E_LEDGER_OPEN' && /no ledger in this database/.test(e.message)) return openLedger({ inMemory: true });
    throw e;
  }
}

/** The ledger's own files are never part of the source, when they lie inside it. */
function withoutLedgerDir(matcher: Matcher, sourceRoot: string, stateDir: string | undefined): Matcher {
  const key = stateDir === undefined ? undefined : ledgerDirKey(sourceRoot, stateDir);
  if (key === undefined) return matcher;
  if (key !== '') return excludingDirectory(matcher, key);
  // The ledger directory is the source root itself: leave out the database and its companions.
  return { excludes: (k, isDir) => (!isDir && isLedgerFile(k)) || matcher.excludes(k, isDir) };
}

/** holdfast.db, holdfast.db-wal, holdfast.db-shm, holdfast.db-journal. */
export function isLedgerFile(name: string): boolean {
  return name === LEDGER_FILE_NAME || (name.startsWith(`${LEDGER_FILE_NAME}-`) && !name.includes('/'));
}

/**
 * The key of the ledger directory below `sourceRoot` ("a/.state"; "" when it
 * is the source root itself), or undefined when it is not inside it.
 */
export function ledgerDirKey(sourceRoot: string, stateDir: string): string | undefined {
  const rel = relative(sourceRoot, resolve(stateDir));
  if (rel.startsWith('..') || isAbsolute(rel)) return undefined;
  return rel.split(sep).join('/');
}

/**
 * Records a failed health check for destinations the ledger already tracks
 * (an unknown URL, perhaps a typo, gets no row). Best effort: the run is
 * failing anyway, and its error is the one to report.
 */
async function recordUnreachable(given: Ledger | undefined, target: LedgerTarget, opened: readonly OpenDestination[]): Promise<void> {
  if (given === undefined && !ledgerMayExist(target)) return;
  let ledger: Ledger | undefined;
  try {
    ledger = given ?? (await openLedgerAt(target));
    for (const o of opened) {
      const row = await ledger.getDestination(o.backend);
      if (row === undefined || o.notReady === undefined) continue;
      await ledger.recordDestinationHealth(row.id, { at: Date.now(), status: 'failed', error: `${o.notReady.code}: ${o.notReady.message}` });
    }
  } catch {
    // The ledger is busy or unreadable: the run's own error says what matters.
  } finally {
    if (given === undefined) await ledger?.close().catch(() => undefined);
  }
}

/** Checks a destination can be used, with retries; a per-file error code here means the whole destination cannot be used. */
async function ensureReady(b: Backend, settings: SyncSettings, cancellation: Cancellation): Promise<void> {
  await withRetry(() => b.ensureReady({ signal: cancellation.signal, readOnly: settings.dryRun }), {
    policy: settings.retry,
    signal: cancellation.signal,
    fallback: 'HOLDFAST_E_DEST_UNREACHABLE',
  }).catch((e: unknown) => {
    const err = classifyError(e, 'HOLDFAST_E_DEST_UNREACHABLE');
    throw err.exitCode === 2 ? new HoldfastError('HOLDFAST_E_DEST_UNREACHABLE', { detail: `${b.url}: ${err.message}` }, { cause: err }) : err;
  });
}

/** What the destinations of one run share. */
interface SharedRun {
  readonly ledger: Ledger;
  readonly kind: TransferKind;
  readonly settings: SyncSettings;
  readonly sourceRoot: string;
  readonly sourceId: string;
  readonly exclude: Matcher;
  readonly owner: string;
  readonly cancellation: Cancellation;
  readonly requests: Limiter;
  readonly events: RunEvents;
  readonly backup: Backend | undefined;
  /** Several destinations: tag every event with its destination. */
  readonly tagEvents: boolean;
  readonly defer: ((file: FileFacts) => boolean) | undefined;
  readonly hashMemo: HashMemo | undefined;
}

/** One destination's pipeline; never throws for a destination-level failure (the section says failed). */
async function runDestination(shared: SharedRun, o: OpenDestination): Promise<DestinationReport> {
  const { ledger, settings, kind } = shared;
  const backend = o.backend;
  const ledgerRetry = { policy: settings.retry, signal: shared.cancellation.signal, fallback: 'HOLDFAST_E_LEDGER_WRITE' as const };
  const destination = settings.dryRun
    ? await ledger.getDestination(backend)
    : await withRetry(() => ledger.ensureDestination(backend), ledgerRetry);
  const run = settings.dryRun
    ? undefined
    : await withRetry(() => ledger.startRun({ command: kind.command, destinationId: destination?.id ?? null, source: shared.sourceRoot, owner: shared.owner }), ledgerRetry);
  const events = shared.tagEvents ? RunEvents.tagged(shared.events, backend.url) : shared.events;
  const breaker = new DestinationBreaker();
  if (o.notReady) breaker.trip(o.notReady);
  const ctx: SyncContext = {
    command: kind.command,
    sourceRoot: shared.sourceRoot,
    sourceId: shared.sourceId,
    exclude: shared.exclude,
    backend,
    ledger,
    destination,
    runId: run?.id ?? null,
    owner: shared.owner,
    settings,
    tally: new RunTally(),
    deletes: { completed: 0, failed: 0, partial: 0, refused: 0 },
    deletion: kind.deletion,
    plan: { files: 0, bytes: 0, keys: new Set() },
    startedAt: Date.now(),
    cancellation: shared.cancellation,
    events,
    stepErrors: [],
    unreadable: new KeyCover(),
    passedOver: new KeyCover(),
    ...(o.spec.select ? { select: o.spec.select } : {}),
    ...(shared.defer ? { defer: shared.defer } : {}),
    ...(shared.hashMemo ? { hashMemo: shared.hashMemo } : {}),
    requests: shared.requests,
    breaker,
  };
  shared.events.emit('destination:start', { destination: backend.url, ...(o.spec.name !== undefined ? { name: o.spec.name } : {}), runId: ctx.runId });
  if (o.notReady) {
    ctx.stepErrors.push({ step: 'ready', key: '', code: o.notReady.code, message: o.notReady.message });
    events.emit('run:notice', { level: 'warn', message: `${backend.url}: ${o.notReady.message}; its files are queued in the ledger for the next run` });
  }
  let report: RunReport | undefined;
  const steps = kind.deletion ? [recoverStep, planStep, uploadStep, deleteStep(shared.backup ? { backup: shared.backup } : {})] : [recoverStep, planStep, uploadStep];
  await new Pipeline<SyncContext>([...steps, finalizeStep((r) => (report = r))]).run(ctx);
  if (report === undefined) throw new HoldfastError('HOLDFAST_E_INTERNAL', { detail: 'the run ended without a report' });
  const section: DestinationReport = {
    destination: backend.url,
    ...(o.spec.name !== undefined ? { name: o.spec.name } : {}),
    ...(ctx.runId !== null ? { runId: ctx.runId } : {}),
    ...report,
  };
  shared.events.emit('destination:done', { destination: backend.url, report: section });
  return section;
}

/** The settings given in `options`, defaults for the rest (undefined does not override a default). */
function pickSettings(options: Partial<SyncSettings>): SyncSettings {
  const out: Record<string, unknown> = { ...DEFAULT_SETTINGS };
  for (const name of Object.keys(DEFAULT_SETTINGS) as (keyof SyncSettings)[]) {
    if (options[name] !== undefined) out[name] = options[name];
  }
  return out as unknown as SyncSettings;
}
