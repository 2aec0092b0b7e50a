// Ctrl-C, as a user presses it, against s3rver behind a slowing proxy
// (DESIGN §5 cancellation):
// - once: no new file starts, in-flight transfers finish and are recorded,
//   exit 130, nothing left in progress; the next run sends only the rest;
// - twice: in-flight transfers are aborted at once, exit 130; a multipart
//   upload stays resumable and the next run sends only the missing parts.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { openLedger } from '../../src/ledger/open.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { startS3Server, s3TestEnv, type S3TestServer, testS3Client } from '../helpers/s3-server.js';
import { startProxy, stall, type S3Proxy } from '../helpers/proxy.js';
import { parseJsonReport, runCli, startCli } from '../helpers/cli.js';

describe('Ctrl-C', () => {
  let tmp: TempDir;
  let server: S3TestServer;
  let proxy: S3Proxy;
  let client: S3Client;

  before(async () => {
    tmp = await makeTempDir('holdfast-cancel-');
    server = await startS3Server();
    await server.createBucket('cancel');
    proxy = await startProxy({ target: server.endpoint });
    client = testS3Client(server.endpoint);
  });
  after(async () => {
    client.destroy();
    await proxy.stop();
    await server.stop();
    await tmp.cleanup();
  });

  async function objectBytes(key: string): Promise<Buffer> {
    const got = await client.send(new GetObjectCommand({ Bucket: 'cancel', Key: key }));
    return Buffer.from(await got.Body!.transformToByteArray());
  }

  it('once: drains in-flight files, records them, exits 130; the next run sends only the rest', async () => {
    const src = join(tmp.path, 'once');
    mkdirSync(src);
    const files = new Map<string, Buffer>();
    for (let i = 0; i < 40; i++) {
      const content = Buffer.alloc(32 * 1024, i);
      writeFileSync(join(src, `f${String(i).padStart(2, '0')}.bin`), content);
      files.set(`once/f${String(i).padStart(2, '0')}.bin`, content);
    }
    const state = join(tmp.path, 'state-once');
    const env = { ...s3TestEnv(proxy.endpoint), HOLDFAST_STATE: state };
    const args = ['push', src, 's3://cancel/once', '--json', '--quiet', '--transfers', '4'];
    proxy.reset();
    const { child, done } = startCli(args, { env });
    let puts = 0;
    const off = proxy.on('start', (r) => {
      if (r.op === 'PutObject' && ++puts === 6) child.kill('SIGINT');
    });
    const r = await done;
    off();
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /stopping/);
    const rep = parseJsonReport(r);
    assert.equal(rep.status, 'cancelled');
    const started = proxy.records.filter((x) => x.op === 'PutObject');
    assert.ok(started.length < files.size, 'it stopped starting new files');
    assert.ok(started.every((x) => x.result === 'ok'), 'every started transfer finished (drained, not aborted)');
    assert.equal(rep.uploads.completed, started.length, 'and each was recorded');

    const ledger = await openLedger({ stateDir: state });
    try {
      const dest = (await ledger.listDestinations())[0]!;
      assert.deepEqual(await ledger.listInProgress(dest.id), [], 'nothing left in progress');
    } finally {
      await ledger.close();
    }

    proxy.setFaults([]);
    proxy.reset();
    const again = await runCli(args, { env });
    assert.equal(again.code, 0, again.stderr);
    const rep2 = parseJsonReport(again);
    assert.equal(rep2.uploads.completed, files.size - started.length);
    assert.equal(proxy.op('PutObject').requests, files.size - started.length, 'no file sent twice');
    for (const [key, content] of [...files].slice(0, 5)) assert.ok((await objectBytes(key)).equals(content), key);
  });

  it('twice: aborts in-flight transfers at once; the multipart upload resumes where it stopped', async () => {
    const src = join(tmp.path, 'twice');
    mkdirSync(src);
    const partSize = 5 * 1024 * 1024;
    const content = Buffer.alloc(8 * partSize + 1234);
    for (let i = 0; i < content.length; i += 4096) content.writeUInt32LE(i ^ 0x5a5a5a5a, i);
    writeFileSync(join(src, 'big.bin'), content);
    const state = join(tmp.path, 'state-twice');
    const env = { ...s3TestEnv(proxy.endpoint), HOLDFAST_STATE: state };
    const args = ['push', src, 's3://cancel/twice', '--json', '--quiet', '--transfers', '2', '--multipart-threshold', '5MiB', '--part-size', '5MiB'];
    proxy.reset();
    proxy.setFaults([{ ops: ['UploadPart'], rate: 1, faults: [stall(400)] }]);
    const { child, done } = startCli(args, { env });
    let okParts = 0;
    let sent = false;
    const off = proxy.on('end', (r) => {
      if (r.op === 'UploadPart' && r.result === 'ok' && ++okParts === 3 && !sent) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    // The second Ctrl-C once the first was handled (it says "stopping"): two signals sent
    // back to back can arrive as one, and that one would only drain.
    let stderr = '';
    child.stderr?.on('data', (d: Buffer | string) => {
      const before = stderr;
      stderr += String(d);
      if (!/stopping/.test(before) && /stopping/.test(stderr)) child.kill('SIGINT');
    });
    const t0 = Date.now();
    const r = await done;
    const took = Date.now() - t0;
    off();
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /aborting/);
    assert.ok(took < 15_000, `it stopped promptly (${took} ms)`);

    const ledger = await openLedger({ stateDir: state });
    let confirmed: number;
    try {
      const dest = (await ledger.listDestinations())[0]!;
      const row = await ledger.getObject(dest.id, 'big.bin');
      assert.equal(row?.status, 'upload_pending', 'the aborted transfer went back to pending');
      assert.ok(row?.uploadId, 'keeping its multipart upload id');
      confirmed = (await ledger.listParts(row.id, row.uploadId)).length;
      assert.ok(confirmed >= 3, `confirmed parts recorded (${confirmed})`);
    } finally {
      await ledger.close();
    }

    proxy.setFaults([]);
    proxy.reset();
    const again = await runCli(args, { env });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(proxy.op('CreateMultipartUpload').requests, 0, 'the same upload was continued');
    assert.equal(proxy.op('UploadPart').requests, 9 - confirmed, 'only the missing parts were sent');
    const got = await objectBytes('twice/big.bin');
    assert.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(content).digest('hex'));
  });
});
