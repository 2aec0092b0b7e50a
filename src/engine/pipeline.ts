// The pipeline runner (DESIGN §5): an ordered list of steps sharing one
// context, one cancellation and one event stream. A step returns 'continue' or
// 'abort'; errors accumulate in the context and do not stop the pipeline
// unless a step says so. Steps marked `always` (finalize) run even after an
// abort or a cancellation, like a `finally`.
//
// This type is public API: an application can compose its own ordered steps
// (categories before content, say) and get status semantics, cancellation and
// events for free.

import { classifyError } from '../core/errors.js';
import type { Cancellation } from './cancellation.js';
import type { RunEvents } from './events.js';

export type StepAction = 'continue' | 'abort';

export interface StepError {
  readonly step: string;
  readonly key: string;
  readonly code: string;
  readonly message: string;
}

export interface PipelineContext {
  readonly cancellation: Cancellation;
  readonly events: RunEvents;
  /** Errors not tied to a single file: a step failed, a listing failed, a ledger write failed. */
  readonly stepErrors: StepError[];
}

/** What a step can see of the run so far. */
export interface PipelineState {
  /** The step that aborted the pipeline, if one did (visible to `always` steps). */
  readonly abortedBy: string | undefined;
}

export interface Step<C extends PipelineContext> {
  readonly name: string;
  /** Run even after an earlier step aborted or the run was cancelled (finalize). */
  readonly always?: boolean;
  run(ctx: C, state: PipelineState): Promise<StepAction>;
}

export interface StepRecord {
  readonly name: string;
  readonly action: StepAction | 'skipped';
  readonly durationMs: number;
}

export interface PipelineOutcome {
  /** The step that aborted, if any. */
  readonly abortedBy: string | undefined;
  readonly cancelled: boolean;
  readonly steps: readonly StepRecord[];
}

export class Pipeline<C extends PipelineContext> {
  readonly steps: readonly Step<C>[];

  constructor(steps: readonly Step<C>[]) {
    const names = new Set<string>();
    for (const s of steps) {
      if (names.has(s.name)) throw new Error(`pipeline has two steps named "${s.name}"`);
      names.add(s.name);
    }
    this.steps = steps;
  }

  async run(ctx: C): Promise<PipelineOutcome> {
    const records: StepRecord[] = [];
    let abortedBy: string | undefined;
    for (const step of this.steps) {
      const halted = abortedBy !== undefined || ctx.cancellation.cancelled;
      if (halted && !step.always) {
        records.push({ name: step.name, action: 'skipped', durationMs: 0 });
        continue;
      }
      const started = performance.now();
      ctx.events.emit('step:start', { step: step.name });
      let action: StepAction;
      try {
        action = await step.run(ctx, { abortedBy });
      } catch (e) {
        const err = classifyError(e);
        // A cancellation that surfaces as an exception is not a step failure.
        if (err.code !== 'HOLDFAST_E_CANCELLED' || !ctx.cancellation.cancelled) {
          ctx.stepErrors.push({ step: step.name, key: '', code: err.code, message: err.message });
        }
        action = 'abort';
      }
      const durationMs = Math.round(performance.now() - started);
      records.push({ name: step.name, action, durationMs });
      ctx.events.emit('step:done', { step: step.name, action, durationMs });
      if (action === 'abort' && abortedBy === undefined && !ctx.cancellation.cancelled) abortedBy = step.name;
    }
    return { abortedBy, cancelled: ctx.cancellation.cancelled, steps: records };
  }
}
