// What every command shares: output streams, argument parsers, two-phase
// Ctrl-C, and the mapping from results and errors to exit codes.

import { InvalidArgumentError, type Command } from 'commander';
import { EXIT, classifyError, exitCodeOf } from '../core/errors.js';
import type { RunReport } from '../core/report.js';
import { MAX_TIMER_MS, parseDecimal, parseDuration, parseSize, parseWholeNumber, timerProblem } from '../core/units.js';

export const out = (text: string): void => void process.stdout.write(text);
export const err = (text: string): void => void process.stderr.write(text);

// Option parsers. Every number an option takes goes through the strict parsers
// of core/units.ts ("0x10", "1e2", " 4", "" are refused, never read as another
// number), and every path or URL option refuses an empty value (which would
// silently mean "the current directory" or "the default"). A refusal names
// the option and what it expects: commander prefixes "option '--x <n>'
// argument 'v' is invalid." and main.ts reports it as HOLDFAST_E_USAGE (exit 1).

/** A size: "8MiB", "64M", "1048576" (binary units), at least `min` bytes. */
export function sizeArg(value: string, min = 1): number {
  const n = parseSize(value);
  if (n === undefined || n < min) throw new InvalidArgumentError(`expected a size such as 8MiB, 64M or 1048576${min > 1 ? ` (at least ${min} bytes)` : ''}`);
  return n;
}

/** A parser for a whole number from `min` to `max`: digits only. */
export function wholeNumberArg(min: number, max: number = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value: string): number => {
    const n = parseWholeNumber(value);
    if (n === undefined || n < min || n > max) {
      throw new InvalidArgumentError(`expected a whole number ${max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`} (digits only)`);
    }
    return n;
  };
}

/** A positive whole number (counts: --retries, --limit...). */
export const intArg = wholeNumberArg(1);

/** Whole seconds a timer waits (--drain-timeout, --request-timeout): at most what a Node.js timer takes. */
export const timerSecondsArg = wholeNumberArg(1, Math.floor(MAX_TIMER_MS / 1000));

/** Parallel transfers: the engine's range, said before anything starts. */
export const transfersArg = wholeNumberArg(1, 1024);

/** Seconds as a decimal number ("2", "0.5"), at least 0. */
export function secondsArg(value: string): number {
  const n = parseDecimal(value);
  if (n === undefined) throw new InvalidArgumentError('expected a number of seconds such as 2 or 0.5 (digits only)');
  const problem = timerProblem(n * 1000);
  if (problem !== undefined) throw new InvalidArgumentError(problem);
  return n;
}

/** A duration in milliseconds: "24h", "30m", "2d", "90s", "0". */
export function durationArg(value: string): number {
  const ms = parseDuration(value);
  if (ms === undefined) throw new InvalidArgumentError('expected a whole number with an optional unit (ms, s, m, h, d), such as 24h, 30m, 2d or 0');
  return ms;
}

/** A percentage above 0 and at most 100: "10", "10%", "2.5%". */
export function percentArg(value: string): number {
  const n = parseDecimal(value.endsWith('%') ? value.slice(0, -1) : value);
  if (n === undefined || !(n > 0 && n <= 100)) throw new InvalidArgumentError('expected a percentage above 0 and at most 100, such as 10%');
  return n;
}

/** --max-delete: a count ("100") or a percentage of tracked objects ("10%"); kept as typed, checked now. */
export function maxDeleteArg(value: string): string {
  const m = /^(.*?)(%?)$/.exec(value);
  const ok = m !== null && (m[2] === '%' ? (parseDecimal(m[1] ?? '') ?? 101) <= 100 : parseWholeNumber(m[1] ?? '') !== undefined);
  if (!ok) throw new InvalidArgumentError('expected a count such as 100 or a percentage such as 10% (at most 100%)');
  return value;
}

/** A path (a directory or a file): anything but the empty string. */
export function pathArg(value: string): string {
  if (value === '') throw new InvalidArgumentError('expected a path; an empty one would mean the current directory');
  return value;
}

/** A non-empty text value (URLs, names): empty would silently mean "the default". */
export function textArg(value: string): string {
  if (value === '') throw new InvalidArgumentError('expected a value; it is empty');
  return value;
}

export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export const INPUT_RULES_HELP = `Input: numbers are digits only (0x10, 1e2, " 4" are refused); paths and URLs are never empty;
a destination URL is taken as typed: file:///absolute/path (not file:relative), no "." or ".."
segments, no "//" in an s3:// or azure:// prefix.`;

export const EXIT_CODES_HELP = `
${INPUT_RULES_HELP}

Exit codes:
  0    completed: everything agreed / was done and recorded
  1    usage or configuration error (an option value, a URL, the config file); nothing was done
  2    finished with failed or partial items; running again retries them
  3    could not run: source missing or unreadable, destination or ledger unavailable
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
  return exitCodeOf(error);
}

export const STATE_HELP = 'SQLite ledger directory (default: $HOLDFAST_STATE, $XDG_STATE_HOME/holdfast, ~/.local/state/holdfast)';
export const LEDGER_HELP = 'the ledger: postgres://user[:password]@host[:port]/db (shared by many workers and hosts) or sqlite:<state directory>; wins over --state (default: $HOLDFAST_LEDGER, else the SQLite ledger in --state)';

/** `--state` and `--ledger`, the two ways to say which ledger a command uses. */
export function addLedgerOptions(cmd: Command): Command {
  return cmd.option('--state <dir>', STATE_HELP, pathArg).option('--ledger <url>', LEDGER_HELP, textArg);
}

/** The library's ledger choice from those flags. */
export function ledgerChoiceFrom(flags: { readonly state?: string; readonly ledger?: string }): { stateDir?: string; ledgerUrl?: string } {
  return { ...(flags.state !== undefined ? { stateDir: flags.state } : {}), ...(flags.ledger !== undefined ? { ledgerUrl: flags.ledger } : {}) };
}
