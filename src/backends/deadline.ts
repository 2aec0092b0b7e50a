// A client-side time limit for one request, for SDKs that have none of their
// own (Azure's tryTimeoutInMs only asks the server to give up). The request
// gets a signal that fires when the caller's does or when the time is up; a
// request that failed because the time was up is reported as
// HOLDFAST_E_TIMEOUT (transient: the engine retries it), never as a
// cancellation.

import { HoldfastError } from '../core/errors.js';

/**
 * Runs `fn` with a signal that also fires after `ms`. Only `fn`'s own promise
 * is timed: a response stream read after it resolves keeps the caller's
 * signal (through the combined one) but no deadline.
 */
export async function withDeadline<T>(parent: AbortSignal | undefined, ms: number, what: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const timer = new AbortController();
  let timedOut = false;
  const handle = setTimeout(() => {
    timedOut = true;
    timer.abort(new HoldfastError('HOLDFAST_E_TIMEOUT', { detail: `${what}: no answer within ${ms} ms` }));
  }, ms);
  handle.unref();
  // AbortSignal.any holds its sources weakly: no listener piles up on a long-lived parent.
  const signal = parent === undefined ? timer.signal : AbortSignal.any([parent, timer.signal]);
  try {
    return await fn(signal);
  } catch (e) {
    if (timedOut && parent?.aborted !== true) throw new HoldfastError('HOLDFAST_E_TIMEOUT', { detail: `${what}: no answer within ${ms} ms` }, { cause: e });
    throw e;
  } finally {
    clearTimeout(handle);
  }
}
