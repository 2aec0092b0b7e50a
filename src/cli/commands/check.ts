// `holdfast check <source-dir> <destination-url>`: compares the source, the
// ledger and the destination listing and reports disagreements by category.
// Exit 0: everything agrees; 2: inconsistencies found; 3: the check could not run.

import { setMaxListeners } from 'node:events';
import { Option, type Command } from 'commander';
import { EXIT } from '../../core/errors.js';
import { DEFAULT_RETRY } from '../../engine/retry.js';
import { CHECK_CATEGORIES, DEFAULT_MAX_FINDINGS, check, type CheckCategory, type CheckFindings, type CheckReport } from '../../sync/check.js';
import { collect, durationArg, err, failCommand, intArg, ledgerChoiceFrom, out, pathArg, percentArg, transfersArg, wholeNumberArg } from '../common.js';
import { displayKey, formatBytes, formatDuration } from '../format.js';
import { addDestinationOptions, backendOptionsFrom } from './transfer.js';

interface CheckFlags {
  state?: string;
  ledger?: string;
  s3Endpoint?: string;
  s3PathStyle?: boolean;
  s3Region?: string;
  exclude: string[];
  followSymlinks?: boolean;
  download?: boolean;
  sample?: number;
  olderThan: number;
  maxFindings: number;
  transfers?: number;
  retries: number;
  json?: boolean;
}

/** One line per category: what it means and who repairs it. */
export const CATEGORY_HELP: Readonly<Record<CheckCategory, string>> = {
  missing: 'source files not on the destination yet (push uploads them)',
  orphanedObjects: 'objects the ledger does not know (cleanup deletes or adopts them)',
  orphanedRecords: 'completed in the ledger, absent from the destination (cleanup requeues them)',
  mismatches: 'objects that differ from the ledger: size, etag or sha256',
  changedLocally: 'source files changed since their upload (push uploads them)',
  staleUploads: 'multipart uploads unknown to the ledger (cleanup aborts them)',
  unreadable: 'source entries or objects that could not be read',
};

export function registerCheck(program: Command): void {
  const cmd = program
    .command('check')
    .description('Compare a directory, the ledger and the destination, and report where they disagree (changes nothing).')
    .argument('<source-dir>', 'the local directory that is pushed to the destination', pathArg)
    .argument('<destination-url>', 'file:///absolute/path, s3://bucket/prefix, azure://container/prefix or gdrive://folder-id');
  addDestinationOptions(cmd)
    .option('--exclude <glob>', 'leave out matching paths, as push does (repeatable; .holdfastignore is read too)', collect, [] as string[])
    .option('--follow-symlinks', 'follow symbolic links, as push --follow-symlinks does')
    .option('--download', 're-read every object and compare its SHA-256 with the ledger (slow: reads everything)')
    .option('--sample <percent>', 're-read this share of the objects, least recently verified first (e.g. 10%)', percentArg)
    .addOption(new Option('--older-than <duration>', 'multipart uploads unknown to the ledger count as stale after this long').argParser(durationArg).default(24 * 3_600_000, '24h'))
    .option('--max-findings <n>', 'findings kept per category (counts are always exact)', wholeNumberArg(0), DEFAULT_MAX_FINDINGS)
    .option('--transfers <n>', 'parallel reads for --download and --sample, 1 to 1024', transfersArg)
    .option('--retries <n>', 'attempts per operation for transient errors', intArg, 5)
    .option('--json', 'print the report as one JSON object on stdout')
    .addHelpText(
      'after',
      `
Categories:
${CHECK_CATEGORIES.map((c) => `  ${c.padEnd(16)} ${CATEGORY_HELP[c]}`).join('\n')}

The comparison streams all three sides in key order: memory stays flat however many objects
there are. Without --download or --sample no object is read, only listed (size and etag).
check writes nothing to the ledger except the verification time of objects it re-read; without
--download or --sample it opens the ledger read-only (nothing created, migrated or written).
Numbers are digits only: --older-than 24h, 90m, 2d (whole number, unit ms/s/m/h/d).

Examples:
  holdfast check ./photos s3://my-bucket/photos
  holdfast check ./photos s3://my-bucket/photos --sample 5% --json
  holdfast cleanup s3://my-bucket/photos            # what would be repaired

Exit codes:
  0    consistent: source, ledger and destination agree
  1    usage error
  2    inconsistencies found (listed)
  3    could not run: source missing, destination or ledger unreachable
  130  cancelled (Ctrl-C)`,
    )
    .action(async (source: string, destination: string, flags: CheckFlags) => {
      process.exitCode = await runCheckCommand(source, destination, flags);
    });
}

