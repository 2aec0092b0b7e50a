// `holdfast pull <destination-url> <dir>`: restore a destination into a local
// directory, every object verified against its holdfast-sha256.

import type { Command } from 'commander';
import { RunEvents } from '../../engine/events.js';
import { DEFAULT_RETRY } from '../../engine/retry.js';
import { pull, type PullReport } from '../../sync/pull.js';
import { EXIT_CODES_HELP, exitCodeFor, failCommand, intArg, interruptSignals, ledgerChoiceFrom, out, pathArg, transfersArg, timerSecondsArg } from '../common.js';
import { displayKey, formatBytes, formatDuration } from '../format.js';
import { attachCliProgress } from '../progress.js';
import { oneLine } from '../table.js';
import { addDestinationOptions, backendOptionsFrom } from './transfer.js';

interface PullFlags {
  state?: string;
  s3Endpoint?: string;
  s3PathStyle?: boolean;
  s3Region?: string;
  prefix?: string;
  dryRun?: boolean;
  verifiedOnly?: boolean;
  /** --ledger URL, or false with --no-ledger. */
  ledger?: string | false;
  transfers?: number;
  retries: number;
  fsync: boolean;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  drainTimeout: number;
}

export function registerPull(program: Command): void {
  const cmd = program
    .command('pull')
    .description('Restore a destination into a local directory, verifying every object against its SHA-256.')
    .argument('<destination-url>', 'file:///absolute/path, s3://bucket/prefix, azure://container/prefix or gdrive://folder-id to restore from')
    .argument('<dir>', 'local directory to restore into (created if missing)', pathArg);
  addDestinationOptions(cmd)
    .option('--prefix <key-prefix>', 'restore only objects whose key starts with this (they keep their full key as path)')
    .option('-n, --dry-run', 'list what would be downloaded and why; write nothing')
    .option('--verified-only', 'skip objects without holdfast-sha256 (not written by Holdfast) instead of restoring them unverified')
    .option('--no-ledger', 'ignore the ledger even if there is one: verify against the destination alone')
    .option('--transfers <n>', 'parallel downloads, 1 to 1024 (default 16)', transfersArg)
    .option('--retries <n>', 'attempts per operation for transient errors (network, 5xx, throttling)', intArg, 5)
    .option('--no-fsync', 'do not fsync restored files (faster, not crash-safe; for tests)')
    .option('--json', 'print the final report as one JSON object on stdout (progress goes to stderr)')
    .option('-q, --quiet', 'no progress; errors and the final report only')
    .option('-v, --verbose', 'a line for every file')
    .option('--drain-timeout <seconds>', 'after Ctrl-C, how long in-flight downloads may finish before they are aborted', timerSecondsArg, 30)
    .addHelpText(
      'after',
      `
Each file is written to a temporary name, checked against the object's holdfast-sha256,
given its original modification time, and only then renamed into place: a damaged object
is reported (HOLDFAST_E_CHECKSUM) and leaves nothing at its path. Files already identical
locally are skipped, so running the same command again resumes an interrupted restore.
With a ledger for the destination (--state), hashes come from it and save a request per
object; without one (a fresh machine) the destination alone is enough. An object the
ledger recorded as uploaded must match that record (unless it carries its own
holdfast-sha256): one replaced by another tool fails with HOLDFAST_E_CHECKSUM.
Nothing is written through a symbolic link in <dir>: a link at a file's name is
replaced, and a folder swapped for a link while pull runs fails the file.

Examples:
  holdfast pull s3://my-bucket/photos ./photos-restored
  holdfast pull s3://my-bucket/photos ./photos-restored --prefix 2024/ --dry-run
  holdfast pull file:///mnt/backup/photos ./photos --json

${EXIT_CODES_HELP.trimStart()}

Ctrl-C once stops starting new downloads and lets in-flight ones finish; twice aborts them
and ends the process within seconds, even if a file operation never returns.`,
    )
    .action(async (destination: string, dir: string, flags: PullFlags) => {
      process.exitCode = await runPull(destination, dir, flags);
    });
}

