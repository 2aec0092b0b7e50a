// Key rules shared by every backend: what a Holdfast key may look like before
// any backend-specific rule applies. Each backend's `validateKey` calls
// `validateKeyCommon` first, so the engine sees the same codes everywhere.
//
// A key is the source-relative path, "/"-separated. The rules reject what would
// mean something different on some destination (a path that climbs out of the
// root, a leading "/", an empty segment that S3 keeps but a filesystem folds)
// or what cannot be stored faithfully (NUL, unpaired UTF-16 surrogates, which
// UTF-8 cannot encode and would silently become U+FFFD). The prefix of a
// bucket-style destination URL (s3://, azure://), which its keys are stored
// under, is read here too.

import { HoldfastError } from '../core/errors.js';

export interface KeyRules {
  /** Maximum UTF-8 length of `prefix + key`. */
  readonly maxKeyBytes: number;
  /** The destination's own prefix (S3 `s3://bucket/prefix/`), counted in the length. */
  readonly prefix?: string;
}

// With the `u` flag a well-formed surrogate pair is one code point, so this
// matches only unpaired halves.
const LONE_SURROGATE = /\p{Cs}/u;

/** HOLDFAST_E_KEY_INVALID for `key`, for backend-specific rules too. */
export function keyInvalidError(key: string, detail: string): HoldfastError {
  return new HoldfastError('HOLDFAST_E_KEY_INVALID', { key: printable(key), detail });
}

/** The key as it can be shown in a message: control characters escaped, long keys shortened. */
export function printable(key: string): string {
  // eslint-disable-next-line no-control-regex
  const escaped = key.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return escaped.length > 200 ? `${escaped.slice(0, 120)}…${escaped.slice(-40)}` : escaped;
}

/** Throws HOLDFAST_E_KEY_INVALID or HOLDFAST_E_KEY_TOO_LONG if `key` breaks a rule every destination shares. */
export function validateKeyCommon(key: string, rules: KeyRules): void {
  if (typeof key !== 'string' || key.length === 0) throw keyInvalidError(String(key), 'the key is empty');
  if (key.includes('\0')) throw keyInvalidError(key, 'the key contains a NUL character');
  if (LONE_SURROGATE.test(key)) throw keyInvalidError(key, 'the key contains an unpaired UTF-16 surrogate (not valid Unicode)');
  if (key.startsWith('/')) throw keyInvalidError(key, 'the key is absolute (starts with "/"); keys are relative to the destination');
  for (const segment of key.split('/')) {
    if (segment === '') throw keyInvalidError(key, 'the key has an empty segment ("//" or a trailing "/")');
    if (segment === '.' || segment === '..') throw keyInvalidError(key, `the key has a "${segment}" segment`);
  }
  const bytes = Buffer.byteLength(rules.prefix ?? '', 'utf8') + Buffer.byteLength(key, 'utf8');
  if (bytes > rules.maxKeyBytes) {
    throw new HoldfastError('HOLDFAST_E_KEY_TOO_LONG', { key: printable(key), bytes, max: rules.maxKeyBytes });
  }
}

/** Byte order of keys as UTF-8 (what S3 lists by), not JS `<` (UTF-16 code units). */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * The destination prefix in the path of a bucket-style URL (`s3://bucket/some/prefix`
 * → "some/prefix/"): %-decoded, ending with "/" unless empty, and checked by
 * `validate` (given it without the final "/"). Failures are HOLDFAST_E_BAD_URL
 * for `shown`, the URL as it may be printed.
 */
export function prefixFromUrl(url: URL, shown: string, validate: (prefix: string) => void): string {
  let prefix: string;
  try {
    prefix = decodeURIComponent(url.pathname.replace(/^\/+/, ''));
  } catch {
    throw new HoldfastError('HOLDFAST_E_BAD_URL', { url: shown, detail: 'the prefix has an invalid %-escape' });
  }
  if (prefix !== '' && !prefix.endsWith('/')) prefix += '/';
  if (prefix !== '') {
    try {
      validate(prefix.slice(0, -1));
    } catch (e) {
      throw new HoldfastError('HOLDFAST_E_BAD_URL', { url: shown, detail: `invalid prefix: ${(e as Error).message}` }, { cause: e });
    }
  }
  return prefix;
}

