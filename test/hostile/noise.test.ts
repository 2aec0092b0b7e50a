// Noise on stderr (issue 10, point 13): a multipart push to s3:// with many
// parts in flight printed MaxListenersExceededWarning, because every part's
// SDK request (and its retry) added abort listeners to one signal shared by
// all parts. Each part request now has its own signal.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseJsonReport, runCli } from '../helpers/cli.js';
import { s3TestEnv, startS3Server, type S3TestServer } from '../helpers/s3-server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;

describe('a multipart push to s3:// prints no MaxListenersExceededWarning', () => {
  let tmp: TempDir;
  let server: S3TestServer;
  before(async () => {
    tmp = await makeTempDir('holdfast-hostile-noise-');
    server = await startS3Server();
    await server.createBucket('bkt');
  });
  after(async () => {
    await server.stop();
    await tmp.cleanup();
  });

  it('16 parts in flight at once, stderr has no warning', async () => {
    const src = join(tmp.path, 'src');
    mkdirSync(src);
    // 16 parts of 5 MiB (the smallest S3 allows), all sent at once with --transfers 16.
    writeFileSync(join(src, 'big.bin'), randomBytes(16 * 5 * MiB));
    const r = await runCli(['push', src, 's3://bkt/noise', '--state', join(tmp.path, 'state'), '--multipart-threshold', '5MiB', '--part-size', '5MiB', '--transfers', '16', '--json'], {
      env: s3TestEnv(server.endpoint),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(parseJsonReport(r).uploads.completed, 1);
    assert.ok(!/MaxListenersExceededWarning|memory leak detected/.test(r.stderr), r.stderr);
    assert.ok(!/\(node:\d+\)/.test(r.stderr), `no Node.js warning at all:\n${r.stderr}`);
  });
});
