// The engine's behaviour: pipeline status semantics, retries only on transient
// errors with bounded backoff, the limiter's bound, two-phase cancellation.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Pipeline, type PipelineContext, type Step } from '../../src/engine/pipeline.js';
import { Cancellation } from '../../src/engine/cancellation.js';
import { RunEvents } from '../../src/engine/events.js';
import { backoffDelay, withRetry } from '../../src/engine/retry.js';
import { Limiter } from '../../src/engine/limiter.js';
import { HoldfastError } from '../../src/core/errors.js';
import { until } from '../helpers/wait.js';

interface Ctx extends PipelineContext {
  order: string[];
}

function ctx(): Ctx {
  return { cancellation: new Cancellation(), events: new RunEvents(), stepErrors: [], order: [] };
}

function step(name: string, action: 'continue' | 'abort' | 'throw', always = false): Step<Ctx> {
  return {
    name,
    always,
    async run(c) {
      c.order.push(name);
      if (action === 'throw') throw new HoldfastError('HOLDFAST_E_LEDGER_WRITE', { detail: 'boom' });
      return action;
    },
  };
}

describe('Pipeline', () => {
  it('runs steps in order and emits step events', async () => {
    const c = ctx();
    const seen: string[] = [];
    c.events.on('step:start', (e) => seen.push(`start:${e.step}`));
    c.events.on('step:done', (e) => seen.push(`done:${e.step}:${e.action}`));
    const out = await new Pipeline([step('a', 'continue'), step('b', 'continue')]).run(c);
    assert.deepEqual(c.order, ['a', 'b']);
    assert.deepEqual(seen, ['start:a', 'done:a:continue', 'start:b', 'done:b:continue']);
    assert.equal(out.abortedBy, undefined);
  });

  it('stops at an abort but still runs always-steps, which see who aborted', async () => {
    const c = ctx();
    let sawAbort: string | undefined;
    const fin: Step<Ctx> = { name: 'fin', always: true, run: async (_c, s) => ((sawAbort = s.abortedBy), 'continue') };
    const out = await new Pipeline([step('a', 'abort'), step('b', 'continue'), fin]).run(c);
    assert.deepEqual(c.order, ['a']);
    assert.equal(out.abortedBy, 'a');
    assert.equal(sawAbort, 'a');
    assert.equal(out.steps.find((s) => s.name === 'b')?.action, 'skipped');
  });

  it('turns a thrown error into an accumulated error and an abort', async () => {
    const c = ctx();
    const out = await new Pipeline([step('a', 'throw'), step('b', 'continue')]).run(c);
    assert.equal(out.abortedBy, 'a');
    assert.equal(c.stepErrors.length, 1);
    assert.equal(c.stepErrors[0]?.code, 'HOLDFAST_E_LEDGER_WRITE');
  });

  it('skips remaining steps once cancelled, without calling it a failure', async () => {
    const c = ctx();
    const stopper: Step<Ctx> = { name: 'stopper', run: async (x) => (x.cancellation.stop(), 'continue') };
    const out = await new Pipeline([stopper, step('b', 'continue'), step('fin', 'continue', true)]).run(c);
    assert.deepEqual(c.order, ['fin']);
    assert.equal(out.cancelled, true);
    assert.equal(out.abortedBy, undefined);
  });

  it('refuses two steps with the same name', () => {
    assert.throws(() => new Pipeline([step('a', 'continue'), step('a', 'continue')]), /two steps named "a"/);
  });
});

describe('withRetry', () => {
  const fast = { attempts: 4, baseMs: 1, maxMs: 2 };

  it('retries transient errors and returns the eventual result', async () => {
    let calls = 0;
    const v = await withRetry(
      async () => {
        calls++;
        if (calls < 3) throw Object.assign(new Error('reset'), { code: 'ECONNRESET' });
        return 'ok';
      },
      { policy: fast },
    );
    assert.equal(v, 'ok');
    assert.equal(calls, 3);
  });

  it('does not retry permanent errors', async () => {
    let calls = 0;
    await assert.rejects(
      withRetry(
        async () => {
          calls++;
          throw Object.assign(new Error('denied'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } });
        },
        { policy: fast },
      ),
      (e: unknown) => e instanceof HoldfastError && e.code === 'HOLDFAST_E_AUTH',
    );
    assert.equal(calls, 1);
  });

  it('gives up after the policy attempts with the classified error', async () => {
    let calls = 0;
    await assert.rejects(
      withRetry(
        async () => {
          calls++;
          throw Object.assign(new Error('slow down'), { name: 'SlowDown', $metadata: { httpStatusCode: 503 } });
        },
        { policy: fast },
      ),
      (e: unknown) => e instanceof HoldfastError && e.code === 'HOLDFAST_E_THROTTLED' && e.transient,
    );
    assert.equal(calls, 4);
  });

  it('stops waiting when the signal aborts', { timeout: 10_000 }, async () => {
    const ac = new AbortController();
    let calls = 0;
    const p = withRetry(
      async () => {
        calls++;
        // Aborted once this attempt has failed and the (minute-long) wait before the next has begun.
        setImmediate(() => ac.abort());
        throw Object.assign(new Error('reset'), { code: 'ECONNRESET' });
      },
      { policy: { attempts: 10, baseMs: 60_000, maxMs: 60_000 }, signal: ac.signal, random: () => 1 },
    );
    await assert.rejects(p, (e: unknown) => e instanceof HoldfastError && e.code === 'HOLDFAST_E_CANCELLED');
    assert.equal(calls, 1, 'no second attempt');
  });

  it('uses full jitter below an exponential ceiling', () => {
    const policy = { attempts: 10, baseMs: 100, maxMs: 1000 };
    assert.equal(backoffDelay(policy, 1, () => 0.999999), 99);
    assert.equal(backoffDelay(policy, 3, () => 0.5), 200);
    assert.equal(backoffDelay(policy, 9, () => 0.999999), 999);
    assert.equal(backoffDelay(policy, 4, () => 0), 0);
  });
});

describe('Limiter', () => {
  it('never runs more than its size at once', async () => {
    const lim = new Limiter(3);
    let active = 0;
    let peak = 0;
    await Promise.all(
      Array.from({ length: 20 }, () =>
        lim.run(async () => {
          active++;
          peak = Math.max(peak, active);
          // Hold the slot past this turn of the event loop, so the others queue behind it.
          await new Promise((r) => setImmediate(r));
          active--;
        }),
      ),
    );
    assert.equal(peak, 3);
    assert.equal(lim.active, 0);
  });

  it('rejects a size that is not a positive integer', () => {
    assert.throws(() => new Limiter(0), RangeError);
  });
});

describe('Cancellation', () => {
  it('stop() stops new work first and aborts after the drain timeout', async () => {
    const c = new Cancellation();
    c.stop(20);
    assert.equal(c.stopping.aborted, true);
    assert.equal(c.signal.aborted, false);
    await until('the drain timeout aborts', () => c.signal.aborted, 5_000);
    assert.match(String((c.signal.reason as Error).message), /drain timeout \(20 ms\) expired/, 'aborted by the drain timer');
  });

  it('follows linked signals: stopSignal stops, signal aborts', () => {
    const stop = new AbortController();
    const hard = new AbortController();
    const c = new Cancellation({ stopSignal: stop.signal, signal: hard.signal });
    stop.abort();
    assert.equal(c.cancelled, true);
    assert.equal(c.signal.aborted, false);
    hard.abort();
    assert.equal(c.signal.aborted, true);
    c.dispose();
  });
});
