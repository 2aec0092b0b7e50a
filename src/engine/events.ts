// Typed run events (`noun:verb`), the one stream every UI listens to: the CLI
// renderer, the HTTP service's SSE, a library user's progress bar.

import { EventEmitter } from 'node:events';
import type { DestinationReport, FileOutcome, RunReport } from '../core/report.js';

/**
 * The events, by name. Every payload may carry `destination` (the URL): a run
 * over several destinations tags each event with the one it concerns.
 */
export type RunEventMap = { readonly [K in keyof BaseEventMap]: BaseEventMap[K] & { readonly destination?: string } };

interface BaseEventMap {
  'run:start': { readonly runId: number | null; readonly command: string; readonly source: string | null; readonly destination: string; readonly dryRun: boolean };
  'step:start': { readonly step: string };
  'step:done': { readonly step: string; readonly action: 'continue' | 'abort'; readonly durationMs: number };
  /** Totals to expect, known once the plan is made: progress is files and bytes, not steps. */
  'plan:ready': { readonly files: number; readonly bytes: number; readonly skipped: number; readonly action?: 'upload' | 'download' };
  /** One planned action, emitted by the plan step (what --dry-run prints). */
  'plan:item': { readonly key: string; readonly action: 'upload' | 'delete' | 'forget'; readonly reason: string; readonly size: number };
  'file:start': { readonly key: string; readonly size: number };
  'file:progress': { readonly key: string; readonly sentBytes: number; readonly size: number };
  'file:done': { readonly key: string; readonly outcome: FileOutcome; readonly bytes: number; readonly message?: string };
  'file:failed': { readonly key: string; readonly code: string; readonly message: string; readonly transient: boolean };
  'file:deleted': { readonly key: string };
  /** A file that is neither uploaded nor failed, with a reason worth telling (symlink, invalid name...). */
  'file:skipped': { readonly key: string; readonly reason: string };
  'run:notice': { readonly level: 'info' | 'warn'; readonly message: string };
  'run:done': { readonly report: RunReport };
  /** One destination's part of the run begins (runs over several destinations emit one per destination). */
  'destination:start': { readonly destination: string; readonly name?: string; readonly runId: number | null };
  /** One destination's part is over; `report` is its section. */
  'destination:done': { readonly destination: string; readonly report: DestinationReport };
}

export type RunEventName = keyof RunEventMap;

/** A small typed facade over EventEmitter. Listeners must not throw; if one does, the error is reported, not propagated. */
export class RunEvents {
  /** Forwards every event to `target`, tagged with `destination`; the events that frame the whole run (run:start, run:done) are not forwarded. */
  static tagged(target: RunEvents, destination: string): RunEvents {
    return new TaggedEvents(target, destination);
  }

  readonly #emitter = new EventEmitter({ captureRejections: false });

  constructor() {
    this.#emitter.setMaxListeners(50);
  }

  on<K extends RunEventName>(name: K, listener: (payload: RunEventMap[K]) => void): () => void {
    this.#emitter.on(name, listener);
    return () => this.#emitter.off(name, listener);
  }

  emit<K extends RunEventName>(name: K, payload: RunEventMap[K]): void {
    try {
      this.#emitter.emit(name, payload);
    } catch (e) {
      // A broken progress listener must never break a transfer.
      process.emitWarning(`holdfast: a "${name}" listener threw: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  listenerCount(name: RunEventName): number {
    return this.#emitter.listenerCount(name);
  }
}

class TaggedEvents extends RunEvents {
  readonly #target: RunEvents;
  readonly #destination: string;

  constructor(target: RunEvents, destination: string) {
    super();
    this.#target = target;
    this.#destination = destination;
  }

  override emit<K extends RunEventName>(name: K, payload: RunEventMap[K]): void {
    super.emit(name, payload);
    if (name === 'run:start' || name === 'run:done') return;
    this.#target.emit(name, { ...payload, destination: this.#destination });
  }
}
