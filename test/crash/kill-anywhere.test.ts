// Proves DESIGN §2 promises 1–3 under kill -9: the real CLI pushing a mixed
// tree to s3rver (through the counting proxy) is SIGKILLed at seeded random
// instants — startup, plan and intent commits, recovery, small files in
// flight, mid-multipart, right after a response while outcomes are being
// written — then run again without a kill; every iteration must end with
// every file on the destination byte-identical, nothing extra there, every
// ledger row upload_completed with the right hash and size, and no more bytes
// sent than the source plus what was in flight at each kill.
//
// HOLDFAST_CRASH_ITERATIONS=N runs N iterations (default 25);
// HOLDFAST_CRASH_SEED=S reruns the single iteration with seed S;
// HOLDFAST_CRASH_BASE_SEED=B fixes the seeds of a whole run (B, B+1, …).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { CONTENT_OPS, seededRandom, startProxy, type S3Op, type S3Proxy } from '../helpers/proxy.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { assertConverged, buildTree, directClient, KiB, MiB, pushArgs, startCli, treeBytes, type Tree, type TreeShape } from './harness.js';
import { crashSeeds, describeTrigger, runAttempt, type Attempt, type Trigger } from './kills.js';

const TRANSFERS = 4;
const PART = 5 * MiB;
const SHAPE: TreeShape = { smallFiles: 150, smallMin: 1 * KiB, smallMax: 64 * KiB, bigMin: 2, bigMax: 3, bigSizeMin: 12 * MiB, bigSizeMax: 21 * MiB };

const { seeds, label: seedLabel } = crashSeeds('HOLDFAST_CRASH_ITERATIONS', 25);

const totals = { iterations: 0, kills: 0, missed: 0, sourceBytes: 0, sentBytes: 0, allowance: 0, inFlightAtKills: 0, ms: 0, phases: new Map<string, number>() };

