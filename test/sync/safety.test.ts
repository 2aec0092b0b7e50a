// Regression tests for the safety holes of issue 9, through the public API
// against a real S3 server (s3rver) behind the fault-injecting proxy:
// - an upload that landed but whose answer was lost is never forgotten (and
//   then deleted by cleanup as "unknown to the ledger");
// - two overlapping runs with a short lease against a slow server: the first
//   run keeps every row it claimed (leases renewed from the claim on), so no
//   file is sent twice and no outcome is misreported as partial.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { openLedger } from '../../src/ledger/open.js';
import { cleanup } from '../../src/sync/cleanup.js';
import { push, type PushOptions } from '../../src/sync/push.js';
import { FAULT_LOST_RESPONSE, stall, startProxy, type S3Proxy } from '../helpers/proxy.js';
import { s3TestEnv, startS3Server, testS3Client, type S3TestServer } from '../helpers/s3-server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

for (const [k, v] of Object.entries(s3TestEnv('unused'))) if (k !== 'AWS_ENDPOINT_URL') process.env[k] = v;

const FAST_RETRY = { attempts: 2, baseMs: 5, maxMs: 20 };

describe('safety: nothing that may have landed is forgotten; leases hold', { concurrency: false }, () => {
  let s3: S3TestServer;
  let proxy: S3Proxy;
  let client: S3Client;
  let tmp: TempDir;

  before(async () => {
    s3 = await startS3Server();
    proxy = await startProxy({ target: s3.endpoint, seed: 7 });
    client = testS3Client(s3.endpoint);
    tmp = await makeTempDir('holdfast-safety-');
  });
  after(async () => {
    client?.destroy();
    await proxy?.stop();
    await s3?.stop();
    await tmp?.cleanup();
  });

  async function exists(bucket: string, key: string): Promise<boolean> {
    try {
      await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return true;
    } catch {
      return false;
    }
  }

  it('an upload whose answer was lost is resolved by asking the destination, never forgotten, so cleanup keeps it', async () => {
    await s3.createBucket('lost');
    const src = join(tmp.path, 'lost-src');
    const state = join(tmp.path, 'lost-state');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'keep.txt'), 'kept');
    writeFileSync(join(src, 'only-copy.txt'), 'the only copy, once the source is gone');
    const opts: PushOptions = { source: src, destination: 's3://lost/p', stateDir: state, backendOptions: { s3Endpoint: proxy.endpoint }, retry: FAST_RETRY };

    // Every answer to the PUT of only-copy.txt is lost: the object lands, the run records a failure.
    proxy.setFaults([{ ops: ['PutObject'], match: (r) => r.key.endsWith('only-copy.txt'), rate: 1, faults: [FAULT_LOST_RESPONSE] }]);
    const first = await push(opts);
    assert.equal(first.uploads.failed, 1, JSON.stringify(first.errors));
    assert.ok(await exists('lost', 'p/only-copy.txt'), 'the object landed although its answer was lost');
    proxy.setFaults([]);

    // The source file is removed before the next run.
    rmSync(join(src, 'only-copy.txt'));
    const second = await push(opts);
    assert.equal(second.status, 'completed', JSON.stringify(second));
    assert.equal(second.uploads.recovered, 1, 'the next run asked the destination and recorded the landed upload');
    const ledger = await openLedger({ stateDir: state });
    try {
      const dest = (await ledger.listDestinations())[0]!;
      const row = await ledger.getObject(dest.id, 'only-copy.txt');
      assert.equal(row?.status, 'upload_completed', 'the row says what the destination holds');
    } finally {
      await ledger.close();
    }

    const report = await cleanup({ destination: 's3://lost/p', stateDir: state, apply: true, backendOptions: { s3Endpoint: proxy.endpoint } });
    assert.equal(report.done.deleted, 0, JSON.stringify(report.items));
    assert.ok(await exists('lost', 'p/only-copy.txt'), 'cleanup kept the only copy');
  });

  it('a claimed upload that did not land is forgotten once its source is gone (the destination was asked)', async () => {
    await s3.createBucket('never');
    const src = join(tmp.path, 'never-src');
    const state = join(tmp.path, 'never-state');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'refused.txt'), 'refused');
    const opts: PushOptions = { source: src, destination: 's3://never/p', stateDir: state, backendOptions: { s3Endpoint: proxy.endpoint }, retry: FAST_RETRY };
    proxy.setFaults([{ ops: ['PutObject'], rate: 1, faults: [{ kind: 'status', status: 500, code: 'InternalError' }] }]);
    const first = await push(opts);
    assert.equal(first.uploads.failed, 1);
    proxy.setFaults([]);
    rmSync(join(src, 'refused.txt'));
    proxy.reset();
    const second = await push(opts);
    assert.equal(second.status, 'completed');
    assert.equal(proxy.op('HeadObject').requests, 1, 'the destination was asked once');
    const ledger = await openLedger({ stateDir: state });
    try {
      const dest = (await ledger.listDestinations())[0]!;
      assert.equal(await ledger.getObject(dest.id, 'refused.txt'), undefined, 'nothing landed: the row is forgotten');
    } finally {
      await ledger.close();
    }
  });

  it('two overlapping runs with a short lease against a slow server: nothing sent twice, nothing reported partial or fenced', async () => {
    await s3.createBucket('overlap');
    const src = join(tmp.path, 'overlap-src');
    const state = join(tmp.path, 'overlap-state');
    mkdirSync(src, { recursive: true });
    const n = 16;
    for (let i = 0; i < n; i++) writeFileSync(join(src, `f${String(i).padStart(2, '0')}.txt`), `file ${i}`);
    const leaseMs = 2000;
    // Every PUT takes 600 ms: with 2 transfers, the first run needs ~5 s, well past its lease;
    // every row it claimed at the start (all 16, in one batch) must stay its own throughout.
    proxy.setFaults([{ ops: ['PutObject'], rate: 1, faults: [stall(600)] }]);
    proxy.reset();
    const opts: PushOptions = { source: src, destination: 's3://overlap/p', stateDir: state, backendOptions: { s3Endpoint: proxy.endpoint }, transfers: 2, leaseMs, retry: FAST_RETRY };
    const a = push(opts);
    // State, not time: the first run has claimed its rows...
    let claimedAt = 0;
    await until('the first run claimed its rows', async () => {
      const l = await openLedger({ stateDir: state }).catch(() => undefined);
      if (l === undefined) return false;
      try {
        const d = (await l.listDestinations())[0];
        if (d === undefined) return false;
        const busy = (await l.listInProgress(d.id)).length;
        if (busy >= 4) claimedAt = Date.now();
        return busy >= 4;
      } finally {
        await l.close();
      }
    });
    // ...and has held them for longer than one lease: a row not renewed since the claim has expired by now.
    await until('one lease period has passed since the claim', () => Date.now() > claimedAt + leaseMs + 500);
    const b = push(opts);
    const [ra, rb] = await Promise.all([a, b]);
    proxy.setFaults([]);

    for (const [name, r] of [
      ['first', ra],
      ['second', rb],
    ] as const) {
      assert.equal(r.uploads.partial, 0, `${name} run: no false partial: ${JSON.stringify(r)}`);
      assert.equal(r.uploads.fenced, 0, `${name} run: nothing taken over from a live run: ${JSON.stringify(r)}`);
      assert.equal(r.uploads.failed, 0, `${name} run: ${JSON.stringify(r.errors)}`);
    }
    assert.equal(ra.uploads.completed + rb.uploads.completed, n, 'every file sent by exactly one of the runs');
    const puts = proxy.records.filter((r) => r.op === 'PutObject');
    const perKey = new Map<string, number>();
    for (const p of puts) perKey.set(p.key, (perKey.get(p.key) ?? 0) + 1);
    const twice = [...perKey].filter(([, c]) => c > 1);
    assert.deepEqual(twice, [], 'no file sent twice');
    assert.equal(perKey.size, n);
  });
});
