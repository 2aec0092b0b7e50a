// pull() against real destinations: s3rver on loopback (through the counting,
// fault-injecting proxy where requests matter) and a real directory. Awkward
// names round-trip exactly with their content and mtimes; a damaged object is
// refused and leaves nothing behind; an interrupted restore resumes; the
// ledger, when there is one, saves a HEAD per object.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import Database from 'better-sqlite3';
import { isHoldfastError } from '../../src/core/errors.js';
import { RunEvents } from '../../src/engine/events.js';
import { push } from '../../src/sync/push.js';
import { pull, restorePath, type PullReport } from '../../src/sync/pull.js';
import { FAULT_500, FAULT_RESET, startProxy, type S3Proxy } from '../helpers/proxy.js';
import { s3TestEnv, startS3Server, type S3TestServer, testS3Client } from '../helpers/s3-server.js';
import { makeTempDir, type TempDir, listTree } from '../helpers/tmp.js';

// Credentials for s3rver come from the environment, as they would for users.
for (const [k, v] of Object.entries(s3TestEnv('unused'))) if (k !== 'AWS_ENDPOINT_URL') process.env[k] = v;

const MiB = 1024 * 1024;
const BUCKET = 'restore';
/** Spaces, NFC and NFD forms of one name (two files), URL-special characters, a newline, emoji, empty, nested, multipart-sized. */
const AWKWARD = [
  'plain.txt',
  'with space.txt',
  'caf\u00e9.txt',
  'cafe\u0301.txt',
  'hash#query?pct%plus+.txt',
  'new\nline.txt',
  '\u{1F600} emoji.txt',
  'zero.bin',
  'nested/deeper/still/file.txt',
  'nested/sibling.txt',
  'big/large.bin',
];

function contentFor(key: string): Buffer {
  if (key === 'zero.bin') return Buffer.alloc(0);
  if (key === 'big/large.bin') {
    const b = Buffer.alloc(12 * MiB + 5);
    for (let i = 0; i + 4 <= b.length; i += 4096) b.writeUInt32LE(i, i);
    return b;
  }
  return Buffer.from(`content of ${JSON.stringify(key)}\n`.repeat(3));
}

/** Writes `keys` under `root` with distinct whole-millisecond mtimes; returns key → [content, mtime ms]. */
function makeTree(root: string, keys: readonly string[], contents: (key: string) => Buffer = contentFor): Map<string, { content: Buffer; mtimeMs: number }> {
  const files = new Map<string, { content: Buffer; mtimeMs: number }>();
  keys.forEach((key, i) => {
    const p = join(root, ...key.split('/'));
    mkdirSync(join(p, '..'), { recursive: true });
    const content = contents(key);
    writeFileSync(p, content);
    const mtimeMs = 1_600_000_000_000 + i * 86_400_123 + 457;
    utimesSync(p, new Date(), mtimeMs / 1000);
    files.set(key, { content, mtimeMs: Math.floor(statSync(p).mtimeMs) });
  });
  return files;
}

/** Every file under `root` as "/"-separated keys (temp files included: tests assert there are none). */

