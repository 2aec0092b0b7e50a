// `holdfast watch <source-dir> <destination-url>...`: keep pushing new and
// changed files as they appear, once they have stopped changing; survive
// destination outages; stop cleanly on Ctrl-C / SIGTERM.

import type { Command } from 'commander';
import { EXIT, HoldfastError } from '../../core/errors.js';
import type { RunReport } from '../../core/report.js';
import { RunEvents } from '../../engine/events.js';
import { TEMP_FILE_PATTERNS, watch, type WatchRound } from '../../sync/watch.js';
import { INPUT_RULES_HELP, err, failCommand, interruptSignals, out, pathArg, secondsArg, textArg } from '../common.js';
import { displayKey, formatBytes, formatDuration } from '../format.js';
import { attachCliProgress } from '../progress.js';
import { addTransferOptions, transferOptionsFrom, type TransferFlags } from './transfer.js';
import { CONFIG_OPTION_HELP, givenFlags, overridesFrom } from './run.js';
import { formatWarnings, jobOptions, loadConfig } from '../../config/index.js';
import { redactUrl } from '../../backends/registry.js';
import type { TransferOptions } from '../../sync/run.js';

interface WatchFlags extends TransferFlags {
  job?: string;
  config?: string;
  quietPeriod: number;
  rescan: number;
  retryMax: number;
  includeTempFiles?: boolean;
}

export function registerWatch(program: Command): void {
  const cmd = program
    .command('watch')
    .description('Keep pushing new and changed files to one or more destinations as they appear (never deletes).')
    .argument('[source-dir]', 'local directory to watch (or --job)', pathArg)
    .argument('[destination-url...]', 'one or more destination URLs (file://, s3://, azure://, gdrive://)')
    .option('--job <name>', "watch a job of the configuration file: its source, destinations and rules (push semantics: watch never deletes)", textArg)
    .option('-c, --config <file>', CONFIG_OPTION_HELP, pathArg);
  addTransferOptions(cmd)
    .option('--quiet-period <seconds>', 'send a file only after it has not changed for this long', secondsArg, 2)
    .option('--rescan <seconds>', 'a full pass at least this often, even without file-system events', secondsArg, 60)
    .option('--retry-max <seconds>', 'longest wait between retry rounds while a destination is down', secondsArg, 300)
    .option('--include-temp-files', `also send names that usually mean "still being written" (${TEMP_FILE_PATTERNS.join(' ')})`)
    .addHelpText(
      'after',
      `
Each round is an ordinary incremental push: the ledger records every file on every
destination, so stopping and starting again loses nothing and sends nothing twice.
A round starts shortly after file-system events (a burst of writes is one round), at
least every --rescan seconds, and — after failures — again with growing delays (5 s,
10 s, 20 s … up to --retry-max) until the destination is back. Files still changing
(modified within --quiet-period) wait for a later round; a file written under a temp
name and renamed when finished is sent under its final name only.

Output: one line per round on stdout (--json: one JSON object per round, JSON Lines);
-v adds per-file lines on stderr.

Examples:
  holdfast watch /var/backups s3://offsite/host1 file:///mnt/nas/backups
  holdfast watch ./exports s3://bucket/exports --quiet-period 10
  holdfast watch --job nightly            (source, destinations and rules from holdfast.yaml)

${INPUT_RULES_HELP}

Ctrl-C (or SIGTERM) once: the running round finishes its in-flight transfers (up to
--drain-timeout) and watch exits 0; twice: in-flight transfers are aborted (exit 130;
multipart uploads stay resumable).`,
    )
    .action(async (source: string | undefined, destinations: string[], flags: WatchFlags, command: Command) => {
      let options: TransferOptions;
      try {
        options = watchTarget(source, destinations, flags, command);
      } catch (e) {
        process.exitCode = failCommand(e, flags.json === true);
        return;
      }
      process.exitCode = await runWatch(options, flags);
    });
}

