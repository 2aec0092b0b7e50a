// Walks a source directory and yields its regular files in key order.
//
// The order is compareKeys (UTF-8 byte) order of the key, the same order in
// which the ledger streams its rows, so change detection is a merge-join with
// bounded memory: depth-first, one sorted directory listing held per level.
// Within a directory, a subdirectory `a` sorts as "a/" because every key
// below it starts with "a/"; that makes the per-directory sort agree with a
// full sort of all keys.
//
// Names are taken exactly as on disk (never Unicode-normalised: NFC and NFD
// spellings are different files). A name that is not valid UTF-8 cannot
// become a destination key: it is reported as an error (HOLDFAST_E_KEY_INVALID),
// so the run is not "completed" while a file was left behind.
//
// Errors do not stop the walk: an unreadable directory is reported with its
// key prefix ending in "/" so that the planner can refuse deletes under it
// (its files are missing from the scan because it failed, not because they
// are gone). A followed symlink whose target is missing (an unmounted disk) is
// an error too, for the same reason.

import type { Dirent, Stats } from 'node:fs';
import { lstat, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { HoldfastError, classifyError, throwIfAborted } from '../core/errors.js';
import type { SourceFile } from '../core/types.js';
import { toMtimeMs } from './hash.js';
import type { Matcher } from './ignore.js';
import { compareKeys } from './key-order.js';

/** Counters a walk fills in as it goes (for progress and the run report). */
export interface ScanStats {
  /** Regular files yielded. */
  files: number;
  /** Sum of their sizes. */
  bytes: number;
  /** Directories listed (the root included). */
  dirs: number;
  /** Entries left out by exclude rules (not reported through onSkip). */
  excluded: number;
  /** Entries reported through onSkip (symlinks, special files, bad names...). */
  skipped: number;
  /** Entries reported through onError. */
  errors: number;
}

export function createScanStats(): ScanStats {
  return { files: 0, bytes: 0, dirs: 0, excluded: 0, skipped: 0, errors: 0 };
}

export interface WalkOptions {
  readonly exclude?: Matcher;
  /** Follow symbolic links (default false: they are reported through onSkip). */
  readonly followSymlinks?: boolean;
  /** Checked between directories; an abort throws HOLDFAST_E_CANCELLED. */
  readonly signal?: AbortSignal;
  readonly onSkip?: (key: string, reason: string) => void;
  /** A directory's key ends in "/" (its prefix); a file's is its key. */
  readonly onError?: (key: string, error: HoldfastError) => void;
  readonly stats?: ScanStats;
}

export const SKIP_REASONS = {
  symlink: 'symlink (not followed)',
  cycle: 'symlink cycle (directory already being walked)',
  special: 'not a regular file or directory',
  vanished: 'disappeared during the scan',
} as const;

type Kind = 'file' | 'dir' | 'symlink' | 'other' | 'unknown';

interface Entry {
  readonly key: string;
  /** The key as it sorts among its siblings: directories end in "/". */
  readonly sortKey: string;
  readonly path: string;
  readonly kind: Kind;
  /** Known when a symlink was resolved (followSymlinks) or the type was unknown. */
  readonly stats?: Stats;
}

interface Frame {
  readonly entries: readonly Entry[];
  index: number;
  /** dev:ino of this directory, when following symlinks (cycle detection). */
  readonly id?: string;
}

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Decodes a name, or undefined when its bytes are not valid UTF-8. */
function decodeName(raw: Buffer): string | undefined {
  try {
    return decoder.decode(raw);
  } catch {
    return undefined;
  }
}

function direntKind(d: Dirent<Buffer> | Dirent): Kind {
  if (d.isFile()) return 'file';
  if (d.isDirectory()) return 'dir';
  if (d.isSymbolicLink()) return 'symlink';
  if (d.isFIFO() || d.isSocket() || d.isCharacterDevice() || d.isBlockDevice()) return 'other';
  // DT_UNKNOWN: some filesystems do not report types in directory listings.
  return 'unknown';
}

function statsKind(s: Stats): Kind {
  if (s.isFile()) return 'file';
  if (s.isDirectory()) return 'dir';
  if (s.isSymbolicLink()) return 'symlink';
  return 'other';
}

function errnoCode(e: unknown): string | undefined {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : undefined;
}

function dirId(s: Stats): string {
  return `${s.dev}:${s.ino}`;
}

/**
 * Yields the regular files under `root` in compareKeys order of their keys.
 * Throws HOLDFAST_E_SOURCE_MISSING when root does not exist or is not a
 * directory, HOLDFAST_E_SOURCE_UNREADABLE when root itself cannot be listed
 * (an empty scan would look like "everything was deleted"),
 * HOLDFAST_E_CANCELLED on abort. Everything below root is reported through
 * onSkip / onError and the walk goes on.
 */
export async function* walkSource(root: string, opts: WalkOptions = {}): AsyncGenerator<SourceFile> {
  const follow = opts.followSymlinks ?? false;
  const stats = opts.stats ?? createScanStats();
  const skip = (key: string, reason: string): void => {
    stats.skipped++;
    opts.onSkip?.(key, reason);
  };
  const fail = (key: string, error: HoldfastError): void => {
    stats.errors++;
    opts.onError?.(key, error);
  };

  let rootStats: Stats;
  try {
    rootStats = await stat(root);
  } catch (e) {
    throw new HoldfastError('HOLDFAST_E_SOURCE_MISSING', { path: root, detail: (e as Error).message }, { cause: e });
  }
  if (!rootStats.isDirectory()) throw new HoldfastError('HOLDFAST_E_SOURCE_MISSING', { path: root, detail: 'not a directory' });

  throwIfAborted(opts.signal);
  let rootEntries: Entry[];
  try {
    rootEntries = await listDirectory(root, '', follow, opts.exclude, stats, skip, fail);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') {
      throw new HoldfastError('HOLDFAST_E_SOURCE_MISSING', { path: root, detail: (e as Error).message }, { cause: e });
    }
    throw classifyError(e, 'HOLDFAST_E_SOURCE_UNREADABLE', { path: root });
  }
  const stack: Frame[] = [{ entries: rootEntries, index: 0, ...(follow ? { id: dirId(rootStats) } : {}) }];

  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!;
    const entry = frame.entries[frame.index++];
    if (entry === undefined) {
      stack.pop();
      continue;
    }

    if (entry.kind === 'dir') {
      let id: string | undefined;
      if (follow) {
        // Cycle detection needs the directory's identity; a symlinked
        // directory was already stat()ed while listing its parent.
        let s = entry.stats;
        if (s === undefined) {
          try {
            s = await stat(entry.path);
          } catch (e) {
            reportEntryError(entry.key + '/', entry.path, e, skip, fail);
            continue;
          }
        }
        id = dirId(s);
        if (stack.some((f) => f.id === id)) {
          skip(entry.key + '/', SKIP_REASONS.cycle);
          continue;
        }
      }
      throwIfAborted(opts.signal);
      let entries: Entry[];
      try {
        entries = await listDirectory(entry.path, entry.key + '/', follow, opts.exclude, stats, skip, fail);
      } catch (e) {
        reportEntryError(entry.key + '/', entry.path, e, skip, fail);
        continue;
      }
      stack.push({ entries, index: 0, ...(id !== undefined ? { id } : {}) });
      continue;
    }

    // A regular file. Take its metadata from lstat (or from the followed
    // symlink's stat, already in hand).
    let s = entry.stats;
    if (s === undefined) {
      try {
        s = await lstat(entry.path);
      } catch (e) {
        reportEntryError(entry.key, entry.path, e, skip, fail);
        continue;
      }
      if (!s.isFile()) {
        // Replaced by something else between the listing and the lstat.
        skip(entry.key, SKIP_REASONS.special);
        continue;
      }
    }
    stats.files++;
    stats.bytes += s.size;
    yield { key: entry.key, path: entry.path, size: s.size, mtimeMs: toMtimeMs(s), ctimeMs: s.ctimeMs, ino: s.ino, dev: s.dev };
  }
}

