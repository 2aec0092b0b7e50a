// `holdfast cleanup <destination-url>`: repairs what `check` finds. Dry run by
// default (prints what it would do); --apply acts, every action recorded in
// the ledger's history.

import { Option, type Command } from 'commander';
import { EXIT } from '../../core/errors.js';
import { DEFAULT_RETRY } from '../../engine/retry.js';
import { DEFAULT_MAX_FINDINGS } from '../../sync/check.js';
import { cleanup, type CleanupAction, type CleanupReport } from '../../sync/cleanup.js';
import { collect, durationArg, failCommand, intArg, interruptSignals, ledgerChoiceFrom, maxDeleteArg, out, pathArg, transfersArg, timerSecondsArg } from '../common.js';
import { displayKey, formatDuration } from '../format.js';
import { registerCheck } from './check.js';
import { addDestinationOptions, backendOptionsFrom } from './transfer.js';

interface CleanupFlags {
  state?: string;
  ledger?: string;
  s3Endpoint?: string;
  s3PathStyle?: boolean;
  s3Region?: string;
  apply?: boolean;
  source?: string;
  adopt?: boolean;
  deleteOrphans?: boolean;
  deleteOtherLedgers?: boolean;
  requeueMismatches?: boolean;
  download?: boolean;
  maxDelete: string;
  olderThan: number;
  exclude: string[];
  followSymlinks?: boolean;
  transfers?: number;
  retries: number;
  fsync: boolean;
  json?: boolean;
  drainTimeout: number;
}

/** Registers `check` and `cleanup` (they come as a pair: cleanup acts on what check finds). */
export function registerCheckAndCleanup(program: Command): void {
  registerCheck(program);
  registerCleanup(program);
}

export function registerCleanup(program: Command): void {
  const cmd = program
    .command('cleanup')
    .description('Repair what `check` finds: delete or adopt orphaned objects, requeue orphaned records, abort stale uploads (dry run unless --apply).')
    .argument('<destination-url>', 'file:///absolute/path, s3://bucket/prefix, azure://container/prefix or gdrive://folder-id');
  addDestinationOptions(cmd)
    .option('--apply', 'act; without it cleanup only prints what it would do and changes nothing')
    .option('--source <dir>', 'the source directory (needed by --adopt only)', pathArg)
    .option('--adopt', 'record orphaned objects that equal the source file of the same key (holdfast-sha256) instead of deleting them')
    .option('--delete-orphans', 'with --adopt: also delete orphaned objects that could not be adopted')
    .option(
      '--delete-other-ledgers',
      'also delete objects that carry holdfast-sha256 but that this ledger does not track (written by Holdfast under another ledger: another host, a lost state directory); kept by default, since someone else may be tracking them',
    )
    .option('--requeue-mismatches', 'requeue objects that differ from the ledger (size, etag; with --download also content), so the next push sends them again')
    .option('--download', 're-read every object, as check --download does, so content mismatches are found too')
    .option('--max-delete <n|n%>', 'most deletions per run, a count or a percentage of tracked objects; above it nothing is deleted', maxDeleteArg, '50%')
    .addOption(new Option('--older-than <duration>', 'multipart uploads unknown to the ledger count as stale after this long').argParser(durationArg).default(24 * 3_600_000, '24h'))
    .option('--exclude <glob>', 'with --source: leave out matching paths, as push does (repeatable)', collect, [] as string[])
    .option('--follow-symlinks', 'with --source: follow symbolic links')
    .option('--transfers <n>', 'parallel requests (heads, deletes), 1 to 1024', transfersArg)
    .option('--retries <n>', 'attempts per operation for transient errors', intArg, 5)
    .option('--no-fsync', 'file:// destinations: do not fsync after deletes (for tests)')
    .option('--json', 'print the report as one JSON object on stdout')
    .option('--drain-timeout <seconds>', 'after Ctrl-C, how long in-flight deletes may finish', timerSecondsArg, 30)
    .addHelpText(
      'after',
      `
What cleanup does, per category of \`holdfast check\`:
  orphanedObjects  deleted, two-phase (recorded as delete_pending, then deleted and recorded).
                   With --adopt --source DIR: an object whose holdfast-sha256 equals the source
                   file of the same key is recorded as uploaded instead; the others are left
                   alone unless --delete-orphans is also given.
  orphanedRecords  after a second look (head) confirms the object is gone: back to pending,
                   so the next push uploads it again.
  mismatches       left alone, unless --requeue-mismatches (add --download to find content
                   mismatches the listing cannot show).
  staleUploads     aborted (multipart uploads no ledger row references, older than --older-than).
  missing, changedLocally: nothing; \`holdfast push\` uploads them.

Safety: never deletes an object whose key has a live ledger row; never touches rows a run is
working on; above --max-delete nothing is deleted at all.

Examples:
  holdfast cleanup s3://my-bucket/photos                       # dry run: what would be done
  holdfast cleanup s3://my-bucket/photos --apply
  holdfast cleanup s3://my-bucket/photos --adopt --source ./photos --apply

Exit codes:
  0    done (or, dry run, nothing refused)
  1    usage error
  2    some actions failed, or deletions were refused by --max-delete
  3    could not run: destination or ledger unreachable
  130  cancelled (Ctrl-C)`,
    )
    .action(async (destination: string, flags: CleanupFlags) => {
      process.exitCode = await runCleanupCommand(destination, flags);
    });
}

