// Two `holdfast push` processes started at once on the same ledger and the
// same destination (DESIGN §3 leases and fencing): neither corrupts the
// ledger, and no file is uploaded twice — the ledger's history shows exactly
// one claim (intent) per file, and every object arrives intact.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { openLedger } from '../../src/ledger/open.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { startS3Server, s3TestEnv, type S3TestServer, testS3Client } from '../helpers/s3-server.js';
import { parseJsonReport, runCli } from '../helpers/cli.js';

describe('two concurrent pushes on one ledger', () => {
  let tmp: TempDir;
  let server: S3TestServer;
  const files = new Map<string, Buffer>();

  before(async () => {
    tmp = await makeTempDir('holdfast-concurrent-');
    server = await startS3Server();
    await server.createBucket('shared');
    for (let i = 0; i < 400; i++) {
      const key = `d${i % 8}/f${i}.bin`;
      const content = Buffer.alloc(2048 + i, i % 251);
      mkdirSync(join(tmp.path, 'src', `d${i % 8}`), { recursive: true });
      writeFileSync(join(tmp.path, 'src', key), content);
      files.set(key, content);
    }
  });
  after(async () => {
    await server.stop();
    await tmp.cleanup();
  });

  it('share the work without sending any file twice', async () => {
    const env = { ...s3TestEnv(server.endpoint), HOLDFAST_STATE: join(tmp.path, 'state') };
    const args = ['push', join(tmp.path, 'src'), 's3://shared/p', '--json', '--quiet', '--transfers', '4'];
    const [a, b] = await Promise.all([runCli(args, { env }), runCli(args, { env })]);
    for (const r of [a, b]) assert.equal(r.code, 0, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    const ra = parseJsonReport(a);
    const rb = parseJsonReport(b);
    assert.equal(ra.uploads.completed + rb.uploads.completed + ra.uploads.skipped + rb.uploads.skipped >= files.size, true);
    assert.equal(ra.uploads.failed + rb.uploads.failed, 0);
    console.log(`run A uploaded ${ra.uploads.completed}, run B uploaded ${rb.uploads.completed}`);

    const ledger = await openLedger({ stateDir: join(tmp.path, 'state') });
    try {
      const dest = (await ledger.listDestinations())[0]!;
      let claims = 0;
      for (const key of files.keys()) {
        const history = await ledger.history(dest.id, key);
        const intents = history.filter((h) => h.toStatus === 'upload_in_progress').length;
        assert.equal(intents, 1, `${key} was claimed ${intents} times: ${JSON.stringify(history)}`);
        claims += intents;
        const row = await ledger.getObject(dest.id, key);
        assert.equal(row?.status, 'upload_completed');
      }
      assert.equal(claims, files.size);
      // The two runs' own counts of uploads add up to the files: nothing twice, nothing forgotten.
      assert.equal(ra.uploads.completed + rb.uploads.completed, files.size);
    } finally {
      await ledger.close();
    }

    const client = testS3Client(server.endpoint);
    try {
      for (const [key, content] of [...files].filter((_, i) => i % 20 === 0)) {
        const got = await client.send(new GetObjectCommand({ Bucket: 'shared', Key: `p/${key}` }));
        assert.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(content), key);
      }
    } finally {
      client.destroy();
    }
  });
});
