// The azure:// blob-name encoding (src/backends/azure-names.ts): the documented
// examples of docs/destinations.md, and the two properties everything else
// relies on, checked on random strings over the awkward alphabet: every key
// decodes back from its blob name, and every blob name a key is stored under
// is the only one for that key (encode ∘ decode = identity on canonical names).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeBlobName, encodeBlobName, encodeBlobPrefix, isEncoded, keyOfBlobName } from '../../src/backends/azure-names.js';
import { seededRandom } from '../helpers/proxy.js';

/** Characters that matter to the encoding, plus a few ordinary ones. */
const ALPHABET = ['a', 'b', '/', '.', '\\', '\uff3c', '\uff0e', '\u201b', '\r', '\u0001', '\u001f', '\t', '\n', '\u240d', '\u2401', '\u2409', '\u2400', '\u{1F980}'];

/** What Azure cannot keep in a blob name: a raw "\\", carriage return or other C0 control, or a segment-final ".". */
// eslint-disable-next-line no-control-regex
const RAW_UNKEEPABLE = /[\\\r\u0001\u001f]|\.(?:\/|$)/u;

function randomString(rnd: () => number, maxLen: number): string {
  const n = 1 + Math.floor(rnd() * maxLen);
  let s = '';
  for (let i = 0; i < n; i++) s += ALPHABET[Math.floor(rnd() * ALPHABET.length)];
  return s;
}

describe('azure blob names', () => {
  it('the examples of docs/destinations.md', () => {
    const examples: [string, string][] = [
      ['a\\b.txt', 'a\uff3cb.txt'],
      ['notes.', 'notes\uff0e'],
      ['v1./x.txt', 'v1\uff0e/x.txt'],
      ['a..b', 'a..b'],
      ['...', '..\uff0e'],
      ['Icon\r', 'Icon\u240d'],
      ['bell\u0007', 'bell\u2407'],
      ['tab\tand\nnewline', 'tab\tand\nnewline'],
      ['full\uff3cwidth', 'full\u201b\uff3cwidth'],
      ['ends\uff0e', 'ends\u201b\uff0e'],
      ['mid\uff0edle', 'mid\uff0edle'],
      ['\u201bquote', '\u201bquote'],
      ['q\u201b\\', 'q\u201b\u201b\uff3c'],
      ['q\u201b\uff3c', 'q\u201b\u201b\u201b\uff3c'],
      ['caf\u00e9 \u{1F980}.txt', 'caf\u00e9 \u{1F980}.txt'],
    ];
    for (const [key, name] of examples) {
      assert.equal(encodeBlobName(key), name, `encode ${JSON.stringify(key)}`);
      assert.equal(decodeBlobName(name), key, `decode ${JSON.stringify(name)}`);
      assert.equal(keyOfBlobName(name), key);
      assert.equal(isEncoded(key), key !== name);
    }
  });

  it('decode(encode(k)) = k and the name is canonical, for random keys', () => {
    const rnd = seededRandom(11);
    for (let i = 0; i < 20_000; i++) {
      const key = randomString(rnd, 12);
      const name = encodeBlobName(key);
      assert.equal(decodeBlobName(name), key, JSON.stringify(key));
      assert.equal(keyOfBlobName(name), key, JSON.stringify(key));
      // Nothing Azure would change survives in the stored name.
      assert.doesNotMatch(name, RAW_UNKEEPABLE, JSON.stringify(key));
    }
  });

  it('every name decodes, and encodes back to itself unless it holds what encode never writes', () => {
    const rnd = seededRandom(12);
    for (let i = 0; i < 20_000; i++) {
      const name = randomString(rnd, 12);
      const key = keyOfBlobName(name);
      const raw = RAW_UNKEEPABLE.test(name);
      if (raw) assert.equal(key, undefined, `${JSON.stringify(name)} holds a raw character Azure cannot keep: no key is stored there`);
      else assert.equal(key !== undefined && encodeBlobName(key), name, JSON.stringify(name));
    }
  });

  it('a key prefix encodes to a prefix of the name of every key that starts with it', () => {
    const rnd = seededRandom(13);
    for (let i = 0; i < 20_000; i++) {
      const key = randomString(rnd, 10);
      const cut = Math.floor(rnd() * (key.length + 1));
      const prefix = key.slice(0, cut);
      assert.ok(encodeBlobName(key).startsWith(encodeBlobPrefix(prefix)), `${JSON.stringify(prefix)} of ${JSON.stringify(key)}`);
    }
  });
});
