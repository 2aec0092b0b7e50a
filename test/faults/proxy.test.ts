// Proves the fault-injecting proxy (test/helpers/proxy.ts) does what the
// fault and crash suites rely on: it tells S3 operations apart, counts request
// bodies exactly, passes requests through untouched (SigV4 still verifies),
// injects each fault as an S3 client sees it, never lets a reset deliver a
// whole body, replays the same fault decisions from the same seed — and
// records how s3rver treats an interrupted PUT (it keeps the partial bytes).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { classifyError } from '../../src/core/errors.js';
import { classifyRequest, FAULT_500, FAULT_RESET, FAULT_SLOW_DOWN, seededRandom, stall, startProxy, type S3Proxy } from '../helpers/proxy.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';
import { directClient, MiB } from '../crash/harness.js';

function sdkClient(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    maxAttempts: 1,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

async function caught(p: Promise<unknown>): Promise<Error & { $metadata?: { httpStatusCode?: number } }> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  assert.ok(e instanceof Error, 'the request failed');
  return e;
}

describe('the S3 fault proxy', { concurrency: false }, () => {
  let s3: S3TestServer;
  let proxy: S3Proxy;
  let client: S3Client;
  let direct: S3Client;

  before(async () => {
    s3 = await startS3Server();
    await s3.createBucket('p');
    proxy = await startProxy({ target: s3.endpoint, seed: 3 });
    client = sdkClient(proxy.endpoint);
    direct = directClient(s3.endpoint);
  });
  after(async () => {
    client?.destroy();
    direct?.destroy();
    await proxy?.stop();
    await s3?.stop();
  });

  it('classifies S3 operations by method, path and query', () => {
    const table: [string, string, string][] = [
      ['PUT', '/b/k/x.bin?x-id=PutObject', 'PutObject'],
      ['PUT', '/b/k/x.bin?partNumber=2&uploadId=u1&x-id=UploadPart', 'UploadPart'],
      ['POST', '/b/k/x.bin?uploads&x-id=CreateMultipartUpload', 'CreateMultipartUpload'],
      ['POST', '/b/k/x.bin?uploadId=u1', 'CompleteMultipartUpload'],
      ['DELETE', '/b/k/x.bin?uploadId=u1', 'AbortMultipartUpload'],
      ['GET', '/b/k/x.bin?uploadId=u1', 'ListParts'],
      ['GET', '/b?uploads', 'ListMultipartUploads'],
      ['HEAD', '/b/k/x.bin', 'HeadObject'],
      ['HEAD', '/b', 'HeadBucket'],
      ['GET', '/b?list-type=2&prefix=k%2F', 'ListObjects'],
      ['GET', '/b/k/x.bin', 'GetObject'],
      ['DELETE', '/b/k/x.bin', 'DeleteObject'],
      ['PUT', '/b', 'CreateBucket'],
    ];
    for (const [method, url, op] of table) assert.equal(classifyRequest(method, url).op, op, `${method} ${url}`);
    assert.deepEqual(classifyRequest('PUT', '/b/a%20b/c%2B.txt'), { op: 'PutObject', bucket: 'b', key: 'a b/c+.txt' });
  });

  it('forwards verbatim and counts requests and body bytes per operation', async () => {
    proxy.reset();
    const body = Buffer.alloc(300 * 1024, 1);
    await client.send(new PutObjectCommand({ Bucket: 'p', Key: 'one.bin', Body: body, Metadata: { 'holdfast-sha256': 'abc' } }));
    const head = await client.send(new HeadObjectCommand({ Bucket: 'p', Key: 'one.bin' }));
    assert.equal(head.Metadata?.['holdfast-sha256'], 'abc');
    const mp = await client.send(new CreateMultipartUploadCommand({ Bucket: 'p', Key: 'mp.bin' }));
    const part = Buffer.alloc(5 * MiB, 2);
    const up = await client.send(new UploadPartCommand({ Bucket: 'p', Key: 'mp.bin', UploadId: mp.UploadId, PartNumber: 1, Body: part, ContentLength: part.length }));
    await client.send(new CompleteMultipartUploadCommand({ Bucket: 'p', Key: 'mp.bin', UploadId: mp.UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: up.ETag }] } }));
    const listed = await client.send(new ListObjectsV2Command({ Bucket: 'p' }));
    assert.deepEqual(listed.Contents?.map((o) => o.Key).sort(), ['mp.bin', 'one.bin']);
    const got = await client.send(new GetObjectCommand({ Bucket: 'p', Key: 'mp.bin' }));
    assert.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(part));

    const c = proxy.counters();
    assert.deepEqual(
      Object.fromEntries(Object.entries(c).map(([op, x]) => [op, [x.requests, x.ok]])),
      { PutObject: [1, 1], HeadObject: [1, 1], CreateMultipartUpload: [1, 1], UploadPart: [1, 1], CompleteMultipartUpload: [1, 1], ListObjects: [1, 1], GetObject: [1, 1] },
    );
    assert.equal(c.PutObject?.bodyBytes, body.length);
    assert.equal(c.UploadPart?.bodyBytes, part.length);
    assert.equal(proxy.contentBytes(), body.length + part.length);
    assert.deepEqual(proxy.inFlight(), []);
  });

  it('injects 500, SlowDown and stalls as an S3 client sees them', async () => {
    proxy.setFaults([{ ops: ['PutObject'], rate: 1, faults: [FAULT_500] }]);
    const e500 = await caught(client.send(new PutObjectCommand({ Bucket: 'p', Key: 'e.bin', Body: 'x' })));
    assert.equal(e500.$metadata?.httpStatusCode, 500);
    assert.equal(classifyError(e500).code, 'HOLDFAST_E_DEST_SERVER');

    proxy.setFaults([{ rate: 1, faults: [FAULT_SLOW_DOWN] }]);
    const slow = await caught(client.send(new PutObjectCommand({ Bucket: 'p', Key: 'e.bin', Body: 'x' })));
    assert.equal(slow.name, 'SlowDown');
    assert.equal(classifyError(slow).code, 'HOLDFAST_E_THROTTLED');
    // HEAD responses have no body: the status alone must tell.
    const slowHead = await caught(client.send(new HeadObjectCommand({ Bucket: 'p', Key: 'one.bin' })));
    assert.equal(classifyError(slowHead).transient, true);

    // A stall delays, then lets the whole request through: no body byte may be lost meanwhile.
    proxy.setFaults([{ rate: 1, faults: [stall(200)] }]);
    proxy.reset();
    const body = Buffer.alloc(2 * MiB, 3);
    const t0 = Date.now();
    await client.send(new PutObjectCommand({ Bucket: 'p', Key: 'stalled.bin', Body: body, ContentLength: body.length }));
    assert.ok(Date.now() - t0 >= 190);
    assert.equal(proxy.op('PutObject').bodyBytes, body.length);
    assert.equal((await direct.send(new HeadObjectCommand({ Bucket: 'p', Key: 'stalled.bin' }))).ContentLength, body.length);
    proxy.setFaults([]);
  });

  it('a reset never lets the whole body through; s3rver keeps what arrived as a partial object', async () => {
    proxy.setFaults([{ ops: ['PutObject'], rate: 1, faults: [FAULT_RESET] }]);
    proxy.reset();
    const body = Buffer.alloc(3 * MiB, 4);
    const e = await caught(client.send(new PutObjectCommand({ Bucket: 'p', Key: 'reset.bin', Body: body, ContentLength: body.length, Metadata: { 'holdfast-sha256': 'full' } })));
    assert.equal(classifyError(e).code, 'HOLDFAST_E_NETWORK');
    const rec = proxy.records.find((r) => r.op === 'PutObject')!;
    assert.equal(rec.result, 'dropped');
    assert.ok(rec.bodyBytes < body.length, `${rec.bodyBytes} of ${body.length} bytes read`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    // s3rver streams bodies into the object file: the partial bytes stay visible
    // (real S3 stores nothing). Never complete, never with the metadata.
    const head = await direct.send(new HeadObjectCommand({ Bucket: 'p', Key: 'reset.bin' })).catch(() => undefined);
    if (head !== undefined) {
      assert.ok((head.ContentLength ?? 0) < body.length, 'only a partial object');
      assert.equal(head.Metadata?.['holdfast-sha256'], undefined);
    }
    proxy.setFaults([]);
  });

  it('the same seed replays the same fault decisions', async () => {
    const decisions = async (seed: number): Promise<string[]> => {
      proxy.setFaults([{ ops: ['HeadObject'], rate: 0.5, faults: [FAULT_500, FAULT_SLOW_DOWN] }], seed);
      proxy.reset();
      for (let i = 0; i < 20; i++) await client.send(new HeadObjectCommand({ Bucket: 'p', Key: 'one.bin' })).catch(() => undefined);
      return proxy.records.map((r) => `${r.fault ?? '-'}:${r.status ?? '-'}`);
    };
    const a = await decisions(11);
    assert.deepEqual(await decisions(11), a);
    assert.notDeepEqual(await decisions(12), a);
    assert.ok(a.some((d) => d.startsWith('status')) && a.some((d) => d.startsWith('-')));
    proxy.setFaults([]);
    // The PRNG itself: deterministic and spread over [0, 1).
    const r = seededRandom(5);
    const xs = Array.from({ length: 1000 }, r);
    assert.ok(xs.every((x) => x >= 0 && x < 1));
    assert.ok(Math.abs(xs.reduce((s, x) => s + x, 0) / xs.length - 0.5) < 0.05);
  });
});
