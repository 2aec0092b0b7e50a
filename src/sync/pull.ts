// `pull`: restore a destination (or the part under a prefix) into a local
// directory, verifying every object against its `holdfast-sha256`.
//
// It works from the destination alone (a fresh machine has no ledger); when a
// ledger for the destination exists it is read, never written, to save a HEAD
// per object (the completed row knows the hash and the source mtime) and to
// skip re-hashing local files (the file cache, which is the one thing pull
// adds to: hashes of files it verified or wrote). Like push it plans first
// (list, decide, so progress knows files and bytes), then transfers.
//
// A restored file appears only complete and verified: it is written to a temp
// name in its own directory, hashed as it is written, fsynced, given its
// source mtime, and renamed over the final name only if the hash matches. A
// crash leaves at most a temp file, which the next run removes; files already
// identical locally are skipped, so running pull again resumes.
//
// When the ledger recorded the key as uploaded, the record is what the bytes
// must match: an object replaced by another tool (no holdfast-sha256 of its
// own, or a destination that computes the hash from whatever it holds) fails
// with HOLDFAST_E_CHECKSUM instead of being restored "unverified".
//
// The target directory may be writable by others. Nothing is written through
// a symbolic link planted in it: the temp file is created with O_EXCL |
// O_NOFOLLOW, and where the system can tell (Linux /proc/self/fd) the created
// file must be exactly where it was meant to be, inside the target, so a
// folder swapped for a symlink mid-run cannot lead a write outside; the final
// rename replaces a symlink at the final name instead of following it.