function assertRestored(root: string, files: ReadonlyMap<string, { content: Buffer; mtimeMs: number }>, prefix = ''): void {
  assert.deepEqual(listTree(root), [...files.keys()].map((k) => prefix + k).sort());
  for (const [key, f] of files) {
    const p = join(root, ...(prefix + key).split('/'));
    assert.ok(readFileSync(p).equals(f.content), `content of ${JSON.stringify(key)}`);
    assert.equal(Math.floor(statSync(p).mtimeMs), f.mtimeMs, `mtime of ${JSON.stringify(key)}`);
  }
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A pid that is certainly not running: a child that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

describe('pull from s3://', () => {
  let tmp: TempDir;
  let server: S3TestServer;
  let proxy: S3Proxy;
  let client: S3Client;
  let files: Map<string, { content: Buffer; mtimeMs: number }>;
  let state: string;
  let n = 0;
  const fresh = (name: string): string => join(tmp.path, `${name}-${n++}`);
  const viaProxy = (): { s3Endpoint: string } => ({ s3Endpoint: proxy.endpoint });

  before(async () => {
    tmp = await makeTempDir('holdfast-pull-');
    server = await startS3Server();
    await server.createBucket(BUCKET);
    proxy = await startProxy({ target: server.endpoint, seed: 7 });
    client = testS3Client(server.endpoint);
    const src = join(tmp.path, 'src');
    files = makeTree(src, AWKWARD);
    state = join(tmp.path, 'state');
    const rep = await push({
      source: src,
      destination: `s3://${BUCKET}/data`,
      stateDir: state,
      // Through the proxy, as the pulls go: the endpoint is part of the destination's identity.
      backendOptions: viaProxy(),
      multipartThreshold: 5 * MiB,
      partSize: 5 * MiB,
    });
    assert.equal(rep.status, 'completed', JSON.stringify(rep.errors));
  });
  after(async () => {
    client.destroy();
    await proxy.stop();
    await server.stop();
    await tmp.cleanup();
  });

  it('push stores the source mtime as holdfast-mtime, also on multipart objects', async () => {
    for (const key of ['plain.txt', 'big/large.bin']) {
      const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `data/${key}` }));
      assert.equal(head.Metadata?.['holdfast-mtime'], String(files.get(key)!.mtimeMs), key);
    }
  });

  it('restores every object exactly, content and mtime, from the destination alone (fresh machine, no ledger)', async () => {
    const target = fresh('restore');
    proxy.reset();
    const rep = await pull({ destination: `s3://${BUCKET}/data`, target, stateDir: fresh('empty-state'), backendOptions: viaProxy() });
    assert.equal(rep.status, 'completed', JSON.stringify(rep.errors));
    assert.deepEqual(rep.downloads, { completed: AWKWARD.length, failed: 0, skipped: 0, unverified: 0 });
    assert.equal(rep.bytes, [...files.values()].reduce((s, f) => s + f.content.length, 0));
    assertRestored(target, files);
    assert.equal(proxy.op('HeadObject').requests, AWKWARD.length, 'without a ledger, one HEAD per object gives the hash and mtime');
    assert.ok(!existsSync(join(fresh('empty-state'), 'holdfast.db')), 'pull creates no ledger');
  });

  it('with the ledger of the push, takes hashes and mtimes from it: no HEAD at all', async () => {
    const target = fresh('restore-ledger');
    proxy.reset();
    const rep = await pull({ destination: `s3://${BUCKET}/data`, target, stateDir: state, backendOptions: viaProxy() });
    assert.equal(rep.status, 'completed', JSON.stringify(rep.errors));
    assert.equal(rep.downloads.completed, AWKWARD.length);
    assertRestored(target, files);
    assert.equal(proxy.op('HeadObject').requests, 0);

    // Pulled again: everything is identical, nothing is downloaded, and the
    // hashes of the restored files come from the file cache the first pull filled.
    proxy.reset();
    const again = await pull({ destination: `s3://${BUCKET}/data`, target, stateDir: state, backendOptions: viaProxy() });
    assert.deepEqual(again.downloads, { completed: 0, failed: 0, skipped: AWKWARD.length, unverified: 0 });
    assert.equal(again.bytes, 0);
    assert.equal(proxy.op('GetObject').requests, 0);
  });

  it('only the objects under --prefix, at their full key path', async () => {
    const target = fresh('restore-prefix');
    const rep = await pull({ destination: `s3://${BUCKET}/data`, target, prefix: 'nested/', stateDir: state, backendOptions: { s3Endpoint: server.endpoint } });
    assert.equal(rep.downloads.completed, 2);
    assert.deepEqual(listTree(target), ['nested/deeper/still/file.txt', 'nested/sibling.txt']);
  });

  it('transient GET failures are retried and the result is still verified', async () => {
    const target = fresh('restore-faults');
    proxy.setFaults([{ ops: ['GetObject'], rate: 0.5, faults: [FAULT_500, FAULT_RESET], limit: 6 }], 11);
    try {
      const rep = await pull({
        destination: `s3://${BUCKET}/data`,
        target,
        stateDir: fresh('no-state'),
        backendOptions: viaProxy(),
        retry: { attempts: 8, baseMs: 5, maxMs: 50 },
      });
      assert.equal(rep.status, 'completed', JSON.stringify(rep.errors));
      assert.ok(proxy.op('GetObject').faults > 0, 'faults were injected');
      assertRestored(target, files);
    } finally {
      proxy.setFaults([]);
    }
  });

  it('a dry run reports what it would download and writes nothing', async () => {
    const target = fresh('restore-dry');
    const rep = await pull({ destination: `s3://${BUCKET}/data`, target, stateDir: state, dryRun: true, backendOptions: { s3Endpoint: server.endpoint } });
    assert.equal(rep.status, 'completed');
    assert.equal(rep.plan?.length, AWKWARD.length);
    assert.ok(rep.plan.every((p) => p.reason === 'missing' && p.verified));
    assert.ok(!existsSync(target), 'the target directory was not created');

    // Against a partly restored directory: only the missing and the different ones.
    mkdirSync(target);
    writeFileSync(join(target, 'plain.txt'), files.get('plain.txt')!.content);
    writeFileSync(join(target, 'zero.bin'), 'not empty');
    const rep2 = await pull({ destination: `s3://${BUCKET}/data`, target, stateDir: state, dryRun: true, backendOptions: { s3Endpoint: server.endpoint } });
    assert.equal(rep2.downloads.skipped, 1);
    assert.equal(rep2.plan?.find((p) => p.key === 'zero.bin')?.reason, 'different');
    assert.equal(rep2.plan?.length, AWKWARD.length - 1);
    assert.deepEqual(listTree(target), ['plain.txt', 'zero.bin']);
    assert.equal(readFileSync(join(target, 'zero.bin'), 'utf8'), 'not empty');
  });

  it('an interrupted restore resumes: identical files are skipped, a dead run’s temp file is removed', async () => {
    const target = fresh('restore-resume');
    const controller = new AbortController();
    const events = new RunEvents();
    let done = 0;
    events.on('file:done', () => {
      if (++done === 4) controller.abort();
    });
    const first = await pull({ destination: `s3://${BUCKET}/data`, target, stateDir: fresh('no-state'), transfers: 1, signal: controller.signal, events, backendOptions: { s3Endpoint: server.endpoint } });
    assert.equal(first.status, 'cancelled');
    assert.ok(first.downloads.completed >= 4 && first.downloads.completed < AWKWARD.length, `completed ${first.downloads.completed}`);
    assert.equal(first.downloads.failed, 0, 'an aborted download is not a failure');
    assert.ok(!listTree(target).some((k) => k.includes('.holdfast-pull.')), 'an aborted download removes its temp file');

    // What a crash (kill -9) leaves: a temp file of a process that is gone, in a folder the restore writes to.
    const leftover = join(target, 'nested', `.holdfast-pull.${deadPid()}.0123456789abcdef.tmp`);
    mkdirSync(join(target, 'nested'), { recursive: true });
    writeFileSync(leftover, 'half a file');

    const second = await pull({ destination: `s3://${BUCKET}/data`, target, stateDir: fresh('no-state'), backendOptions: { s3Endpoint: server.endpoint } });
    assert.equal(second.status, 'completed', JSON.stringify(second.errors));
    assert.equal(second.downloads.skipped, first.downloads.completed);
    assert.equal(second.downloads.completed, AWKWARD.length - first.downloads.completed);
    assert.ok(!existsSync(leftover), 'the dead run’s temp file was removed');
    assertRestored(target, files);
  });

  it('a corrupted object is reported failed and leaves no file at its path (with and without the ledger)', async () => {
    const src = fresh('src-corrupt');
    const corruptFiles = makeTree(src, ['good.txt', 'bad.txt', 'sub/bad2.txt']);
    const rep = await push({ source: src, destination: `s3://${BUCKET}/corrupt`, stateDir: state, backendOptions: { s3Endpoint: server.endpoint } });
    assert.equal(rep.status, 'completed');
    // Overwritten behind Holdfast's back: same size, other bytes, the original metadata kept.
    for (const key of ['bad.txt', 'sub/bad2.txt']) {
      const original = corruptFiles.get(key)!.content;
      const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `corrupt/${key}` }));
      assert.equal(head.Metadata?.['holdfast-sha256'], sha256(original));
      const damaged = Buffer.from(original);
      damaged[0] = damaged[0]! ^ 0xff;
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `corrupt/${key}`, Body: damaged, Metadata: head.Metadata }));
    }
    for (const stateDir of [state, fresh('no-state')]) {
      const target = fresh('restore-corrupt');
      const r = await pull({ destination: `s3://${BUCKET}/corrupt`, target, stateDir, backendOptions: { s3Endpoint: server.endpoint } });
      assert.equal(r.status, 'partial');
      assert.deepEqual(r.downloads, { completed: 1, failed: 2, skipped: 0, unverified: 0 });
      assert.deepEqual(r.errors.map((e) => [e.key, e.code]).sort(), [
        ['bad.txt', 'HOLDFAST_E_CHECKSUM'],
        ['sub/bad2.txt', 'HOLDFAST_E_CHECKSUM'],
      ]);
      assert.match(r.errors[0]!.message, /holdfast-sha256/);
      assert.deepEqual(listTree(target), ['good.txt'], 'nothing at the damaged objects’ paths, no temp files');
    }
  });

  it('a ledger out of date (another machine pushed a new version) gives way to the object’s own holdfast-sha256', async () => {
    const srcOld = fresh('src-v1');
    const srcNew = fresh('src-v2');
    makeTree(srcOld, ['doc.txt'], () => Buffer.from('version one'));
    makeTree(srcNew, ['doc.txt'], () => Buffer.from('version two'));
    const opts = { destination: `s3://${BUCKET}/shared`, backendOptions: { s3Endpoint: server.endpoint } };
    const mine = fresh('state-mine');
    assert.equal((await push({ ...opts, source: srcOld, stateDir: mine })).status, 'completed');
    assert.equal((await push({ ...opts, source: srcNew, stateDir: fresh('state-theirs'), force: true })).status, 'completed');
    // Same size, and a row without an etag (as an adopted object has): nothing tells the ledger is stale before the bytes are read.
    const db = new Database(join(mine, 'holdfast.db'));
    db.prepare('update objects set etag = null').run();
    db.close();
    const target = fresh('restore-shared');
    const r = await pull({ ...opts, target, stateDir: mine });
    assert.equal(r.status, 'completed', JSON.stringify(r.errors));
    assert.equal(readFileSync(join(target, 'doc.txt'), 'utf8'), 'version two');
    assert.match(r.notes?.[0]?.note ?? '', /out of date/);
  });

  it('objects without holdfast-sha256 are restored unverified with a note, or skipped with verifiedOnly', async () => {
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'foreign/theirs.txt', Body: 'written by another tool' }));
    const src = fresh('src-mixed');
    makeTree(src, ['ours.txt']);
    await push({ source: src, destination: `s3://${BUCKET}/foreign`, stateDir: state, backendOptions: { s3Endpoint: server.endpoint } });

    const target = fresh('restore-foreign');
    const r = await pull({ destination: `s3://${BUCKET}/foreign`, target, stateDir: fresh('no-state'), backendOptions: { s3Endpoint: server.endpoint } });
    assert.equal(r.status, 'completed');
    assert.deepEqual(r.downloads, { completed: 2, failed: 0, skipped: 0, unverified: 1 });
    assert.deepEqual(r.notes?.map((x) => x.key), ['theirs.txt']);
    assert.match(r.notes[0]!.note, /without verification/);
    assert.equal(readFileSync(join(target, 'theirs.txt'), 'utf8'), 'written by another tool');
    const again = await pull({ destination: `s3://${BUCKET}/foreign`, target, stateDir: fresh('no-state'), backendOptions: { s3Endpoint: server.endpoint } });
    assert.equal(again.downloads.skipped, 2, 'a foreign object restored before (same size and time) is not fetched again');

    const target2 = fresh('restore-verified-only');
    const v = await pull({ destination: `s3://${BUCKET}/foreign`, target: target2, verifiedOnly: true, stateDir: fresh('no-state'), backendOptions: { s3Endpoint: server.endpoint } });
    assert.deepEqual(v.downloads, { completed: 1, failed: 0, skipped: 1, unverified: 0 });
    assert.deepEqual(listTree(target2), ['ours.txt']);
    assert.match(v.notes?.[0]?.note ?? '', /verified-only/);
  });

  it('keys that cannot be local paths, or collide with a folder, fail alone', async () => {
    const put = (key: string, body: string): Promise<unknown> =>
      client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `keys/${key}`, Body: body, Metadata: { 'holdfast-sha256': sha256(Buffer.from(body)) } }));
    await put('.holdfast-pull.1.0123456789abcdef.tmp', 'looks like a temp file');
    await put('d', 'a file named d');
    await put('d/x', 'a file inside a folder named d');
    await put('ok.txt', 'fine');
    const target = fresh('restore-keys');
    // One at a time, so "d" (first in key order) is the one restored and "d/x" the one that collides.
    const r = await pull({ destination: `s3://${BUCKET}/keys`, target, transfers: 1, stateDir: fresh('no-state'), backendOptions: { s3Endpoint: server.endpoint } });
    assert.equal(r.status, 'partial');
    assert.deepEqual(r.downloads, { completed: 2, failed: 2, skipped: 0, unverified: 0 });
    const codes = new Map(r.errors.map((e) => [e.key, e.code]));
    assert.equal(codes.get('.holdfast-pull.1.0123456789abcdef.tmp'), 'HOLDFAST_E_KEY_INVALID');
    assert.equal(codes.get('d/x'), 'HOLDFAST_E_TARGET_WRITE');
    assert.deepEqual(listTree(target), ['d', 'ok.txt']);

    // The rules themselves, for keys no S3 client lets through unchanged.
    for (const key of ['../evil', 'a/../../evil', '/etc/passwd', 'a//b', 'a/', 'nul\0byte', '.', 'a/./b']) {
      assert.throws(() => restorePath('/restore', key), (e: unknown) => isHoldfastError(e) && e.code === 'HOLDFAST_E_KEY_INVALID', JSON.stringify(key));
    }
    assert.equal(restorePath('/restore', 'a b/c#d?e%f+g'), '/restore/a b/c#d?e%f+g');
  });

  it('refuses to write through a symbolic link inside the target', async () => {
    const target = fresh('restore-symlink');
    const elsewhere = fresh('elsewhere');
    mkdirSync(target);
    mkdirSync(elsewhere);
    const { symlinkSync } = await import('node:fs');
    symlinkSync(elsewhere, join(target, 'nested'));
    const r: PullReport = await pull({ destination: `s3://${BUCKET}/data`, target, prefix: 'nested/', stateDir: fresh('no-state'), backendOptions: { s3Endpoint: server.endpoint } });
    assert.equal(r.downloads.failed, 2);
    assert.ok(r.errors.every((e) => e.code === 'HOLDFAST_E_TARGET_WRITE' && /symbolic link/.test(e.message)), JSON.stringify(r.errors));
    assert.deepEqual(readdirSync(elsewhere), []);
  });

  it('a missing bucket or an unusable target stops the run before anything is written', async () => {
    await assert.rejects(
      pull({ destination: 's3://no-such-bucket/x', target: fresh('t'), stateDir: fresh('no-state'), backendOptions: { s3Endpoint: server.endpoint } }),
      (e: unknown) => isHoldfastError(e) && e.code === 'HOLDFAST_E_DEST_NOT_FOUND',
    );
    const file = fresh('a-file');
    writeFileSync(file, 'x');
    await assert.rejects(
      pull({ destination: `s3://${BUCKET}/data`, target: file, stateDir: fresh('no-state'), backendOptions: { s3Endpoint: server.endpoint } }),
      (e: unknown) => isHoldfastError(e) && e.code === 'HOLDFAST_E_TARGET_UNUSABLE',
    );
  });
});