/** What to watch: the arguments, or a job of the configuration file (flags typed on the command line override it). */
function watchTarget(source: string | undefined, destinations: string[], flags: WatchFlags, command: Command): TransferOptions {
  if (flags.dryRun) throw new HoldfastError('HOLDFAST_E_USAGE', { detail: 'watch has no --dry-run; use push --dry-run to see what one round would send' });
  if (flags.job !== undefined) {
    if (source !== undefined) throw new HoldfastError('HOLDFAST_E_USAGE', { detail: 'give either --job or a source directory and destinations, not both' });
    const loaded = loadConfig(flags.config);
    for (const line of formatWarnings(loaded)) err(`${line}\n`);
    const { options } = jobOptions(loaded.config, flags.job, overridesFrom(givenFlags(command, flags)));
    const { maxDelete: _m, allowEmptySource: _a, deleteExcluded: _d, backupDir: _b, dryRun: _dry, ...push } = options;
    return { ...push, drainMs: flags.drainTimeout * 1000 };
  }
  if (source === undefined || destinations.length === 0) {
    throw new HoldfastError('HOLDFAST_E_USAGE', { detail: 'watch needs a source directory and at least one destination URL (or --job <name>)' });
  }
  const { dryRun: _dryRun, ...options } = transferOptionsFrom(source, destinations, flags);
  return options;
}

async function runWatch(options: TransferOptions, flags: WatchFlags): Promise<number> {
  const source = options.source;
  const destinations = [...(options.destination !== undefined ? [options.destination] : []), ...(options.destinations ?? []).map((d) => (typeof d === 'string' ? d : (d.name ?? redactUrl(d.url))))];
  const events = new RunEvents();
  const detach = flags.verbose ? attachCliProgress(events, { quiet: false, verbose: true }) : () => undefined;
  const signals = interruptSignals(flags.drainTimeout);
  if (!flags.quiet) err(`watching ${source} → ${destinations.join(', ')} (quiet period ${flags.quietPeriod}s; Ctrl-C to stop)\n`);
  try {
    const summary = await watch({
      ...options,
      events,
      signal: signals.abort,
      stopSignal: signals.stop,
      quietMs: flags.quietPeriod * 1000,
      rescanMs: flags.rescan * 1000,
      retryMaxMs: flags.retryMax * 1000,
      excludeTempFiles: flags.includeTempFiles !== true,
      onRound: (r) => out(flags.json ? `${JSON.stringify({ round: r.round, reason: r.reason, settling: r.settling, ...r.report })}\n` : `${roundLine(r)}\n`),
      onRoundError: (e, retryInMs) => {
        if (flags.json) out(`${JSON.stringify({ status: 'failed', error: { code: e.code, message: e.message }, retryInMs })}\n`);
        err(`${timestamp()} round could not run: ${e.code}: ${e.message}; retrying in ${formatDuration(retryInMs)}\n`);
      },
    });
    if (!flags.quiet) err(`stopped after ${summary.rounds} round(s): ${summary.uploaded} file(s) uploaded${summary.failedRounds ? `, ${summary.failedRounds} round(s) with failures (their items wait in the ledger)` : ''}\n`);
    return summary.stoppedCleanly ? EXIT.ok : EXIT.cancelled;
  } catch (e) {
    return failCommand(e, flags.json === true);
  } finally {
    signals.dispose();
    detach();
  }
}

function timestamp(): string {
  return new Date().toISOString().slice(11, 19);
}

function counts(r: Omit<RunReport, 'destinations'>): string {
  const u = r.uploads;
  const parts = [`${u.completed} uploaded (${formatBytes(r.bytes)})`, `${u.skipped} unchanged`];
  if (u.recovered) parts.push(`${u.recovered} recovered`);
  if (u.failed) parts.push(`${u.failed} failed`);
  if (u.partial) parts.push(`${u.partial} partial`);
  return parts.join(', ');
}

/** One line per round; with several destinations, a clause per destination; then up to five errors. */
export function roundLine(r: WatchRound): string {
  const sections = r.report.destinations ?? [];
  const body = sections.length > 1 ? sections.map((s) => `${s.name ?? s.destination}: ${s.status}, ${counts(s)}`).join('; ') : `${r.report.status}, ${counts(r.report)}`;
  const settling = r.settling > 0 ? `; ${r.settling} still changing (next round)` : '';
  const lines = [`${timestamp()} round ${r.round} (${r.reason}): ${body}${settling}`];
  for (const e of r.report.errors.slice(0, 5)) lines.push(`  ${e.destination ? `${e.destination}: ` : ''}${e.key ? `${displayKey(e.key)}: ` : ''}${e.code}: ${e.message}`);
  if (r.report.errors.length > 5) lines.push(`  ... and ${r.report.errors.length - 5} more (use --json for all)`);
  return lines.join('\n');
}