describe('kill -9 at random instants, then run again: the push converges', { concurrency: false }, () => {
  let s3: S3TestServer;
  let proxy: S3Proxy;
  let client: S3Client;
  let tmp: TempDir;
  /** A full, uninterrupted run of a tree of this shape: the scale for time-based kills. */
  let fullRunMs = 3000;

  before(async () => {
    s3 = await startS3Server();
    proxy = await startProxy({ target: s3.endpoint });
    client = directClient(s3.endpoint);
    tmp = await makeTempDir('holdfast-crash-');
    console.log(`crash suite: ${seeds.length} iteration(s), seeds ${seedLabel} (rerun one with HOLDFAST_CRASH_SEED=<seed>)`);
    // Calibrate: how long does a full run of this shape take on this machine?
    const src = join(tmp.path, 'calibrate');
    buildTree(src, seededRandom(7), SHAPE);
    await s3.createBucket('calibrate');
    const t0 = Date.now();
    const r = await startCli(pushArgs(src, 's3://calibrate/p', { endpoint: proxy.endpoint, state: join(tmp.path, 'calibrate-state'), partSize: '5MiB', threshold: '5MiB', transfers: TRANSFERS }), proxy.endpoint).done;
    assert.equal(r.code, 0, r.stderr);
    fullRunMs = Date.now() - t0;
    await rm(src, { recursive: true, force: true });
    await rm(join(s3.dir, 'calibrate'), { recursive: true, force: true });
  });

  after(async () => {
    const f = totals;
    const phases = [...f.phases].map(([p, n]) => `${p} ${n}`).join(', ');
    console.log(
      `crash figures: ${f.iterations} iterations, ${f.kills} kills (${f.missed} triggers missed: run finished first), ` +
        `source ${(f.sourceBytes / MiB).toFixed(1)} MiB, sent ${(f.sentBytes / MiB).toFixed(1)} MiB, ` +
        `re-sent ${((f.sentBytes - f.sourceBytes) / MiB).toFixed(1)} MiB (in flight at kills ${(f.inFlightAtKills / MiB).toFixed(1)} MiB; allowed ${(f.allowance / MiB).toFixed(1)} MiB), ` +
        `full run ${fullRunMs} ms, iterations took ${(f.ms / 1000).toFixed(1)} s; kills by phase: ${phases}`,
    );
    client?.destroy();
    await proxy?.stop();
    await s3?.stop();
    await tmp?.cleanup();
  });

  for (const [i, seed] of seeds.entries()) {
    it(`iteration ${i + 1}, seed ${seed}`, async () => {
      const t0 = Date.now();
      const random = seededRandom(seed);
      const int = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));
      const bucket = `crash-${i}-${seed.toString(36)}`;
      const prefix = 'data/';
      const base = join(tmp.path, `it${i}`);
      const src = join(base, 'src');
      const state = join(base, 'state');
      const tree = buildTree(src, random, SHAPE);
      await s3.createBucket(bucket);
      const args = pushArgs(src, `s3://${bucket}/${prefix}`, { endpoint: proxy.endpoint, state, partSize: '5MiB', threshold: '5MiB', transfers: TRANSFERS });
      const context = `seed ${seed} (rerun: HOLDFAST_CRASH_SEED=${seed})`;

      const attempts: Attempt[] = [];
      const kills = random() < 0.35 ? 2 : 1;
      for (let k = 0; k < kills; k++) {
        const trigger = chooseTrigger(random, int, tree, attempts, fullRunMs);
        const a = await runAttempt(proxy, args, trigger, TRANSFERS);
        attempts.push(a);
        if (!a.killed) {
          // The run finished before its trigger fired: then it must have finished well.
          assert.equal(a.result.code, 0, `${context}: an attempt that outran its kill (${describeTrigger(trigger)}) completes\n${a.result.stderr}`);
          break;
        }
      }
      // The run after the crash(es): no kill, it must complete.
      const final = await runAttempt(proxy, args, undefined, TRANSFERS);
      attempts.push(final);
      assert.equal(
        final.result.code,
        0,
        `${context}: the run after the kills completes (exit 0)\nkills: ${attempts.map((a) => `${describeTrigger(a.trigger)} [${a.phase ?? 'not killed'}]`).join('; ')}\nstdout: ${final.result.stdout}\nstderr: ${final.result.stderr}`,
      );

      await assertConverged({ client, bucket, prefix, tree, stateDir: state, context });

      // Promise 2, as bytes. Every byte of the source must be sent once; beyond
      // that, a kill can only waste the content requests it interrupted: those in
      // flight, and parts answered 2xx whose record in the ledger the kill beat
      // (a request slot is held until the part is recorded). Both kinds hold one
      // of the `transfers` request slots, and none is larger than the largest
      // content request that attempt started. So, exactly:
      //   Σ request-body bytes of PutObject + UploadPart over all attempts
      //     ≤ source bytes + Σ over killed attempts (transfers × largest PutObject/UploadPart body it started)
      // which is at most source + kills × transfers × max(partSize, largest small file).
      const sourceBytes = treeBytes(tree);
      const sent = attempts.reduce((n, a) => n + a.contentBytes, 0);
      const allowance = attempts.reduce((n, a) => n + (a.killed ? a.allowance : 0), 0);
      // A request the server failed (or the network dropped) in an attempt that was not
      // killed is retried by the client: that resend is the protocol working, not a duplicate.
      // A resend after a 2xx would be one, and is never allowed.
      const retried = attempts.filter((a) => !a.killed).flatMap((a) => a.records.filter((r) => CONTENT_OPS.includes(r.op) && r.result !== 'ok'));
      const retriedBytes = retried.reduce((n, r) => n + r.bodyBytes, 0);
      assert.ok(
        sent <= sourceBytes + allowance + retriedBytes,
        `${context}: sent ${sent} bytes for a ${sourceBytes}-byte source; the kills allow ${allowance} more, failed requests ${retriedBytes}\n` +
          attempts.map((a) => `  ${describeTrigger(a.trigger)}: killed=${a.killed} phase=${a.phase ?? '-'} sent=${a.contentBytes} inFlight=${a.inFlightBytes}`).join('\n') +
          `\n  sent more than once: ${duplicates(attempts)}`,
      );
      assert.ok(allowance <= attempts.filter((a) => a.killed).length * TRANSFERS * Math.max(PART, SHAPE.smallMax));
      assert.ok(sent >= sourceBytes, `${context}: every byte was sent at least once`);

      totals.iterations++;
      for (const a of attempts) {
        if (a.trigger === undefined) continue;
        if (!a.killed) {
          totals.missed++;
          continue;
        }
        totals.kills++;
        totals.inFlightAtKills += a.inFlightBytes;
        totals.phases.set(a.phase ?? '?', (totals.phases.get(a.phase ?? '?') ?? 0) + 1);
      }
      totals.sourceBytes += sourceBytes;
      totals.sentBytes += sent;
      totals.allowance += allowance;
      totals.ms += Date.now() - t0;
      await rm(base, { recursive: true, force: true });
      await rm(join(s3.dir, bucket), { recursive: true, force: true });
    });
  }

});