function reportEntryError(
  key: string,
  path: string,
  e: unknown,
  skip: (key: string, reason: string) => void,
  fail: (key: string, error: HoldfastError) => void,
): void {
  // Gone between the parent's listing and now: it really is gone, so the
  // key is simply absent from this scan (not an error that blocks deletes).
  if (errnoCode(e) === 'ENOENT') skip(key, SKIP_REASONS.vanished);
  else fail(key, classifyError(e, 'HOLDFAST_E_SOURCE_UNREADABLE', { path }));
}

/**
 * Lists one directory: decodes names, resolves what each entry is (following
 * symlinks when asked), applies excludes, and sorts by the key each entry
 * produces. Throws when the directory itself cannot be read.
 */
async function listDirectory(
  dir: string,
  prefix: string,
  follow: boolean,
  exclude: Matcher | undefined,
  stats: ScanStats,
  skip: (key: string, reason: string) => void,
  fail: (key: string, error: HoldfastError) => void,
): Promise<Entry[]> {
  const dirents = await readdir(dir, { withFileTypes: true, encoding: 'buffer' });
  stats.dirs++;
  const out: Entry[] = [];
  for (const d of dirents) {
    const raw = d.name;
    const name = decodeName(raw);
    if (name === undefined) {
      // Shown (and matched against excludes) with U+FFFD for the bytes that are not UTF-8.
      const shown = prefix + raw.toString('utf8');
      const isDir = d.isDirectory();
      if (exclude?.excludes(shown, isDir)) stats.excluded++;
      else fail(isDir ? shown + '/' : shown, new HoldfastError('HOLDFAST_E_KEY_INVALID', { key: shown, detail: 'the name is not valid UTF-8, so it cannot be a destination key; rename it, or exclude it' }));
      continue;
    }
    const key = prefix + name;
    const path = join(dir, name);
    let kind = direntKind(d);
    let entryStats: Stats | undefined;

    if (kind === 'unknown') {
      try {
        entryStats = await lstat(path);
        kind = statsKind(entryStats);
        // Keep lstat data only for files; directories are stat()ed on entry if needed.
        if (kind !== 'file') entryStats = undefined;
      } catch (e) {
        if (errnoCode(e) === 'ENOENT') {
          skip(key, SKIP_REASONS.vanished);
          continue;
        }
        // Leave it to the file path, which reports the error with its key.
        kind = 'file';
      }
    }
    if (kind === 'symlink') {
      if (!follow) {
        if (!exclude?.excludes(key, false)) skip(key, SKIP_REASONS.symlink);
        else stats.excluded++;
        continue;
      }
      try {
        entryStats = await stat(path);
      } catch (e) {
        if (errnoCode(e) === 'ELOOP') skip(key, SKIP_REASONS.cycle);
        // A dangling target (an unmounted disk, a deleted directory) hides whatever was
        // under it: an error, so the planner keeps its copies instead of deleting them.
        else if (!exclude?.excludes(key, false)) fail(key, new HoldfastError('HOLDFAST_E_SOURCE_UNREADABLE', { path, detail: `symlink target cannot be read: ${(e as Error).message}` }, { cause: e }));
        else stats.excluded++;
        continue;
      }
      kind = statsKind(entryStats);
    }
    if (kind === 'other') {
      if (!exclude?.excludes(key, false)) skip(key, SKIP_REASONS.special);
      else stats.excluded++;
      continue;
    }
    const isDir = kind === 'dir';
    if (exclude?.excludes(key, isDir)) {
      stats.excluded++;
      continue;
    }
    out.push({ key, sortKey: isDir ? key + '/' : key, path, kind, ...(entryStats !== undefined ? { stats: entryStats } : {}) });
  }
  await prefetchFileStats(out);
  out.sort((a, b) => compareKeys(a.sortKey, b.sortKey));
  return out;
}

/** lstat calls in flight per directory. */
const STAT_CONCURRENCY = 32;

/**
 * lstats a directory's files concurrently: awaited one by one, a scan spends
 * most of its time idle on threadpool round trips (measured: 310 ms vs 30 ms
 * for 5,000 files). Only regular files keep the result; anything else (an
 * error, a file replaced meanwhile) is left to the walker's own lstat, which
 * reports it with its key.
 */
async function prefetchFileStats(entries: Entry[]): Promise<void> {
  const files = entries.filter((e) => e.kind === 'file' && e.stats === undefined);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const entry = files[next++] as { stats?: Stats; path: string };
      try {
        const st = await lstat(entry.path);
        if (st.isFile()) entry.stats = st;
      } catch {
        // Reported by the walker when it reaches this entry.
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(STAT_CONCURRENCY, files.length) }, worker));
}
