// `holdfast workers`: the processes working on this ledger, from every host —
// what each one is, how long ago it was last heard from, and how many rows it
// holds. Read-only.

import type { Command } from 'commander';
import { workers } from '../../sync/inspect.js';
import { LEDGER_HELP, ledgerChoiceFrom, pathArg, STATE_HELP, textArg } from '../common.js';
import { formatTable } from '../table.js';
import { INSPECT_EXIT_HELP, runReadOnly, shortTime, type InspectFlags } from './status.js';

interface WorkersFlags extends InspectFlags {
  all?: boolean;
}

export function registerWorkers(program: Command): void {
  program
    .command('workers')
    .description('List the workers (runs, watchers) on this ledger: host, pid, heartbeat age, rows leased.')
    .option('--all', 'also the workers that have ended')
    .option('--state <dir>', STATE_HELP, pathArg)
    .option('--ledger <url>', LEDGER_HELP, textArg)
    .option('--json', 'print one JSON object on stdout')
    .addHelpText(
      'after',
      `
A worker is one process working on the ledger. It beats a heartbeat every 10 s;
one silent for 30 s is dead to the others, and its rows are taken over by the
next run (on the same host a dead pid is noticed at once). With a PostgreSQL
ledger (--ledger postgres://…) this lists the workers of every host.

Examples:
  holdfast workers
  holdfast workers --ledger postgres://holdfast@db.internal/holdfast --json
${INSPECT_EXIT_HELP}`,
    )
    .action(async (flags: WorkersFlags) => {
      process.exitCode = await runReadOnly(
        flags,
        () => workers({ ...ledgerChoiceFrom(flags), all: flags.all === true }),
        (report) => {
          if (report.workers.length === 0) return [flags.all === true ? 'no workers recorded yet' : 'no worker is running (--all shows the ones that ended)'];
          const header = ['host', 'pid', 'command', 'started', 'heartbeat', 'state', 'leased', 'source'];
          const rows = report.workers.map((w) => [w.host, String(w.pid), w.command, shortTime(w.startedAt), `${Math.round(w.heartbeatAgeMs / 1000)} s ago`, w.state, String(w.leased), w.source ?? '-']);
          return formatTable([header, ...rows], { right: [1, 4, 6] });
        },
      );
    });
}
