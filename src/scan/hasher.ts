// Hashes batches of scanned files with bounded concurrency, through the
// ledger's file cache so that an unchanged file is never read twice.
//
// The cache is keyed by (path, size, mtime, inode): all four must match for a
// hit. It is an optimisation only: a failing cache lookup or store never
// fails a file, it just costs a re-hash.
//
// A file rewritten in place with its mtime put back (`touch -r`, some sync
// tools) keeps all four, so its entry can be stale. The upload then reads
// other content than the planned hash and fails with SOURCE_CHANGED; that
// failure forgets the entry (`forgetCachedHashes`), so the next run hashes
// the file again instead of failing the same way for ever.

import type { HoldfastError } from '../core/errors.js';
import { classifyError, throwIfAborted } from '../core/errors.js';
import type { SourceFile } from '../core/types.js';
import type { FileCacheEntry, Ledger } from '../ledger/ledger.js';
import { sameMtimeMs } from './change-detection.js';
import { hashFile } from './hash.js';

/** The part of the ledger the hasher uses. */
export type FileCacheStore = Pick<Ledger, 'lookupFileCache' | 'storeFileCache'>;

export interface FileHasherOptions {
  /** Files hashed at the same time (default 4). */
  readonly concurrency?: number;
  /** Read the cache (default true). Mode "all" passes false: every file is re-read; fresh hashes are still stored. */
  readonly useCache?: boolean;
  /** Write fresh hashes back to the cache (default true). --dry-run passes false: it changes nothing, not even the cache. */
  readonly store?: boolean;
  /** Told when the cache could not be read or written (the batch goes on). */
  readonly onCacheError?: (error: HoldfastError) => void;
  /** Hashes shared with other hashers of the same run (fan-out: each destination plans on its own, a file is read once). */
  readonly memo?: HashMemo;
  /** The scan followed symlinks (--follow-symlinks): a file's name may be one. Default false: a symlink is refused. */
  readonly followSymlinks?: boolean;
}

/** An entry no file can match (no size is negative): what "forgotten" means in the cache table. */
const FORGOTTEN = { size: -1, mtimeMs: -1, ino: -1, sha256: '' } as const;

/**
 * Forgets the cached hashes of `paths` (their content was found to differ from
 * the cached hash): the next lookup misses and the file is read again. Never
 * throws; a failed write only leaves the entry until the next try.
 */
export async function forgetCachedHashes(cache: Pick<Ledger, 'storeFileCache'>, paths: readonly string[]): Promise<void> {
  if (paths.length === 0) return;
  try {
    await cache.storeFileCache(paths.map((path) => ({ path, ...FORGOTTEN })));
  } catch {
    // Only an optimisation lost: the file fails once more and this is tried again.
  }
}

/**
 * Hashes in flight or just done, shared by the hashers of one run, keyed by
 * (path, size, mtime, inode). Bounded: the planners of a fan-out run walk the
 * same sorted scan at about the same pace, so the recent entries are the ones
 * that are asked for again; older ones fall back to the ledger's file cache.
 */
export class HashMemo {
  readonly #entries = new Map<string, Promise<{ sha256: string; size: number }>>();
  readonly #max: number;
  hits = 0;

  constructor(max = 4096) {
    this.#max = max;
  }

