// The options and the run loop shared by `push` and `sync`: everything about
// moving files, progress, the report and exit codes. Each command adds its own
// arguments (sync: the delete rules) and calls `runTransferCommand`.

import { Option, type Command } from 'commander';
import type { RunReport } from '../../core/report.js';
import { RunEvents } from '../../engine/events.js';
import { DEFAULT_RETRY } from '../../engine/retry.js';
import type { TransferOptions } from '../../sync/run.js';
import { collect, exitCodeFor, failCommand, intArg, interruptSignals, LEDGER_HELP, ledgerChoiceFrom, out, pathArg, sizeArg, STATE_HELP, textArg, transfersArg, timerSecondsArg } from '../common.js';
import { attachCliProgress } from '../progress.js';
import { jsonReport, textReport, type PlannedItem } from '../report.js';

export interface TransferFlags {
  state?: string;
  ledger?: string;
  dryRun?: boolean;
  mode: 'incremental' | 'all';
  force?: boolean;
  transfers?: number;
  exclude: string[];
  followSymlinks?: boolean;
  sharedSource?: string;
  multipartThreshold?: number;
  partSize?: number;
  s3Endpoint?: string;
  s3PathStyle?: boolean;
  s3Region?: string;
  requestTimeout?: number;
  fsync: boolean;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  drainTimeout: number;
  retries: number;
}

/** S3 and ledger options every command that opens a destination takes. */
export function addDestinationOptions(cmd: Command): Command {
  return cmd
    .option('--state <dir>', STATE_HELP, pathArg)
    .option('--ledger <url>', LEDGER_HELP, textArg)
    .option('--s3-endpoint <url>', 'S3 endpoint (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, or AWS)', textArg)
    .option('--s3-path-style', 'path-style S3 addressing (default on with a custom endpoint)')
    .option('--s3-region <region>', 'S3 region (default: AWS config, else us-east-1)', textArg)
    .option('--request-timeout <seconds>', 'abandon (and retry) a request that makes no progress this long: s3:// idle (default 120), azure:// and gdrive:// whole request (default 900)', timerSecondsArg);
}

export function addTransferOptions(cmd: Command): Command {
  return addDestinationOptions(cmd)
    .option('-n, --dry-run', 'print what would be done and why; change nothing, not even the ledger')
    .addOption(new Option('--mode <mode>', 'incremental: trust the ledger; all: re-hash every file and check the destination').choices(['incremental', 'all']).default('incremental'))
    .option('--force', 'upload every file again, whatever the ledger says')
    .option('--transfers <n>', 'parallel transfers, 1 to 1024 (memory: at most transfers x part size)', transfersArg)
    .option('--exclude <glob>', 'leave out matching paths (gitignore-like; repeatable; .holdfastignore is read too)', collect, [] as string[])
    .option('--follow-symlinks', 'follow symbolic links (default: skip and report them)')
    .option('--shared-source <name>', 'the source is a shared file system (NFS, SMB) that several hosts mount: give it the same name on each, and with one PostgreSQL ledger their runs split the work', textArg)
    .option('--multipart-threshold <size>', 'files at least this large are sent in parts (default 64MiB)', sizeArg)
    .option('--part-size <size>', 'part size for multipart uploads (default 16MiB)', sizeArg)
    .option('--no-fsync', 'file:// destinations: do not fsync (faster, not crash-safe; for tests)')
    .option('--retries <n>', 'attempts per operation for transient errors (network, 5xx, throttling, busy ledger)', intArg, 5)
    .option('--json', 'print the final report as one JSON object on stdout (progress goes to stderr)')
    .option('-q, --quiet', 'no progress; errors and the final report only')
    .option('-v, --verbose', 'a line for every file')
    .option('--drain-timeout <seconds>', 'after Ctrl-C, how long in-flight transfers may finish before they are aborted', timerSecondsArg, 30);
}

/** BackendOptions from the destination flags. */
export function backendOptionsFrom(flags: Pick<TransferFlags, 's3Endpoint' | 's3PathStyle' | 's3Region' | 'requestTimeout'> & { fsync?: boolean }): TransferOptions['backendOptions'] {
  return {
    ...(flags.requestTimeout !== undefined ? { requestTimeoutMs: flags.requestTimeout * 1000 } : {}),
    ...(flags.s3Endpoint !== undefined ? { s3Endpoint: flags.s3Endpoint } : {}),
    ...(flags.s3PathStyle ? { s3PathStyle: true } : {}),
    ...(flags.s3Region !== undefined ? { s3Region: flags.s3Region } : {}),
    ...(flags.fsync !== undefined ? { fsync: flags.fsync } : {}),
  };
}

/** Transfer options from the command line; several destination URLs make a fan-out run. */
export function transferOptionsFrom(source: string, destinations: string | readonly string[], flags: TransferFlags): TransferOptions {
  const urls = typeof destinations === 'string' ? [destinations] : destinations;
  return {
    source,
    ...(urls.length === 1 ? { destination: urls[0] } : { destinations: urls }),
    ...ledgerChoiceFrom(flags),
    dryRun: flags.dryRun === true,
    mode: flags.mode,
    force: flags.force === true,
    transfers: flags.transfers,
    multipartThreshold: flags.multipartThreshold,
    partSize: flags.partSize,
    exclude: flags.exclude,
    followSymlinks: flags.followSymlinks === true,
    ...(flags.sharedSource !== undefined ? { sharedSource: flags.sharedSource } : {}),
    retry: { ...DEFAULT_RETRY, attempts: flags.retries },
    backendOptions: backendOptionsFrom(flags),
    drainMs: flags.drainTimeout * 1000,
  };
}

/** Runs a transfer with progress, two-phase Ctrl-C, the report on stdout; returns the exit code. */
export async function runTransferCommand(
  destination: string | readonly string[],
  flags: TransferFlags,
  run: (extra: { events: RunEvents; signal: AbortSignal; stopSignal: AbortSignal }) => Promise<RunReport>,
): Promise<number> {
  const events = new RunEvents();
  const detach = attachCliProgress(events, flags);
  const planned: PlannedItem[] = [];
  if (flags.dryRun) events.on('plan:item', (p) => planned.push(p));
  const signals = interruptSignals(flags.drainTimeout);
  let report: RunReport;
  try {
    report = await run({ events, signal: signals.abort, stopSignal: signals.stop });
  } catch (e) {
    detach();
    return failCommand(e, flags.json === true);
  } finally {
    signals.dispose();
  }
  detach();
  const extra = { destination: typeof destination === 'string' ? destination : destination.join(' '), dryRun: flags.dryRun === true };
  if (flags.json) out(`${jsonReport(report, { ...extra, ...(flags.dryRun ? { plan: planned } : {}) })}\n`);
  else out(`${textReport(report, { ...extra, planned })}\n`);
  return exitCodeFor(report);
}