async function runCheckCommand(source: string, destination: string, flags: CheckFlags): Promise<number> {
  // Nothing to drain: the first Ctrl-C stops the check.
  const controller = new AbortController();
  // Every parallel read listens to this one signal (and its retries' sleeps do too).
  setMaxListeners(16 + 4 * (flags.transfers ?? 8), controller.signal);
  const onSignal = (): void => {
    err('\ninterrupted: stopping the check\n');
    controller.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let report: CheckReport;
  try {
    report = await check({
      source,
      destination,
      ...ledgerChoiceFrom(flags),
      exclude: flags.exclude,
      followSymlinks: flags.followSymlinks === true,
      backendOptions: backendOptionsFrom(flags),
      download: flags.download === true,
      ...(flags.sample !== undefined ? { samplePercent: flags.sample } : {}),
      olderThanMs: flags.olderThan,
      maxFindings: flags.maxFindings,
      ...(flags.transfers !== undefined ? { transfers: flags.transfers } : {}),
      retry: { ...DEFAULT_RETRY, attempts: flags.retries },
      signal: controller.signal,
    });
  } catch (e) {
    const code = failCommand(e, flags.json === true);
    // Exit 2 means "inconsistent" here; an error that stopped the check means it could not run.
    return code === EXIT.partial ? EXIT.cannotRun : code;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  out(`${flags.json === true ? JSON.stringify(report) : textCheckReport(report)}\n`);
  return report.status === 'consistent' ? EXIT.ok : EXIT.partial;
}

/** A one-line description of a finding, after its key. */
function describe(category: CheckCategory, f: CheckFindings[CheckCategory][number]): string {
  switch (category) {
    case 'missing': {
      const m = f as CheckFindings['missing'][number];
      return `${formatBytes(m.size)}, ${m.ledgerStatus === null ? 'not in the ledger' : `ledger: ${m.ledgerStatus}`}`;
    }
    case 'orphanedObjects': {
      const o = f as CheckFindings['orphanedObjects'][number];
      return `${formatBytes(o.size)}, ${o.ledgerStatus === null ? 'no ledger row' : `ledger: ${o.ledgerStatus}`}`;
    }
    case 'orphanedRecords': {
      const r = f as CheckFindings['orphanedRecords'][number];
      return `${r.size === null ? '?' : formatBytes(r.size)} recorded as uploaded`;
    }
    case 'mismatches': {
      const m = f as CheckFindings['mismatches'][number];
      const parts = m.reasons.map((r) =>
        r === 'size'
          ? `size ${m.ledger.size ?? '?'} in the ledger, ${m.destination.size} on the destination`
          : r === 'etag'
            ? `etag ${m.ledger.etag ?? '?'} in the ledger, ${m.destination.etag ?? '?'} on the destination`
            : `sha256 ${(m.ledger.sha256 ?? '?').slice(0, 12)}… in the ledger, ${(m.destination.sha256 ?? '?').slice(0, 12)}… read back`,
      );
      return parts.join('; ');
    }
    case 'changedLocally': {
      const c = f as CheckFindings['changedLocally'][number];
      const what = c.ledger.size !== c.source.size ? `size ${c.ledger.size ?? '?'} → ${c.source.size}` : 'modified time changed';
      return what;
    }
    case 'staleUploads': {
      const s = f as CheckFindings['staleUploads'][number];
      return `upload ${s.uploadId}${s.initiatedAt !== null ? `, started ${s.initiatedAt}` : ''}`;
    }
    case 'unreadable': {
      const u = f as CheckFindings['unreadable'][number];
      return `${u.side}: ${u.code}: ${u.message}`;
    }
  }
}

export function textCheckReport(r: CheckReport): string {
  const lines: string[] = [];
  lines.push(`check of ${r.destination}${r.source !== null ? ` against ${r.source}` : ''}`);
  lines.push('');
  lines.push(`  ${'category'.padEnd(16)} ${'count'.padStart(7)}`);
  for (const c of CHECK_CATEGORIES) {
    const not = r.unchecked[c];
    lines.push(`  ${c.padEnd(16)} ${(not !== undefined ? '-' : String(r.counts[c])).padStart(7)}  ${not !== undefined ? `not checked: ${not}` : CATEGORY_HELP[c]}`);
  }
  lines.push('');
  const s = r.scanned;
  const reread = s.reread > 0 ? `; re-read ${s.reread} object(s) (${formatBytes(s.bytesReread)}), ${s.verified} verified` : '';
  const busy = s.inProgress > 0 ? `; ${s.inProgress} key(s) skipped: a run is working on them` : '';
  lines.push(`scanned ${s.files} file(s), ${s.rows} ledger row(s), ${s.objects} object(s)${reread}${busy} — ${formatDuration(r.durationMs)}`);
  for (const n of r.notes) lines.push(`note: ${n}`);
  const total = CHECK_CATEGORIES.reduce((n, c) => n + r.counts[c], 0);
  lines.push(r.status === 'consistent' ? 'consistent: source, ledger and destination agree' : `inconsistent: ${total} finding(s)`);
  for (const c of CHECK_CATEGORIES) {
    const list = r.findings[c];
    if (r.counts[c] === 0) continue;
    lines.push('');
    lines.push(`${c} (${r.counts[c]}):`);
    const shown = list.slice(0, 50);
    for (const f of shown) lines.push(`  ${displayKey(f.key)}  (${describe(c, f)})`);
    if (r.counts[c] > shown.length) {
      lines.push(`  ... and ${r.counts[c] - shown.length} more (${r.truncated[c] ? `--json lists the first ${list.length}; raise --max-findings for more` : 'use --json for all'})`);
    }
  }
  if (r.status === 'inconsistent') {
    const hints: string[] = [];
    if (r.counts.missing + r.counts.changedLocally > 0) hints.push('`holdfast push` uploads missing and changed files');
    if (r.counts.orphanedObjects + r.counts.orphanedRecords + r.counts.staleUploads + r.counts.mismatches > 0) {
      hints.push('`holdfast cleanup` shows how it would repair the rest (add --apply to do it)');
    }
    if (hints.length > 0) lines.push('', ...hints);
  }
  return lines.join('\n');
}
