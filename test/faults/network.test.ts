// Proves DESIGN §2 promises 1, 3 and 4 against a faulty network: with the
// proxy failing 20% of all requests to a real s3rver (500, 503, SlowDown,
// resets part-way through the body or after the server acted, short stalls),
// `push` converges — within its retry budget, or on a later run for the items
// it marked failed — and at every run the report accounts for every file,
// every key reported completed is on the server with its content, and no
// ledger row says upload_completed for an object the server does not hold
// (checked straight on s3rver, not through the proxy). Also: a lost answer to
// CompleteMultipartUpload costs no re-send; a permanent refusal (403) of every
// part of one file fails that file alone, with a code, without retries.
//
// HOLDFAST_FAULT_SEED=S replays one fault sequence (request order still
// depends on timing, so a replay is close, not exact).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { RunReport } from '../../src/core/report.js';
import { RunEvents } from '../../src/engine/events.js';
import { openLedger } from '../../src/ledger/open.js';
import { push, type PushOptions } from '../../src/sync/push.js';
import { FAULT_500, FAULT_503, FAULT_LOST_RESPONSE, FAULT_RESET, FAULT_SLOW_DOWN, seededRandom, stall, startProxy, statusFault, type S3Proxy } from '../helpers/proxy.js';
import { s3TestEnv, startS3Server, type S3TestServer } from '../helpers/s3-server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { assertConverged, buildTree, directClient, fetchObject, KiB, MiB, type Tree } from '../crash/harness.js';

// s3rver's fixed credentials, from the environment as users would give them.
for (const [k, v] of Object.entries(s3TestEnv('unused'))) if (k !== 'AWS_ENDPOINT_URL') process.env[k] = v;

const TRANSFERS = 4;
const seed = Number(process.env.HOLDFAST_FAULT_SEED ?? Math.floor(Math.random() * 2 ** 31));

