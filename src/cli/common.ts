// What every command shares: output streams, argument parsers, two-phase
// Ctrl-C, and the mapping from results and errors to exit codes.

import { InvalidArgumentError } from 'commander';
import { EXIT, classifyError } from '../core/errors.js';
import type { RunReport } from '../core/report.js';
import { parseSize } from './format.js';

export const out = (text: string): void => void process.stdout.write(text);
export const err = (text: string): void => void process.stderr.write(text);

export function sizeArg(value: string): number {
  const n = parseSize(value);
  if (n === undefined || n < 1) throw new InvalidArgumentError('expected a size such as 8MiB, 64M or 1048576');
  return n;
}

export function intArg(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export const EXIT_CODES_HELP = `
Exit codes:
  0    completed: everything agreed / was done and recorded
  1    usage or configuration error; nothing was done
  2    finished with failed or partial items; running again retries them
  3    could not run: source missing, destination or ledger unreachable
  130  cancelled (Ctrl-C); the ledger is consistent, run again to continue`;

/**
 * After the second Ctrl-C, how long the run may take to record its outcomes
 * and end on its own before the process ends anyway. A file or network
 * operation that never returns (a read on a hung NFS mount) cannot be taken
 * back from Node's threadpool, and it keeps the process alive, even through
 * `process.exit`; this bound is what makes the second Ctrl-C always work.
 */
export const FORCED_EXIT_MS = 5000;

/**
 * Ends the process now, whatever is still pending, by re-raising `signal`
 * with its default action: the exit status a shell reports is 128 + the
 * signal's number (130 for SIGINT, 143 for SIGTERM), as for any program
 * stopped by Ctrl-C. `process.exit` cannot be used: it waits for the
 * threadpool's threads, and a stuck one never comes back.
 */
function forceExit(signal: NodeJS.Signals): void {
  err(`holdfast: an operation did not return after the ${signal === 'SIGINT' ? 'Ctrl-C' : signal}; exiting without waiting for it (the ledger is consistent; the next run resolves what was in flight)\n`);
  process.removeAllListeners(signal);
  process.kill(process.pid, signal);
  // Should the signal not end the process (a handler installed outside Node), nothing else can.
  setTimeout(() => process.kill(process.pid, 'SIGKILL'), 1000).unref();
}

/**
 * Two-phase Ctrl-C (and SIGTERM): the first stops starting work and lets
 * in-flight transfers drain, the second aborts them and gives the run
 * FORCED_EXIT_MS to record its outcomes and end before the process is ended
 * anyway (a third ends it at once). Returns the two signals and a function
 * that removes the handlers (the forced exit, once armed, stays armed: it
 * only fires if the process is still alive).
 */
export function interruptSignals(drainSeconds: number): { stop: AbortSignal; abort: AbortSignal; dispose: () => void } {
  const stop = new AbortController();
  const abort = new AbortController();
  let interrupts = 0;
  const onSignal = (name: string, signal: NodeJS.Signals): void => {
    interrupts++;
    if (interrupts === 1) {
      err(`\n${name}: stopping — no new work starts; in-flight transfers get ${drainSeconds}s to finish (press Ctrl-C again to abort them)\n`);
      stop.abort();
    } else if (interrupts === 2) {
      err(`\n${name}: aborting in-flight transfers\n`);
      abort.abort();
      // Unref'd: a run that ends on its own exits at once; only a process kept alive by a stuck operation meets it.
      setTimeout(() => forceExit(signal), FORCED_EXIT_MS).unref();
    } else {
      forceExit(signal);
    }
  };
  const onInt = (): void => onSignal('interrupt', 'SIGINT');
  const onTerm = (): void => onSignal('terminate', 'SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return {
    stop: stop.signal,
    abort: abort.signal,
    dispose: () => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
    },
  };
}

export function exitCodeFor(report: Pick<RunReport, 'status'>): number {
  switch (report.status) {
    case 'completed':
      return EXIT.ok;
    case 'cancelled':
      return EXIT.cancelled;
    default:
      return EXIT.partial;
  }
}

/** Reports an error that stopped a command; returns its exit code. */
export function failCommand(e: unknown, json: boolean): number {
  const error = classifyError(e);
  if (json) out(`${JSON.stringify({ status: 'failed', error: { code: error.code, message: error.message } })}\n`);
  err(`holdfast: ${error.code}: ${error.message}\n`);
  return error.code === 'HOLDFAST_E_CANCELLED' ? EXIT.cancelled : error.exitCode;
}