import { createHash, randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { constants, type Stats } from 'node:fs';
import { lstat, lutimes, mkdir, open, readdir, realpath, rename, rmdir, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import type { Backend, BackendOptions, ObjectInfo } from '../backends/backend.js';
import { compareKeys, printable, validateKeyCommon } from '../backends/keys.js';
import { openBackend } from '../backends/registry.js';
import { HoldfastError, cancelledError, classifyError, isHoldfastError, throwIfAborted } from '../core/errors.js';
import { deriveRunStatus, type ReportError } from '../core/report.js';
import type { ObjectRow, RunStatus, SourceFile } from '../core/types.js';
import { Cancellation } from '../engine/cancellation.js';
import { RunEvents } from '../engine/events.js';
import { Limiter } from '../engine/limiter.js';
import { backoffDelay, checkRetryPolicy, DEFAULT_RETRY, type RetryPolicy, sleep, withRetry } from '../engine/retry.js';
import type { FileCacheEntry, Ledger } from '../ledger/ledger.js';
import { ledgerMayExist, openLedgerAt, resolveLedger } from '../ledger/open.js';
import { descriptorPath, toMtimeMs } from '../scan/hash.js';
import { FileHasher } from '../scan/hasher.js';
import { isProcessAlive } from './owner.js';

export interface PullOptions {
  /** The destination URL to restore from: file:///path, s3://bucket/prefix. */
  readonly destination: string;
  /** The local directory to restore into (created if missing). Object `K` becomes `<target>/K`. */
  readonly target: string;
  /** Only objects whose key starts with this (relative to the destination); they keep their full key as path. */
  readonly prefix?: string;
  /** An open ledger to read (the caller keeps ownership); else the one in `stateDir`, if it exists. */
  readonly ledger?: Ledger;
  /** Directory of the SQLite ledger (default: $HOLDFAST_STATE, $XDG_STATE_HOME/holdfast, ~/.local/state/holdfast). */
  readonly stateDir?: string;
  /** postgres://… or sqlite:<state directory>; wins over `stateDir`; default $HOLDFAST_LEDGER. */
  readonly ledgerUrl?: string;
  /** Read a ledger when one exists (default true); false trusts the destination alone. */
  readonly useLedger?: boolean;
  /** Decide and report what would be downloaded; write nothing (not the target directory, not the file cache). */
  readonly dryRun?: boolean;
  /** Skip objects without `holdfast-sha256` instead of restoring them unverified. */
  readonly verifiedOnly?: boolean;
  /** Parallel downloads (and HEAD requests while planning). Default 16. */
  readonly transfers?: number;
  readonly retry?: RetryPolicy;
  /** fsync each restored file and its directory before reporting it (default true). */
  readonly fsync?: boolean;
  readonly backendOptions?: BackendOptions;
  /** Aborts in-flight downloads at once (their temp files are removed). */
  readonly signal?: AbortSignal;
  /** Stops starting new downloads; in-flight ones get `drainMs` to finish. */
  readonly stopSignal?: AbortSignal;
  readonly drainMs?: number;
  readonly events?: RunEvents;
}

export interface DownloadCounts {
  /** Downloaded, verified (or, for foreign objects, restored unverified) and in place. */
  completed: number;
  failed: number;
  /** Not downloaded: already identical locally (or unverifiable, with verifiedOnly). */
  skipped: number;
  /** Of `completed`: objects without `holdfast-sha256`, restored without verification. */
  unverified: number;
}

/** One file a dry run would download. */
export interface PlannedDownload {
  readonly key: string;
  readonly action: 'download';
  /** missing: no local file; different: the local file differs (or cannot be compared). */
  readonly reason: 'missing' | 'different';
  readonly size: number;
  /** False for objects without `holdfast-sha256`. */
  readonly verified: boolean;
}

export interface PullReport {
  status: Exclude<RunStatus, 'running'>;
  downloads: DownloadCounts;
  /** Bytes downloaded in this run. */
  bytes: number;
  durationMs: number;
  errors: ReportError[];
  notes?: { key: string; note: string }[];
  /** A dry run's plan. */
  plan?: PlannedDownload[];
}

const DEFAULT_TRANSFERS = 16;
/** Objects decided together: one file-cache lookup and one ledger page per batch. */
const PLAN_BATCH = 256;
/** Temp names of restores in flight: the writer's pid lets the next run tell a crashed one's leftovers from a live one's. */
const TEMP_NAME = /^\.holdfast-pull\.(\d+)\.[0-9a-f]{16}\.tmp$/;
/** Linux PATH_MAX less the NUL; ENAMETOOLONG catches the rest per filesystem. */
const PATH_MAX_BYTES = 4095;

/** What an object should hash to and when its source was modified. */
interface Expected {
  readonly size: number;
  /** Undefined for foreign objects (no holdfast-sha256). */
  readonly sha256: string | undefined;
  /** Source mtime to restore: holdfast's record, else the object's own time. */
  readonly mtimeMs: number | undefined;
  /** Where the hash came from: the ledger's completed row, or the object itself (HEAD). */
  readonly from: 'ledger' | 'destination';
  /** The listed object cannot be what the ledger recorded (its size differs): why, for the failure. */
  readonly conflict?: string;
}

interface Work {
  readonly key: string;
  readonly path: string;
  readonly expected: Expected;
  readonly reason: PlannedDownload['reason'];
}

class PullRun {
  readonly counts: DownloadCounts = { completed: 0, failed: 0, skipped: 0, unverified: 0 };
  bytes = 0;
  readonly errors: ReportError[] = [];
  readonly notes: { key: string; note: string }[] = [];
  runErrors = 0;
  readonly work: Work[] = [];
  /** Filled in a dry run only. */
  readonly planned: PlannedDownload[] = [];
  readonly #dirs = new Map<string, Promise<void>>();
  readonly #touchedDirs = new Set<string>();
  readonly #cacheEntries: FileCacheEntry[] = [];

  constructor(
    readonly backend: Backend,
    readonly target: string,
    readonly ledger: Ledger | undefined,
    readonly destinationId: number | undefined,
    readonly settings: { dryRun: boolean; verifiedOnly: boolean; transfers: number; retry: RetryPolicy; fsync: boolean },
    readonly cancellation: Cancellation,
    readonly events: RunEvents,
  ) {}

  fail(key: string, e: unknown): void {
    const err = classifyError(e, 'HOLDFAST_E_TARGET_WRITE', { path: key, key: printable(key) });
    this.counts.failed++;
    this.errors.push({ key, code: err.code, message: err.message });
    this.events.emit('file:failed', { key, code: err.code, message: err.message, transient: err.transient });
  }

  skip(key: string, reason: string): void {
    this.counts.skipped++;
    this.events.emit('file:skipped', { key, reason });
  }

  // ----- planning

  async plan(prefix: string): Promise<void> {
    const rows = this.ledger !== undefined && this.destinationId !== undefined ? new RowCursor(this.ledger, this.destinationId, prefix) : undefined;
    const listing = this.#list(prefix)[Symbol.asyncIterator]();
    let batch: { info: ObjectInfo; row: ObjectRow | undefined }[] = [];
    let listed = 0;
    while (!this.cancellation.stopping.aborted) {
      let next: IteratorResult<ObjectInfo>;
      try {
        next = await listing.next();
      } catch (e) {
        const err = classifyError(e, 'HOLDFAST_E_NETWORK');
        if (err.code === 'HOLDFAST_E_CANCELLED') throw err;
        // Restore what was listed; the run cannot be complete, and says so.
        this.runErrors++;
        this.errors.push({ key: '', code: err.code, message: `listing ${this.backend.url} failed: ${err.message}` });
        break;
      }
      if (next.done === true) break;
      listed++;
      batch.push({ info: next.value, row: rows === undefined ? undefined : await this.#rowFor(rows, next.value.key) });
      if (batch.length >= PLAN_BATCH) {
        await this.#decideBatch(batch);
        batch = [];
      }
    }
    if (this.cancellation.stopping.aborted) return;
    if (batch.length > 0) await this.#decideBatch(batch);
    if (listed === 0 && this.runErrors === 0) {
      this.events.emit('run:notice', { level: 'warn', message: `${this.backend.url} holds no objects${prefix !== '' ? ` under "${printable(prefix)}"` : ''}: nothing to restore` });
    }
  }

  /** The listing, resumed after the last key seen when a transient error interrupts it. */
  async *#list(prefix: string): AsyncIterable<ObjectInfo> {
    const signal = this.cancellation.signal;
    let last: string | undefined;
    for (let attempt = 1; ; attempt++) {
      try {
        for await (const info of this.backend.list(prefix, { signal, ...(last !== undefined ? { startAfter: last } : {}) })) {
          last = info.key;
          attempt = 1;
          yield info;
        }
        return;
      } catch (e) {
        if (signal.aborted) throw cancelledError(signal);
        const err = classifyError(e, 'HOLDFAST_E_NETWORK');
        if (!err.transient || attempt >= this.settings.retry.attempts) throw err;
        await sleep(backoffDelay(this.settings.retry, attempt), signal);
      }
    }
  }

  async #rowFor(rows: RowCursor, key: string): Promise<ObjectRow | undefined> {
    try {
      return await rows.find(key);
    } catch (e) {
      // The ledger is an optimisation: without it, HEAD tells the same.
      this.events.emit('run:notice', { level: 'warn', message: `the ledger could not be read (${classifyError(e).message}); verifying against the destination alone` });
      rows.disable();
      return undefined;
    }
  }

  async #decideBatch(batch: readonly { info: ObjectInfo; row: ObjectRow | undefined }[]): Promise<void> {
    const limiter = new Limiter(this.settings.transfers);
    // Stage 1, concurrent: the key as a path, what the object should hash to, what is on disk.
    const looked = await Promise.all(
      batch.map(({ info, row }) =>
        limiter.run(async () => {
          const key = info.key;
          try {
            const path = this.pathOf(key);
            const expected = await this.#expected(info, row);
            const local = await lstat(path).catch((e: unknown) => {
              const code = (e as NodeJS.ErrnoException).code;
              if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
              throw classifyError(e, 'HOLDFAST_E_TARGET_WRITE', { path: key });
            });
            return { key, path, expected, local };
          } catch (e) {
            if (this.cancellation.signal.aborted) throw cancelledError(this.cancellation.signal);
            this.fail(key, e);
            return undefined;
          }
        }),
      ),
    );
    // Stage 2: hash local files that could be identical (same size, a hash to compare with), through the file cache.
    const candidates: SourceFile[] = [];
    for (const l of looked) {
      if (l?.local?.isFile() === true && l.local.size === l.expected.size && l.expected.sha256 !== undefined) {
        candidates.push({ key: l.key, path: l.path, size: l.local.size, mtimeMs: toMtimeMs(l.local), ino: l.local.ino, dev: l.local.dev });
      }
    }
    const hasher = new FileHasher(this.ledger ?? null, { concurrency: Math.min(8, this.settings.transfers), store: !this.settings.dryRun });
    const localHashes = candidates.length > 0 ? await hasher.hashBatch(candidates, { signal: this.cancellation.signal }) : new Map<string, string | HoldfastError>();

    // Stage 3: decide, in listing order.
    for (const l of looked) {
      if (l === undefined) continue;
      const { key, path, expected, local } = l;
      if (expected.sha256 === undefined && this.settings.verifiedOnly) {
        this.skip(key, 'no holdfast-sha256 (skipped by --verified-only)');
        this.notes.push({ key, note: 'not restored: the object has no holdfast-sha256, so it cannot be verified (--verified-only)' });
        continue;
      }
      if (local?.isDirectory() === true) {
        this.fail(key, new HoldfastError('HOLDFAST_E_TARGET_WRITE', { path: key, detail: 'a folder of that name is in the way' }));
        continue;
      }
      let identical = false;
      if (local?.isFile() === true && local.size === expected.size) {
        if (expected.sha256 !== undefined) identical = localHashes.get(key) === expected.sha256;
        // A foreign object cannot be compared by content: same size and the same time is what is known.
        else identical = expected.mtimeMs !== undefined && Math.floor(local.mtimeMs) === Math.floor(expected.mtimeMs);
      }
      if (identical) {
        if (!this.settings.dryRun && local !== undefined) await this.#fixMtime(key, path, local, expected);
        this.skip(key, 'identical locally');
        continue;
      }
      if (expected.conflict !== undefined) {
        this.fail(key, new HoldfastError('HOLDFAST_E_CHECKSUM', { key: printable(key), detail: `${expected.conflict}; nothing was written at its path` }, { transient: false }));
        continue;
      }
      const reason = local === undefined ? 'missing' : 'different';
      this.work.push({ key, path, expected, reason });
      if (this.settings.dryRun) this.planned.push({ key, action: 'download', reason, size: expected.size, verified: expected.sha256 !== undefined });
    }
  }

  pathOf(key: string): string {
    return restorePath(this.target, key);
  }

  /**
   * From the ledger's completed row when it still describes the listed object
   * (no request), else from HEAD. A key the ledger recorded as uploaded keeps
   * that record as the truth unless the object carries its uploader's own
   * holdfast-sha256 (another machine pushed a newer version): an object
   * without one, or on a destination that computes the hash from whatever
   * content it holds, was replaced behind Holdfast's back and must match the
   * record, or fail.
   */
  async #expected(info: ObjectInfo, row: ObjectRow | undefined): Promise<Expected> {
    const recorded = row !== undefined && row.status === 'upload_completed' && row.sha256 !== null && row.size !== null ? { ...row, sha256: row.sha256, size: row.size } : undefined;
    if (recorded !== undefined && recorded.size === info.size && (recorded.etag === null || info.etag === undefined || recorded.etag === info.etag)) {
      return { size: info.size, sha256: recorded.sha256, mtimeMs: wholeMs(recorded.mtimeMs ?? info.mtimeMs ?? info.modifiedMs), from: 'ledger' };
    }
    const fresh = await this.#fromDestination(info.key);
    if (recorded === undefined || (this.backend.capabilities.metadata && fresh.sha256 !== undefined)) return fresh;
    const ledgerSays = { size: recorded.size, sha256: recorded.sha256, mtimeMs: wholeMs(recorded.mtimeMs ?? undefined), from: 'ledger' as const };
    if (fresh.size !== recorded.size) {
      const own = fresh.sha256 === undefined ? 'and carries no holdfast-sha256' : 'and the destination vouches for any content';
      return { ...ledgerSays, conflict: `the object is ${fresh.size} bytes ${own}, but the ledger recorded ${recorded.size} bytes with SHA-256 ${recorded.sha256} (replaced by another tool?)` };
    }
    return ledgerSays;
  }

  async #fromDestination(key: string): Promise<Expected> {
    const signal = this.cancellation.signal;
    const head = await withRetry(() => this.backend.head(key, { signal }), { policy: this.settings.retry, signal, fallback: 'HOLDFAST_E_NETWORK' });
    if (head === undefined) {
      throw new HoldfastError('HOLDFAST_E_DEST_REJECTED', { detail: `"${printable(key)}" was listed but is gone from ${this.backend.url} (deleted while the restore ran?)` });
    }
    return { size: head.size, sha256: head.sha256, mtimeMs: wholeMs(head.mtimeMs ?? head.modifiedMs), from: 'destination' };
  }

  /**
   * The bytes did not hash to the ledger's record. The ledger may be behind
   * the destination (another machine pushed a new version of the same size):
   * where objects carry their uploader's holdfast-sha256 (capabilities.metadata),
   * that claim decides. Where the backend computes it from the content, it
   * would vouch for any bytes, so the ledger's record stands.
   */
  async #recheck(key: string, expected: Expected, sha256: string, size: number): Promise<Expected | undefined> {
    if (expected.from !== 'ledger' || !this.backend.capabilities.metadata) return undefined;
    const fresh = await this.#fromDestination(key);
    return fresh.sha256 === sha256 && fresh.size === size ? fresh : undefined;
  }

  /** An identical file keeps its content; only its time is put right (a resumed restore leaves it as the source had it). */
  async #fixMtime(key: string, path: string, local: Stats, expected: Expected): Promise<void> {
    if (expected.mtimeMs === undefined || Math.floor(local.mtimeMs) === Math.floor(expected.mtimeMs)) return;
    try {
      // lutimes: a symlink swapped in since the lstat gets the time, not whatever it points at.
      await lutimes(path, local.atime, fileTime(expected.mtimeMs));
      if (expected.sha256 !== undefined) await this.#remember(path, expected.sha256);
    } catch (e) {
      this.notes.push({ key, note: `content identical, but its modification time could not be set: ${(e as Error).message}` });
    }
  }

  // ----- downloading

  async download(): Promise<void> {
    const files = new Limiter(this.settings.transfers);
    const inflight = new Set<Promise<void>>();
    for (const item of this.work) {
      if (this.cancellation.stopping.aborted) break;
      const release = await files.acquire();
      if (this.cancellation.stopping.aborted) {
        release();
        break;
      }
      const task = this.#downloadOne(item).finally(release);
      inflight.add(task);
      void task.finally(() => inflight.delete(task));
    }
    await Promise.all(inflight);
    await this.#finishDurability();
  }

  async #downloadOne(item: Work): Promise<void> {
    const { key, path } = item;
    let expected = item.expected;
    const signal = this.cancellation.signal;
    this.events.emit('file:start', { key, size: expected.size });
    const dir = dirname(path);
    const temp = join(dir, `.holdfast-pull.${process.pid}.${randomBytes(8).toString('hex')}.tmp`);
    let fh: FileHandle | undefined;
    let renamed = false;
    try {
      await this.#ensureDir(dir, key);
      // O_EXCL never follows a symlink at the temp name; O_NOFOLLOW says so once more.
      fh = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0), 0o666).catch((e: unknown) => {
        throw targetError(key, e);
      });
      const handle = fh;
      await this.#checkInside(handle.fd, temp, key, 'file');
      const hash = createHash('sha256');
      let written = 0;
      // One attempt reads from `written` on: a transfer cut short by a transient
      // error continues with a range request instead of starting again.
      await withRetry(
        async () => {
          if (written >= expected.size && expected.size > 0) return;
          const body: Readable = await this.backend.get(key, { signal, ...(written > 0 ? { range: { start: written, end: expected.size - 1 } } : {}) });
          try {
            for await (const chunk of body as AsyncIterable<Buffer>) {
              throwIfAborted(signal);
              if (written + chunk.length > expected.size) {
                throw new HoldfastError('HOLDFAST_E_CHECKSUM', { key: printable(key), detail: `the object is larger than the ${expected.size} bytes listed (replaced while the restore ran?)` }, { transient: false });
              }
              hash.update(chunk);
              await writeAll(handle, chunk).catch((e: unknown) => {
                throw targetError(key, e);
              });
              written += chunk.length;
              this.events.emit('file:progress', { key, sentBytes: written, size: expected.size });
            }
          } finally {
            body.destroy();
          }
          if (written < expected.size) {
            throw new HoldfastError('HOLDFAST_E_NETWORK', { detail: `the download of "${printable(key)}" ended after ${written} of ${expected.size} bytes` });
          }
        },
        { policy: this.settings.retry, signal, fallback: 'HOLDFAST_E_NETWORK' },
      );
      const sha256 = hash.digest('hex');
      if (expected.sha256 !== undefined && sha256 !== expected.sha256.toLowerCase()) expected = (await this.#recheck(key, expected, sha256, written)) ?? expected;
      if (expected.sha256 !== undefined && sha256 !== expected.sha256.toLowerCase()) {
        // The object itself is damaged (or replaced behind Holdfast's back): downloading it again would not help.
        throw new HoldfastError(
          'HOLDFAST_E_CHECKSUM',
          { key: printable(key), detail: `downloaded ${written} bytes hashing to ${sha256}, but its holdfast-sha256 is ${expected.sha256}; nothing was written at its path` },
          { transient: false },
        );
      }
      try {
        if (expected.mtimeMs !== undefined) await handle.utimes(new Date(), fileTime(expected.mtimeMs));
        if (this.settings.fsync) await handle.sync();
        await handle.close();
        fh = undefined;
        // Last moment a cancellation can keep the file from appearing.
        throwIfAborted(signal);
        await rename(temp, path);
        renamed = true;
      } catch (e) {
        throw targetError(key, e);
      }
      this.#touchedDirs.add(dir);
      await this.#remember(path, sha256);
      this.counts.completed++;
      this.bytes += written;
      if (expected !== item.expected) this.notes.push({ key, note: 'the ledger’s record of this object was out of date; verified against the object’s own holdfast-sha256' });
      if (expected.sha256 === undefined) {
        this.counts.unverified++;
        this.notes.push({ key, note: 'restored without verification: the object has no holdfast-sha256 (not written by Holdfast)' });
      }
      this.events.emit('file:done', { key, outcome: 'completed', bytes: written });
    } catch (e) {
      if (fh !== undefined) await fh.close().catch(() => undefined);
      if (!renamed) await unlink(temp).catch(() => undefined);
      const err = classifyError(e, 'HOLDFAST_E_NETWORK');
      if (signal.aborted || err.code === 'HOLDFAST_E_CANCELLED') return;
      this.fail(key, err);
    }
  }

  /**
   * Creates `dir` (a folder inside the target) and its parents, refusing to
   * write through a symbolic link below the target, and removes temp files a
   * crashed pull left there. Once per folder per run.
   */
  #ensureDir(dir: string, key: string): Promise<void> {
    let p = this.#dirs.get(dir);
    if (p === undefined) {
      p = (async () => {
        if (dir !== this.target) await this.#ensureDir(dirname(dir), key);
        let st = await lstat(dir).catch(() => undefined);
        if (st === undefined) {
          const made = await mkdir(dir).then(
            () => true,
            (e: unknown) => {
              if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw targetError(key, e);
              return false;
            },
          );
          if (made && dir !== this.target) await this.#checkDirInside(dir, key);
          st = await lstat(dir).catch((e: unknown) => {
            throw targetError(key, e);
          });
        }
        const shown = dir.slice(this.target.length + 1) || '.';
        if (st.isSymbolicLink() && dir !== this.target) {
          throw new HoldfastError('HOLDFAST_E_TARGET_WRITE', { path: key, detail: `"${printable(shown)}" is a symbolic link; pull does not write through links` });
        }
        if (!st.isDirectory() && !(dir === this.target && st.isSymbolicLink())) {
          throw new HoldfastError('HOLDFAST_E_TARGET_WRITE', { path: key, detail: `"${printable(shown)}" exists and is not a folder` });
        }
        await removeStaleTemps(dir);
      })();
      this.#dirs.set(dir, p);
    }
    return p;
  }

  /** The target with its own symlinks resolved (the target itself may be reached through one). */
  #realTarget: Promise<string | undefined> | undefined;

  /**
   * What was just created at `path` (open descriptor `fd`) must be there, under
   * the target: not somewhere a folder swapped for a symlink since it was
   * checked leads to. Where the system cannot tell, every folder from the
   * target down is looked at again instead. If it is elsewhere, it is removed
   * (it is new and empty, made by this run) and the file fails.
   */
  async #checkInside(fd: number, path: string, key: string, what: 'file' | 'folder'): Promise<void> {
    const actual = descriptorPath(fd);
    const rel = relative(this.target, path);
    if (actual !== undefined) {
      this.#realTarget ??= realpath(this.target).catch(() => undefined);
      const base = await this.#realTarget;
      if (base === undefined || actual === join(base, rel)) return;
      await (what === 'file' ? unlink(actual) : rmdir(actual)).catch(() => undefined);
      throw new HoldfastError('HOLDFAST_E_TARGET_WRITE', { path: printable(key), detail: `a folder on the way was replaced by a symbolic link leading to "${dirname(actual)}"; pull does not write through links` });
    }
    const segments = rel.split(sep).slice(0, -1);
    for (let i = 1; i <= segments.length; i++) {
      const folder = join(this.target, ...segments.slice(0, i));
      const st = await lstat(folder).catch(() => undefined);
      if (st === undefined || !st.isDirectory()) {
        throw new HoldfastError('HOLDFAST_E_TARGET_WRITE', { path: printable(key), detail: `"${printable(segments.slice(0, i).join('/'))}" is no longer a folder (replaced by a symbolic link?); pull does not write through links` });
      }
    }
  }

  /** `#checkInside` for a folder just made. */
  async #checkDirInside(dir: string, key: string): Promise<void> {
    const fh = await open(dir, constants.O_RDONLY | (constants.O_DIRECTORY ?? 0) | (constants.O_NOFOLLOW ?? 0)).catch((e: unknown) => {
      throw targetError(key, e);
    });
    try {
      await this.#checkInside(fh.fd, dir, key, 'folder');
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  /** The restored file's hash goes into the file cache: a later pull (or a push from here) need not read it again. */
  async #remember(path: string, sha256: string): Promise<void> {
    if (this.ledger === undefined) return;
    const st = await lstat(path).catch(() => undefined);
    if (st === undefined || !st.isFile()) return;
    this.#cacheEntries.push({ path, size: st.size, mtimeMs: toMtimeMs(st), ino: st.ino, sha256 });
    if (this.#cacheEntries.length >= PLAN_BATCH) await this.flushCache();
  }

  async flushCache(): Promise<void> {
    if (this.ledger === undefined || this.#cacheEntries.length === 0) return;
    const entries = this.#cacheEntries.splice(0);
    try {
      await this.ledger.storeFileCache(entries);
    } catch {
      // Only an optimisation: the next run hashes these files instead.
    }
  }

  /** Renames are made durable once per folder, for all the files restored into it. */
  async #finishDurability(): Promise<void> {
    await this.flushCache();
    if (!this.settings.fsync) return;
    await Promise.all(
      [...this.#touchedDirs].map(async (dir) => {
        try {
          const fh = await open(dir, 'r');
          try {
            await fh.sync();
          } finally {
            await fh.close();
          }
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EISDIR' && process.platform !== 'win32') {
            this.events.emit('run:notice', { level: 'warn', message: `could not fsync "${dir}": ${(e as Error).message}` });
          }
        }
      }),
    );
  }
}

