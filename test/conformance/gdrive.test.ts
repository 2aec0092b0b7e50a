// The backend conformance suite against the gdrive:// backend on a local fake
// of the Drive v3 API (test/helpers/fake-drive.ts: an HTTP server, not a
// mock; Holdfast is never tested against Google itself), plus Drive-specific
// checks: one file per key whatever Drive's duplicate names allow, foreign
// files left alone, folders created once, resumable sessions resumed from a
// new backend instance and from a new run of push(), credentials and errors.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Backend, BackendOptions } from '../../src/backends/backend.js';
import { bufferBody } from '../../src/backends/body.js';
import { CHUNK_UNIT, KEY_PROPERTY, type DriveBackend } from '../../src/backends/gdrive.js';
import { openBackend } from '../../src/backends/registry.js';
import { push } from '../../src/sync/push.js';
import { pull } from '../../src/sync/pull.js';
import { openLedger } from '../../src/ledger/open.js';
import { FOLDER_MIME, startFakeDrive, type FakeDrive } from '../helpers/fake-drive.js';
import { caught, readAll, sha256 } from '../helpers/checks.js';
import { makeTempDir } from '../helpers/tmp.js';
import { backendConformance } from './backend-suite.js';

const KiB = 1024;
const MiB = 1024 * KiB;

function options(drive: FakeDrive, extra: BackendOptions = {}): BackendOptions {
  return { gdriveApiRoot: drive.apiRoot, gdriveAccessToken: drive.token, ...extra };
}

backendConformance('gdrive:// on the local fake Drive', async () => {
  const drive = await startFakeDrive();
  const root = drive.createFolder('holdfast-conformance');
  const backend = await openBackend(`gdrive://${root}`, options(drive));
  await backend.ensureReady();
  return {
    backend,
    openUnready: () => openBackend('gdrive://no-such-folder-id', options(drive)),
    reopen: () => openBackend(`gdrive://${root}`, options(drive)),
    async cleanup() {
      await backend.close();
      await drive.stop();
    },
  };
});