describe('push through a faulty network', { concurrency: false }, () => {
  let s3: S3TestServer;
  let proxy: S3Proxy;
  let client: S3Client;
  let tmp: TempDir;

  before(async () => {
    s3 = await startS3Server();
    proxy = await startProxy({ target: s3.endpoint, seed });
    client = directClient(s3.endpoint);
    tmp = await makeTempDir('holdfast-net-faults-');
    console.log(`network faults: seed ${seed} (replay with HOLDFAST_FAULT_SEED=${seed})`);
  });
  after(async () => {
    client?.destroy();
    await proxy?.stop();
    await s3?.stop();
    await tmp?.cleanup();
  });

  function options(src: string, bucket: string, state: string): PushOptions {
    return {
      source: src,
      destination: `s3://${bucket}/n`,
      stateDir: state,
      backendOptions: { s3Endpoint: proxy.endpoint },
      transfers: TRANSFERS,
      multipartThreshold: 5 * MiB,
      partSize: 5 * MiB,
      // A small budget, so some items exhaust it and are left for the next run.
      retry: { attempts: 2, baseMs: 5, maxMs: 40 },
    };
  }

  /** Promise 3, checked on s3rver itself: every completed row is there, with its hash and size. */
  async function assertLedgerHonest(state: string, tree: Tree, bucket: string, context: string): Promise<Set<string>> {
    const ledger = await openLedger({ stateDir: state });
    const completed = new Set<string>();
    try {
      const [dest] = await ledger.listDestinations();
      if (dest === undefined) return completed;
      for await (const row of ledger.streamObjects(dest.id)) {
        if (row.status !== 'upload_completed') continue;
        completed.add(row.key);
        assert.equal(row.sha256, tree.get(row.key)?.sha256, `${context}: ledger hash of ${row.key}`);
        const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: `n/${row.key}` })).catch((e: unknown) => {
          assert.fail(`${context}: ${row.key} is upload_completed in the ledger but the server has no object (${String(e)})`);
        });
        assert.equal(head.Metadata?.['holdfast-sha256'], row.sha256, `${context}: server's holdfast-sha256 of ${row.key}`);
        assert.equal(head.ContentLength, row.size, `${context}: server's size of ${row.key}`);
      }
    } finally {
      await ledger.close();
    }
    return completed;
  }

  it('converges with 20% of requests failing: exact counts at every run, the ledger never ahead of the server', async () => {
    const bucket = 'net-faults';
    await s3.createBucket(bucket);
    const src = join(tmp.path, 'src');
    const state = join(tmp.path, 'state');
    // 60 small files and two multipart ones (3 parts each with 5 MiB parts).
    const tree = buildTree(src, seededRandom(seed), { smallFiles: 60, smallMin: 1 * KiB, smallMax: 32 * KiB, bigMin: 2, bigMax: 2, bigSizeMin: 11 * MiB, bigSizeMax: 14 * MiB });
    proxy.setFaults(
      // Resets mostly part-way through the body, sometimes after the server acted (the answer lost).
      [{ rate: 0.2, faults: [FAULT_500, FAULT_503, FAULT_SLOW_DOWN, FAULT_RESET, FAULT_LOST_RESPONSE, stall(40), stall(250)], weights: [2, 2, 2, 3, 1, 1, 1] }],
      seed,
    );
    proxy.reset();
    const summary: string[] = [];
    let report: RunReport | undefined;
    let runs = 0;
    for (; runs < 10 && report?.status !== 'completed'; ) {
      runs++;
      const context = `seed ${seed}, run ${runs}`;
      const events = new RunEvents();
      const completedKeys: string[] = [];
      const failedKeys = new Set<string>();
      events.on('file:done', (e) => {
        if (e.outcome === 'completed') completedKeys.push(e.key);
      });
      events.on('file:failed', (e) => failedKeys.add(e.key));
      try {
        report = await push({ ...options(src, bucket, state), events });
      } catch (e) {
        // Only a destination that stayed unreachable through every retry may stop a run before it starts.
        assert.equal((e as { code?: string }).code, 'HOLDFAST_E_DEST_UNREACHABLE', `${context}: ${String(e)}`);
        assert.equal((e as { transient?: boolean }).transient, true);
        summary.push(`run ${runs}: could not start (${(e as Error).message})`);
        report = undefined;
        continue;
      }
      const u = report.uploads;
      summary.push(`run ${runs}: ${report.status} ${JSON.stringify(u)} in ${report.durationMs} ms`);
      // Promise 4: one file, one outcome; the counts add up to the source.
      assert.equal(u.completed + u.failed + u.partial + u.skipped + u.recovered, tree.size, `${context}: counts ${JSON.stringify(u)} account for every file`);
      assert.equal(u.partial, 0, `${context}: no ledger faults, so no partial results`);
      assert.equal(completedKeys.length, u.completed, `${context}: one file:done per completed file`);
      assert.equal(failedKeys.size, u.failed, `${context}: one file:failed per failed file`);
      for (const e of report.errors) assert.match(e.code, /^HOLDFAST_E_[A-Z_]+$/, `${context}: every error carries a code`);
      assert.equal(report.status === 'completed', u.failed === 0 && report.errors.length === 0, `${context}: status ${report.status} matches the errors`);
      // Every key reported completed is on the server now, with its content (GET, not HEAD).
      for (const key of completedKeys) {
        const got = await fetchObject(client, bucket, `n/${key}`);
        assert.equal(got.sha256, tree.get(key)?.sha256, `${context}: content of ${key}, reported completed`);
      }
      const inLedger = await assertLedgerHonest(state, tree, bucket, context);
      for (const key of completedKeys) assert.ok(inLedger.has(key), `${context}: ${key} reported completed is upload_completed in the ledger`);
      for (const key of failedKeys) assert.ok(!inLedger.has(key), `${context}: ${key} reported failed is not upload_completed in the ledger`);
    }
    const c = proxy.counters();
    const faults = Object.values(c).reduce((n, x) => n + x.faults, 0);
    const requests = Object.values(c).reduce((n, x) => n + x.requests, 0);
    console.log(`network faults: converged in ${runs} run(s); ${faults} faults injected in ${requests} requests; ${summary.join('; ')}`);
    assert.equal(report?.status, 'completed', `seed ${seed}: converged within 10 runs: ${summary.join('; ')}`);
    assert.ok(faults >= 0.05 * requests, `faults were really injected (${faults} in ${requests} requests)`);
    await assertConverged({ client, bucket, prefix: 'n/', tree, stateDir: state, context: `seed ${seed}` });
  });

  it('the answer to CompleteMultipartUpload is lost after the server completed it: push asks the destination, sends nothing again', async () => {
    const bucket = 'net-lost-complete';
    await s3.createBucket(bucket);
    const src = join(tmp.path, 'src-lost');
    const state = join(tmp.path, 'state-lost');
    const tree = buildTree(src, seededRandom(seed + 2), { smallFiles: 3, smallMin: 1 * KiB, smallMax: 4 * KiB, bigMin: 1, bigMax: 1, bigSizeMin: 11 * MiB, bigSizeMax: 11 * MiB });
    proxy.setFaults([{ ops: ['CompleteMultipartUpload'], rate: 1, limit: 1, faults: [FAULT_LOST_RESPONSE] }], seed);
    proxy.reset();
    const report = await push(options(src, bucket, state));
    const big = tree.get('big/b0.bin')!;
    assert.equal(proxy.op('CompleteMultipartUpload').dropped, 1, 'the fault was injected');
    assert.equal(report.status, 'completed', JSON.stringify(report.errors));
    assert.equal(report.uploads.completed, tree.size);
    assert.equal(proxy.op('UploadPart').bodyBytes, big.size, 'no part was sent twice');
    await assertLedgerHonest(state, tree, bucket, 'lost complete');
    proxy.reset();
    const again = await push(options(src, bucket, state));
    assert.deepEqual(again.uploads, { completed: 0, failed: 0, partial: 0, skipped: tree.size, recovered: 0, fenced: 0 });
    assert.equal(proxy.contentBytes(), 0);
    await assertConverged({ client, bucket, prefix: 'n/', tree, stateDir: state, context: 'lost complete' });
    proxy.setFaults([]);
  });

  it('every part of one file refused with 403: that file fails with a code, the others complete, the run is partial', async () => {
    const bucket = 'net-403';
    await s3.createBucket(bucket);
    const src = join(tmp.path, 'src403');
    const state = join(tmp.path, 'state403');
    const tree = buildTree(src, seededRandom(seed + 1), { smallFiles: 20, smallMin: 1 * KiB, smallMax: 16 * KiB, bigMin: 2, bigMax: 2, bigSizeMin: 11 * MiB, bigSizeMax: 12 * MiB });
    const refused = 'big/b0.bin';
    proxy.setFaults([{ ops: ['UploadPart'], match: (r) => r.key === `n/${refused}`, rate: 1, faults: [statusFault(403, 'AccessDenied', 'Access Denied')] }], seed);
    proxy.reset();
    const report = await push(options(src, bucket, state));
    assert.equal(report.status, 'partial');
    assert.deepEqual(report.uploads, { completed: tree.size - 1, failed: 1, partial: 0, skipped: 0, recovered: 0, fenced: 0 });
    assert.deepEqual(
      report.errors.map((e) => [e.key, e.code]),
      [[refused, 'HOLDFAST_E_AUTH']],
    );
    // Permanent: no retries. Parts already under way when the first 403 came back may also be refused, no more.
    const attempts = proxy.records.filter((r) => r.op === 'UploadPart' && r.key === `n/${refused}`).length;
    assert.ok(attempts >= 1 && attempts <= TRANSFERS, `${attempts} UploadPart attempt(s) for the refused file`);
    const ledger = await openLedger({ stateDir: state });
    try {
      const dest = (await ledger.listDestinations())[0]!;
      const row = await ledger.getObject(dest.id, refused);
      assert.equal(row?.status, 'upload_failed');
      assert.equal(row?.errorCode, 'HOLDFAST_E_AUTH');
    } finally {
      await ledger.close();
    }
    await assertLedgerHonest(state, tree, bucket, '403');
    for (const [key, file] of tree) {
      if (key === refused) continue;
      assert.equal((await fetchObject(client, bucket, `n/${key}`)).sha256, file.sha256, `content of ${key}`);
    }
    proxy.setFaults([]);
  });
});
