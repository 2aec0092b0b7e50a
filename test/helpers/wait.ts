// Waiting in tests of long-running things (watch): poll a condition with a
// deadline, and stop every watcher a test started even when it failed first.

import { afterEach } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';

/** Polls `cond` every 25 ms; throws naming `what` after `timeoutMs`. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await delay(25);
  }
}

/**
 * Call inside a `describe`: returns a factory of AbortControllers that are all
 * aborted after each test, so a watcher never outlives a failed assertion.
 */
export function stopAfterEach(): () => AbortController {
  const made: AbortController[] = [];
  afterEach(() => {
    for (const c of made.splice(0)) c.abort();
  });
  return () => {
    const c = new AbortController();
    made.push(c);
    return c;
  };
}