describe('pull from file://', () => {
  let tmp: TempDir;
  let files: Map<string, { content: Buffer; mtimeMs: number }>;
  let dst: string;
  let state: string;

  before(async () => {
    tmp = await makeTempDir('holdfast-pull-local-');
    const src = join(tmp.path, 'src');
    files = makeTree(src, AWKWARD.filter((k) => k !== 'big/large.bin'));
    dst = join(tmp.path, 'dst');
    state = join(tmp.path, 'state');
    const rep = await push({ source: src, destination: `file://${dst}`, stateDir: state });
    assert.equal(rep.status, 'completed');
  });
  after(async () => tmp.cleanup());

  it('restores content and mtimes with and without the ledger', async () => {
    for (const [name, stateDir] of [
      ['with-ledger', state],
      ['no-ledger', join(tmp.path, 'empty-state')],
    ] as const) {
      const target = join(tmp.path, name);
      const rep = await pull({ destination: `file://${dst}`, target, stateDir });
      assert.equal(rep.status, 'completed', JSON.stringify(rep.errors));
      assert.equal(rep.downloads.completed, files.size);
      assertRestored(target, files);
    }
  });

  it('a missing directory is not an empty destination: HOLDFAST_E_DEST_NOT_FOUND', async () => {
    await assert.rejects(
      pull({ destination: `file://${join(tmp.path, 'nope')}`, target: join(tmp.path, 't'), stateDir: state }),
      (e: unknown) => isHoldfastError(e) && e.code === 'HOLDFAST_E_DEST_NOT_FOUND',
    );
    assert.ok(!existsSync(join(tmp.path, 't')));
  });
});
