// Hostile input for `pull`: an object replaced behind Holdfast's back (issue 9
// #5), and a target directory that someone else can write to (issue 10 #1).
//
// - The ledger knows what was uploaded under each key (size, SHA-256). An
//   object rewritten by another tool — no holdfast-sha256 of its own, or a
//   file:// destination whose "hash" is computed from whatever it holds —
//   must match that record or fail with HOLDFAST_E_CHECKSUM (exit 2), and
//   nothing is left at its path. (Without a ledger, or with --no-ledger, such
//   an object is restored "unverified", as documented.)
// - Nothing is written through a symlink planted in the target: one at the
//   final name is replaced, not followed; a folder swapped for a symlink while
//   the restore runs (deterministically: on the `file:done` event of the file
//   before) does not lead the next write outside the target.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { RunEvents } from '../../src/engine/events.js';
import { pull } from '../../src/sync/pull.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { s3TestEnv, startS3Server, testS3Client, type S3TestServer } from '../helpers/s3-server.js';
import { listTree, makeTempDir, type TempDir } from '../helpers/tmp.js';

interface PullJson {
  status: string;
  downloads: { completed: number; failed: number; skipped: number; unverified: number };
  errors: { key: string; code: string; message: string }[];
}

function parse(r: CliResult): PullJson {
  try {
    return JSON.parse(r.stdout.trim()) as PullJson;
  } catch {
    throw new Error(`stdout is not one JSON object (exit ${r.code}):\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
}

const FILES: Record<string, string> = {
  'keep.txt': 'restored as it was pushed',
  'longer.txt': 'replaced later by something longer',
  'same-size.txt': 'replaced later by the same size!',
};

function makeSource(dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const [k, v] of Object.entries(FILES)) writeFileSync(join(dir, k), v);
}

/** Other bytes of the same length. */
const sameSizeOther = (s: string): string => 'X'.repeat(Buffer.byteLength(s));

describe('pull checks an object against the ledger’s record of it', () => {
  let tmp: TempDir;
  let server: S3TestServer;
  let client: S3Client;
  before(async () => {
    tmp = await makeTempDir('holdfast-pull-verify-');
    server = await startS3Server();
    await server.createBucket('vault');
    client = testS3Client(server.endpoint);
  });
  after(async () => {
    client.destroy();
    await server.stop();
    await tmp.cleanup();
  });

  function assertRefused(r: CliResult, target: string): void {
    assert.equal(r.code, 2, r.stderr);
    const rep = parse(r);
    assert.equal(rep.status, 'partial');
    assert.equal(rep.downloads.completed, 1);
    assert.equal(rep.downloads.unverified, 0, 'nothing restored without verification');
    assert.deepEqual(
      rep.errors.map((e) => [e.key, e.code]).sort(),
      [
        ['longer.txt', 'HOLDFAST_E_CHECKSUM'],
        ['same-size.txt', 'HOLDFAST_E_CHECKSUM'],
      ],
    );
    assert.deepEqual(listTree(target), ['keep.txt'], 'nothing at the refused paths, no temp file');
    assert.equal(readFileSync(join(target, 'keep.txt'), 'utf8'), FILES['keep.txt']);
  }

  it('s3://: objects rewritten by another tool (no holdfast-sha256) fail with HOLDFAST_E_CHECKSUM, exit 2', async () => {
    const src = join(tmp.path, 's3-src');
    makeSource(src);
    const env = { ...s3TestEnv(server.endpoint), HOLDFAST_STATE: join(tmp.path, 's3-state') };
    const pushed = await runCli(['push', src, 's3://vault/b', '--json', '--quiet'], { env });
    assert.equal(pushed.code, 0, pushed.stderr);
    // Another tool writes other bytes, without Holdfast's metadata.
    await client.send(new PutObjectCommand({ Bucket: 'vault', Key: 'b/longer.txt', Body: `${FILES['longer.txt']} and then some more bytes` }));
    await client.send(new PutObjectCommand({ Bucket: 'vault', Key: 'b/same-size.txt', Body: sameSizeOther(FILES['same-size.txt']!) }));

    const target = join(tmp.path, 's3-restore');
    const r = await runCli(['pull', 's3://vault/b', target, '--json', '--quiet'], { env });
    assertRefused(r, target);
    assert.match(parse(r).errors.find((e) => e.key === 'longer.txt')!.message, /the ledger recorded \d+ bytes/);

    // Without the ledger there is nothing to check them against: restored, and said to be unverified.
    const blind = await runCli(['pull', 's3://vault/b', join(tmp.path, 's3-restore-blind'), '--json', '--quiet', '--no-ledger'], { env });
    assert.equal(blind.code, 0, blind.stderr);
    assert.equal(parse(blind).downloads.unverified, 2);
  });

  it('file://: a file rewritten in the destination directory fails with HOLDFAST_E_CHECKSUM, exit 2', async () => {
    const src = join(tmp.path, 'file-src');
    makeSource(src);
    const dst = join(tmp.path, 'file-dst');
    const env = { HOLDFAST_STATE: join(tmp.path, 'file-state') };
    const pushed = await runCli(['push', src, `file://${dst}`, '--json', '--quiet'], { env });
    assert.equal(pushed.code, 0, pushed.stderr);
    writeFileSync(join(dst, 'longer.txt'), `${FILES['longer.txt']} and then some more bytes`);
    writeFileSync(join(dst, 'same-size.txt'), sameSizeOther(FILES['same-size.txt']!));

    const target = join(tmp.path, 'file-restore');
    const r = await runCli(['pull', `file://${dst}`, target, '--json', '--quiet'], { env });
    assertRefused(r, target);
  });
});

