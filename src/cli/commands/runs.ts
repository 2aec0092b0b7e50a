// `holdfast runs`: the most recent runs, newest first, with their status and
// recorded counts. Read-only.

import type { Command } from 'commander';
import { runs } from '../../sync/inspect.js';
import { intArg, LEDGER_HELP, ledgerChoiceFrom, pathArg, STATE_HELP, textArg } from '../common.js';
import { formatTable } from '../table.js';
import { INSPECT_EXIT_HELP, runCounts, runDuration, runReadOnly, shortTime, type InspectFlags } from './status.js';

interface RunsFlags extends InspectFlags {
  destination?: string;
}

export function registerRuns(program: Command): void {
  program
    .command('runs')
    .description('List recent runs: command, start, duration, status and counts.')
    .option('--limit <n>', 'how many runs', intArg, 20)
    .option('--destination <url>', 'only runs against this destination', textArg)
    .option('--state <dir>', STATE_HELP, pathArg)
    .option('--ledger <url>', LEDGER_HELP, textArg)
    .option('--json', 'print one JSON object on stdout')
    .addHelpText(
      'after',
      `
Times are UTC.

Examples:
  holdfast runs --limit 5
  holdfast runs --destination s3://my-bucket/photos --json
${INSPECT_EXIT_HELP}`,
    )
    .action(async (flags: RunsFlags) => {
      process.exitCode = await runReadOnly(
        flags,
        () => runs({ ...ledgerChoiceFrom(flags), ...(flags.limit !== undefined ? { limit: flags.limit } : {}), ...(flags.destination !== undefined ? { destination: flags.destination } : {}) }),
        (report) => {
          if (report.runs.length === 0) return ['no runs recorded yet'];
          const several = new Set(report.runs.map((r) => r.destination)).size > 1;
          const header = ['run', 'command', 'started', 'duration', 'status', ...(several ? ['destination'] : []), 'counts'];
          const rows = report.runs.map((r) => [`#${r.id}`, r.command, shortTime(r.startedAt), runDuration(r), r.status, ...(several ? [r.destination ?? '-'] : []), runCounts(r)]);
          return formatTable([header, ...rows], { right: [0, 3] });
        },
      );
    });
}