describe('gdrive:// specifics (on the local fake Drive)', () => {
  let drive: FakeDrive;
  const opened: Backend[] = [];
  const open = async (root: string, extra: BackendOptions = {}): Promise<DriveBackend> => {
    const b = await openBackend(`gdrive://${root}`, options(drive, extra));
    opened.push(b);
    return b as DriveBackend;
  };
  const put = async (b: Backend, key: string, data: Buffer, mtimeMs?: number): Promise<void> => {
    await b.put(key, bufferBody(data), { size: data.length, sha256: sha256(data), ...(mtimeMs !== undefined ? { mtimeMs } : {}) });
  };
  const keys = async (b: Backend, prefix = ''): Promise<string[]> => {
    const out: string[] = [];
    for await (const o of b.list(prefix)) out.push(o.key);
    return out;
  };
  const named = (parent: string, name: string) => drive.all().filter((f) => f.parents.includes(parent) && f.name === name);

  before(async () => {
    drive = await startFakeDrive();
  });
  after(async () => {
    for (const b of opened) await b.close();
    await drive.stop();
  });

  it('overwriting a key updates its one file: no second file, same id', async () => {
    const root = drive.createFolder('overwrite');
    const b = await open(root);
    await put(b, 'doc.txt', Buffer.from('first'));
    const [before1] = named(root, 'doc.txt');
    drive.resetStats();
    await put(b, 'doc.txt', Buffer.from('second, longer'));
    const files = named(root, 'doc.txt');
    assert.equal(files.length, 1, 'one file named doc.txt');
    assert.equal(files[0]!.id, before1!.id, 'the same file, updated');
    assert.equal(files[0]!.content.toString(), 'second, longer');
    assert.equal(drive.stats.ops.get('files.create') ?? 0, 0);
    // A second instance (nothing cached) finds it too.
    const fresh = await open(root);
    await put(fresh, 'doc.txt', Buffer.from('third'));
    assert.equal(named(root, 'doc.txt').length, 1);
    assert.equal((await b.head('doc.txt'))?.sha256, sha256(Buffer.from('third')));
  });

  it('a foreign file with the same name is never taken for ours: not read, listed, overwritten or deleted', async () => {
    const root = drive.createFolder('foreign');
    const sub = drive.createFolder('reports', root);
    const foreign = Buffer.from('somebody else');
    const foreignId = drive.createFile(sub, 'q1.txt', foreign);
    // Even one that carries our sha256 property, but not our key's identity.
    drive.createFile(sub, 'q2.txt', Buffer.from('x'), { 'holdfast-sha256': sha256(Buffer.from('x')) });
    const b = await open(root);
    assert.equal(await b.head('reports/q1.txt'), undefined);
    assert.equal(await b.head('reports/q2.txt'), undefined);
    assert.deepEqual(await keys(b), []);
    await caught(b.get('reports/q1.txt'));

    const ours = Buffer.from('ours');
    await put(b, 'reports/q1.txt', ours);
    assert.equal(named(sub, 'q1.txt').length, 2, 'Drive allows the duplicate name; ours is a second file');
    assert.equal(named(root, 'reports').length, 1, 'the existing folder was used');
    assert.equal((await b.head('reports/q1.txt'))?.sha256, sha256(ours));
    assert.ok(Buffer.compare(await readAll(await b.get('reports/q1.txt')), ours) === 0);
    assert.deepEqual(await keys(b), ['reports/q1.txt']);

    await b.delete('reports/q1.txt');
    assert.equal(await b.head('reports/q1.txt'), undefined);
    const left = named(sub, 'q1.txt');
    assert.equal(left.length, 1);
    assert.equal(left[0]!.id, foreignId, 'the foreign file is still there');
    assert.ok(Buffer.compare(left[0]!.content, foreign) === 0);
  });

  it('a duplicate of our own file (two writers raced) is removed by the next write, keeping the one written last', async () => {
    const root = drive.createFolder('dupes');
    const b = await open(root);
    await put(b, 'same.bin', Buffer.from('one'));
    const [ours] = named(root, 'same.bin');
    // Another writer's copy, written after ours.
    const latest = drive.createFile(root, 'same.bin', Buffer.from('two'), { ...ours!.appProperties, 'holdfast-sha256': sha256(Buffer.from('two')) });
    assert.equal(named(root, 'same.bin').length, 2);
    assert.equal((await b.head('same.bin'))?.sha256, sha256(Buffer.from('two')), 'head reads the copy written last');
    assert.deepEqual(await keys(b), ['same.bin'], 'list shows the key once');
    await put(b, 'same.bin', Buffer.from('three'));
    const files = named(root, 'same.bin');
    assert.equal(files.length, 1);
    assert.equal(files[0]!.id, latest, 'the write went to the copy written last; the other was deleted');
    assert.equal(files[0]!.content.toString(), 'three');
  });

  it('the fake Drive\'s lagging listing: a new file is missing from the next n list queries, never from files.get', async () => {
    const root = drive.createFolder('lag');
    const list = async (): Promise<string[]> => {
      const res = await fetch(`${drive.apiRoot}drive/v3/files?q=${encodeURIComponent(`'${root}' in parents`)}&fields=files(id)`, { headers: { Authorization: `Bearer ${drive.token}` } });
      return ((await res.json()) as { files: { id: string }[] }).files.map((f) => f.id);
    };
    drive.listLag(2);
    const id = drive.createFile(root, 'late.txt', Buffer.from('x'));
    drive.listLag(0);
    const now = drive.createFile(root, 'now.txt', Buffer.from('y'));
    assert.deepEqual(await list(), [now]);
    const got = await fetch(`${drive.apiRoot}drive/v3/files/${id}?fields=id`, { headers: { Authorization: `Bearer ${drive.token}` } });
    assert.equal(got.status, 200, 'files.get sees it at once');
    assert.deepEqual(await list(), [now]);
    assert.deepEqual((await list()).sort(), [id, now].sort(), 'the third query lists it');
  });

  it('a write that could not see the key\'s file (the listing lags): reads take the later write, and the next write leaves one file', async () => {
    const root = drive.createFolder('lagging');
    const b = await open(root);
    const [v1, v2, v3] = ['version one', 'version two, longer', 'three'].map((t) => Buffer.from(t)) as [Buffer, Buffer, Buffer];
    drive.listLag(1000);
    await put(b, 'doc.txt', v1);
    drive.listLag(0);
    // The listing does not show v1's file: v2 is a new file, and settling after it cannot see v1 either.
    await put(b, 'doc.txt', v2);
    assert.equal(named(root, 'doc.txt').length, 2, 'a second file was made');
    drive.reveal();
    assert.equal((await b.head('doc.txt'))?.sha256, sha256(v2), 'head reads the later write, not the stale copy that showed up late');
    assert.ok(Buffer.compare(await readAll(await b.get('doc.txt')), v2) === 0, 'get reads it too');
    const listed: { key: string; size: number }[] = [];
    for await (const o of b.list()) listed.push({ key: o.key, size: o.size });
    assert.deepEqual(listed, [{ key: 'doc.txt', size: v2.length }], 'listed once, as the later write');
    await put(b, 'doc.txt', v3);
    const files = named(root, 'doc.txt');
    assert.equal(files.length, 1, 'the next write removed the stale copy');
    assert.ok(Buffer.compare(files[0]!.content, v3) === 0);
  });

  it('a file the listing does not show is missed by a delete; it shows up later and the next delete removes it', async () => {
    const root = drive.createFolder('lagging-delete');
    const b = await open(root);
    drive.listLag(1000);
    await put(b, 'gone.txt', Buffer.from('old'));
    drive.listLag(0);
    await put(b, 'gone.txt', Buffer.from('new'));
    await b.delete('gone.txt');
    assert.equal(await b.head('gone.txt'), undefined);
    drive.reveal();
    assert.equal((await b.head('gone.txt'))?.sha256, sha256(Buffer.from('old')), 'the hidden copy shows up (documented: check reports it)');
    await b.delete('gone.txt');
    assert.equal(named(root, 'gone.txt').length, 0);
  });

  it('folders are looked up before they are created, once per instance, never duplicated', async () => {
    const root = drive.createFolder('folders');
    const b = await open(root);
    await Promise.all(['a/b/1', 'a/b/2', 'a/c/3', 'a/b/d/4'].map((k) => put(b, k, Buffer.from(k))));
    const fresh = await open(root);
    await put(fresh, 'a/b/5', Buffer.from('5'));
    const folders = drive.all().filter((f) => f.mimeType === FOLDER_MIME);
    const a = folders.filter((f) => f.parents.includes(root) && f.name === 'a');
    assert.equal(a.length, 1, 'one folder a');
    assert.equal(folders.filter((f) => f.parents.includes(a[0]!.id) && f.name === 'b').length, 1, 'one folder a/b');
    assert.deepEqual(
      drive
        .filesUnder(root)
        .map((x) => x.path)
        .sort(),
      ['a/b/1', 'a/b/2', 'a/b/5', 'a/b/d/4', 'a/c/3'],
    );
    assert.deepEqual(await keys(fresh, 'a/b'), ['a/b/1', 'a/b/2', 'a/b/5', 'a/b/d/4']);
  });

  it('keys in same-named folders (a race between two writers) are all listed, in order', async () => {
    const root = drive.createFolder('merged');
    const b = await open(root);
    await put(b, 'x/1', Buffer.from('1'));
    // Another writer's duplicate folder "x" with one of our files inside.
    const x2 = drive.createFolder('x', root);
    drive.createFile(x2, '2', Buffer.from('2'), { [KEY_PROPERTY]: b.keyHash('x/2'), 'holdfast-sha256': sha256(Buffer.from('2')) });
    assert.deepEqual(await keys(b), ['x/1', 'x/2']);
    assert.equal((await b.head('x/2'))?.size, 1);
  });

  it('a folder deleted behind the backend\'s back: the write fails transiently, the retry creates it again', async () => {
    const root = drive.createFolder('vanishing');
    const b = await open(root);
    await put(b, 'dir/one', Buffer.from('1'));
    const [dir] = named(root, 'dir');
    const res = await fetch(`${drive.apiRoot}drive/v3/files/${dir!.id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${drive.token}` } });
    assert.equal(res.status, 204);
    const e = await caught(put(b, 'dir/two', Buffer.from('2')));
    assert.equal(e.transient, true, `${e.code}: ${e.message}`);
    await put(b, 'dir/two', Buffer.from('2'));
    assert.deepEqual(await keys(b), ['dir/two']);
  });

  it('listing pages through results (the fake answers 3 files a page)', async () => {
    const root = drive.createFolder('paging');
    const b = await open(root);
    const names = Array.from({ length: 10 }, (_, i) => `k${String(i).padStart(2, '0')}`);
    for (const n of names) await put(b, n, Buffer.from(n));
    drive.resetStats();
    assert.deepEqual(await keys(b), names);
    assert.ok((drive.stats.ops.get('files.list') ?? 0) >= 4, `paged (${drive.stats.ops.get('files.list')} list requests)`);
  });

  it('resumes a session interrupted mid-chunk from a NEW backend instance, sending only the bytes Drive lacks', async () => {
    const root = drive.createFolder('resume');
    const a = await open(root);
    const partSize = 2 * CHUNK_UNIT;
    const data = randomBytes(2 * partSize + 1000);
    const part = (n: number): Buffer => data.subarray((n - 1) * partSize, Math.min(n * partSize, data.length));
    const uploadId = await a.multipart.create('big/file.bin', { sha256: sha256(data), size: data.length, partSize, mtimeMs: 1_600_000_000_000 });
    const p1 = await a.multipart.uploadPart('big/file.bin', uploadId, 1, part(1));
    // Part 2 is cut off after 300 KiB: Drive keeps 256 KiB of it.
    drive.interruptChunk(300 * KiB);
    const err = await caught(a.multipart.uploadPart('big/file.bin', uploadId, 2, part(2)));
    assert.equal(err.transient, true, `${err.code} is transient`);
    const sessionId = new URL(uploadId).searchParams.get('upload_id') ?? '';
    assert.ok(!err.message.includes(sessionId), 'the session URI (a capability) is not in the message');
    assert.equal(drive.sessions().find((s) => s.id === sessionId)?.received, partSize + CHUNK_UNIT);

    const b = await open(root);
    const listed = await b.multipart.listParts('big/file.bin', uploadId);
    assert.deepEqual(listed, [p1], 'only the whole part is confirmed, with the etag uploadPart returned');
    drive.resetStats();
    const p2 = await b.multipart.uploadPart('big/file.bin', uploadId, 2, part(2));
    assert.equal(drive.stats.chunkBytes, partSize - CHUNK_UNIT, 'only the missing half of part 2 was sent');
    assert.equal(drive.stats.ops.get('upload.status'), 1, 'after asking the session once');
    const p3 = await b.multipart.uploadPart('big/file.bin', uploadId, 3, part(3));
    assert.equal(drive.stats.ops.get('upload.status'), 1, 'the next part needs no question');
    await b.multipart.complete('big/file.bin', uploadId, [p1, p2, p3]);
    const info = await a.head('big/file.bin');
    assert.equal(info?.sha256, sha256(data));
    assert.equal(info?.mtimeMs, 1_600_000_000_000);
    assert.ok(Buffer.compare(await readAll(await a.get('big/file.bin')), data) === 0);
    assert.equal(named(named(root, 'big')[0]!.id, 'file.bin').length, 1);
  });

  it('a part Drive already has (arrived before a crash, never recorded) is not sent again', async () => {
    const root = drive.createFolder('unrecorded');
    const a = await open(root);
    const partSize = CHUNK_UNIT;
    const data = randomBytes(3 * partSize);
    const part = (n: number): Buffer => data.subarray((n - 1) * partSize, n * partSize);
    const uploadId = await a.multipart.create('f', { sha256: sha256(data), size: data.length, partSize });
    await a.multipart.uploadPart('f', uploadId, 1, part(1));
    await a.multipart.uploadPart('f', uploadId, 2, part(2));
    const b = await open(root);
    drive.resetStats();
    const again = await b.multipart.uploadPart('f', uploadId, 2, part(2));
    assert.equal(drive.stats.chunkBytes, 0, 'nothing re-sent');
    assert.equal(again.etag, `bytes=${partSize}-${2 * partSize - 1}`);
    await b.multipart.uploadPart('f', uploadId, 3, part(3));
    assert.equal(drive.stats.chunkBytes, partSize);
    // complete() on yet another instance asks the session, which reports the finished file.
    const c = await open(root);
    await c.multipart.complete('f', uploadId, (await c.multipart.listParts('f', uploadId)) ?? []);
    assert.equal((await c.head('f'))?.sha256, sha256(data));
  });

  it('a session Drive no longer knows: listParts is undefined, uploadPart and complete say the upload is gone', async () => {
    const root = drive.createFolder('gone');
    const b = await open(root);
    const uploadId = await b.multipart.create('g', { sha256: 'a'.repeat(64), size: 2 * CHUNK_UNIT, partSize: CHUNK_UNIT });
    await b.multipart.uploadPart('g', uploadId, 1, randomBytes(CHUNK_UNIT));
    drive.dropSessions(new URL(uploadId).searchParams.get('upload_id') ?? '');
    assert.equal(await b.multipart.listParts('g', uploadId), undefined);
    const e = await caught(b.multipart.uploadPart('g', uploadId, 2, randomBytes(CHUNK_UNIT)));
    assert.equal(e.details.gone, 'upload', 'the engine is told to start a new upload');
    assert.equal((await caught(b.multipart.complete('g', uploadId, []))).code, 'HOLDFAST_E_USAGE');
    await b.multipart.abort('g', uploadId);
    assert.equal(await b.head('g'), undefined);
  });

  it('an existing key is uploaded in a session that updates its file (PATCH), not a new one', async () => {
    const root = drive.createFolder('update-session');
    const b = await open(root);
    await put(b, 'v.bin', Buffer.from('small'));
    const [file] = named(root, 'v.bin');
    const data = randomBytes(CHUNK_UNIT + 5);
    const uploadId = await b.multipart.create('v.bin', { sha256: sha256(data), size: data.length, partSize: CHUNK_UNIT });
    const parts = [await b.multipart.uploadPart('v.bin', uploadId, 1, data.subarray(0, CHUNK_UNIT)), await b.multipart.uploadPart('v.bin', uploadId, 2, data.subarray(CHUNK_UNIT))];
    await b.multipart.complete('v.bin', uploadId, parts);
    const files = named(root, 'v.bin');
    assert.equal(files.length, 1);
    assert.equal(files[0]!.id, file!.id);
    assert.equal((await b.head('v.bin'))?.sha256, sha256(data));
  });

  it('create needs the total size and a part size in 256 KiB multiples; the fake refuses other chunk sizes as Drive does', async () => {
    const root = drive.createFolder('chunks');
    const b = await open(root);
    assert.equal((await caught(b.multipart.create('c', { sha256: 'a'.repeat(64), size: 3 * MiB, partSize: 1_000_000 }))).code, 'HOLDFAST_E_USAGE');
    assert.equal((await caught(b.multipart.create('c', { sha256: 'a'.repeat(64), size: 3 * MiB }))).code, 'HOLDFAST_E_USAGE');
    assert.equal((await caught(b.multipart.create('c', { sha256: 'a'.repeat(64), size: Number.NaN, partSize: CHUNK_UNIT }))).code, 'HOLDFAST_E_USAGE');
    // The fake itself: a session, then a non-final chunk of 1000 bytes.
    const start = await fetch(`${drive.apiRoot}upload/drive/v3/files?uploadType=resumable`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${drive.token}`, 'Content-Type': 'application/json', 'X-Upload-Content-Length': '5000' },
      body: JSON.stringify({ name: 'raw', parents: [root] }),
    });
    assert.equal(start.status, 200);
    const session = start.headers.get('location') ?? '';
    const chunk = await fetch(session, { method: 'PUT', headers: { Authorization: `Bearer ${drive.token}`, 'Content-Range': 'bytes 0-999/5000' }, body: Buffer.alloc(1000) });
    assert.equal(chunk.status, 400);
    const whole = await fetch(session, { method: 'PUT', headers: { Authorization: `Bearer ${drive.token}`, 'Content-Range': 'bytes 0-4999/5000' }, body: Buffer.alloc(5000) });
    assert.equal(whole.status, 200, 'a final chunk of any size is fine');
  });

  it('listUploads is HOLDFAST_E_NOT_SUPPORTED: Drive cannot list sessions', async () => {
    const b = await open(drive.createFolder('uploads'));
    const e = await caught(
      (async () => {
        for await (const u of b.multipart.listUploads()) void u;
      })(),
    );
    assert.equal(e.code, 'HOLDFAST_E_NOT_SUPPORTED');
  });

  it('ensureReady: a missing folder or a file id is HOLDFAST_E_DEST_NOT_FOUND saying what to do', async () => {
    const missing = await open('NoSuchFolder123');
    const e = await caught(missing.ensureReady());
    assert.equal(e.code, 'HOLDFAST_E_DEST_NOT_FOUND');
    assert.match(e.message, /NoSuchFolder123/);
    assert.match(e.message, /share/);
    const root = drive.createFolder('has-a-file');
    const fileId = drive.createFile(root, 'plain.txt', Buffer.from('x'));
    assert.equal((await caught((await open(fileId)).ensureReady())).code, 'HOLDFAST_E_DEST_NOT_FOUND');
    await (await open(root)).ensureReady();
  });

  it('no credentials: HOLDFAST_E_USAGE naming both variables', async () => {
    const saved = { a: process.env.GOOGLE_APPLICATION_CREDENTIALS, b: process.env.HOLDFAST_GDRIVE_ACCESS_TOKEN };
    try {
      delete process.env.GOOGLE_APPLICATION_CREDENTIALS;
      delete process.env.HOLDFAST_GDRIVE_ACCESS_TOKEN;
      const e = await caught(openBackend('gdrive://folder123', { gdriveApiRoot: drive.apiRoot }));
      assert.equal(e.code, 'HOLDFAST_E_USAGE');
      assert.match(e.message, /GOOGLE_APPLICATION_CREDENTIALS/);
      assert.match(e.message, /HOLDFAST_GDRIVE_ACCESS_TOKEN/);
      // The environment works as well as the options.
      process.env.HOLDFAST_GDRIVE_ACCESS_TOKEN = drive.token;
      const b = await openBackend(`gdrive://${drive.createFolder('env')}`, { gdriveApiRoot: drive.apiRoot });
      opened.push(b);
      await b.ensureReady();
    } finally {
      for (const [k, v] of [
        ['GOOGLE_APPLICATION_CREDENTIALS', saved.a],
        ['HOLDFAST_GDRIVE_ACCESS_TOKEN', saved.b],
      ] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it('a credentials file that is missing, not JSON or not a service account: HOLDFAST_E_CONFIG, its content never echoed', async () => {
    const tmp = await makeTempDir('holdfast-gdrive-creds-');
    try {
      const notJson = join(tmp.path, 'not-json.json');
      await writeFile(notJson, 'PRIVATE-KEY-MATERIAL-xyz');
      const user = join(tmp.path, 'user.json');
      await writeFile(user, JSON.stringify({ type: 'authorized_user', refresh_token: 'secret-refresh-abc' }));
      for (const file of [join(tmp.path, 'missing.json'), notJson, user]) {
        const e = await caught(openBackend('gdrive://folder123', { gdriveCredentialsFile: file, gdriveApiRoot: drive.apiRoot }));
        assert.equal(e.code, 'HOLDFAST_E_CONFIG', e.message);
        assert.ok(e.message.includes(file), 'names the file');
        assert.ok(!e.message.includes('PRIVATE-KEY-MATERIAL') && !e.message.includes('secret-refresh'), e.message);
      }
    } finally {
      await tmp.cleanup();
    }
  });

  it('a refused token is HOLDFAST_E_AUTH without the token in the message; throttling is transient', async () => {
    const root = drive.createFolder('auth');
    const bad = await open(root, { gdriveAccessToken: 'wrong-token-value-123' });
    const e = await caught(bad.ensureReady());
    assert.equal(e.code, 'HOLDFAST_E_AUTH');
    assert.ok(!e.message.includes('wrong-token-value-123'));
    const b = await open(root);
    drive.failNext({ op: 'files.list', status: 403, reason: 'userRateLimitExceeded' });
    const throttled = await caught(b.head('x'));
    assert.equal(throttled.code, 'HOLDFAST_E_THROTTLED');
    assert.equal(throttled.transient, true);
    drive.failNext({ op: 'files.list', status: 403, reason: 'insufficientFilePermissions' });
    assert.equal((await caught(b.head('x'))).code, 'HOLDFAST_E_AUTH');
    drive.failNext({ op: 'files.list', status: 500 });
    assert.equal((await caught(b.head('x'))).transient, true);
    assert.equal(await b.head('x'), undefined, 'and then it works');
  });

  it('URLs: gdrive://<folder-id> only', async () => {
    for (const url of ['gdrive://folder/sub', 'gdrive://user:pw@folder', 'gdrive://folder?x=1', 'gdrive://bad%20id']) {
      assert.equal((await caught(openBackend(url, options(drive)))).code, 'HOLDFAST_E_BAD_URL', url);
    }
    const b = await open('AbC_-123');
    assert.equal(b.url, 'gdrive://AbC_-123');
  });
});

describe('push() to gdrive:// (on the local fake Drive)', () => {
  it('a large file interrupted mid-session is finished by the next run, which sends only the missing bytes', async () => {
    const drive = await startFakeDrive();
    const tmp = await makeTempDir('holdfast-gdrive-push-');
    try {
      const root = drive.createFolder('backup');
      const src = join(tmp.path, 'src');
      await mkdir(join(src, 'data'), { recursive: true });
      const big = randomBytes(3 * MiB + 1000);
      await writeFile(join(src, 'data', 'big.bin'), big);
      await writeFile(join(src, 'small.txt'), 'small');
      const run = (retry?: { attempts: number; baseMs: number; maxMs: number }) =>
        push({
          source: src,
          destination: `gdrive://${root}`,
          stateDir: join(tmp.path, 'state'),
          backendOptions: options(drive),
          multipartThreshold: MiB,
          partSize: MiB,
          ...(retry !== undefined ? { retry } : {}),
        });

      // First run: the third 1 MiB chunk is cut after 600 KiB (Drive keeps 512 KiB
      // of it), and with one attempt per request the run gives the file up.
      drive.interruptChunk(600 * KiB, 3);
      const first = await run({ attempts: 1, baseMs: 1, maxMs: 1 });
      assert.equal(first.uploads.failed, 1, JSON.stringify(first.errors));
      assert.equal(first.uploads.completed, 1, 'small.txt went');
      const [session] = drive.sessions();
      assert.equal(session?.received, 2 * MiB + 512 * KiB);
      assert.equal(drive.stats.ops.get('upload.start'), 1);

      // Second run: same session, only the bytes Drive lacks.
      drive.resetStats();
      const second = await run();
      assert.equal(second.status, 'completed', JSON.stringify(second.errors));
      assert.equal(second.uploads.completed, 1);
      assert.equal(drive.stats.ops.get('upload.start') ?? 0, 0, 'no new session');
      assert.equal(drive.stats.chunkBytes, big.length - (2 * MiB + 512 * KiB), 'only the missing bytes were sent');
      assert.equal(drive.stats.multipartBytes, 0, 'small.txt was not sent again');
      assert.equal(drive.stats.maxChunksInFlight, 1, 'parts went one at a time (sequentialParts)');

      const stored = drive.filesUnder(root);
      assert.deepEqual(stored.map((s) => s.path).sort(), ['data/big.bin', 'small.txt']);
      const bigFile = stored.find((s) => s.path === 'data/big.bin')!.file;
      assert.ok(Buffer.compare(bigFile.content, big) === 0, 'content is identical');
      assert.equal(bigFile.appProperties['holdfast-sha256'], sha256(big));

      // A third run has nothing to do.
      drive.resetStats();
      const third = await run();
      assert.equal(third.status, 'completed');
      assert.equal(third.bytes, 0);
      assert.equal(drive.stats.chunkBytes + drive.stats.multipartBytes, 0);
    } finally {
      await tmp.cleanup();
      await drive.stop();
    }
  });
  it('runs on a listing that lags behind writes: what the ledger records is what the destination holds, and pull restores it', async () => {
    const drive = await startFakeDrive();
    const tmp = await makeTempDir('holdfast-gdrive-lag-');
    try {
      const root = drive.createFolder('backup');
      const src = join(tmp.path, 'src');
      await mkdir(src, { recursive: true });
      const run = () => push({ source: src, destination: `gdrive://${root}`, stateDir: join(tmp.path, 'state'), backendOptions: options(drive) });
      await writeFile(join(src, 'report.csv'), 'v1\n');
      drive.listLag(1000);
      assert.equal((await run()).status, 'completed');
      drive.listLag(0);
      // The next run cannot see the first file yet: it makes a second one.
      const v2 = 'v2: a longer second version\n';
      await writeFile(join(src, 'report.csv'), v2);
      const second = await run();
      assert.equal(second.status, 'completed', JSON.stringify(second.errors));
      assert.equal(second.uploads.completed, 1);
      drive.reveal();

      const ledger = await openLedger({ stateDir: join(tmp.path, 'state') });
      const backend = await openBackend(`gdrive://${root}`, options(drive));
      try {
        const dest = (await ledger.listDestinations())[0]!;
        const row = await ledger.getObject(dest.id, 'report.csv');
        assert.equal(row?.sha256, sha256(Buffer.from(v2)));
        assert.equal((await backend.head('report.csv'))?.sha256, row.sha256, 'the destination holds what the ledger says');
      } finally {
        await backend.close();
        await ledger.close();
      }
      const target = join(tmp.path, 'restore');
      const restored = await pull({ destination: `gdrive://${root}`, target, stateDir: join(tmp.path, 'state'), backendOptions: options(drive) });
      assert.equal(restored.status, 'completed', JSON.stringify(restored.errors));
      assert.equal(await readFile(join(target, 'report.csv'), 'utf8'), v2);
    } finally {
      await drive.stop();
      await tmp.cleanup();
    }
  });
});