/** Content keys (and parts) with more than one request, and how each request ended: for a failure message. */
function duplicates(attempts: readonly Attempt[]): string {
  const byKey = new Map<string, string[]>();
  attempts.forEach((a, i) => {
    for (const r of a.records) {
      if (!CONTENT_OPS.includes(r.op)) continue;
      const k = `${r.op} ${r.key}`;
      byKey.set(k, [...(byKey.get(k) ?? []), `attempt ${i + 1}: ${r.result} ${r.status ?? '-'} ${r.bodyBytes}B`]);
    }
  });
  const many = [...byKey].filter(([, v]) => v.length > 1);
  return many.length === 0 ? 'none' : many.map(([k, v]) => `${k} [${v.join('; ')}]`).join(', ');
}

/** Picks the next kill's trigger, spread so kills land in every phase of a run. */
function chooseTrigger(random: () => number, int: (lo: number, hi: number) => number, tree: Tree, earlier: readonly Attempt[], fullRunMs: number): Trigger {
  // What is probably left to do, from what earlier attempts got answered.
  const done = (op: S3Op): number => earlier.reduce((n, a) => n + a.records.filter((r) => r.op === op && r.result === 'ok').length, 0);
  const files = [...tree.values()];
  const small = files.filter((f) => f.size < PART).length;
  const parts = files.filter((f) => f.size >= PART).reduce((n, f) => n + Math.ceil(f.size / PART), 0);
  const bigs = files.length - small;
  const left = (total: number, op: S3Op): number => Math.max(1, total - done(op));
  const bytesLeft = Math.max(1, treeBytes(tree) - earlier.reduce((n, a) => n + a.contentBytes, 0));
  const x = random();
  // Early instants (process start, recovery, scan, hashing, plan and intent commits) get their own share.
  if (x < 0.1) return { kind: 'time', ms: int(0, 700) };
  if (x < 0.2) return { kind: 'time', ms: int(0, fullRunMs) };
  if (x < 0.3) return { kind: 'after-ready', ms: int(0, 150) };
  if (x < 0.45) return { kind: 'start', op: 'PutObject', n: int(1, left(small, 'PutObject')) };
  if (x < 0.55) return { kind: 'ok', op: 'PutObject', n: int(1, left(small, 'PutObject')) };
  if (x < 0.7) return { kind: 'start', op: 'UploadPart', n: int(1, left(parts, 'UploadPart')) };
  if (x < 0.8) return { kind: 'ok', op: 'UploadPart', n: int(1, left(parts, 'UploadPart')) };
  if (x < 0.88) return { kind: 'ok', op: 'CompleteMultipartUpload', n: int(1, left(bigs, 'CompleteMultipartUpload')) };
  if (x < 0.93 && earlier.length > 0) return { kind: 'start', op: 'HeadObject', n: int(1, 4) };
  return { kind: 'bytes', bytes: int(0, bytesLeft) };
}
