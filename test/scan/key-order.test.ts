// compareKeys must agree with UTF-8 byte order (Buffer.compare) everywhere,
// or the merge-join of change detection would plan uploads and deletes that
// are not real.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareKeys } from '../../src/scan/key-order.js';

const sign = (n: number): number => (n < 0 ? -1 : n > 0 ? 1 : 0);
const byteOrder = (a: string, b: string): number => sign(Buffer.compare(Buffer.from(a), Buffer.from(b)));

// Code points chosen around the boundaries where UTF-16 and UTF-8 orders differ.
const POOL = [
  0x20, 0x2d, 0x2e, 0x2f, 0x30, 0x41, 0x5f, 0x61, 0x7e, 0x7f, 0x80, 0xe9, 0x7ff, 0x800, 0x65e5, 0xd7ff, 0xe000, 0xf8ff, 0xff5e, 0xfffd,
  0xffff, 0x10000, 0x1f600, 0x1f9ff, 0x20000, 0x10ffff,
];

function randomKey(rand: () => number): string {
  const len = Math.floor(rand() * 6);
  let s = '';
  for (let i = 0; i < len; i++) {
    // Mostly boundary code points, sometimes any valid scalar value.
    const cp = rand() < 0.7 ? POOL[Math.floor(rand() * POOL.length)]! : randomScalar(rand);
    s += String.fromCodePoint(cp);
  }
  return s;
}

function randomScalar(rand: () => number): number {
  for (;;) {
    const cp = Math.floor(rand() * 0x110000);
    if (cp < 0xd800 || cp > 0xdfff) return cp;
  }
}

// Deterministic PRNG so a failure can be reproduced.
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

void test('compareKeys: the cases where JavaScript < disagrees with UTF-8 bytes', () => {
  const astral = '\u{1F600}'; // a surrogate pair in UTF-16, F0 9F 98 80 in UTF-8
  const privateUse = '\uE000'; // EE 80 80
  assert.ok(astral < privateUse, 'JS compares UTF-16 code units');
  assert.ok(compareKeys(astral, privateUse) > 0);
  assert.ok(compareKeys('\uFFFF', '\u{10000}') < 0);
  assert.ok(compareKeys('a\uFF5Eb', 'a\u{20000}') < 0);
});

void test('compareKeys: prefixes, equality and the directory separator', () => {
  assert.equal(compareKeys('', ''), 0);
  assert.equal(compareKeys('abc', 'abc'), 0);
  assert.ok(compareKeys('a', 'ab') < 0);
  assert.ok(compareKeys('ab', 'a') > 0);
  assert.ok(compareKeys('a-b', 'a/') < 0, "'-' (0x2D) sorts before '/' (0x2F)");
  assert.ok(compareKeys('a.b', 'a/') < 0);
  assert.ok(compareKeys('a/', 'a0') < 0);
  assert.ok(compareKeys('a/z', 'a b') > 0, "' ' (0x20) sorts before '/'");
  assert.ok(compareKeys('Z', 'a') < 0, 'case-sensitive, uppercase first');
});

void test('compareKeys agrees with Buffer.compare on 20000 random pairs', () => {
  const rand = mulberry32(42);
  for (let i = 0; i < 20000; i++) {
    const a = randomKey(rand);
    // Share a prefix half of the time so that later positions are compared too.
    const b = rand() < 0.5 ? a.slice(0, Math.floor(rand() * (a.length + 1))) + randomKey(rand) : randomKey(rand);
    assert.equal(sign(compareKeys(a, b)), byteOrder(a, b), `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
    assert.equal(sign(compareKeys(b, a)), byteOrder(b, a));
  }
});

void test('sorting with compareKeys equals sorting UTF-8 buffers', () => {
  const rand = mulberry32(7);
  const keys = Array.from({ length: 2000 }, () => randomKey(rand));
  const ours = [...keys].sort(compareKeys);
  const bytes = keys.map((k) => Buffer.from(k)).sort((x, y) => Buffer.compare(x, y)).map((b) => b.toString('utf8'));
  assert.deepEqual(ours, bytes);
});
