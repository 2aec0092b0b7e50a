// Exclude rules: which source paths a scan leaves out (gitignore-like globs).
//
// Rules (one pattern per `--exclude`, or per line of `.holdfastignore`):
// - Globs are picomatch globs (`*`, `?`, `**`, `[abc]`, `{a,b}`), matched
//   case-sensitively against the key ("/"-separated, source-relative), and
//   `*` matches dotfiles too (`dot: true`).
// - A pattern without "/" matches a basename at any depth: `*.tmp`,
//   `node_modules`, `.DS_Store`.
// - A pattern with a "/" (other than a trailing one) is anchored to the source
//   root: `build/**`, `docs/*.pdf`; a leading "/" only anchors: `/logs`.
// - A trailing "/" matches directories only: `cache/` excludes directories
//   named cache, not a file named cache.
// - `dir/**` matches everything inside dir but not dir itself, so
//   `build/**` followed by `!build/keep.txt` keeps that one file (as git does).
// - `!pattern` re-includes what an earlier pattern excluded; the last
//   matching pattern wins. A file inside an excluded directory cannot be
//   re-included: excluded directories are not descended into.
// - In `.holdfastignore`: blank lines and lines starting with `#` are
//   ignored; `\#` and `\!` start a pattern with a literal `#` / `!`; trailing
//   spaces are dropped unless escaped with "\".
// - Patterns from `.holdfastignore` come first and `--exclude` patterns after
//   them, so the command line has the last word.
//
// Exclusion is about what a scan sees; whether the ledger's rows for newly
// excluded keys are deleted remotely is the planner's decision (it can ask
// `excludesPath`).

import { closeSync, constants, fstatSync, opendirSync, openSync, readSync } from 'node:fs';
import { dirname } from 'node:path';
import picomatch from 'picomatch/posix.js';
import { HoldfastError } from '../core/errors.js';

/** Decides whether a walked entry is left out of the scan. */
export interface Matcher {
  /**
   * Whether this entry itself is excluded. Like gitignore, it judges one
   * entry: ancestors are not consulted (a walker never reaches children of an
   * excluded directory). Use `excludesPath` for an arbitrary key.
   */
  excludes(key: string, isDir: boolean): boolean;
}

/** The per-source ignore file, read from the source root when present. */
export const IGNORE_FILE = '.holdfastignore';

/** Excludes nothing. */
export const MATCH_NOTHING: Matcher = { excludes: () => false };

interface Rule {
  readonly pattern: string;
  readonly negate: boolean;
  readonly dirOnly: boolean;
  /** No "/" in the pattern: match the last path segment only. */
  readonly basename: boolean;
  readonly test: (s: string) => boolean;
}

const GLOB_OPTIONS = { dot: true, nonegate: true } as const;

/** Splits an ignore file into patterns, dropping comments and blank lines. */
export function parseIgnoreFile(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const line = trimTrailingSpace(raw.endsWith('\r') ? raw.slice(0, -1) : raw);
    if (line === '' || line.startsWith('#')) continue;
    out.push(line);
  }
  return out;
}

function trimTrailingSpace(s: string): string {
  let end = s.length;
  while (end > 0 && (s[end - 1] === ' ' || s[end - 1] === '\t')) end--;
  // "foo\ " keeps its escaped space.
  if (end < s.length && end > 0 && s[end - 1] === '\\') end++;
  return s.slice(0, end);
}

function compileRule(source: string): Rule | undefined {
  let p = source;
  let negate = false;
  // A leading "\!" or "\#" is left as is: picomatch reads it as the literal character.
  if (p.startsWith('!')) {
    negate = true;
    p = p.slice(1);
  }
  let dirOnly = false;
  while (p.endsWith('/')) {
    dirOnly = true;
    p = p.slice(0, -1);
  }
  const anchored = p.includes('/');
  while (p.startsWith('/')) p = p.slice(1);
  if (p === '') return undefined;

  const full = picomatch(p, GLOB_OPTIONS);
  let test: (s: string) => boolean = full;
  if (p.endsWith('/**') && p.length > 3) {
    // picomatch lets "dir/**" match "dir" itself; gitignore does not, and
    // re-including a file under dir depends on dir not being excluded.
    const base = picomatch(p.slice(0, -3), GLOB_OPTIONS);
    test = (s) => full(s) && !base(s);
  }
  return { pattern: source, negate, dirOnly, basename: !anchored, test };
}

function basenameOf(key: string): string {
  const i = key.lastIndexOf('/');
  return i < 0 ? key : key.slice(i + 1);
}