describe('pull never writes through a symlink planted in the target', () => {
  let tmp: TempDir;
  before(async () => (tmp = await makeTempDir('holdfast-pull-links-')));
  after(async () => tmp.cleanup());

  it('a symlink at the final name is replaced by the restored file, its target left alone', async () => {
    const dst = join(tmp.path, 'final-dst');
    mkdirSync(dst);
    writeFileSync(join(dst, 'note.txt'), 'restored content');
    const outside = join(tmp.path, 'final-outside.txt');
    writeFileSync(outside, 'not to be touched');
    const target = join(tmp.path, 'final-target');
    mkdirSync(target);
    symlinkSync(outside, join(target, 'note.txt'));
    const r = await pull({ destination: `file://${dst}`, target, useLedger: false });
    assert.equal(r.status, 'completed', JSON.stringify(r.errors));
    assert.ok(lstatSync(join(target, 'note.txt')).isFile(), 'the symlink was replaced');
    assert.equal(readFileSync(join(target, 'note.txt'), 'utf8'), 'restored content');
    assert.equal(readFileSync(outside, 'utf8'), 'not to be touched');
  });

  it('a folder swapped for a symlink mid-restore: the next file is refused, nothing is written outside the target', async () => {
    const dst = join(tmp.path, 'swap-dst');
    mkdirSync(join(dst, 'sub'), { recursive: true });
    writeFileSync(join(dst, 'sub', 'a.txt'), 'first');
    writeFileSync(join(dst, 'sub', 'b.txt'), 'second');
    const outside = join(tmp.path, 'swap-outside');
    mkdirSync(outside);
    const target = join(tmp.path, 'swap-target');
    const events = new RunEvents();
    let swapped = false;
    events.on('file:done', ({ key }) => {
      if (key !== 'sub/a.txt') return;
      // The folder pull has already checked (and created) is moved away and replaced by a link to elsewhere.
      renameSync(join(target, 'sub'), join(target, 'sub-aside'));
      symlinkSync(outside, join(target, 'sub'));
      swapped = true;
    });
    const r = await pull({ destination: `file://${dst}`, target, useLedger: false, transfers: 1, events });
    assert.ok(swapped);
    assert.equal(r.downloads.completed, 1);
    assert.deepEqual(
      r.errors.map((e) => [e.key, e.code]),
      [['sub/b.txt', 'HOLDFAST_E_TARGET_WRITE']],
    );
    assert.match(r.errors[0]!.message, /symbolic link/);
    assert.deepEqual(readdirSync(outside), [], 'nothing was written outside the target');
    assert.ok(!existsSync(join(target, 'sub-aside', 'b.txt')));
  });
});
