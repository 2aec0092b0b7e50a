#!/usr/bin/env node
// The `holdfast` command. Parses arguments, runs the library's commands with
// progress on stderr and the result on stdout, and maps outcomes to the
// documented exit codes (docs/cli.md):
//   0 completed · 1 usage/configuration error · 2 finished with failed or partial items
//   3 could not run (source, destination or ledger unavailable) · 130 cancelled

// The AWS SDK warns on Node 20 at first use; the warning is about future SDK
// releases, not about anything a Holdfast user can act on.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { EXIT, HoldfastError, classifyError } from '../core/errors.js';
import type { RunReport } from '../core/report.js';
import { RunEvents } from '../engine/events.js';
import { DEFAULT_RETRY } from '../engine/retry.js';
import { push } from '../sync/push.js';
import { parseSize } from './format.js';
import { attachProgress } from './progress.js';
import { jsonReport, textReport, type PlannedItem } from './report.js';

const VERSION = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

function sizeArg(value: string): number {
  const n = parseSize(value);
  if (n === undefined || n < 1) throw new InvalidArgumentError('expected a size such as 8MiB, 64M or 1048576');
  return n;
}

function intArg(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

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
  noFsync?: boolean;
  fsync: boolean;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  drainTimeout: number;
  retries: number;
}

const out = (text: string): void => void process.stdout.write(text);
const err = (text: string): void => void process.stderr.write(text);

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('holdfast')
    .description('Move files to object storage and never lose track of them.\nA ledger records, for every object on every destination, what was intended and what happened.')
    .version(VERSION, '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

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

Exit codes:
  0    completed: every file is on the destination and recorded
  1    usage or configuration error; nothing was done
  2    finished with failed or partial items; running again retries them
  3    could not run: source missing, destination or ledger unreachable
  130  cancelled (Ctrl-C); the ledger is consistent, run again to continue

Ctrl-C once stops starting new files and lets in-flight ones finish; twice aborts them
(multipart uploads stay resumable).`,
    )
    .action(async (source: string, destination: string, flags: PushFlags) => {
      process.exitCode = await runPush(source, destination, flags);
    });

  return program;
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

  // Two-phase Ctrl-C: first stops starting work and drains, second aborts.
  const stop = new AbortController();
  const abort = new AbortController();
  let interrupts = 0;
  const onSignal = (name: string): void => {
    interrupts++;
    if (interrupts === 1) {
      err(`\n${name}: stopping — no new files; in-flight transfers get ${flags.drainTimeout}s to finish (press Ctrl-C again to abort them)\n`);
      stop.abort();
    } else {
      err(`\n${name}: aborting in-flight transfers\n`);
      abort.abort();
    }
  };
  const onInt = (): void => onSignal('interrupt');
  const onTerm = (): void => onSignal('terminate');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);

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
      signal: abort.signal,
      stopSignal: stop.signal,
      drainMs: flags.drainTimeout * 1000,
      events,
    });
  } catch (e) {
    detach();
    const error = classifyError(e);
    if (flags.json) out(`${JSON.stringify({ status: 'failed', error: { code: error.code, message: error.message } })}\n`);
    err(`holdfast: ${error.code}: ${error.message}\n`);
    return error.code === 'HOLDFAST_E_CANCELLED' ? EXIT.cancelled : error.exitCode;
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  }
  detach();
  const extra = { destination, dryRun: flags.dryRun === true };
  if (flags.json) out(`${jsonReport(report, { ...extra, ...(flags.dryRun ? { plan: planned } : {}) })}\n`);
  else out(`${textReport(report, { ...extra, planned })}\n`);
  return exitCodeFor(report);
}

export function exitCodeFor(report: RunReport): number {
  switch (report.status) {
    case 'completed':
      return EXIT.ok;
    case 'cancelled':
      return EXIT.cancelled;
    default:
      return EXIT.partial;
  }
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version exit 0; everything else is a usage error.
      return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const error = e instanceof HoldfastError ? e : classifyError(e);
    err(`holdfast: ${error.code}: ${error.message}\n`);
    return error.exitCode;
  }
}

const code = await main(process.argv);
process.exitCode = code;