async function runPull(destination: string, dir: string, flags: PullFlags): Promise<number> {
  const events = new RunEvents();
  const detach = attachCliProgress(events, flags);
  const signals = interruptSignals(flags.drainTimeout);
  let report: PullReport;
  try {
    report = await pull({
      destination,
      target: dir,
      ...(flags.prefix !== undefined ? { prefix: flags.prefix } : {}),
      ...ledgerChoiceFrom({ ...(flags.state !== undefined ? { state: flags.state } : {}), ...(typeof flags.ledger === 'string' ? { ledger: flags.ledger } : {}) }),
      useLedger: flags.ledger !== false,
      dryRun: flags.dryRun === true,
      verifiedOnly: flags.verifiedOnly === true,
      ...(flags.transfers !== undefined ? { transfers: flags.transfers } : {}),
      retry: { ...DEFAULT_RETRY, attempts: flags.retries },
      fsync: flags.fsync,
      backendOptions: backendOptionsFrom({ s3Endpoint: flags.s3Endpoint, s3PathStyle: flags.s3PathStyle, s3Region: flags.s3Region }),
      signal: signals.abort,
      stopSignal: signals.stop,
      drainMs: flags.drainTimeout * 1000,
      events,
    });
  } catch (e) {
    detach();
    return failCommand(e, flags.json === true);
  } finally {
    signals.dispose();
  }
  detach();
  const extra = { destination, target: dir, dryRun: flags.dryRun === true };
  if (flags.json) out(`${JSON.stringify({ ...report, ...extra })}\n`);
  else out(`${pullTextReport(report, extra)}\n`);
  return exitCodeFor(report);
}

export function pullTextReport(report: PullReport, extra: { destination: string; target: string; dryRun: boolean }): string {
  const lines: string[] = [];
  const d = report.downloads;
  if (extra.dryRun) {
    const plan = report.plan ?? [];
    for (const p of plan) lines.push(`would download  ${p.reason.padEnd(9)} ${formatBytes(p.size).padStart(10)}  ${displayKey(p.key)}${p.verified ? '' : '  (unverifiable)'}`);
    const bytes = plan.reduce((n, p) => n + p.size, 0);
    lines.push(`dry run: would download ${plan.length} file(s) (${formatBytes(bytes)}) from ${extra.destination} into ${extra.target}; ${d.skipped} already identical; nothing was changed`);
  } else {
    const unverified = d.unverified > 0 ? ` (${d.unverified} unverified)` : '';
    lines.push(`${report.status}: ${d.completed} downloaded${unverified} (${formatBytes(report.bytes)}), ${d.skipped} already identical, ${d.failed} failed — ${formatDuration(report.durationMs)}`);
  }
  if (report.errors.length > 0) {
    lines.push(`${report.errors.length} error(s):`);
    const shown = report.errors.slice(0, 50);
    for (const e of shown) lines.push(`  ${e.key ? `${displayKey(e.key)}: ` : ''}${e.code}: ${oneLine(e.message)}`);
    if (report.errors.length > shown.length) lines.push(`  ... and ${report.errors.length - shown.length} more (use --json for all)`);
  }
  if (d.unverified > 0) {
    lines.push(`NOTE: ${d.unverified} object(s) had no holdfast-sha256 (not written by Holdfast) and were restored without verification; --verified-only skips them.`);
  }
  const damaged = report.errors.filter((e) => e.code === 'HOLDFAST_E_CHECKSUM').length;
  if (damaged > 0) {
    lines.push(`NOTE: ${damaged} object(s) do not match their holdfast-sha256: the stored object is damaged or was replaced behind Holdfast's back.`);
    lines.push('      Nothing was written at their paths. Restore those files from another copy, or push them again from a good source.');
  }
  if ((report.status === 'partial' || report.status === 'failed') && report.errors.length > damaged) {
    lines.push('Files that failed were not written; run the same command again to retry them.');
  }
  if (report.status === 'cancelled') lines.push('Cancelled: files already restored are complete; run the same command again to continue.');
  return lines.join('\n');
}
