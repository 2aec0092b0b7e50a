// The crash suite with a source that keeps changing (issue 9): the real CLI
// runs `sync` (deletes mirrored) against s3rver through the counting proxy,
// and between its attempts the source is edited, added to and deleted from;
// each attempt is SIGKILLed at a seeded instant — uploads, parts, deletes in
// flight, recovery heads, plan. After one last change and a run that is not
// killed, the destination must equal the source exactly (listed and read
// straight from s3rver, not through Holdfast), every ledger row must say so
// (completed with the source's hash, or delete_completed for keys gone from
// the source), and `holdfast check` must find nothing to report.
//
// HOLDFAST_CRASH_MUTATING_ITERATIONS=N runs N iterations (default 8);
// HOLDFAST_CRASH_SEED=S reruns one seed; HOLDFAST_CRASH_BASE_SEED=B fixes them.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { seededRandom, startProxy, type S3Proxy } from '../helpers/proxy.js';
import { runCli } from '../helpers/cli.js';
import { s3TestEnv, startS3Server, type S3TestServer } from '../helpers/s3-server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { assertConverged, buildTree, directClient, KiB, MiB, pushArgs, writeSeededFile, type Tree, type TreeShape } from './harness.js';
import { crashSeeds, describeTrigger, runAttempt, type Attempt, type Trigger } from './kills.js';

const TRANSFERS = 4;
const SHAPE: TreeShape = { smallFiles: 60, smallMin: 1 * KiB, smallMax: 48 * KiB, bigMin: 0, bigMax: 2, bigSizeMin: 6 * MiB, bigSizeMax: 11 * MiB };
const DIRS = ['', 'docs', 'docs/2024', 'img', 'x y'];

const { seeds, label: seedLabel } = crashSeeds('HOLDFAST_CRASH_MUTATING_ITERATIONS', 8);

const totals = { iterations: 0, kills: 0, missed: 0, edits: 0, adds: 0, deletes: 0, phases: new Map<string, number>(), ms: 0 };

/** Edits, adds and deletes source files (seeded), keeping `tree` in step; returns what it did. */
function mutate(root: string, tree: Tree, random: () => number, serial: { n: number }): { edits: number; adds: number; deletes: number } {
  const int = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));
  const pick = (): string | undefined => {
    const keys = [...tree.keys()];
    return keys.length === 0 ? undefined : keys[int(0, keys.length - 1)];
  };
  const done = { edits: 0, adds: 0, deletes: 0 };
  for (let i = int(0, 4); i > 0; i--) {
    const key = pick();
    if (key === undefined) break;
    const old = tree.get(key)!;
    // Same size half of the time: only the content (and mtime) tells the change.
    const size = random() < 0.5 ? old.size : old.size >= MiB ? int(6 * MiB, 11 * MiB) : int(1 * KiB, 48 * KiB);
    writeSeededFile(root, key, size, int(1, 2 ** 31), tree);
    done.edits++;
  }
  for (let i = int(0, 6); i > 0; i--) {
    const key = pick();
    if (key === undefined) break;
    rmSync(join(root, key));
    tree.delete(key);
    done.deletes++;
  }
  for (let i = int(0, 4); i > 0; i--) {
    const dir = DIRS[int(0, DIRS.length - 1)] ?? '';
    const key = `${dir === '' ? '' : `${dir}/`}new${serial.n++}.dat`;
    writeSeededFile(root, key, int(1 * KiB, 48 * KiB), int(1, 2 ** 31), tree);
    done.adds++;
  }
  // Now and then a deleted key comes back with other content.
  if (random() < 0.3) {
    const key = `docs/f${String(int(0, SHAPE.smallFiles - 1)).padStart(3, '0')}.dat`;
    if (!tree.has(key) && !existsSync(join(root, key))) {
      writeSeededFile(root, key, int(1 * KiB, 48 * KiB), int(1, 2 ** 31), tree);
      done.adds++;
    }
  }
  return done;
}

/** Where to kill: spread over uploads, parts, deletes, recovery and the early phases. */
function chooseTrigger(random: () => number, int: (lo: number, hi: number) => number, fullRunMs: number): Trigger {
  const x = random();
  if (x < 0.15) return { kind: 'time', ms: int(0, fullRunMs) };
  if (x < 0.3) return { kind: 'start', op: 'PutObject', n: int(1, 30) };
  if (x < 0.4) return { kind: 'ok', op: 'PutObject', n: int(1, 30) };
  if (x < 0.5) return { kind: 'start', op: 'UploadPart', n: int(1, 4) };
  if (x < 0.55) return { kind: 'ok', op: 'CompleteMultipartUpload', n: 1 };
  if (x < 0.72) return { kind: 'start', op: 'DeleteObject', n: int(1, 4) };
  if (x < 0.85) return { kind: 'ok', op: 'DeleteObject', n: int(1, 4) };
  if (x < 0.93) return { kind: 'start', op: 'HeadObject', n: int(1, 3) };
  return { kind: 'after-ready', ms: int(0, 150) };
}

