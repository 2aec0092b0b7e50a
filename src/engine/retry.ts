// Retries, in one place: exponential backoff with full jitter, only for errors
// the registry calls transient (core/errors.ts). Everything else is rethrown at once.

import { classifyError, cancelledError, HoldfastError, type ErrorCode } from '../core/errors.js';
import { timerProblem } from '../core/units.js';

export interface RetryPolicy {
  /** Total tries, including the first. */
  readonly attempts: number;
  readonly baseMs: number;
  readonly maxMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseMs: 200, maxMs: 10_000 };

/**
 * Throws HOLDFAST_E_USAGE unless `policy` is usable: a whole number of
 * attempts from 1 to 100 and delays a timer can take. (NaN attempts would
 * retry for ever: every comparison with NaN is false.)
 */
export function checkRetryPolicy(policy: RetryPolicy): void {
  const { attempts, baseMs, maxMs } = policy;
  if (!Number.isInteger(attempts) || attempts < 1 || attempts > 100) throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `retry.attempts must be a whole number from 1 to 100, got ${String(attempts)}` });
  for (const [name, v] of [
    ['baseMs', baseMs],
    ['maxMs', maxMs],
  ] as const) {
    const problem = timerProblem(v);
    if (problem !== undefined) throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `retry.${name}: ${problem}` });
  }
}

export interface RetryOptions {
  readonly policy?: RetryPolicy;
  readonly signal?: AbortSignal;
  /** The code for errors nothing more specific is known about (the caller knows the context). */
  readonly fallback?: ErrorCode;
  readonly onRetry?: (error: HoldfastError, attempt: number, delayMs: number) => void;
  /** For tests: replaces Math.random. */
  readonly random?: () => number;
}

/** Delay before retry number `attempt` (1-based): uniform in [0, min(max, base·2^(attempt-1))]. */
export function backoffDelay(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random() * ceiling);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(cancelledError(signal));
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(cancelledError(signal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Runs `op`, retrying transient failures. Throws the last error, classified. */
export async function withRetry<T>(op: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const policy = options.policy ?? DEFAULT_RETRY;
  // A policy that would never stop (NaN attempts) is a bug of the caller's, not a reason to spin.
  if (!(policy.attempts >= 1)) throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `retry.attempts must be at least 1, got ${String(policy.attempts)}` });
  for (let attempt = 1; ; attempt++) {
    if (options.signal?.aborted) throw cancelledError(options.signal);
    try {
      return await op(attempt);
    } catch (e) {
      const err = classifyError(e, options.fallback);
      if (options.signal?.aborted || err.code === 'HOLDFAST_E_CANCELLED') throw cancelledError(options.signal);
      if (!err.transient || attempt >= policy.attempts) throw err;
      const delay = backoffDelay(policy, attempt, options.random);
      options.onRetry?.(err, attempt, delay);
      await sleep(delay, options.signal);
    }
  }
}
