// file:// specifics beyond the conformance suite: keys cannot escape the root,
// temporary files never show, directory fsyncs are shared without losing
// files, empty folders are pruned, mtimes kept, ensureReady creates the root.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import type { Backend, BodySource } from '../../src/backends/backend.js';
import { bufferBody } from '../../src/backends/body.js';
import type { LocalBackend } from '../../src/backends/local.js';
import { openBackend } from '../../src/backends/registry.js';
import { isHoldfastError } from '../../src/core/errors.js';
import { makeTempDir } from '../helpers/tmp.js';
import type { TempDir } from '../helpers/tmp.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function put(backend: Backend, key: string, data: Buffer | string, mtimeMs?: number): Promise<void> {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
  await backend.put(key, bufferBody(buf), { size: buf.length, sha256: sha(buf), mtimeMs });
}

async function keys(backend: Backend, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for await (const o of backend.list(prefix)) out.push(o.key);
  return out;
}

async function codeOf(fn: () => unknown): Promise<string> {
  try {
    await fn();
    return 'no error';
  } catch (e) {
    return isHoldfastError(e) ? e.code : `not a HoldfastError: ${String(e)}`;
  }
}

/** All names under `dir`, recursively, relative to it (temp files included). */
async function tree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  return entries.map(String).sort();
}

