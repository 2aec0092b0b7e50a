// A server that accepts a request and then says nothing must not stall a run
// (or a watch) forever: the request is abandoned after the backend's request
// timeout, classified HOLDFAST_E_TIMEOUT (transient), and retried. A real
// s3rver behind the fault proxy, whose `stall` holds a request before passing
// it on (s3://, and Azurite for azure://); for gdrive://, a server that never
// answers.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { push } from '../../src/sync/push.js';
import { startS3Server, s3TestEnv, type S3TestServer } from '../helpers/s3-server.js';
import { createServer } from 'node:http';
import { startAzurite, type AzuriteServer } from '../helpers/azurite.js';
import type { AddressInfo } from 'node:net';
import { stall, startProxy } from '../helpers/proxy.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

for (const [k, v] of Object.entries(s3TestEnv('unused'))) if (k !== 'AWS_ENDPOINT_URL') process.env[k] = v;

const HANG_MS = 20_000;

describe('a destination that hangs', () => {
  let tmp: TempDir;
  let s3: S3TestServer;
  let azurite: AzuriteServer;
  let n = 0;
  before(async () => {
    tmp = await makeTempDir('holdfast-hang-');
    s3 = await startS3Server();
    await s3.createBucket('hang');
    azurite = await startAzurite();
  });
  after(async () => {
    await s3.stop();
    await azurite.stop();
    await tmp.cleanup();
  });

  function source(): { src: string; state: string } {
    const base = join(tmp.path, `case${n++}`);
    const src = join(base, 'src');
    mkdirSync(src, { recursive: true });
    for (let i = 0; i < 4; i++) writeFileSync(join(src, `f${i}.txt`), `content ${i}`);
    return { src, state: join(base, 'state') };
  }

  it('s3://: a request with no bytes moving is abandoned after requestTimeoutMs and retried', async () => {
    const { src, state } = source();
    const proxy = await startProxy({ target: s3.endpoint, faults: [{ ops: ['PutObject'], rate: 1, limit: 1, faults: [stall(HANG_MS)] }] });
    const started = Date.now();
    const report = await push({
      source: src,
      destination: 's3://hang/a',
      stateDir: state,
      backendOptions: { s3Endpoint: proxy.endpoint, requestTimeoutMs: 500 },
      retry: { attempts: 3, baseMs: 5, maxMs: 10 },
    });
    assert.equal(report.status, 'completed', JSON.stringify(report.errors));
    assert.equal(report.uploads.completed, 4);
    assert.ok(Date.now() - started < HANG_MS / 2, `the run did not wait out the hang (${Date.now() - started} ms)`);
    assert.equal(proxy.op('PutObject').faults, 1, 'one request was held');
    assert.equal(proxy.op('PutObject').requests, 5, 'and sent again');

    // Without retries left, the file fails with a transient timeout (the next run retries it).
    proxy.setFaults([{ ops: ['PutObject'], rate: 1, limit: 1, faults: [stall(HANG_MS)] }]);
    writeFileSync(join(src, 'late.txt'), 'late');
    const once = await push({ source: src, destination: 's3://hang/a', stateDir: state, backendOptions: { s3Endpoint: proxy.endpoint, requestTimeoutMs: 500 }, retry: { attempts: 1, baseMs: 5, maxMs: 10 } });
    assert.equal(once.uploads.failed, 1);
    assert.equal(once.errors[0]?.code, 'HOLDFAST_E_TIMEOUT');
    await proxy.stop();
  });

  it('azure://: a hung request is abandoned after requestTimeoutMs and retried', async () => {
    const { src, state } = source();
    const proxy = await startProxy({ target: new URL(azurite.endpoint).origin, faults: [{ match: (r) => r.key.endsWith('f1.txt'), rate: 1, limit: 1, faults: [stall(HANG_MS)] }] });
    const started = Date.now();
    const report = await push({
      source: src,
      destination: 'azure://hang/a',
      stateDir: state,
      backendOptions: { azureConnectionString: azurite.connectionStringFor(proxy.endpoint), requestTimeoutMs: 1000 },
      retry: { attempts: 3, baseMs: 5, maxMs: 10 },
    });
    assert.equal(report.status, 'completed', JSON.stringify(report.errors));
    assert.equal(report.uploads.completed, 4);
    assert.ok(Date.now() - started < HANG_MS / 2, `the run did not wait out the hang (${Date.now() - started} ms)`);
    assert.ok(proxy.records.some((r) => r.fault === 'stall'), 'the stall was injected');
    await proxy.stop();
  });

  it('gdrive://: a request with no answer is abandoned after requestTimeoutMs, as a timeout (not a cancellation)', async () => {
    const { src, state } = source();
    // A server that reads requests and never answers.
    const silent = createServer((req) => req.resume());
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const root = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/`;
    const started = Date.now();
    await assert.rejects(
      push({ source: src, destination: 'gdrive://folder123', stateDir: state, backendOptions: { gdriveAccessToken: 'test-token', gdriveApiRoot: root, requestTimeoutMs: 300 }, retry: { attempts: 2, baseMs: 5, maxMs: 10 } }),
      (e: unknown) => {
        const err = e as { code?: string; message?: string };
        assert.equal(err.code, 'HOLDFAST_E_DEST_UNREACHABLE');
        assert.match(err.message ?? '', /no answer within 300 ms/);
        return true;
      },
    );
    assert.ok(Date.now() - started < HANG_MS / 2, `the run did not hang (${Date.now() - started} ms)`);
    silent.closeAllConnections();
    await new Promise<void>((r) => silent.close(() => r()));
  });
});
