// Kills at chosen instants, for the crash suites: what decides the instant
// (a time, the start or the 2xx of the N-th request of an operation, a byte
// count, all seen through the counting proxy), and one attempt of the CLI
// run under such a trigger, with what the proxy saw of it.

import type { CliResult } from '../helpers/cli.js';
import { CONTENT_OPS, type RequestRecord, type S3Op, type S3Proxy } from '../helpers/proxy.js';
import { startCli, type CliRun } from './harness.js';

/** Where in a run a kill landed, judged from what the proxy had seen at that instant. */
export type Phase = 'startup' | 'plan' | 'recovery' | 'small files' | 'multipart' | 'multipart create' | 'multipart complete' | 'outcome writes' | 'deletes';

/** What decides the instant of a kill. */
export type Trigger =
  | { readonly kind: 'time'; readonly ms: number }
  | { readonly kind: 'after-ready'; readonly ms: number }
  | { readonly kind: 'start'; readonly op: S3Op; readonly n: number }
  | { readonly kind: 'ok'; readonly op: S3Op; readonly n: number }
  | { readonly kind: 'bytes'; readonly bytes: number };

export interface Attempt {
  readonly trigger: Trigger | undefined;
  readonly killed: boolean;
  readonly phase: Phase | undefined;
  readonly records: readonly RequestRecord[];
  /** Request-body bytes of PutObject + UploadPart in this attempt. */
  readonly contentBytes: number;
  /** Content bytes of requests that had not been answered 2xx when the kill came. */
  readonly inFlightBytes: number;
  /** transfers × the largest content request this attempt started: what one kill may cost (see the bound below). */
  readonly allowance: number;
  readonly ms: number;
  readonly result: CliResult;
}

export function describeTrigger(t: Trigger | undefined): string {
  if (t === undefined) return 'none';
  switch (t.kind) {
    case 'time':
      return `${t.ms} ms after spawn`;
    case 'after-ready':
      return `${t.ms} ms after HeadBucket`;
    case 'start':
      return `start of ${t.op} #${t.n}`;
    case 'ok':
      return `2xx of ${t.op} #${t.n}`;
    case 'bytes':
      return `after ${t.bytes} content bytes`;
  }
}

export function phaseNow(proxy: S3Proxy): Phase {
  const flying = new Set(proxy.inFlight().map((r) => r.op));
  if (flying.has('UploadPart')) return 'multipart';
  if (flying.has('PutObject')) return 'small files';
  if (flying.has('CompleteMultipartUpload')) return 'multipart complete';
  if (flying.has('CreateMultipartUpload')) return 'multipart create';
  if (flying.has('DeleteObject')) return 'deletes';
  const seen = new Set(proxy.records.map((r) => r.op));
  if (seen.has('PutObject') || seen.has('UploadPart') || seen.has('CompleteMultipartUpload')) return 'outcome writes';
  if (seen.has('HeadObject')) return 'recovery';
  if (seen.size > 0) return 'plan';
  return 'startup';
}

/** Runs the CLI once, killing it when `trigger` fires (if it does before the run ends). */
export async function runAttempt(p: S3Proxy, args: readonly string[], trigger: Trigger | undefined, transfers: number): Promise<Attempt> {
  p.reset();
  const run = startCli(args, p.endpoint);
  let killed = false;
  let phase: Phase | undefined;
  let inFlightBytes = 0;
  const kill = (): void => {
    if (killed || run.child.exitCode !== null || run.child.signalCode !== null) return;
    phase = phaseNow(p);
    inFlightBytes = p.records.filter((r) => CONTENT_OPS.includes(r.op) && r.result !== 'ok').reduce((n, r) => n + r.contentLength, 0);
    killed = true;
    run.kill();
  };
  const disarm = arm(p, run, trigger, kill);
  const result = await run.done;
  disarm();
  const records = [...p.records];
  const content = records.filter((r) => CONTENT_OPS.includes(r.op));
  const largest = content.reduce((m, r) => Math.max(m, r.contentLength), 0);
  return {
    trigger,
    killed,
    phase,
    records,
    contentBytes: content.reduce((n, r) => n + r.bodyBytes, 0),
    inFlightBytes,
    allowance: transfers * largest,
    ms: Date.now() - run.startedAt,
    result,
  };
}

/** Sets up the trigger; returns a function that removes it. */
export function arm(p: S3Proxy, run: CliRun, trigger: Trigger | undefined, kill: () => void): () => void {
  if (trigger === undefined) return () => undefined;
  const timers: NodeJS.Timeout[] = [];
  const offs: (() => void)[] = [];
  switch (trigger.kind) {
    case 'time':
      timers.push(setTimeout(kill, trigger.ms));
      break;
    case 'after-ready':
      offs.push(
        p.on('end', (r) => {
          if (r.op === 'HeadBucket' && r.result === 'ok') timers.push(setTimeout(kill, trigger.ms));
        }),
      );
      break;
    case 'start': {
      let n = 0;
      offs.push(
        p.on('start', (r) => {
          if (r.op === trigger.op && ++n === trigger.n) kill();
        }),
      );
      break;
    }
    case 'ok': {
      let n = 0;
      offs.push(
        p.on('end', (r) => {
          if (r.op === trigger.op && r.result === 'ok' && ++n === trigger.n) kill();
        }),
      );
      break;
    }
    case 'bytes': {
      // Checked as requests start and end and on a fine timer, so the kill lands mid-body.
      const check = (): void => {
        if (p.contentBytes() + p.inFlight().reduce((n, r) => n + (CONTENT_OPS.includes(r.op) ? r.bodyBytes : 0), 0) >= trigger.bytes) kill();
      };
      timers.push(setInterval(check, 2));
      break;
    }
  }
  void run.done.then(() => {
    for (const t of timers) clearTimeout(t);
  });
  return () => {
    for (const t of timers) clearTimeout(t);
    for (const off of offs) off();
  };
}

/**
 * The seeds of a crash suite's iterations, from the environment:
 * HOLDFAST_CRASH_SEED=S reruns one; `iterationsVar`=N runs N (default `dflt`);
 * HOLDFAST_CRASH_BASE_SEED=B fixes them (B, B+1, …). `label` says which, for the log.
 */
export function crashSeeds(iterationsVar: string, dflt: number): { seeds: number[]; label: string } {
  const one = process.env.HOLDFAST_CRASH_SEED;
  if (one !== undefined && one !== '') return { seeds: [Number(one)], label: one };
  const n = Number(process.env[iterationsVar] ?? dflt);
  const base = Number(process.env.HOLDFAST_CRASH_BASE_SEED ?? Math.floor(Math.random() * 2 ** 31));
  return { seeds: Array.from({ length: n }, (_, i) => (base + i) >>> 0), label: `${base}..${base + n - 1}` };
}