/**
 * How a destination folds names: two keys with the same `fold(key)` are one
 * name there (a case-insensitive or Unicode-normalising file system), so
 * storing both would overwrite one with the other. Declared by a backend as
 * `Backend.keyFolding`; absent where every distinct key is a distinct object.
 */
export interface KeyFolding {
  /** The form that decides identity on the destination (applied to a whole key or a folder prefix). */
  fold(key: string): string;
  /** What folds, for messages, after the destination's name: "ignores case in names". */
  readonly description: string;
}

/** A KeyFolding for a destination that ignores case and/or Unicode normalisation (NFC/NFD); undefined if neither. */
export function keyFoldingFor(opts: { readonly caseInsensitive: boolean; readonly unicodeInsensitive: boolean }): KeyFolding | undefined {
  const { caseInsensitive, unicodeInsensitive } = opts;
  if (!caseInsensitive && !unicodeInsensitive) return undefined;
  const description =
    caseInsensitive && unicodeInsensitive
      ? 'ignores case and Unicode normalisation (NFC/NFD) in names'
      : caseInsensitive
        ? 'ignores case in names'
        : 'ignores Unicode normalisation (NFC/NFD) in names';
  return {
    description,
    fold(key: string): string {
      // Normalise first: case mappings are defined on code points, and "É" may arrive as E + U+0301.
      let k = unicodeInsensitive ? key.normalize('NFC') : key;
      // Upper then lower folds more pairs than either alone (ß/SS, ſ/s, K/k): a wider net only
      // refuses more, never lets two names that the file system equates through.
      if (caseInsensitive) k = k.toUpperCase().toLowerCase();
      if (caseInsensitive && unicodeInsensitive) k = k.normalize('NFC');
      return k;
    },
  };
}

/** What `KeyCollisions.check` found: `key` lands where `other` (a key seen earlier) already does. */
export interface KeyCollision {
  /** The earlier key. */
  readonly other: string;
  /** Set when the clash is in a folder: the two spellings of it ("Photos/" and "photos/"). */
  readonly folders?: { readonly mine: string; readonly theirs: string };
}

/**
 * Finds source keys that one destination cannot tell apart. Fed every key of a
 * run (in any order), it remembers each key and each folder prefix by its
 * folded form; a key whose folded form, or one of whose folders' folded form,
 * was already taken by a different spelling collides with the key that took it.
 * The first spelling keeps the name; later ones are refused, so nothing
 * overwrites what the first wrote and a later delete of one spelling never
 * removes the other's file. Memory: one entry per key and per folder.
 */
export class KeyCollisions {
  /** folded name → the spelling seen first, and the first key that used it. */
  private readonly names = new Map<string, { readonly spelling: string; readonly key: string }>();

  constructor(private readonly folding: KeyFolding) {}

  /** Records `key`; returns the collision if it lands on a name an earlier key spelled differently. */
  check(key: string): KeyCollision | undefined {
    const segments = key.split('/');
    let prefix = '';
    const added: [string, string][] = [];
    for (let i = 0; i < segments.length; i++) {
      const last = i === segments.length - 1;
      prefix += last ? segments[i] : `${segments[i]}/`;
      const folded = this.folding.fold(prefix);
      const seen = this.names.get(folded);
      if (seen === undefined) {
        added.push([folded, prefix]);
        continue;
      }
      if (seen.spelling === prefix) continue;
      // A refused key leaves no trace: it takes no name from later keys.
      return last ? { other: seen.key } : { other: seen.key, folders: { mine: prefix, theirs: seen.spelling } };
    }
    for (const [folded, spelling] of added) this.names.set(folded, { spelling, key });
    return undefined;
  }
}

/** HOLDFAST_E_KEY_COLLISION for `key`, which `collision` says clashes on the destination at `url`. */
export function keyCollisionError(key: string, collision: KeyCollision, url: string, folding: KeyFolding): HoldfastError {
  const f = collision.folders;
  const detail =
    f === undefined
      ? `${url} ${folding.description}; "${printable(key)}" is not sent, so neither overwrites the other (rename one of them)`
      : `${url} ${folding.description}, so the folder "${printable(f.mine)}" is "${printable(f.theirs)}" there; "${printable(key)}" is not sent (rename one of the folders)`;
  return new HoldfastError('HOLDFAST_E_KEY_COLLISION', { key: printable(key), other: printable(collision.other), detail });
}
