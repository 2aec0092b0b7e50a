// `holdfast check` and `holdfast cleanup` end to end against a real S3 server
// (s3rver on loopback), run as child processes: each inconsistency is made
// behind Holdfast's back with a plain S3 client, check finds it in the right
// category (exit 2), the cleanup dry run changes nothing, --apply repairs it
// with history to show, and after a push check exits 0.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type {
  S3Client} from '@aws-sdk/client-s3';
import {
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand
} from '@aws-sdk/client-s3';
import { openLedger } from '../../src/ledger/open.js';
import type { CheckReport } from '../../src/sync/check.js';
import type { CleanupReport } from '../../src/sync/cleanup.js';
import { makeTempDir } from '../helpers/tmp.js';
import { startS3Server, s3TestEnv, testS3Client } from '../helpers/s3-server.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { destinationByUrl } from '../helpers/destinations.js';

const sha256 = (b: string | Buffer): string => createHash('sha256').update(b).digest('hex');

function json<T>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout.trim()) as T;
  } catch {
    throw new Error(`stdout is not one JSON object (exit ${r.code}):\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
}

describe('holdfast check / cleanup on s3://', () => {
  let tmp: { path: string; cleanup(): Promise<void> };
  let server: Awaited<ReturnType<typeof startS3Server>>;
  let env: NodeJS.ProcessEnv;
  let client: S3Client;
  let src: string;
  const dest = 's3://shelf/backup';
  const cli = (args: string[]) => runCli(args, { env });
  const checkJson = async (...extra: string[]) => {
    const r = await cli(['check', src, dest, '--json', ...extra]);
    return { r, report: json<CheckReport>(r) };
  };
  const listKeys = async (): Promise<string[]> => {
    const out = await client.send(new ListObjectsV2Command({ Bucket: 'shelf', Prefix: 'backup/' }));
    return (out.Contents ?? []).map((o) => `${o.Key}:${o.ETag}`).sort();
  };

  before(async () => {
    tmp = await makeTempDir('holdfast-cli-check-');
    server = await startS3Server();
    await server.createBucket('shelf');
    env = { ...s3TestEnv(server.endpoint), HOLDFAST_STATE: join(tmp.path, 'state') };
    client = testS3Client(server.endpoint);
    src = join(tmp.path, 'src');
    mkdirSync(join(src, 'docs'), { recursive: true });
    for (const name of ['keep.txt', 'vanish.txt', 'overwrite.txt', 'edit.txt', 'docs/report.txt', 'caf\u00e9.txt']) writeFileSync(join(src, name), `content of ${name}\n`);
    // Large enough to go multipart: its etag from CompleteMultipartUpload must agree with the listing's.
    writeFileSync(join(src, 'large.bin'), Buffer.alloc(6 * 1024 * 1024 + 3, 1));
    const r = await cli(['push', src, dest, '--quiet', '--multipart-threshold', '5MiB', '--part-size', '5MiB']);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    client.destroy();
    await server.stop();
    await tmp.cleanup();
  });

  it('a destination that agrees with source and ledger: exit 0; stale uploads could not be checked (a note, not a failure)', async () => {
    const { r, report } = await checkJson();
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(report.status, 'consistent');
    assert.equal(report.scanned.objects, 7);
    assert.match(report.unchecked.staleUploads ?? '', /ListMultipartUploads/);
    const text = await cli(['check', src, dest]);
    assert.equal(text.code, 0);
    assert.match(text.stdout, /staleUploads\s+-\s+not checked/);
    assert.match(text.stdout, /^consistent/m);
  });

  it('finds each inconsistency made behind Holdfast’s back in its category (exit 2)', async () => {
    // An object put directly on the destination.
    await client.send(new PutObjectCommand({ Bucket: 'shelf', Key: 'backup/foreign.bin', Body: 'not from Holdfast' }));
    // A completed row whose object is deleted.
    await client.send(new DeleteObjectCommand({ Bucket: 'shelf', Key: 'backup/vanish.txt' }));
    // Same size, different content, and the ledger's own sha in the metadata: only the etag (or a re-read) tells.
    const original = 'content of overwrite.txt\n';
    const forged = 'CONTENT OF OVERWRITE.TXT\n';
    assert.equal(forged.length, original.length);
    await client.send(new PutObjectCommand({ Bucket: 'shelf', Key: 'backup/overwrite.txt', Body: forged, Metadata: { 'holdfast-sha256': sha256(original) } }));
    const head = await client.send(new HeadObjectCommand({ Bucket: 'shelf', Key: 'backup/overwrite.txt' }));
    assert.equal(head.Metadata?.['holdfast-sha256'], sha256(original), 'the metadata still claims the original content');
    // A file changed locally and a new one.
    writeFileSync(join(src, 'edit.txt'), 'edited locally, and longer than before\n');
    writeFileSync(join(src, 'new.txt'), 'never pushed\n');
    // A multipart upload created and left open.
    await client.send(new CreateMultipartUploadCommand({ Bucket: 'shelf', Key: 'backup/abandoned.bin' }));

    const { r, report } = await checkJson();
    assert.equal(r.code, 2, r.stderr);
    assert.equal(report.status, 'inconsistent');
    assert.deepEqual(report.findings.orphanedObjects.map((f) => f.key), ['foreign.bin']);
    assert.deepEqual(report.findings.orphanedRecords.map((f) => f.key), ['vanish.txt']);
    assert.deepEqual(report.findings.mismatches.map((f) => [f.key, f.reasons]), [['overwrite.txt', ['etag']]]);
    assert.deepEqual(report.findings.changedLocally.map((f) => f.key), ['edit.txt']);
    assert.deepEqual(report.findings.missing.map((f) => f.key), ['new.txt']);
    assert.equal(report.counts.staleUploads, 0);
    assert.match(report.unchecked.staleUploads ?? '', /ListMultipartUploads/, 's3rver cannot list uploads: said, not failed');

    const text = await cli(['check', src, dest]);
    assert.equal(text.code, 2);
    assert.match(text.stdout, /orphanedObjects\s+1/);
    assert.match(text.stdout, /foreign\.bin/);
    assert.match(text.stdout, /inconsistent: 5 finding/);
  });

  it('--download re-reads everything and sees the forged content by its SHA-256', async () => {
    const { r, report } = await checkJson('--download');
    assert.equal(r.code, 2);
    const m = report.findings.mismatches.find((f) => f.key === 'overwrite.txt');
    assert.deepEqual(m?.reasons, ['etag', 'sha256']);
    assert.equal(m?.destination.sha256, sha256('CONTENT OF OVERWRITE.TXT\n'));
    assert.equal(m?.ledger.sha256, sha256('content of overwrite.txt\n'));
    // keep, docs/report, café, large, edit (still the old content remotely) verify; overwrite does not.
    assert.equal(report.scanned.verified, 5);
  });

  it('cleanup without --apply prints the plan and changes nothing', async () => {
    const before = await listKeys();
    const r = await cli(['cleanup', dest, '--json', '--requeue-mismatches']);
    assert.equal(r.code, 0, r.stderr);
    const report = json<CleanupReport>(r);
    assert.equal(report.dryRun, true);
    assert.deepEqual(
      report.items.map((i) => [i.action, i.key]),
      [['delete', 'foreign.bin'], ['requeue', 'overwrite.txt'], ['requeue', 'vanish.txt']],
    );
    assert.match(report.notes.join('\n'), /stale multipart uploads were not looked for/);
    assert.deepEqual(await listKeys(), before);
    const again = await checkJson();
    assert.equal(again.report.counts.orphanedObjects, 1);
    assert.equal(again.report.counts.orphanedRecords, 1);
    const text = await cli(['cleanup', dest]);
    assert.match(text.stdout, /would delete\s+foreign\.bin/);
    assert.match(text.stdout, /--apply/);
  });

  it('cleanup --apply repairs, every action in history; after a push, check exits 0', async () => {
    const r = await cli(['cleanup', dest, '--apply', '--requeue-mismatches', '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const report = json<CleanupReport>(r);
    assert.deepEqual(report.done, { deleted: 1, adopted: 0, requeued: 2, aborted: 0 });
    assert.ok(!(await listKeys()).some((k) => k.startsWith('backup/foreign.bin')));

    const ledger = await openLedger({ stateDir: join(tmp.path, 'state') });
    try {
      const d = await destinationByUrl(ledger, report.destination);
      assert.ok(d);
      const foreign = await ledger.history(d.id, 'foreign.bin');
      assert.deepEqual(foreign.map((h) => h.toStatus), ['delete_pending', 'delete_in_progress', 'delete_completed']);
      assert.ok(foreign.every((h) => h.runId === report.runId));
      const vanish = await ledger.history(d.id, 'vanish.txt');
      assert.match(vanish.at(-1)?.note ?? '', /orphaned record/);
      const overwrite = await ledger.history(d.id, 'overwrite.txt');
      assert.match(overwrite.at(-1)?.note ?? '', /mismatch/);
      const runs = await ledger.listRuns({ destinationId: d.id, limit: 1 });
      assert.equal(runs[0]?.command, 'cleanup');
      assert.equal(runs[0]?.status, 'completed');
    } finally {
      await ledger.close();
    }

    const pushed = await cli(['push', src, dest, '--json', '--quiet']);
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.equal(json<{ uploads: { completed: number } }>(pushed).uploads.completed, 4, 'vanish, overwrite, edit, new');
    const { r: final, report: finalReport } = await checkJson('--download');
    assert.equal(final.code, 0, JSON.stringify(finalReport.counts));
  });

  it('--sample 50% re-reads half of the completed objects, never-verified first', async () => {
    // After the --download above every row is verified; two new files are not yet.
    writeFileSync(join(src, 'fresh-1.txt'), 'fresh one\n');
    writeFileSync(join(src, 'fresh-2.txt'), 'fresh two\n');
    assert.equal((await cli(['push', src, dest, '--quiet'])).code, 0);
    const ledger = await openLedger({ stateDir: join(tmp.path, 'state') });
    let neverVerified: string[];
    let total: number;
    try {
      const d = (await ledger.listDestinations())[0]!;
      const rows = [];
      for await (const row of ledger.streamObjects(d.id)) if (row.status === 'upload_completed') rows.push(row);
      total = rows.length;
      neverVerified = rows.filter((row) => row.verifiedAt === null).map((row) => row.key);
    } finally {
      await ledger.close();
    }
    assert.deepEqual(neverVerified, ['fresh-1.txt', 'fresh-2.txt'], `${neverVerified.length} of ${total}`);
    const { r, report } = await checkJson('--sample', '50%');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(report.scanned.reread, Math.ceil(total / 2));
    const after2 = await openLedger({ stateDir: join(tmp.path, 'state') });
    try {
      const d = (await after2.listDestinations())[0]!;
      for (const key of neverVerified) assert.notEqual((await after2.getObject(d.id, key))?.verifiedAt, null, `${key} was sampled first`);
    } finally {
      await after2.close();
    }
  });

  it('cannot run: exit 3 for a missing bucket or source, exit 1 for bad options', async () => {
    const noBucket = await cli(['check', src, 's3://no-such-bucket/x', '--json']);
    assert.equal(noBucket.code, 3, noBucket.stderr);
    assert.equal(json<{ status: string }>(noBucket).status, 'failed');
    const noSource = await cli(['check', join(tmp.path, 'nope'), dest]);
    assert.equal(noSource.code, 3);
    assert.match(noSource.stderr, /HOLDFAST_E_SOURCE_MISSING/);
    const bad = await cli(['check', src, dest, '--sample', '150%']);
    assert.equal(bad.code, 1);
    const adoptWithoutSource = await cli(['cleanup', dest, '--adopt']);
    assert.equal(adoptWithoutSource.code, 1);
    assert.match(adoptWithoutSource.stderr, /--source/);
  });
});