describe('file:// backend', () => {
  let tmp: TempDir;
  let root: string;
  let backend: LocalBackend;
  before(async () => {
    tmp = await makeTempDir('holdfast-local-');
    root = join(tmp.path, 'root');
    backend = (await openBackend(pathToFileURL(root).href)) as LocalBackend;
    await backend.ensureReady();
  });
  after(async () => {
    await backend.close();
    await tmp.cleanup();
  });

  describe('keys never escape the root', () => {
    const attempts = ['../outside', 'a/../../outside', '..', '/etc/passwd', 'a/./../../x', 'ok/../../../tmp/x'];
    for (const key of attempts) {
      it(`refuses ${JSON.stringify(key)} for every operation`, async () => {
        assert.equal(await codeOf(() => put(backend, key, 'x')), 'HOLDFAST_E_KEY_INVALID');
        assert.equal(await codeOf(() => backend.head(key)), 'HOLDFAST_E_KEY_INVALID');
        assert.equal(await codeOf(() => backend.get(key)), 'HOLDFAST_E_KEY_INVALID');
        assert.equal(await codeOf(() => backend.delete(key)), 'HOLDFAST_E_KEY_INVALID');
      });
    }

    it('nothing was written outside the root', async () => {
      assert.deepEqual(await readdir(tmp.path), ['root']);
    });

    it('a prefix with ".." lists nothing rather than walking outside', async () => {
      await writeFile(join(tmp.path, 'outside.txt'), 'secret');
      try {
        assert.deepEqual(await keys(backend, '../'), []);
        assert.deepEqual(await keys(backend, '../outside'), []);
      } finally {
        await writeFile(join(tmp.path, 'outside.txt'), '');
      }
    });

    it('does not descend into symlinked folders while listing', async () => {
      const p = 'links/';
      await put(backend, `${p}real.txt`, 'r');
      await symlink(tmp.path, join(root, 'links', 'escape'));
      assert.deepEqual(await keys(backend, p), [`${p}real.txt`]);
    });
  });

  describe('temporary files', () => {
    it('are never listed, and their names are reserved', async () => {
      await put(backend, 'tmpdir/real.txt', 'x');
      await writeFile(join(root, '.holdfast.0123456789abcdef.tmp'), 'stale temp at the root');
      await writeFile(join(root, 'tmpdir', '.holdfast.fedcba9876543210.tmp'), 'stale temp in a folder');
      assert.ok(!(await keys(backend)).some((k) => k.includes('.holdfast.')));
      assert.deepEqual(await keys(backend, 'tmpdir/'), ['tmpdir/real.txt']);
      assert.equal(await codeOf(() => backend.validateKey('a/.holdfast.0123456789abcdef.tmp')), 'HOLDFAST_E_KEY_INVALID');
      // Similar but not reserved names are ordinary keys.
      backend.validateKey('.holdfast.txt');
      backend.validateKey('.holdfast.0123.tmp');
    });

    it('a failed put removes its temp file', async () => {
      const body: BodySource = {
        size: 1000,
        open: () =>
          new Readable({
            read(): void {
              this.destroy(new Error('source vanished'));
            },
          }),
      };
      assert.equal(await codeOf(() => backend.put('failed/x.bin', body, { size: 1000, sha256: '0'.repeat(64) })), 'HOLDFAST_E_SOURCE_UNREADABLE');
      const left = await readdir(join(root, 'failed')).catch(() => [] as string[]);
      assert.deepEqual(left, []);
    });
  });

  describe('fsync coalescing', () => {
    it('many parallel puts into one folder all land, with far fewer directory fsyncs than files', async () => {
      const before = backend.dirSync.calls;
      const n = 300;
      const datas = Array.from({ length: n }, (_, i) => randomBytes(100 + i));
      await Promise.all(datas.map((d, i) => put(backend, `burst/f${String(i).padStart(4, '0')}`, d)));
      const calls = backend.dirSync.calls - before;
      assert.ok(calls < n / 2, `${calls} directory fsyncs for ${n} files`);
      const listed = await keys(backend, 'burst/');
      assert.equal(listed.length, n);
      for (let i = 0; i < n; i += 37) assert.equal((await backend.head(`burst/f${String(i).padStart(4, '0')}`))?.sha256, sha(datas[i]!));
      assert.ok(!(await tree(join(root, 'burst'))).some((name) => name.endsWith('.tmp')), 'no temp files left');
    });

    it('parallel puts and deletes in shared folders do not lose files', async () => {
      // Deletes prune empty folders while puts create them: puts must retry, not fail.
      const rounds = 20;
      for (let r = 0; r < rounds; r++) {
        await put(backend, `race/${r}/old`, 'old');
      }
      await Promise.all(
        Array.from({ length: rounds }, async (_, r) => {
          await Promise.all([backend.delete(`race/${r}/old`), put(backend, `race/${r}/new`, `new ${r}`)]);
        }),
      );
      const listed = await keys(backend, 'race/');
      assert.deepEqual(listed, Array.from({ length: rounds }, (_, r) => `race/${r}/new`).sort());
    });

    it('with fsync: false, puts still work (benchmarks, tests)', async () => {
      const fast = (await openBackend(pathToFileURL(join(tmp.path, 'nofsync')).href, { fsync: false })) as LocalBackend;
      await fast.ensureReady();
      await put(fast, 'a/b', 'quick');
      assert.equal(fast.dirSync.calls, 0);
      assert.equal((await fast.head('a/b'))?.size, 5);
    });
  });

  describe('files and folders', () => {
    it('keeps the source mtime when given', async () => {
      const mtimeMs = Date.UTC(2020, 1, 29, 12, 0, 0, 500);
      await put(backend, 'times/leap.txt', 'x', mtimeMs);
      const st = await stat(join(root, 'times', 'leap.txt'));
      assert.equal(Math.round(st.mtimeMs), mtimeMs);
      assert.equal(Math.round((await backend.head('times/leap.txt'))!.modifiedMs!), mtimeMs);
    });

    it('delete prunes folders left empty, up to but never including the root', async () => {
      await put(backend, 'prune/a/b/c/only.txt', 'x');
      await put(backend, 'prune/keep.txt', 'y');
      await backend.delete('prune/a/b/c/only.txt');
      assert.deepEqual(await readdir(join(root, 'prune')), ['keep.txt']);
      await backend.delete('prune/keep.txt');
      await assert.rejects(stat(join(root, 'prune')));
      assert.ok((await stat(root)).isDirectory(), 'the root stays');
    });

    it('a key whose folder is a file (or whose file is a folder) is rejected, not half-written', async () => {
      await put(backend, 'clash/file', 'x');
      assert.equal(await codeOf(() => put(backend, 'clash/file/child', 'y')), 'HOLDFAST_E_DEST_REJECTED');
      await put(backend, 'clash/dir/child', 'z');
      assert.equal(await codeOf(() => put(backend, 'clash/dir', 'w')), 'HOLDFAST_E_DEST_REJECTED');
      assert.deepEqual(await keys(backend, 'clash/'), ['clash/dir/child', 'clash/file']);
      assert.ok(!(await tree(join(root, 'clash'))).some((n) => n.endsWith('.tmp')));
    });

    it('rejects path segments longer than 255 bytes with HOLDFAST_E_KEY_INVALID', async () => {
      assert.equal(await codeOf(() => backend.validateKey(`a/${'x'.repeat(256)}`)), 'HOLDFAST_E_KEY_INVALID');
      backend.validateKey(`a/${'x'.repeat(255)}`);
    });

    it('lists foreign files too, but skips names that are not UTF-8', async () => {
      await mkdir(join(root, 'foreign'), { recursive: true });
      await writeFile(join(root, 'foreign', 'made-by-hand.txt'), 'hand');
      await writeFile(Buffer.concat([Buffer.from(join(root, 'foreign') + '/'), Buffer.from([0x66, 0xff, 0x66])]), 'latin-1 name');
      assert.deepEqual(await keys(backend, 'foreign/'), ['foreign/made-by-hand.txt']);
    });

    it('url is the normalised file:// URL of the root', () => {
      assert.equal(backend.url, pathToFileURL(root).href);
      assert.equal(backend.kind, 'file');
    });
  });

  describe('ensureReady', () => {
    it('creates a missing root like mkdir -p', async () => {
      const deep = join(tmp.path, 'new', 'deeper', 'root');
      const b = await openBackend(pathToFileURL(deep).href);
      await b.ensureReady();
      assert.ok((await stat(deep)).isDirectory());
      await b.ensureReady();
    });

    it('a root that is a file: HOLDFAST_E_DEST_NOT_FOUND saying so', async () => {
      const file = join(tmp.path, 'plain-file');
      await writeFile(file, 'x');
      const b = await openBackend(pathToFileURL(file).href);
      await assert.rejects(b.ensureReady(), (e: unknown) => isHoldfastError(e) && e.code === 'HOLDFAST_E_DEST_NOT_FOUND' && /not a directory/.test(e.message));
    });

    it('a root below a file: HOLDFAST_E_DEST_NOT_FOUND naming the blocking path', async () => {
      const file = join(tmp.path, 'blocker');
      await writeFile(file, 'x');
      const b = await openBackend(pathToFileURL(join(file, 'sub', 'root')).href);
      await assert.rejects(b.ensureReady(), (e: unknown) => isHoldfastError(e) && e.code === 'HOLDFAST_E_DEST_NOT_FOUND' && e.message.includes(file));
    });
  });
});
