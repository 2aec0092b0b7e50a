// `holdfast history <key>`: every transition of one object, oldest first —
// the ledger's audit trail, read-only.

import type { Command } from 'commander';
import { history } from '../../sync/inspect.js';
import { LEDGER_HELP, ledgerChoiceFrom, pathArg, STATE_HELP, textArg } from '../common.js';
import { displayKey } from '../format.js';
import { formatTable, oneLine } from '../table.js';
import { INSPECT_EXIT_HELP, runReadOnly, shortTime, type InspectFlags } from './status.js';

interface HistoryFlags extends InspectFlags {
  destination?: string;
}

export function registerHistory(program: Command): void {
  program
    .command('history')
    .description('Show every recorded transition of one object: run, time, from → to, attempt, error, note.')
    .argument('<key>', 'the object key (the source-relative path, "/"-separated)')
    .option('--destination <url>', 'only this destination (default: every destination that has the key)', textArg)
    .option('--state <dir>', STATE_HELP, pathArg)
    .option('--ledger <url>', LEDGER_HELP, textArg)
    .option('--json', 'print one JSON object on stdout')
    .addHelpText(
      'after',
      `
Times are UTC.

Examples:
  holdfast history photos/2024/beach.jpg
  holdfast history photos/2024/beach.jpg --destination s3://my-bucket/photos --json
${INSPECT_EXIT_HELP}`,
    )
    .action(async (key: string, flags: HistoryFlags) => {
      process.exitCode = await runReadOnly(
        flags,
        () => history({ key, ...ledgerChoiceFrom(flags), ...(flags.destination !== undefined ? { destination: flags.destination } : {}) }),
        (report) => {
          if (report.entries.length === 0) return [`no history for ${displayKey(report.key)}${flags.destination !== undefined ? ` on ${flags.destination}` : ''}`];
          const lines: string[] = [];
          for (const c of report.current) {
            lines.push(`${displayKey(report.key)} on ${c.destination}: ${c.status}${c.errorCode !== null ? ` (${c.errorCode}, next retry ${shortTime(c.nextAttemptAt)})` : ''}`);
          }
          const several = new Set(report.entries.map((e) => e.destination)).size > 1;
          const header = ['time', 'run', 'from → to', 'attempt', ...(several ? ['destination'] : []), 'error / note'];
          const rows = report.entries.map((e) => [
            shortTime(e.at),
            e.runId === null ? '-' : `#${e.runId}`,
            `${e.from ?? '(new)'} → ${e.to ?? '(no change)'}`,
            e.attemptId === null ? '-' : e.attemptId.slice(0, 8),
            ...(several ? [oneLine(e.destination)] : []),
            oneLine([e.errorCode !== null ? [e.errorCode, e.errorMessage].filter((t) => t !== null && t !== '').join(': ') : '', e.note ?? ''].filter((t) => t !== '').join(' — ')),
          ]);
          lines.push(...formatTable([header, ...rows]));
          return lines;
        },
      );
    });
}
