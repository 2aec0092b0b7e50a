// A worker's presence in the ledger (DESIGN §10): every run registers itself
// in `workers` under its owner id (host:pid:nonce, the name its leases carry)
// and beats a heartbeat on the ledger's clock until it ends. A worker whose
// heartbeat stopped for `deadAfterMs` is dead to the others: recovery takes its
// rows over at once instead of waiting for each lease to run out. On the same
// host, a dead PID tells even sooner (owner.ts).
//
// The heartbeat is bookkeeping, never a reason to fail a run: a missed beat
// is retried on the next tick. What keeps effects safe when the ledger cannot
// be reached is the lease (lease.ts), not the heartbeat.

import { hostname } from 'node:os';
import { realpath } from 'node:fs/promises';
import type { Ledger } from '../ledger/ledger.js';

/** How often a worker beats (default), and after how long without a beat it is dead. */
export const DEFAULT_HEARTBEAT_MS = 10_000;
export const DEFAULT_DEAD_AFTER_MS = 30_000;

/**
 * Which source a run's files belong to: "host:/real/root" by default, so two
 * hosts with different files under one path are two sources; or
 * "shared:NAME" when the user says the directory is one shared file system
 * (NFS, SMB) that several hosts mount: their runs then split its work.
 */
export async function sourceIdentity(sourceRoot: string, sharedSource: string | undefined): Promise<string> {
  if (sharedSource !== undefined) return `shared:${sharedSource}`;
  const real = await realpath(sourceRoot).catch(() => sourceRoot);
  return `${hostname()}:${real}`;
}

export class WorkerPresence {
  readonly #ledger: Ledger;
  readonly #id: string;
  readonly #timer: NodeJS.Timeout;
  #beating: Promise<unknown> | undefined;

  private constructor(ledger: Ledger, id: string, heartbeatMs: number) {
    this.#ledger = ledger;
    this.#id = id;
    this.#timer = setInterval(() => {
      this.#beating ??= this.#ledger
        .heartbeat(this.#id)
        .catch(() => undefined)
        .finally(() => (this.#beating = undefined));
    }, heartbeatMs);
    this.#timer.unref();
  }

  /** Registers the worker (best effort: a ledger that cannot take it fails the run's own writes soon enough). */
  static async start(ledger: Ledger, worker: { id: string; command: string; sourceId: string | null; heartbeatMs?: number }): Promise<WorkerPresence> {
    await ledger.registerWorker({ id: worker.id, host: hostname(), pid: process.pid, command: worker.command, sourceId: worker.sourceId }).catch(() => undefined);
    return new WorkerPresence(ledger, worker.id, worker.heartbeatMs ?? DEFAULT_HEARTBEAT_MS);
  }

  /** The run is over: no more beats, and the worker is marked stopped. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#beating;
    await this.#ledger.retireWorker(this.#id).catch(() => undefined);
  }
}