/** Ledger rows for listed keys, by a merge-join: both sides come in UTF-8 byte order, so one pass, one page at a time. */
class RowCursor {
  readonly #it: AsyncIterator<ObjectRow>;
  #current: ObjectRow | undefined;
  #started = false;
  #done = false;

  constructor(ledger: Ledger, destinationId: number, prefix: string) {
    // Every key under the prefix sorts after the prefix minus its last character.
    const chars = Array.from(prefix);
    const afterKey = chars.length > 1 ? chars.slice(0, -1).join('') : undefined;
    this.#it = ledger.streamObjects(destinationId, afterKey !== undefined ? { afterKey } : {})[Symbol.asyncIterator]();
  }

  disable(): void {
    this.#done = true;
  }

  async find(key: string): Promise<ObjectRow | undefined> {
    if (this.#done) return undefined;
    if (!this.#started) {
      this.#started = true;
      await this.#next();
    }
    while (this.#current !== undefined && compareKeys(this.#current.key, key) < 0) await this.#next();
    return this.#current !== undefined && this.#current.key === key ? this.#current : undefined;
  }

  async #next(): Promise<void> {
    const r = await this.#it.next();
    this.#current = r.done === true ? undefined : r.value;
    if (r.done === true) this.#done = true;
  }
}

/**
 * Where object `key` is restored under `target` (an absolute directory). Throws
 * HOLDFAST_E_KEY_INVALID / HOLDFAST_E_KEY_TOO_LONG for keys that are not a
 * plain relative path inside it: "..", absolute, NUL, empty segments (the
 * rules every destination shares), and pull's own temp names.
 */
export function restorePath(target: string, key: string): string {
  validateKeyCommon(key, { maxKeyBytes: PATH_MAX_BYTES, prefix: target + sep });
  const segments = key.split('/');
  if (segments.some((s) => TEMP_NAME.test(s))) {
    throw new HoldfastError('HOLDFAST_E_KEY_INVALID', { key: printable(key), detail: 'names of the form .holdfast-pull.<pid>.<hex>.tmp are pull’s temporary files' });
  }
  if (process.platform === 'win32' && /[\\:*?"<>|]/.test(key)) {
    throw new HoldfastError('HOLDFAST_E_KEY_INVALID', { key: printable(key), detail: 'Windows file names cannot contain \\ : * ? " < > |' });
  }
  const path = resolve(target, ...segments);
  // validateKeyCommon already refuses "..", absolute keys and NUL; this is the belt to those braces.
  if (!path.startsWith(target.endsWith(sep) ? target : target + sep)) {
    throw new HoldfastError('HOLDFAST_E_KEY_INVALID', { key: printable(key), detail: 'the key resolves outside the restore directory' });
  }
  return path;
}

/**
 * Holdfast records mtimes in whole milliseconds; one read back from a file
 * whose time was set through a float of seconds can sit a hair below the
 * millisecond (…677999 for …678). Such values are put back on it.
 */
function wholeMs(ms: number | undefined): number | undefined {
  if (ms === undefined) return undefined;
  const r = Math.round(ms);
  return Math.abs(ms - r) < 0.01 ? r : ms;
}

/**
 * The time to give a file, in seconds. A double of seconds lands a few hundred
 * nanoseconds off the intended millisecond, often just below it; aiming one
 * microsecond past it makes the file read back as exactly that millisecond.
 */
function fileTime(ms: number): number {
  return Math.floor(ms) / 1000 + 1e-6;
}

function targetError(key: string, e: unknown): HoldfastError {
  if (isHoldfastError(e)) return e;
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENAMETOOLONG') return new HoldfastError('HOLDFAST_E_KEY_INVALID', { key: printable(key), detail: 'the path is too long for this filesystem' }, { cause: e });
  const why =
    code === 'ENOTDIR' || code === 'EEXIST'
      ? 'a file is where a folder is needed'
      : code === 'EISDIR' || code === 'ENOTEMPTY'
        ? 'a folder of that name is in the way'
        : (e as Error).message;
  return new HoldfastError('HOLDFAST_E_TARGET_WRITE', { path: printable(key), detail: why }, { cause: e });
}

async function writeAll(fh: FileHandle, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off);
    off += bytesWritten;
  }
}