async function runCleanupCommand(destination: string, flags: CleanupFlags): Promise<number> {
  const signals = interruptSignals(flags.drainTimeout);
  let report: CleanupReport;
  try {
    report = await cleanup({
      destination,
      ...(flags.source !== undefined ? { source: flags.source } : {}),
      ...ledgerChoiceFrom(flags),
      apply: flags.apply === true,
      adopt: flags.adopt === true,
      deleteOrphans: flags.deleteOrphans === true,
      deleteOtherLedgers: flags.deleteOtherLedgers === true,
      requeueMismatches: flags.requeueMismatches === true,
      download: flags.download === true,
      maxDelete: flags.maxDelete,
      olderThanMs: flags.olderThan,
      exclude: flags.exclude,
      followSymlinks: flags.followSymlinks === true,
      backendOptions: backendOptionsFrom(flags),
      ...(flags.transfers !== undefined ? { transfers: flags.transfers } : {}),
      retry: { ...DEFAULT_RETRY, attempts: flags.retries },
      maxItems: DEFAULT_MAX_FINDINGS,
      signal: signals.abort,
      stopSignal: signals.stop,
      drainMs: flags.drainTimeout * 1000,
    });
  } catch (e) {
    const code = failCommand(e, flags.json === true);
    return code === EXIT.partial ? EXIT.cannotRun : code;
  } finally {
    signals.dispose();
  }
  out(`${flags.json === true ? JSON.stringify(report) : textCleanupReport(report)}\n`);
  if (report.status === 'cancelled') return EXIT.cancelled;
  return report.status === 'completed' ? EXIT.ok : EXIT.partial;
}

const LABEL: Readonly<Record<CleanupAction, [dry: string, done: string]>> = {
  delete: ['would delete ', 'deleted      '],
  adopt: ['would adopt  ', 'adopted      '],
  requeue: ['would requeue', 'requeued     '],
  abort: ['would abort  ', 'aborted      '],
  leave: ['leave alone  ', 'left alone   '],
};

export function textCleanupReport(r: CleanupReport): string {
  const lines: string[] = [];
  lines.push(`cleanup of ${r.destination}${r.dryRun ? ' (dry run: nothing is changed)' : ''}`);
  const shown = r.items.slice(0, 200);
  for (const item of shown) {
    const upload = item.uploadId !== undefined ? ` [upload ${item.uploadId}]` : '';
    lines.push(`  ${LABEL[item.action][r.dryRun ? 0 : 1]}  ${displayKey(item.key)}${upload}  — ${item.reason}`);
  }
  const total = Object.values(r.planned).reduce((n, c) => n + c, 0);
  if (total > shown.length) lines.push(`  ... and ${total - shown.length} more${r.truncated ? ` (--json lists the first ${r.items.length})` : ' (use --json for all)'}`);
  const p = r.planned;
  const pending = r.pendingDeletes > 0 ? ` (+${r.pendingDeletes} pending from an earlier run)` : '';
  if (r.dryRun) {
    lines.push(`dry run: would delete ${p.delete}${pending}, adopt ${p.adopt}, requeue ${p.requeue}, abort ${p.abort}; leave ${p.leave} alone${r.refused > 0 ? `; ${r.refused} deletion(s) refused` : ''}`);
  } else {
    const d = r.done;
    lines.push(
      `${r.status}: deleted ${d.deleted}, adopted ${d.adopted}, requeued ${d.requeued}, aborted ${d.aborted}; left ${p.leave} alone${r.refused > 0 ? `; ${r.refused} deletion(s) refused` : ''} — ${formatDuration(r.durationMs)}`,
    );
  }
  for (const n of r.notes) lines.push(`note: ${n}`);
  if (r.errors.length > 0) {
    lines.push(`${r.errors.length} error(s):`);
    for (const e of r.errors.slice(0, 50)) lines.push(`  ${e.key ? `${displayKey(e.key)}: ` : ''}${e.code}: ${e.message}`);
  }
  if (p.requeue > 0 && !r.dryRun) lines.push('Requeued objects are uploaded again by the next `holdfast push`.');
  if (r.dryRun && total - p.leave > 0) lines.push('Run again with --apply to do it.');
  if (total === 0 && r.pendingDeletes === 0) lines.push('nothing to clean up');
  return lines.join('\n');
}
