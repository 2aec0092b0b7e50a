// Opening the embedded SQLite ledger: the file (mode 0600, in a 0700 state
// directory), the connection pragmas, the migrations, and the KyselyLedger
// over it.

import fs from 'node:fs';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import type { SqliteDatabase, SqliteStatement } from 'kysely';
import { HoldfastError, classifyError } from '../core/errors.js';
import { KyselyLedger } from './kysely-ledger.js';
import { migrateToLatest } from './migrations/index.js';
import type { Database } from './schema.js';

// Short on purpose: better-sqlite3 waits synchronously, freezing every transfer of the
// process; callers retry BUSY asynchronously with backoff (engine/retry.ts) instead.
export const DEFAULT_BUSY_TIMEOUT_MS = 1000;

/** The subset of better-sqlite3's Database used here (kysely's SqliteDatabase plus pragmas). */
export interface SqliteHandle extends SqliteDatabase {
  pragma(source: string, options?: { simple?: boolean }): unknown;
  prepare(sql: string): SqliteStatement;
}

export interface OpenSqliteOptions {
  /** Milliseconds to wait on a database locked by another connection (default 5000). */
  readonly busyTimeoutMs?: number;
  /** Clock (epoch ms) for the ledger; tests may pass their own. */
  readonly now?: () => number;
  /**
   * SQLite's `synchronous` setting. Default "full": a committed transaction
   * survives a power loss, not only a crash of the process (DESIGN §3). "normal"
   * exists to measure what that costs (bench/ledger-durability.ts); with it, a
   * power loss may undo the last commits.
   */
  readonly synchronous?: 'full' | 'normal';
}

/** The file name that opens a private, throw-away database in memory (a dry run with no ledger yet). */
export const MEMORY = ':memory:';

/** Creates the directory (and missing parents) with mode 0700; an existing directory is left as it is. */
function ensurePrivateDir(dir: string): void {
  const first = fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  // mkdir's mode is narrowed by the umask; set it exactly on what we created.
  if (first !== undefined) fs.chmodSync(dir, 0o700);
}

/**
 * Opens (creating if needed) a SQLite database file for the ledger.
 *
 * The file is created by us with mode 0600 before SQLite sees it, so it is
 * never readable by others, whatever the umask (a umask can only narrow a
 * mode, and we set it exactly afterwards). SQLite creates -wal and -shm with
 * the database file's mode; we chmod them anyway in case they pre-exist.
 */
export function openSqliteDatabase(file: string, options: OpenSqliteOptions = {}): SqliteHandle {
  const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
  if (file === MEMORY) {
    const mem = new BetterSqlite3(MEMORY);
    mem.pragma('foreign_keys = ON');
    return mem;
  }
  ensurePrivateDir(path.dirname(file));
  const existed = fs.existsSync(file);
  const fd = fs.openSync(file, 'a', 0o600);
  try {
    if (!existed) fs.fchmodSync(fd, 0o600);
  } finally {
    fs.closeSync(fd);
  }

  const db = new BetterSqlite3(file, { timeout: busyTimeoutMs });
  try {
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
    db.pragma('journal_mode = WAL', { simple: true });
    // FULL: every commit is on disk before it returns, so a power loss cannot
    // undo a committed transaction. NORMAL (in WAL mode) could lose the last
    // commits, and a lost delete intent + outcome would leave upload_completed
    // for an object that is gone: a false record. Group commit (one transaction
    // per batch of intents or outcomes) keeps the cost per file low; measured
    // in bench/ledger-durability.ts, docs/benchmarks.md.
    db.pragma(`synchronous = ${options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
    db.pragma('foreign_keys = ON');
    for (const suffix of ['-wal', '-shm']) {
      try {
        fs.chmodSync(file + suffix, 0o600);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    }
  } catch (e) {
    db.close();
    throw e;
  }
  return db;
}

/** How many distinct statements stay prepared (IN lists of different lengths are different statements). */
const STATEMENT_CACHE_SIZE = 256;

/**
 * Kysely's SQLite driver prepares every query afresh; the ledger runs the
 * same few statements thousands of times per run, so keep them prepared (an
 * LRU keyed by SQL text). better-sqlite3 statements are reusable once `all`
 * or `run` returns; `iterate` (kysely's streamQuery, unused by the ledger)
 * gets its own statement so a half-read cursor is never shared.
 */
export function withStatementCache(db: SqliteHandle, size = STATEMENT_CACHE_SIZE): SqliteHandle {
  const cache = new Map<string, SqliteStatement>();
  return {
    close: () => db.close(),
    pragma: (source, options) => db.pragma(source, options),
    prepare(sql: string): SqliteStatement {
      let stmt = cache.get(sql);
      if (stmt !== undefined) {
        cache.delete(sql); // re-insert: most recently used last
      } else {
        stmt = db.prepare(sql);
        if (cache.size >= size) {
          const oldest = cache.keys().next();
          if (oldest.done !== true) cache.delete(oldest.value);
        }
      }
      cache.set(sql, stmt);
      const shared = stmt;
      return {
        get reader() {
          return shared.reader;
        },
        all: (parameters) => shared.all(parameters),
        run: (parameters) => shared.run(parameters),
        iterate: (parameters) => db.prepare(sql).iterate(parameters),
      };
    },
  };
}

function openError(file: string, e: unknown): HoldfastError {
  const classified = classifyError(e, 'HOLDFAST_E_LEDGER_OPEN', { path: file });
  // Locked by another process is transient: keep that verdict. Anything else
  // is "cannot open the ledger at <path>".
  if (classified.code === 'HOLDFAST_E_LEDGER_BUSY') {
    return new HoldfastError(
      'HOLDFAST_E_LEDGER_BUSY',
      { detail: `${file}: ${String(classified.details.detail ?? classified.message)}; another holdfast run (or a program with this database open) holds a write lock — wait for it to finish, or stop it` },
      { cause: e },
    );
  }
  if (classified.code === 'HOLDFAST_E_LEDGER_OPEN') return classified;
  return new HoldfastError('HOLDFAST_E_LEDGER_OPEN', { path: file, detail: classified.message }, { cause: e });
}

/** Opens the SQLite ledger at `file`, migrating it to the latest schema. */
export async function openSqliteLedger(file: string, options: OpenSqliteOptions = {}): Promise<KyselyLedger> {
  let handle: SqliteHandle;
  try {
    handle = openSqliteDatabase(file, options);
  } catch (e) {
    throw openError(file, e);
  }
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(handle) }) });
  try {
    await migrateToLatest(db, 'sqlite');
  } catch (e) {
    await db.destroy().catch(() => undefined);
    throw openError(file, e);
  }
  return new KyselyLedger(db, { dialect: 'sqlite', location: file, ...(options.now ? { now: options.now } : {}) });
}
