// `holdfast push <source-dir> <destination-url>`: copy new and changed files; never delete.

import { Option, type Command } from 'commander';
import type { RunReport } from '../../core/report.js';
import { RunEvents } from '../../engine/events.js';
import { DEFAULT_RETRY } from '../../engine/retry.js';
import { push } from '../../sync/push.js';
import { EXIT_CODES_HELP, collect, err, exitCodeFor, failCommand, intArg, interruptSignals, out, sizeArg } from '../common.js';
import { attachProgress } from '../progress.js';
import { jsonReport, textReport, type PlannedItem } from '../report.js';

interface PushFlags {
  state?: string;
  dryRun?: boolean;
  mode: 'incremental' | 'all';
  force?: boolean;
  transfers?: number;
  exclude: string[];
  followSymlinks?: boolean;
  multipartThreshold?: number;
  partSize?: number;
  s3Endpoint?: string;
  s3PathStyle?: boolean;
  s3Region?: string;
  fsync: boolean;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  drainTimeout: number;
  retries: number;
}

export function registerPush(program: Command): void {
  program
    .command('push')
    .description('Copy new and changed files from a directory to a destination (never deletes).')
    .argument('<source-dir>', 'local directory to copy')
    .argument('<destination-url>', 'file:///absolute/path or s3://bucket/prefix')
    .option('--state <dir>', 'ledger directory (default: $HOLDFAST_STATE, $XDG_STATE_HOME/holdfast, ~/.local/state/holdfast)')
    .option('-n, --dry-run', 'print what would be uploaded and why; change nothing, not even the ledger')
    .addOption(new Option('--mode <mode>', 'incremental: trust the ledger; all: re-hash every file and check the destination').choices(['incremental', 'all']).default('incremental'))
    .option('--force', 'upload every file again, whatever the ledger says')
    .option('--transfers <n>', 'parallel transfers (memory: at most transfers x part size)', intArg)
    .option('--exclude <glob>', 'leave out matching paths (gitignore-like; repeatable; .holdfastignore is read too)', collect, [] as string[])
    .option('--follow-symlinks', 'follow symbolic links (default: skip and report them)')
    .option('--multipart-threshold <size>', 'files at least this large are sent in parts (default 64MiB)', sizeArg)
    .option('--part-size <size>', 'part size for multipart uploads (default 16MiB)', sizeArg)
    .option('--s3-endpoint <url>', 'S3 endpoint (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, or AWS)')
    .option('--s3-path-style', 'path-style S3 addressing (default on with a custom endpoint)')
    .option('--s3-region <region>', 'S3 region (default: AWS config, else us-east-1)')
    .option('--no-fsync', 'file:// destinations: do not fsync (faster, not crash-safe; for tests)')
    .option('--retries <n>', 'attempts per operation for transient errors (network, 5xx, throttling, busy ledger)', intArg, 5)
    .option('--json', 'print the final report as one JSON object on stdout (progress goes to stderr)')
    .option('-q, --quiet', 'no progress; errors and the final report only')
    .option('-v, --verbose', 'a line for every file')
    .option('--drain-timeout <seconds>', 'after Ctrl-C, how long in-flight transfers may finish before they are aborted', intArg, 30)
    .addHelpText(
      'after',
      `
Examples:
  holdfast push ./photos file:///mnt/backup/photos
  holdfast push ./photos s3://my-bucket/photos --s3-endpoint http://127.0.0.1:9000
  holdfast push ./photos s3://my-bucket/photos --dry-run

${EXIT_CODES_HELP.trimStart()}

Ctrl-C once stops starting new files and lets in-flight ones finish; twice aborts them
(multipart uploads stay resumable).`,
    )
    .action(async (source: string, destination: string, flags: PushFlags) => {
      process.exitCode = await runPush(source, destination, flags);
    });

}

async function runPush(source: string, destination: string, flags: PushFlags): Promise<number> {
  const events = new RunEvents();
  const detach = attachProgress(events, {
    tty: process.stderr.isTTY === true,
    quiet: flags.quiet === true,
    verbose: flags.verbose === true,
    write: err,
    columns: process.stderr.columns,
  });
  const planned: PlannedItem[] = [];
  if (flags.dryRun) events.on('plan:item', (p) => planned.push(p));

  const signals = interruptSignals(flags.drainTimeout);

  let report: RunReport;
  try {
    report = await push({
      source,
      destination,
      ...(flags.state !== undefined ? { stateDir: flags.state } : {}),
      dryRun: flags.dryRun === true,
      mode: flags.mode,
      force: flags.force === true,
      transfers: flags.transfers,
      multipartThreshold: flags.multipartThreshold,
      partSize: flags.partSize,
      exclude: flags.exclude,
      followSymlinks: flags.followSymlinks === true,
      retry: { ...DEFAULT_RETRY, attempts: flags.retries },
      backendOptions: {
        ...(flags.s3Endpoint !== undefined ? { s3Endpoint: flags.s3Endpoint } : {}),
        ...(flags.s3PathStyle ? { s3PathStyle: true } : {}),
        ...(flags.s3Region !== undefined ? { s3Region: flags.s3Region } : {}),
        fsync: flags.fsync,
      },
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
  const extra = { destination, dryRun: flags.dryRun === true };
  if (flags.json) out(`${jsonReport(report, { ...extra, ...(flags.dryRun ? { plan: planned } : {}) })}\n`);
  else out(`${textReport(report, { ...extra, planned })}\n`);
  return exitCodeFor(report);
}

