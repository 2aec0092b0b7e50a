// Blob names for azure://: a reversible encoding of the characters Azure Blob
// Storage cannot store or list faithfully (docs/destinations.md, "Names Azure
// cannot keep"), in the manner of rclone's encoder:
//
//   "\"                          → "＼" (U+FF3C)  the SDK and the service read "\" as "/" in a URL path
//   "." ending a path segment    → "．" (U+FF0E)  Azure advises against names (and folders) ending in "."
//   U+0001–U+0008, U+000B–U+001F → U+2401–U+2408, U+240B–U+241F (control pictures)
//                                                  listings are XML 1.0, which cannot carry them ("\r" comes back "\n")
//
// Tab and newline are stored as they are (Azure lists them faithfully), so are
// all other characters: a key without any of the above has the same blob name as
// before this encoding existed.
//
// A replacement character that is part of the key itself is quoted with "‛"
// (U+201B), and a run of "‛" just before a replacement character is doubled, so
// the mapping is a bijection: in a stored name, m quote characters before a
// replacement character stand for ⌊m/2⌋ literal "‛" followed by the replacement
// character itself (m odd) or by the character it replaces (m even). A "．" is a
// replacement character only where it ends a segment; elsewhere it, and "‛" not
// followed by a replacement character, are ordinary characters.
//
// Every stored name decodes; a name decodes to a key that encodes back to it
// ("canonical") unless it holds something `encode` never writes: a raw segment-
// final "." or control character (written by another tool, or by Holdfast before
// this encoding). Such names cannot be addressed by any key and are left out of
// listings.

const QUOTE = '\u201b';
const BACKSLASH_R = '\uff3c';
const DOT_R = '\uff0e';
/** U+2400 + code: the control picture for a C0 control character. */
const PICTURE_BASE = 0x2400;

/** C0 controls that are encoded: all but NUL (never in a key), tab and newline. */
function isEncodedControl(code: number): boolean {
  return code >= 0x01 && code <= 0x1f && code !== 0x09 && code !== 0x0a;
}

/** Whether `s[i]` ends a path segment (followed by "/" or the end of the name). */
function endsSegment(s: string, i: number): boolean {
  return i + 1 === s.length || s[i + 1] === '/';
}

/** The replacement for the character at `s[i]`, or undefined if it is stored as it is. */
function replacementAt(s: string, i: number): string | undefined {
  const c = s[i] ?? '';
  if (c === '\\') return BACKSLASH_R;
  if (c === '.' && endsSegment(s, i)) return DOT_R;
  const code = c.charCodeAt(0);
  if (isEncodedControl(code)) return String.fromCharCode(PICTURE_BASE + code);
  return undefined;
}

/** Whether `s[i]`, in a stored name, is a replacement character (what it stands for depends on the quotes before it). */
function isReplacementAt(s: string, i: number): boolean {
  const c = s[i] ?? '';
  if (c === BACKSLASH_R) return true;
  if (c === DOT_R) return endsSegment(s, i);
  const code = c.charCodeAt(0) - PICTURE_BASE;
  return isEncodedControl(code);
}

/** The character a replacement character stands for. */
function original(r: string): string {
  if (r === BACKSLASH_R) return '\\';
  if (r === DOT_R) return '.';
  return String.fromCharCode(r.charCodeAt(0) - PICTURE_BASE);
}

/** The blob name (relative to the destination's prefix) a key is stored under. */
export function encodeBlobName(key: string): string {
  let out = '';
  let quotes = 0; // "‛" seen and not yet written
  for (let i = 0; i < key.length; i++) {
    const c = key[i] ?? '';
    if (c === QUOTE) {
      quotes++;
      continue;
    }
    const r = replacementAt(key, i);
    if (r !== undefined) {
      out += QUOTE.repeat(2 * quotes) + r;
    } else if (isReplacementAt(key, i)) {
      out += QUOTE.repeat(2 * quotes + 1) + c;
    } else {
      out += QUOTE.repeat(quotes) + c;
    }
    quotes = 0;
  }
  return out + QUOTE.repeat(quotes);
}

/** The key a blob name stands for: the inverse of `encodeBlobName`, total on every string. */
export function decodeBlobName(name: string): string {
  let out = '';
  let quotes = 0;
  for (let i = 0; i < name.length; i++) {
    const c = name[i] ?? '';
    if (c === QUOTE) {
      quotes++;
      continue;
    }
    if (isReplacementAt(name, i)) {
      out += QUOTE.repeat(Math.floor(quotes / 2)) + (quotes % 2 === 1 ? c : original(c));
    } else {
      out += QUOTE.repeat(quotes) + c;
    }
    quotes = 0;
  }
  return out + QUOTE.repeat(quotes);
}

/** The key a listed blob name stands for, or undefined if no key is stored under that name (see above). */
export function keyOfBlobName(name: string): string | undefined {
  const key = decodeBlobName(name);
  return encodeBlobName(key) === name ? key : undefined;
}

/**
 * A blob-name prefix that every name of a key starting with `keyPrefix` starts
 * with: the encoding of `keyPrefix` without its trailing "." / "．" / "‛" (whose
 * stored form depends on the character after them). Listings filter the
 * decoded keys by `keyPrefix` itself.
 */
export function encodeBlobPrefix(keyPrefix: string): string {
  return encodeBlobName(keyPrefix.replace(/[.\uff0e\u201b]+$/u, ''));
}

/** Whether a key's blob name differs from the key (so it sorts elsewhere in a listing). */
export function isEncoded(key: string): boolean {
  return encodeBlobName(key) !== key;
}
