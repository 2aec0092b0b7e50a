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
 * Two-phase Ctrl-C (and SIGTERM): the first stops starting work and lets
 * in-flight transfers drain, the second aborts them. Returns the two signals
 * and a function that removes the handlers.
 */
export function interruptSignals(drainSeconds: number): { stop: AbortSignal; abort: AbortSignal; dispose: () => void } {
  const stop = new AbortController();
  const abort = new AbortController();
  let interrupts = 0;
  const onSignal = (name: string): void => {
    interrupts++;
    if (interrupts === 1) {
      err(`\n${name}: stopping — no new work starts; in-flight transfers get ${drainSeconds}s to finish (press Ctrl-C again to abort them)\n`);
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
