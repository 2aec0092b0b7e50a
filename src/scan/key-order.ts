// The one key order of Holdfast: UTF-8 byte order.
//
// The ledger sorts keys in UTF-8 byte order (SQLite BINARY, PostgreSQL
// COLLATE "C") and so do destination listings (S3 ListObjectsV2). The scanner
// must yield keys in the very same order, or the merge-join of change
// detection would see a key "missing" on one side and plan a spurious upload
// or, worse, a delete. JavaScript's `<` compares UTF-16 code units, which
// disagrees with UTF-8 bytes for astral characters (surrogate pairs,
// U+D800–U+DFFF) versus U+E000–U+FFFF; this module fixes that up without
// allocating.

/**
 * Compares two keys in UTF-8 byte order: the same result as
 * `Buffer.compare(Buffer.from(a), Buffer.from(b))` for well-formed strings.
 * Returns a negative number, zero or a positive number.
 *
 * UTF-8 byte order equals Unicode code point order. UTF-16 code unit order
 * equals code point order except that surrogates (which encode code points
 * above U+FFFF) sort below U+E000–U+FFFF; at the first differing unit we move
 * the surrogate block above them (the classic fix-up used by ICU). Lone
 * surrogates never occur in keys: the walker only produces keys decoded from
 * valid UTF-8.
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let ca = a.charCodeAt(i);
    let cb = b.charCodeAt(i);
    if (ca === cb) continue;
    if (ca >= 0xd800 && cb >= 0xd800) {
      ca = fixup(ca);
      cb = fixup(cb);
    }
    return ca - cb;
  }
  return a.length - b.length;
}

function fixup(c: number): number {
  // U+E000–U+FFFF → 0xD800–0xF7FF; surrogates 0xD800–0xDFFF → 0xF800–0xFFFF.
  return c >= 0xe000 ? c - 0x800 : c + 0x2000;
}

/** `compareKeys(a, b) < 0`, for readability at call sites that assert order. */
export function keyBefore(a: string, b: string): boolean {
  return compareKeys(a, b) < 0;
}