  /** The hash of `f`, from a sharer's work if there is one, else from `compute`. */
  get(f: SourceFile, compute: () => Promise<{ sha256: string; size: number }>): { promise: Promise<{ sha256: string; size: number }>; shared: boolean } {
    const k = `${f.path}\0${f.size}\0${f.mtimeMs}\0${f.ino}`;
    const found = this.#entries.get(k);
    if (found !== undefined) {
      this.hits++;
      return { promise: found, shared: true };
    }
    const promise = compute();
    this.#entries.set(k, promise);
    // A failure is not shared: the next asker tries again (and reports its own error).
    promise.catch(() => this.#entries.delete(k));
    if (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    return { promise, shared: false };
  }
}

export interface FileHasherStats {
  hits: number;
  misses: number;
  errors: number;
  bytesHashed: number;
}

export class FileHasher {
  readonly stats: FileHasherStats = { hits: 0, misses: 0, errors: 0, bytesHashed: 0 };
  private readonly concurrency: number;
  private readonly useCache: boolean;
  private readonly store: boolean;

  constructor(
    private readonly cache: FileCacheStore | null,
    private readonly opts: FileHasherOptions = {},
  ) {
    this.concurrency = Math.max(1, Math.floor(opts.concurrency ?? 4));
    this.useCache = opts.useCache ?? true;
    this.store = opts.store ?? true;
  }

  /**
   * Hashes `files` and returns key → sha256, or key → the file's error
   * (vanished, changed since the scan, unreadable). A file whose size or
   * mtime no longer match its SourceFile is an error (SOURCE_CHANGED) rather
   * than a hash of other content, so the (size, mtime, hash) the planner
   * records always belong together. Cancellation rejects the whole batch.
   */
  async hashBatch(files: readonly SourceFile[], opts: { signal?: AbortSignal } = {}): Promise<Map<string, string | HoldfastError>> {
    const results = new Map<string, string | HoldfastError>();
    const toHash: SourceFile[] = [];

    let cached = new Map<string, FileCacheEntry>();
    if (this.cache !== null && this.useCache && files.length > 0) {
      try {
        cached = await this.cache.lookupFileCache(files.map((f) => f.path));
      } catch (e) {
        this.opts.onCacheError?.(classifyError(e, 'HOLDFAST_E_LEDGER_WRITE'));
      }
    }
    for (const f of files) {
      const c = this.useCache ? cached.get(f.path) : undefined;
      if (c !== undefined && c.size === f.size && c.ino === f.ino && sameMtimeMs(c.mtimeMs, f.mtimeMs)) {
        this.stats.hits++;
        results.set(f.key, c.sha256);
      } else {
        toHash.push(f);
      }
    }

    const fresh: FileCacheEntry[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      for (;;) {
        throwIfAborted(opts.signal);
        const f = toHash[next++];
        if (f === undefined) return;
        this.stats.misses++;
        try {
          const compute = (): Promise<{ sha256: string; size: number }> =>
            // The scan's identity too: a name pointed at another file since the scan (a symlink, a rename) is refused, not hashed.
            hashFile(f.path, {
              expectedSize: f.size,
              expectedMtimeMs: f.mtimeMs,
              expectedIno: f.ino,
              ...(f.dev !== undefined ? { expectedDev: f.dev } : {}),
              followSymlinks: this.opts.followSymlinks === true,
              ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
            });
          const { promise, shared } = this.opts.memo ? this.opts.memo.get(f, compute) : { promise: compute(), shared: false };
          const h = await promise;
          if (!shared) this.stats.bytesHashed += h.size;
          results.set(f.key, h.sha256);
          fresh.push({ path: f.path, size: f.size, mtimeMs: f.mtimeMs, ino: f.ino, sha256: h.sha256 });
        } catch (e) {
          const err = classifyError(e, 'HOLDFAST_E_SOURCE_UNREADABLE', { path: f.path });
          if (err.code === 'HOLDFAST_E_CANCELLED') throw err;
          this.stats.errors++;
          results.set(f.key, err);
        }
      }
    };
    // allSettled: on cancellation, wait for every worker to stop before rejecting.
    const settled = await Promise.allSettled(Array.from({ length: Math.min(this.concurrency, toHash.length) }, worker));
    for (const r of settled) if (r.status === 'rejected') throw r.reason;

    if (this.cache !== null && this.store && fresh.length > 0) {
      try {
        await this.cache.storeFileCache(fresh);
      } catch (e) {
        this.opts.onCacheError?.(classifyError(e, 'HOLDFAST_E_LEDGER_WRITE'));
      }
    }
    return results;
  }
}
