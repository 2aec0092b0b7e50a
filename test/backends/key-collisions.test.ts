// Keys that one destination cannot tell apart (src/backends/keys.ts): how a
// case-insensitive or Unicode-normalising file system folds names, and which
// of a run's source keys are refused because an earlier key took their name.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { keyCollisionError, KeyCollisions, keyFoldingFor } from '../../src/backends/keys.js';

const NFC = 'caf\u00e9.txt';
const NFD = 'cafe\u0301.txt';

describe('keyFoldingFor', () => {
  it('is undefined where the file system keeps every spelling apart', () => {
    assert.equal(keyFoldingFor({ caseInsensitive: false, unicodeInsensitive: false }), undefined);
  });

  it('case-insensitive: folds case, ASCII and beyond, but not normalisation', () => {
    const f = keyFoldingFor({ caseInsensitive: true, unicodeInsensitive: false })!;
    assert.equal(f.fold('Docs/README.md'), f.fold('docs/readme.MD'));
    assert.equal(f.fold('ÄRGER'), f.fold('ärger'));
    assert.equal(f.fold('STRASSE'), f.fold('straße'), 'a wider net (ß/SS) only refuses more');
    assert.notEqual(f.fold(NFC), f.fold(NFD));
    assert.match(f.description, /case/);
  });

  it('normalisation-insensitive: NFC and NFD are one name, case is not folded', () => {
    const f = keyFoldingFor({ caseInsensitive: false, unicodeInsensitive: true })!;
    assert.equal(f.fold(NFC), f.fold(NFD));
    assert.notEqual(f.fold('A'), f.fold('a'));
    assert.match(f.description, /NFC\/NFD/);
  });

  it('both: "CAFÉ" decomposed and "café" composed are one name', () => {
    const f = keyFoldingFor({ caseInsensitive: true, unicodeInsensitive: true })!;
    assert.equal(f.fold('CAFE\u0301.TXT'), f.fold(NFC));
  });
});

describe('KeyCollisions', () => {
  const caseless = keyFoldingFor({ caseInsensitive: true, unicodeInsensitive: true })!;

  it('the first spelling keeps the name; a later one collides with it, and the refused one takes nothing', () => {
    const c = new KeyCollisions(caseless);
    assert.equal(c.check('Report.txt'), undefined);
    assert.deepEqual(c.check('report.txt'), { other: 'Report.txt' });
    assert.deepEqual(c.check('REPORT.TXT'), { other: 'Report.txt' }, 'still the first, not the refused one');
    assert.equal(c.check('Report.txt'), undefined, 'the same key again is no collision');
  });

  it('NFC and NFD spellings of one name collide', () => {
    const c = new KeyCollisions(caseless);
    assert.equal(c.check(NFD), undefined);
    assert.deepEqual(c.check(NFC), { other: NFD });
  });

  it('keys in folders spelled differently collide, naming both folders; the same folder is fine', () => {
    const c = new KeyCollisions(caseless);
    assert.equal(c.check('Photos/2024/a.jpg'), undefined);
    assert.equal(c.check('Photos/2024/b.jpg'), undefined);
    assert.equal(c.check('Photos/2025/c.jpg'), undefined);
    assert.deepEqual(c.check('photos/2024/d.jpg'), { other: 'Photos/2024/a.jpg', folders: { mine: 'photos/', theirs: 'Photos/' } });
    assert.deepEqual(c.check('Photos/2025/C.JPG'), { other: 'Photos/2025/c.jpg' });
    assert.equal(c.check('Photos/2026/e.jpg'), undefined);
  });

  it('a refused key leaves no folder behind for later keys to collide with', () => {
    const c = new KeyCollisions(caseless);
    assert.equal(c.check('A/x'), undefined);
    assert.ok(c.check('a/new/y') !== undefined);
    // "a/new/" was never taken: only "A/" decides.
    assert.deepEqual(c.check('a/NEW/z'), { other: 'A/x', folders: { mine: 'a/', theirs: 'A/' } });
    assert.equal(c.check('A/new/y'), undefined);
  });

  it('without folding nothing collides', () => {
    const c = new KeyCollisions(keyFoldingFor({ caseInsensitive: false, unicodeInsensitive: true })!);
    assert.equal(c.check('Report.txt'), undefined);
    assert.equal(c.check('report.txt'), undefined);
  });

  it('the error names both keys, the destination and what to do', () => {
    const e = keyCollisionError('report.txt', { other: 'Report.txt' }, 'file:///mnt/usb/', caseless);
    assert.equal(e.code, 'HOLDFAST_E_KEY_COLLISION');
    assert.equal(e.transient, false);
    assert.equal(e.exitCode, 2);
    assert.match(e.message, /"report\.txt" and "Report\.txt"/);
    assert.match(e.message, /file:\/\/\/mnt\/usb\/ ignores case/);
    assert.match(e.message, /rename one of them/);
    const f = keyCollisionError('photos/d.jpg', { other: 'Photos/a.jpg', folders: { mine: 'photos/', theirs: 'Photos/' } }, 'file:///mnt/usb/', caseless);
    assert.match(f.message, /the folder "photos\/" is "Photos\/" there/);
  });
});
