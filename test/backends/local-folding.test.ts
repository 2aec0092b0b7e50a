// file:// on a case-insensitive file system (a real exFAT mounted through FUSE,
// test/helpers/exfat.ts) and on the usual case-sensitive one: ensureReady
// probes how names fold and leaves no trace; on the folding one, a key never
// writes over, reads or deletes the file of a key spelled otherwise.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import type { Backend } from '../../src/backends/backend.js';
import { bufferBody } from '../../src/backends/body.js';
import type { LocalBackend } from '../../src/backends/local.js';
import { openBackend } from '../../src/backends/registry.js';
import { isHoldfastError } from '../../src/core/errors.js';
import { mountExfat, type ExfatMount } from '../helpers/exfat.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function put(backend: Backend, key: string, text: string): Promise<void> {
  const buf = Buffer.from(text);
  await backend.put(key, bufferBody(buf), { size: buf.length, sha256: sha(buf) });
}

async function failure(fn: () => Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await fn();
  } catch (e) {
    if (isHoldfastError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  return { code: 'no error', message: '' };
}

async function open(dir: string, opts: { readOnly?: boolean } = {}): Promise<LocalBackend> {
  const b = (await openBackend(pathToFileURL(dir).href)) as LocalBackend;
  await b.ensureReady(opts);
  return b;
}

describe('file:// on the usual case-sensitive file system', () => {
  let tmp: TempDir;
  before(async () => (tmp = await makeTempDir('holdfast-names-')));
  after(async () => tmp.cleanup());

  it('the probe finds nothing folding, declares no keyFolding and leaves no file behind', async () => {
    const b = await open(join(tmp.path, 'plain'));
    assert.deepEqual(b.nameRules, { caseInsensitive: false, unicodeInsensitive: false, windowsNames: false, stores: 'as-given' });
    assert.equal(b.keyFolding, undefined);
    assert.deepEqual(await readdir(join(tmp.path, 'plain')), []);
    await put(b, 'Report.txt', 'A');
    await put(b, 'report.txt', 'B');
    assert.deepEqual((await readdir(join(tmp.path, 'plain'))).sort(), ['Report.txt', 'report.txt']);
    await b.close();
  });

  it('a dry run probes without writing: names already there tell, an empty directory tells nothing', async () => {
    const dir = join(tmp.path, 'dry');
    await mkdir(dir);
    const empty = await open(dir, { readOnly: true });
    assert.equal(empty.nameRules, undefined);
    await writeFile(join(dir, 'Notes.txt'), 'x');
    const b = await open(dir, { readOnly: true });
    assert.deepEqual(b.nameRules, { caseInsensitive: false, unicodeInsensitive: false, windowsNames: false, stores: 'as-given' });
    assert.deepEqual(await readdir(dir), ['Notes.txt']);
  });
});

describe('file:// on a case-insensitive file system (exFAT)', () => {
  let mount: ExfatMount | undefined;
  let skip: string | undefined;
  before(async () => {
    const m = await mountExfat();
    if ('skip' in m) skip = m.skip;
    else mount = m;
  });
  after(async () => mount?.stop());
  let n = 0;
  const fresh = async (): Promise<{ dir: string; b: LocalBackend }> => {
    const dir = join(mount!.path, `case${n++}`);
    return { dir, b: await open(dir) };
  };

  it('the probe finds case folded (and case kept), declares keyFolding, and leaves no file behind', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const { dir, b } = await fresh();
    assert.deepEqual(b.nameRules, { caseInsensitive: true, unicodeInsensitive: false, windowsNames: true, stores: 'as-given' });
    assert.ok(b.keyFolding);
    assert.equal(b.keyFolding.fold('Report.TXT'), b.keyFolding.fold('report.txt'));
    assert.deepEqual(await readdir(dir), []);
    // A dry run's probe, from names already there, agrees.
    await writeFile(join(dir, 'Notes.txt'), 'x');
    const dry = await open(dir, { readOnly: true });
    assert.equal(dry.nameRules?.caseInsensitive, true);
    assert.deepEqual(await readdir(dir), ['Notes.txt']);
  });

  it('a key never writes over, reads or deletes the file of a key spelled otherwise', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const { dir, b } = await fresh();
    await put(b, 'Report.txt', 'first spelling');
    const refused = await failure(() => put(b, 'report.txt', 'second spelling'));
    assert.equal(refused.code, 'HOLDFAST_E_KEY_COLLISION');
    assert.match(refused.message, /"report\.txt" and "Report\.txt"/);
    assert.equal(await readFile(join(dir, 'Report.txt'), 'utf8'), 'first spelling', 'not overwritten');
    assert.equal(await b.head('report.txt'), undefined, 'head does not take the other key\'s file for this one');
    assert.equal((await failure(() => b.get('report.txt'))).code, 'HOLDFAST_E_DEST_REJECTED');
    await b.delete('report.txt');
    assert.deepEqual(await readdir(dir), ['Report.txt'], 'delete left the other key\'s file alone');
    assert.equal((await b.head('Report.txt'))?.sha256, sha(Buffer.from('first spelling')));
    // Its own spelling updates it as usual.
    await put(b, 'Report.txt', 'updated');
    assert.equal(await readFile(join(dir, 'Report.txt'), 'utf8'), 'updated');
    // Once it is deleted, the other spelling may take the name.
    await b.delete('Report.txt');
    await put(b, 'report.txt', 'second spelling');
    assert.deepEqual(await readdir(dir), ['report.txt']);
  });

  it('folders too: "photos/x" is refused while "Photos/" holds other keys, and lands once it is gone', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const { dir, b } = await fresh();
    await put(b, 'Photos/a.jpg', 'a');
    const refused = await failure(() => put(b, 'photos/b.jpg', 'b'));
    assert.equal(refused.code, 'HOLDFAST_E_KEY_COLLISION');
    assert.match(refused.message, /"photos\/b\.jpg" and "Photos\/"/);
    assert.deepEqual(await readdir(join(dir, 'Photos')), ['a.jpg'], 'nothing was written into Photos/ for photos/');
    assert.equal(await b.head('photos/a.jpg'), undefined);
    await b.delete('photos/a.jpg');
    assert.deepEqual(await readdir(join(dir, 'Photos')), ['a.jpg']);
    // A second instance (nothing cached) sees the same.
    const again = await open(dir);
    assert.equal((await failure(() => put(again, 'PHOTOS/c.jpg', 'c'))).code, 'HOLDFAST_E_KEY_COLLISION');
    await again.delete('Photos/a.jpg');
    assert.deepEqual(await readdir(dir), [], 'the emptied folder was pruned');
    await put(again, 'photos/b.jpg', 'b');
    assert.deepEqual(await readdir(dir), ['photos']);
  });

  it('a name exFAT cannot hold (? * : and the like) is HOLDFAST_E_KEY_INVALID before anything is written', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const { dir, b } = await fresh();
    for (const key of ['question?.txt', 'sub/star*.txt', 'a:b/c.txt']) {
      let thrown: unknown;
      try {
        await put(b, key, 'x');
      } catch (e) {
        thrown = e;
      }
      assert.ok(isHoldfastError(thrown), `${key}: ${String(thrown)}`);
      assert.equal(thrown.code, 'HOLDFAST_E_KEY_INVALID', `${key}: ${thrown.message}`);
      assert.equal(thrown.transient, false);
      assert.match(thrown.message, /Windows' rules for names/);
    }
    // Not even a folder: Node's recursive mkdir would loop forever on exFAT's ENOENT for "a:b".
    assert.deepEqual(await readdir(dir), []);
  });

  it('a spelling changed by another tool: a new instance sees it, and a cached spelling that disagrees is read again', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const { dir, b } = await fresh();
    await put(b, 'Log.txt', 'one');
    await rename(join(dir, 'Log.txt'), join(dir, 'LOG.txt'));
    const later = await open(dir);
    assert.equal(await later.head('Log.txt'), undefined);
    assert.equal((await failure(() => put(later, 'Log.txt', 'two'))).code, 'HOLDFAST_E_KEY_COLLISION');
    // Renamed back: the cached "LOG.txt" disagrees with the key, so the directory is read again.
    await rename(join(dir, 'LOG.txt'), join(dir, 'Log.txt'));
    assert.equal((await later.head('Log.txt'))?.size, 3);
    await put(later, 'Log.txt', 'two');
    assert.equal(await readFile(join(dir, 'Log.txt'), 'utf8'), 'two');
  });
});
