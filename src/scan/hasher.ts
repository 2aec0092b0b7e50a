// Hashes batches of scanned files with bounded concurrency, through the
// ledger's file cache so that an unchanged file is never read twice.
//
// The cache is keyed by (path, size, mtime, inode): all four must match for a
// hit. It is an optimisation only: a failing cache lookup or store never
// fails a file, it just costs a re-hash.

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
          const h = await hashFile(f.path, {
            expectedSize: f.size,
            expectedMtimeMs: f.mtimeMs,
            ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
          });
          this.stats.bytesHashed += h.size;
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
