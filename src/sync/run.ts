// Running a transfer: opens the destination and the ledger, builds the shared
// context, and runs the pipeline recover → plan → upload [→ delete] → finalize.
// `push` (src/sync/push.ts) and `sync` (src/sync/sync.ts) are the two ways in.

import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { BackendOptions } from '../backends/backend.js';
import { openBackend } from '../backends/registry.js';
import { HoldfastError, classifyError } from '../core/errors.js';
import type { RunReport } from '../core/report.js';
import { Cancellation } from '../engine/cancellation.js';
import { RunEvents } from '../engine/events.js';
import { Pipeline, type StepError } from '../engine/pipeline.js';
import { withRetry } from '../engine/retry.js';
import type { Ledger } from '../ledger/ledger.js';
import { defaultStateDir, openLedger } from '../ledger/open.js';
import { compileExcludes } from '../scan/ignore.js';
import { DEFAULT_SETTINGS, type DeletionPolicy, type SyncContext, type SyncSettings } from './context.js';
import { deleteStep } from './delete.js';
import { finalizeStep } from './finalize.js';
import { makeOwner, registerOwner } from './owner.js';
import { planStep } from './plan.js';
import { recoverStep } from './recover.js';
import { RunTally } from './tally.js';
import { uploadStep } from './upload.js';

export interface TransferOptions extends Partial<SyncSettings> {
  /** The local directory to copy. */
  readonly source: string;
  /** Destination URL: file:///path, s3://bucket/prefix. */
  readonly destination: string;
  /** An open ledger to use (the caller keeps ownership); else one is opened in `stateDir`. */
  readonly ledger?: Ledger;
  /** Directory of the SQLite ledger (default: $HOLDFAST_STATE, $XDG_STATE_HOME/holdfast, ~/.local/state/holdfast). */
  readonly stateDir?: string;
  /** Glob patterns to leave out (gitignore-like); `.holdfastignore` in the source root is read too. */
  readonly exclude?: readonly string[];
  readonly backendOptions?: BackendOptions;
  /** Aborts in-flight transfers at once (a multipart upload stays resumable). */
  readonly signal?: AbortSignal;
  /** Stops starting new work; in-flight transfers get `drainMs` to finish. */
  readonly stopSignal?: AbortSignal;
  readonly drainMs?: number;
  /** Receives the run's events (progress, per-file results). */
  readonly events?: RunEvents;
}

function checkSettings(s: SyncSettings): void {
  const positiveInt = (name: string, v: number, max: number): void => {
    if (!Number.isInteger(v) || v < 1 || v > max) throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `${name} must be an integer from 1 to ${max}, got ${v}` });
  };
  positiveInt('transfers', s.transfers, 1024);
  positiveInt('partSize', s.partSize, 5 * 1024 ** 3);
  positiveInt('multipartThreshold', s.multipartThreshold, Number.MAX_SAFE_INTEGER);
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

export async function runTransfer(options: TransferOptions, kind: TransferKind): Promise<RunReport> {
  const settings = pickSettings(options);
  checkSettings(settings);
  const sourceRoot = resolve(options.source);
  const st = await stat(sourceRoot).catch(() => undefined);
  if (!st?.isDirectory()) throw new HoldfastError('HOLDFAST_E_SOURCE_MISSING', { path: options.source });
  const exclude = compileExcludes([...(options.exclude ?? [])], { ignoreFile: join(sourceRoot, '.holdfastignore') });

  const backend = await openBackend(options.destination, options.backendOptions);
  const backup = kind.backupUrl !== undefined ? await openBackend(kind.backupUrl, options.backendOptions) : undefined;
  let ledger = options.ledger;
  const ownsLedger = ledger === undefined;
  const cancellation = new Cancellation({ signal: options.signal, stopSignal: options.stopSignal, drainMs: options.drainMs });
  let unregister: (() => void) | undefined;
  try {
    for (const b of backup ? [backend, backup] : [backend]) {
      await withRetry(() => b.ensureReady({ signal: cancellation.signal, readOnly: settings.dryRun }), {
        policy: settings.retry,
        signal: cancellation.signal,
        fallback: 'HOLDFAST_E_DEST_UNREACHABLE',
      }).catch((e: unknown) => {
        const err = classifyError(e, 'HOLDFAST_E_DEST_UNREACHABLE');
        // A per-file code here means the destination as a whole cannot be used.
        throw err.exitCode === 2 ? new HoldfastError('HOLDFAST_E_DEST_UNREACHABLE', { detail: `${b.url}: ${err.message}` }, { cause: err }) : err;
      });
    }
    if (ledger === undefined) {
      const stateDir = options.stateDir ?? defaultStateDir();
      // A dry run changes nothing, not even the ledger: with no ledger yet, plan against an empty one in memory.
      const inMemory = settings.dryRun && !existsSync(join(stateDir, 'holdfast.db'));
      // A locked ledger (another run migrating or writing) is waited for, with backoff.
      ledger = await withRetry(() => openLedger(inMemory ? { inMemory: true } : { stateDir }), { policy: settings.retry, signal: cancellation.signal, fallback: 'HOLDFAST_E_LEDGER_OPEN' });
    }
    const open = ledger;
    const ledgerRetry = { policy: settings.retry, signal: cancellation.signal, fallback: 'HOLDFAST_E_LEDGER_WRITE' as const };
    const destination = settings.dryRun
      ? await open.getDestination(backend.url)
      : await withRetry(() => open.ensureDestination(backend.url, backend.kind), ledgerRetry);
    const owner = makeOwner();
    unregister = registerOwner(owner);
    const command = kind.command;
    const run = settings.dryRun ? undefined : await withRetry(() => open.startRun({ command, destinationId: destination?.id ?? null, source: sourceRoot, owner }), ledgerRetry);
    const events = options.events ?? new RunEvents();
    const stepErrors: StepError[] = [];
    const ctx: SyncContext = {
      command,
      sourceRoot,
      exclude,
      backend,
      ledger,
      destination,
      runId: run?.id ?? null,
      owner,
      settings,
      tally: new RunTally(),
      deletes: { completed: 0, failed: 0, partial: 0, refused: 0 },
      deletion: kind.deletion,
      plan: { files: 0, bytes: 0, keys: new Set() },
      startedAt: Date.now(),
      cancellation,
      events,
      stepErrors,
      scanErrorPrefixes: [],
    };
    events.emit('run:start', { runId: ctx.runId, command, source: sourceRoot, destination: backend.url, dryRun: settings.dryRun });
    let report: RunReport | undefined;
    const steps = kind.deletion ? [recoverStep, planStep, uploadStep, deleteStep(backup ? { backup } : {})] : [recoverStep, planStep, uploadStep];
    await new Pipeline<SyncContext>([...steps, finalizeStep((r) => (report = r))]).run(ctx);
    if (report === undefined) throw new HoldfastError('HOLDFAST_E_INTERNAL', { detail: 'the run ended without a report' });
    return report;
  } finally {
    unregister?.();
    cancellation.dispose();
    await backend.close().catch(() => undefined);
    await backup?.close().catch(() => undefined);
    if (ownsLedger) await ledger?.close().catch(() => undefined);
  }
}

/** The settings given in `options`, defaults for the rest (undefined does not override a default). */
function pickSettings(options: Partial<SyncSettings>): SyncSettings {
  const out: Record<string, unknown> = { ...DEFAULT_SETTINGS };
  for (const name of Object.keys(DEFAULT_SETTINGS) as (keyof SyncSettings)[]) {
    if (options[name] !== undefined) out[name] = options[name];
  }
  return out as unknown as SyncSettings;
}