/** Temp files of pulls that are no longer running (killed, crashed) are removed; a live pull's are left alone. */
async function removeStaleTemps(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  await Promise.all(
    names.map(async (name) => {
      const m = TEMP_NAME.exec(name);
      if (m === null) return;
      const pid = Number(m[1]);
      if (pid === process.pid || isProcessAlive(pid)) return;
      await unlink(join(dir, name)).catch(() => undefined);
    }),
  );
}

/** Opens the ledger to read, if there is one; a restore on a fresh machine has none and needs none. */
async function openExistingLedger(options: PullOptions): Promise<{ ledger: Ledger | undefined; owned: boolean }> {
  if (options.ledger !== undefined) return { ledger: options.ledger, owned: false };
  if (options.useLedger === false) return { ledger: undefined, owned: false };
  const target = resolveLedger(options);
  if (!ledgerMayExist(target)) return { ledger: undefined, owned: false };
  try {
    // pull only reads the ledger.
    return { ledger: await openLedgerAt(target, { readOnly: true }), owned: true };
  } catch (e) {
    const err = classifyError(e, 'HOLDFAST_E_LEDGER_OPEN');
    // A database with no ledger in it yet is like no ledger file: nothing recorded to check against.
    if (err.code === 'HOLDFAST_E_LEDGER_OPEN' && /no ledger in this database/.test(err.message)) return { ledger: undefined, owned: false };
    // A ledger that exists but cannot be read must not silently lower the checks it would make (DESIGN §2 promise 4).
    throw new HoldfastError(
      err.code,
      { ...err.details, detail: `${String(err.details.detail ?? err.message)}; pull checks every object against the ledger's record: make the ledger readable, or pass --no-ledger to verify against the destination alone` },
      { cause: err },
    );
  }
}