describe('kill -9 while the source changes between runs: sync converges to the source exactly', { concurrency: false }, () => {
  let s3: S3TestServer;
  let proxy: S3Proxy;
  let client: S3Client;
  let tmp: TempDir;
  let fullRunMs = 2000;

  before(async () => {
    s3 = await startS3Server();
    proxy = await startProxy({ target: s3.endpoint });
    client = directClient(s3.endpoint);
    tmp = await makeTempDir('holdfast-crash-mut-');
    console.log(`mutating crash suite: ${seeds.length} iteration(s), seeds ${seedLabel} (rerun one with HOLDFAST_CRASH_SEED=<seed>)`);
    const src = join(tmp.path, 'calibrate');
    buildTree(src, seededRandom(11), SHAPE);
    await s3.createBucket('calibrate');
    const t0 = Date.now();
    const r = await runAttempt(proxy, pushArgs(src, 's3://calibrate/p', { endpoint: proxy.endpoint, state: join(tmp.path, 'cal-state'), partSize: '5MiB', threshold: '5MiB', transfers: TRANSFERS, command: 'sync' }), undefined, TRANSFERS);
    assert.equal(r.result.code, 0, r.result.stderr);
    fullRunMs = Date.now() - t0;
    await rm(src, { recursive: true, force: true });
  });

  after(async () => {
    const f = totals;
    console.log(
      `mutating crash figures: ${f.iterations} iterations, ${f.kills} kills (${f.missed} triggers missed: run finished first); ` +
        `source changes between runs: ${f.edits} edits, ${f.adds} adds, ${f.deletes} deletes; ` +
        `kills by phase: ${[...f.phases].map(([p, n]) => `${p} ${n}`).join(', ')}; iterations took ${(f.ms / 1000).toFixed(1)} s`,
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
      const bucket = `mut-${i}-${seed.toString(36)}`;
      const prefix = 'data/';
      const url = `s3://${bucket}/${prefix}`;
      const base = join(tmp.path, `it${i}`);
      const src = join(base, 'src');
      const state = join(base, 'state');
      const tree = buildTree(src, random, SHAPE);
      await s3.createBucket(bucket);
      // Deletes are what this suite is about: no cap on them.
      const args = [...pushArgs(src, url, { endpoint: proxy.endpoint, state, partSize: '5MiB', threshold: '5MiB', transfers: TRANSFERS, command: 'sync' }), '--max-delete', '100%'];
      const context = `seed ${seed} (rerun: HOLDFAST_CRASH_SEED=${seed})`;
      const serial = { n: 0 };
      const attempts: Attempt[] = [];
      const rounds = int(2, 4);
      for (let r = 0; r < rounds; r++) {
        if (r > 0) {
          const m = mutate(src, tree, random, serial);
          totals.edits += m.edits;
          totals.adds += m.adds;
          totals.deletes += m.deletes;
        }
        const trigger = chooseTrigger(random, int, fullRunMs);
        const a = await runAttempt(proxy, args, trigger, TRANSFERS);
        attempts.push(a);
        if (a.killed) {
          totals.kills++;
          totals.phases.set(a.phase ?? '?', (totals.phases.get(a.phase ?? '?') ?? 0) + 1);
        } else {
          totals.missed++;
          assert.equal(a.result.code, 0, `${context}: an attempt that outran its kill (${describeTrigger(trigger)}) completes\n${a.result.stdout}\n${a.result.stderr}`);
        }
      }
      // One more change, then a run that is not killed.
      const m = mutate(src, tree, random, serial);
      totals.edits += m.edits;
      totals.adds += m.adds;
      totals.deletes += m.deletes;
      const final = await runAttempt(proxy, args, undefined, TRANSFERS);
      attempts.push(final);
      assert.equal(
        final.result.code,
        0,
        `${context}: the run after the kills completes (exit 0)\nkills: ${attempts.map((a) => `${describeTrigger(a.trigger)} [${a.phase ?? 'not killed'}]`).join('; ')}\nstdout: ${final.result.stdout}\nstderr: ${final.result.stderr}`,
      );

      // The destination, listed and read straight from s3rver, equals the source; the ledger agrees.
      await assertConverged({ client, bucket, prefix, tree, stateDir: state, context, deleted: true });
      // And Holdfast's own comparison of the three sides finds nothing.
      // Through the same endpoint as the runs: the endpoint is part of the destination's identity.
      const check = await runCli(['check', src, url, '--s3-endpoint', proxy.endpoint, '--state', state, '--json'], { env: s3TestEnv(proxy.endpoint) });
      assert.equal(check.code, 0, `${context}: check is clean\n${check.stdout}\n${check.stderr}`);

      totals.iterations++;
      totals.ms += Date.now() - t0;
      await rm(base, { recursive: true, force: true });
      await rm(join(s3.dir, bucket), { recursive: true, force: true });
    });
  }
});
