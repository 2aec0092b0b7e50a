// Regression tests for the safety holes of issue 9, through the public API
// against a real S3 server (s3rver) behind the fault-injecting proxy:
// - an upload that landed but whose answer was lost is never forgotten (and
//   then deleted by cleanup as "unknown to the ledger");
// - two overlapping runs with a short lease against a slow server: the first
//   run keeps every row it claimed (leases renewed from the claim on), so no
//   file is sent twice and no outcome is misreported as partial;
// - cleanup never deletes what another destination of the ledger, or another
//   ledger, tracks; a destination's identity includes its endpoint.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { openLedger } from '../../src/ledger/open.js';
import { cleanup } from '../../src/sync/cleanup.js';
import { push, type PushOptions } from '../../src/sync/push.js';
import { FAULT_LOST_RESPONSE, stall, startProxy, type S3Proxy } from '../helpers/proxy.js';
import { s3TestEnv, startS3Server, testS3Client, type S3TestServer } from '../helpers/s3-server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

for (const [k, v] of Object.entries(s3TestEnv('unused'))) if (k !== 'AWS_ENDPOINT_URL') process.env[k] = v;

const FAST_RETRY = { attempts: 2, baseMs: 5, maxMs: 20 };

async function objectExists(client: S3Client, bucket: string, key: string): Promise<boolean> {
  try {
    await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return true;
  } catch {
    return false;
  }
}

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

  const exists = (bucket: string, key: string): Promise<boolean> => objectExists(client, bucket, key);

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

describe('safety: identities, and what cleanup may delete', { concurrency: false }, () => {
  let s3: S3TestServer;
  let other: S3TestServer;
  let client: S3Client;
  let tmp: TempDir;

  before(async () => {
    s3 = await startS3Server();
    other = await startS3Server();
    client = testS3Client(s3.endpoint);
    tmp = await makeTempDir('holdfast-identity-');
  });
  after(async () => {
    client?.destroy();
    await other?.stop();
    await s3?.stop();
    await tmp?.cleanup();
  });

  function tree(dir: string, files: readonly string[]): string {
    for (const f of files) {
      mkdirSync(join(dir, f, '..'), { recursive: true });
      writeFileSync(join(dir, f), `content of ${f}`);
    }
    return dir;
  }

  it('cleanup of file:///dst keeps what the same ledger pushed to file:///dst/nested (and the reverse)', async () => {
    const state = join(tmp.path, 'nest-state');
    const dst = join(tmp.path, 'dst');
    const outer = tree(join(tmp.path, 'outer'), ['a.txt', 'b/c.txt']);
    const inner = tree(join(tmp.path, 'inner'), ['x.txt', 'y/z.txt']);
    assert.equal((await push({ source: outer, destination: `file://${dst}`, stateDir: state })).status, 'completed');
    assert.equal((await push({ source: inner, destination: `file://${dst}/nested`, stateDir: state })).status, 'completed');
    writeFileSync(join(dst, 'stray.tmp'), 'an orphan nobody tracks');

    const outerClean = await cleanup({ destination: `file://${dst}`, stateDir: state, apply: true, maxDelete: '100' });
    assert.equal(outerClean.done.deleted, 1, JSON.stringify(outerClean.items));
    assert.deepEqual(
      outerClean.items.filter((i) => i.action === 'delete').map((i) => i.key),
      ['stray.tmp'],
    );
    for (const f of ['nested/x.txt', 'nested/y/z.txt']) assert.ok(existsSync(join(dst, f)), `${f} is the nested destination's`);
    assert.ok(outerClean.items.some((i) => i.key === 'nested/x.txt' && i.action === 'leave' && i.reason.includes('another destination of this ledger')));

    // The nested destination's cleanup sees the outer one's objects under it as tracked too.
    mkdirSync(join(dst, 'nested', 'sub'), { recursive: true });
    const extra = await push({ source: tree(join(tmp.path, 'outer2'), ['nested/sub/o.txt']), destination: `file://${dst}`, stateDir: state });
    assert.equal(extra.uploads.completed, 1);
    const innerClean = await cleanup({ destination: `file://${dst}/nested`, stateDir: state, apply: true, maxDelete: '100' });
    assert.equal(innerClean.done.deleted, 0, JSON.stringify(innerClean.items));
    assert.ok(existsSync(join(dst, 'nested', 'sub', 'o.txt')));
  });

  it('two ledgers on one bucket prefix: one host’s cleanup keeps the other’s objects unless --delete-other-ledgers', async () => {
    await s3.createBucket('shared');
    const opts = { backendOptions: { s3Endpoint: s3.endpoint } };
    const hostA = tree(join(tmp.path, 'hostA'), ['a1.txt', 'a2.txt']);
    const hostB = tree(join(tmp.path, 'hostB'), ['b1.txt', 'b2.txt']);
    const stateA = join(tmp.path, 'stateA');
    const stateB = join(tmp.path, 'stateB');
    assert.equal((await push({ source: hostA, destination: 's3://shared/p', stateDir: stateA, ...opts })).status, 'completed');
    assert.equal((await push({ source: hostB, destination: 's3://shared/p', stateDir: stateB, ...opts })).status, 'completed');
    // An object no Holdfast wrote (no holdfast-sha256): a real orphan.
    await client.send(new PutObjectCommand({ Bucket: 'shared', Key: 'p/foreign.bin', Body: 'foreign' }));

    const a = await cleanup({ destination: 's3://shared/p', stateDir: stateA, apply: true, maxDelete: '100', ...opts });
    assert.equal(a.done.deleted, 1, JSON.stringify(a.items));
    assert.ok(!(await exists('shared', 'p/foreign.bin')));
    for (const k of ['b1.txt', 'b2.txt']) {
      assert.ok(await exists('shared', `p/${k}`), `host B's ${k} is kept`);
      assert.ok(a.items.some((i) => i.key === k && i.action === 'leave' && i.reason.startsWith('another ledger')), JSON.stringify(a.items));
    }
    const asked = await cleanup({ destination: 's3://shared/p', stateDir: stateA, apply: true, maxDelete: '100', deleteOtherLedgers: true, ...opts });
    assert.equal(asked.done.deleted, 2);
    assert.ok(!(await exists('shared', 'p/b1.txt')));
  });

  it('one bucket name on two endpoints is two destinations: the second push sends everything', async () => {
    await s3.createBucket('twin');
    await other.createBucket('twin');
    const src = tree(join(tmp.path, 'twin-src'), ['one.txt', 'two.txt']);
    const state = join(tmp.path, 'twin-state');
    const first = await push({ source: src, destination: 's3://twin/p', stateDir: state, backendOptions: { s3Endpoint: s3.endpoint } });
    assert.equal(first.uploads.completed, 2);
    const second = await push({ source: src, destination: 's3://twin/p', stateDir: state, backendOptions: { s3Endpoint: other.endpoint } });
    assert.equal(second.uploads.completed, 2, `nothing was on the second server: ${JSON.stringify(second.uploads)}`);
    assert.equal(second.uploads.skipped, 0);
    const otherClient = testS3Client(other.endpoint);
    try {
      await otherClient.send(new HeadObjectCommand({ Bucket: 'twin', Key: 'p/one.txt' }));
    } finally {
      otherClient.destroy();
    }
  });

  const exists = (bucket: string, key: string): Promise<boolean> => objectExists(client, bucket, key);
});
