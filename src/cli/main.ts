#!/usr/bin/env node
// The `holdfast` command. Parses arguments, runs the library's commands with
// progress on stderr and the result on stdout, and maps outcomes to the
// documented exit codes (docs/cli.md):
//   0 completed · 1 usage/configuration error · 2 finished with failed or partial items
//   3 could not run (source, destination or ledger unavailable) · 130 cancelled

// The AWS SDK warns on Node 20 at first use; the warning is about future SDK
// releases, not about anything a Holdfast user can act on.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

import { Command, CommanderError } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EXIT, HoldfastError, classifyError, exitCodeOf } from '../core/errors.js';
import { err } from './common.js';
import { registerPush } from './commands/push.js';
import { registerSync } from './commands/sync.js';
import { registerWatch } from './commands/watch.js';
import { registerPull } from './commands/pull.js';
import { registerStatus } from './commands/status.js';
import { registerHistory } from './commands/history.js';
import { registerRuns } from './commands/runs.js';
import { registerWorkers } from './commands/workers.js';
import { registerCheckAndCleanup } from './commands/cleanup.js';
import { registerRun } from './commands/run.js';
import { registerConfig } from './commands/config.js';

/** The version in Holdfast's package.json, found by walking up from this file (the layout differs between dist/src and the bundle). */
function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate)) {
      const pkg = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'holdfast' && pkg.version !== undefined) return pkg.version;
    }
    const up = dirname(dir);
    if (up === dir) return 'unknown';
    dir = up;
  }
}

const VERSION = packageVersion();

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('holdfast')
    .description('Move files to object storage and never lose track of them.\nA ledger records, for every object on every destination, what was intended and what happened.')
    .version(VERSION, '-V, --version')
    // Argument errors found by the parser are usage errors like any other:
    // one `holdfast: HOLDFAST_E_USAGE: …` line naming the option and what it expects.
    .configureOutput({ outputError: (text, write) => write(`holdfast: HOLDFAST_E_USAGE: ${text.replace(/^error: /, '')}`) })
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerPush(program);
  registerSync(program);
  registerWatch(program);
  registerPull(program);
  registerStatus(program);
  registerHistory(program);
  registerRuns(program);
  registerWorkers(program);
  registerCheckAndCleanup(program);
  registerRun(program);
  registerConfig(program);
  return program;
}

/**
 * Arguments whose bytes are not valid UTF-8. Node.js decodes them with U+FFFD
 * in place of the bad bytes, which names another path (`s\xff` would become
 * `s\uFFFD`, perhaps an existing directory): such an argument is refused,
 * never taken for a different one. The bytes as given are read from
 * /proc/self/cmdline where there is one (Linux).
 */
export function invalidUtf8Arguments(cmdline: Buffer | undefined, count: number): string[] {
  if (cmdline === undefined || count <= 0) return [];
  const entries: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < cmdline.length; i++) {
    if (cmdline[i] !== 0) continue;
    entries.push(cmdline.subarray(start, i));
    start = i + 1;
  }
  if (start < cmdline.length) entries.push(cmdline.subarray(start));
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const bad: string[] = [];
  // The command's own arguments are the last ones (node's options and the script come first).
  for (const raw of entries.slice(-count)) {
    try {
      decoder.decode(raw);
    } catch {
      bad.push(raw.toString('utf8'));
    }
  }
  return bad;
}

function rawCommandLine(): Buffer | undefined {
  try {
    return readFileSync('/proc/self/cmdline');
  } catch {
    return undefined;
  }
}

export async function main(argv: string[]): Promise<number> {
  const bad = invalidUtf8Arguments(rawCommandLine(), argv.length - 2);
  if (bad.length > 0) {
    err(
      `holdfast: HOLDFAST_E_USAGE: ${bad.map((b) => JSON.stringify(b)).join(', ')} ${bad.length === 1 ? 'is' : 'are'} not valid UTF-8 (shown with \uFFFD for the bad bytes); Holdfast cannot name such a path — rename it, or give its parent directory\n`,
    );
    return EXIT.usage;
  }
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
    return exitCodeOf(error);
  }
}

// A reader that goes away (`holdfast … --help | head`, a closed pager) is not a
// failure of the command: stop writing to it and let the command finish its work.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
  });
}

process.exitCode = await main(process.argv);