/** Creates the restore directory (not in a dry run); throws HOLDFAST_E_TARGET_UNUSABLE if it cannot be one. */
async function prepareTarget(target: string, shown: string, dryRun: boolean): Promise<void> {
  const st = await stat(target).catch((e: unknown) => {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new HoldfastError('HOLDFAST_E_TARGET_UNUSABLE', { path: shown, detail: (e as Error).message }, { cause: e });
  });
  if (st !== undefined) {
    if (!st.isDirectory()) throw new HoldfastError('HOLDFAST_E_TARGET_UNUSABLE', { path: shown, detail: 'it exists and is not a directory' });
    return;
  }
  if (dryRun) return;
  try {
    await mkdir(target, { recursive: true });
  } catch (e) {
    throw new HoldfastError('HOLDFAST_E_TARGET_UNUSABLE', { path: shown, detail: (e as Error).message }, { cause: e });
  }
}

/**
 * Restores the objects of `options.destination` into `options.target`. Per-file
 * problems (a damaged object, an unwritable file, a key that cannot be a path)
 * are reported in the result; a destination that cannot be reached or a target
 * that cannot be a directory throw.
 */
export async function pull(options: PullOptions): Promise<PullReport> {
  const startedAt = Date.now();
  const transfers = options.transfers ?? DEFAULT_TRANSFERS;
  if (!Number.isInteger(transfers) || transfers < 1 || transfers > 1024) {
    throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `transfers must be an integer from 1 to 1024, got ${transfers}` });
  }
  const settings = {
    dryRun: options.dryRun === true,
    verifiedOnly: options.verifiedOnly === true,
    transfers,
    retry: options.retry ?? DEFAULT_RETRY,
    fsync: options.fsync !== false,
  };
  checkRetryPolicy(settings.retry);
  const prefix = options.prefix ?? '';
  const target = resolve(options.target);
  const events = options.events ?? new RunEvents();
  const backend = await openBackend(options.destination, options.backendOptions);
  const cancellation = new Cancellation({ signal: options.signal, stopSignal: options.stopSignal, drainMs: options.drainMs });
  // Every request in flight listens on the run's signal (the SDK, retry sleeps): transfers of them at once is expected, not a leak.
  setMaxListeners(Math.max(10, transfers * 4), cancellation.signal);
  let ledger: Ledger | undefined;
  let ownsLedger = false;
  try {
    await withRetry(() => backend.ensureReady({ signal: cancellation.signal, readOnly: true, forReading: true }), {
      policy: settings.retry,
      signal: cancellation.signal,
      fallback: 'HOLDFAST_E_DEST_UNREACHABLE',
    }).catch((e: unknown) => {
      const err = classifyError(e, 'HOLDFAST_E_DEST_UNREACHABLE');
      throw err.exitCode === 2 ? new HoldfastError('HOLDFAST_E_DEST_UNREACHABLE', { detail: `${backend.url}: ${err.message}` }, { cause: err }) : err;
    });
    await prepareTarget(target, options.target, settings.dryRun);
    ({ ledger, owned: ownsLedger } = await openExistingLedger(options));
    const destination = ledger === undefined ? undefined : await ledger.getDestination(backend).catch(() => undefined);
    events.emit('run:start', { runId: null, command: 'pull', source: target, destination: backend.url, dryRun: settings.dryRun });

    const run = new PullRun(backend, target, ledger, destination?.id, settings, cancellation, events);
    try {
      await run.plan(prefix);
    } catch (e) {
      if (classifyError(e).code !== 'HOLDFAST_E_CANCELLED') throw e;
    }
    const bytes = run.work.reduce((n, w) => n + w.expected.size, 0);
    events.emit('plan:ready', { files: run.work.length, bytes, skipped: run.counts.skipped, action: 'download' });
    if (!settings.dryRun && !cancellation.cancelled) await run.download();
    else await run.flushCache();

    const status = deriveRunStatus({
      cancelled: cancellation.cancelled,
      aborted: false,
      counts: { completed: run.counts.completed, failed: run.counts.failed, partial: 0, skipped: run.counts.skipped, recovered: 0, fenced: 0 },
      runErrors: run.runErrors,
    });
    const report: PullReport = { status, downloads: { ...run.counts }, bytes: run.bytes, durationMs: Date.now() - startedAt, errors: run.errors };
    if (run.notes.length > 0) report.notes = run.notes;
    if (settings.dryRun) report.plan = run.planned;
    events.emit('run:done', {
      report: { status, uploads: { completed: run.counts.completed, failed: run.counts.failed, partial: 0, skipped: run.counts.skipped, recovered: 0, fenced: 0 }, bytes: run.bytes, durationMs: report.durationMs, errors: run.errors },
    });
    return report;
  } finally {
    cancellation.dispose();
    await backend.close().catch(() => undefined);
    if (ownsLedger) await ledger?.close().catch(() => undefined);
  }
}