class CompiledExcludes implements Matcher {
  constructor(readonly rules: readonly Rule[]) {}

  excludes(key: string, isDir: boolean): boolean {
    let base: string | undefined;
    // Last match wins: scan from the end and stop at the first hit.
    for (let i = this.rules.length - 1; i >= 0; i--) {
      const r = this.rules[i]!;
      if (r.dirOnly && !isDir) continue;
      const subject = r.basename ? (base ??= basenameOf(key)) : key;
      if (r.test(subject)) return !r.negate;
    }
    return false;
  }
}

/** The largest ignore file read (real ones are a few lines). */
const MAX_IGNORE_FILE_BYTES = 1024 * 1024;

/**
 * Reads the ignore file, which lies in a source root that others may write
 * to: opened without blocking and read only if it is a regular file of at
 * most MAX_IGNORE_FILE_BYTES. A FIFO there would otherwise block the process
 * itself (a synchronous read on the main thread: not even Ctrl-C gets in).
 */
function readIgnoreFile(path: string): string {
  const fd = openSync(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > MAX_IGNORE_FILE_BYTES) throw new Error(`${st.size} bytes; at most ${MAX_IGNORE_FILE_BYTES} are read`);
    const buf = Buffer.alloc(st.size);
    let total = 0;
    while (total < buf.length) {
      const n = readSync(fd, buf, total, buf.length - total, null);
      if (n === 0) break;
      total += n;
    }
    return buf.subarray(0, total).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * Compiles exclude patterns (and the ignore file, when `ignoreFile` names one
 * that exists) into a Matcher. An unreadable or invalid ignore file is a
 * configuration error, never silently ignored: a forgotten exclude would
 * upload what the user meant to keep private.
 *
 * The ignore file's directory is the source root, and it is read first: a
 * root that cannot be listed (no read or search permission, an I/O error) is
 * the source's own error, HOLDFAST_E_SOURCE_UNREADABLE for the root, which
 * stops the command before the run starts (exit 3) — not a "cannot read
 * .holdfastignore" configuration error about a file that may not even exist.
 */
export function compileExcludes(patterns: readonly string[], opts: { ignoreFile?: string } = {}): Matcher {
  const all: string[] = [];
  if (opts.ignoreFile !== undefined) {
    const root = dirname(opts.ignoreFile);
    try {
      const dir = opendirSync(root);
      try {
        dir.readSync();
      } finally {
        dir.closeSync();
      }
    } catch (e) {
      throw new HoldfastError('HOLDFAST_E_SOURCE_UNREADABLE', { path: root, detail: (e as Error).message }, { cause: e });
    }
    let text: string | undefined;
    try {
      text = readIgnoreFile(opts.ignoreFile);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new HoldfastError('HOLDFAST_E_CONFIG', { detail: `cannot read ${opts.ignoreFile}: ${(e as Error).message}` }, { cause: e });
      }
    }
    if (text !== undefined) all.push(...parseIgnoreFile(text));
  }
  for (const p of patterns) {
    const t = trimTrailingSpace(p);
    if (t !== '') all.push(t);
  }
  const rules: Rule[] = [];
  for (const p of all) {
    let rule: Rule | undefined;
    try {
      rule = compileRule(p);
    } catch (e) {
      throw new HoldfastError('HOLDFAST_E_CONFIG', { detail: `invalid exclude pattern "${p}": ${(e as Error).message}` }, { cause: e });
    }
    if (rule !== undefined) rules.push(rule);
  }
  return rules.length === 0 ? MATCH_NOTHING : new CompiledExcludes(rules);
}

/**
 * `matcher`, plus the directory whose key is `dirKey` (and everything under
 * it) left out — for Holdfast's own ledger directory when it lies inside the
 * source: it changes while it is read, and it is not the user's data.
 */
export function excludingDirectory(matcher: Matcher, dirKey: string): Matcher {
  return { excludes: (key, isDir) => (isDir && key === dirKey) || matcher.excludes(key, isDir) };
}

/**
 * Whether `key` is excluded once its ancestors are taken into account: a key
 * under an excluded directory is excluded whatever later patterns say. For
 * callers judging keys that did not come from a walk (e.g. ledger rows).
 */
export function excludesPath(matcher: Matcher, key: string, isDir = false): boolean {
  let i = key.indexOf('/');
  while (i >= 0) {
    if (matcher.excludes(key.slice(0, i), true)) return true;
    i = key.indexOf('/', i + 1);
  }
  return matcher.excludes(key, isDir);
}
