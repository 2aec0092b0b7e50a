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
import { MIGRATIONS, migrateToLatest } from './migrations/index.js';
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
  /**
   * Open an existing ledger for reading only: nothing is created (no
   * directory, no database, no migration), nothing is written, and a ledger
   * that needs a migration is refused. See `openReadOnly`.
   */
  readonly readOnly?: boolean;
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

/** Deepest depth a state directory path may have; a longer one is refused rather than walked. */
const MAX_DIR_DEPTH = 256;

// Linux pseudo file systems (statfs f_type): kernel interfaces, not storage. A
// database there is never right, and recursive mkdir on procfs loops forever
// (mkdir answers ENOENT under a directory that exists), so they are refused.
const PSEUDO_FILE_SYSTEMS: ReadonlyMap<number, string> = new Map([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0xcafe4a11, 'bpf'],
  [0x1cd1, 'devpts'],
  [0x6165676c, 'pstore'],
  [0x62656570, 'configfs'],
  [0x65735543, 'fusectl'],
  [0xde5e81e4, 'efivarfs'],
]);

function stateDirError(file: string, dir: string, detail: string, cause?: unknown): HoldfastError {
  return new HoldfastError('HOLDFAST_E_LEDGER_OPEN', { path: file, detail: `state directory "${dir}": ${detail}` }, cause === undefined ? undefined : { cause });
}

/**
 * Creates the directory (and missing parents) with mode 0700; an existing
 * directory is left as it is. Validated first, and bounded: the deepest
 * existing ancestor must be a directory on a real file system, then each
 * missing level is created once with a plain mkdir — so a refusal names its
 * real cause (EROFS, EACCES, ENOTDIR...) instead of the ENOENT a recursive
 * mkdir reports, and nothing can loop.
 */
export function ensurePrivateDir(dir: string, forFile: string = dir): void {
  const target = path.resolve(dir);
  const fail = (detail: string, cause?: unknown): HoldfastError => stateDirError(forFile, target, detail, cause);
  const missing: string[] = [];
  let existing = target;
  for (;;) {
    let st: fs.Stats;
    try {
      st = fs.statSync(existing);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw fail((e as Error).message, e);
      missing.push(existing);
      const up = path.dirname(existing);
      if (up === existing || missing.length > MAX_DIR_DEPTH) throw fail('too deep, or no existing parent directory');
      existing = up;
      continue;
    }
    if (!st.isDirectory()) throw fail(`"${existing}" exists and is not a directory`);
    break;
  }
  if (process.platform === 'linux') {
    let type: number | undefined;
    try {
      type = Number(fs.statfsSync(existing).type);
    } catch {
      type = undefined; // statfs unavailable: the mkdir below still says what is wrong
    }
    const fsName = type === undefined ? undefined : PSEUDO_FILE_SYSTEMS.get(type);
    if (fsName !== undefined) {
      throw fail(`"${existing}" is on a ${fsName} file system (kernel pseudo-files, not storage); choose a directory on a disk`);
    }
  }
  for (const d of missing.reverse()) {
    try {
      fs.mkdirSync(d, { mode: 0o700 });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' && fs.statSync(d).isDirectory()) continue; // created meanwhile by another process
      throw fail((e as Error).message, e);
    }
  }
  // mkdir's mode is narrowed by the umask; set it exactly on what we created.
  if (missing.length > 0) fs.chmodSync(target, 0o700);
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
  if (options.readOnly === true) return openReadOnly(file, busyTimeoutMs);
  ensurePrivateDir(path.dirname(file), file);
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

// SQLite answers these when it cannot open or create the -wal / -shm files next
// to the database (a directory it may not write, a read-only mount).
const WAL_FILES_UNAVAILABLE = /^SQLITE_(READONLY_DIRECTORY|READONLY_CANTINIT|READONLY_CANTLOCK|READONLY_RECOVERY|CANTOPEN|IOERR_LOCK|IOERR_SHMOPEN|IOERR_SHMSIZE|READONLY)/;

function ledgerMissing(file: string, detail: string): HoldfastError {
  return new HoldfastError('HOLDFAST_E_LEDGER_OPEN', { path: file, detail });
}

/**
 * Opens an existing ledger for reading (status, history, runs, check): no
 * directory, file or migration is created, and no byte of the ledger is
 * written, so it works on a read-only mount and for a user who may only read.
 *
 * A WAL database is read through SQLite itself whenever it can be: that sees
 * the write-ahead log of a running (or crashed) writer. Opening one needs the
 * -wal and -shm files, which SQLite creates when it may write the directory;
 * when it may not and there is no log to read (the last writer checkpointed
 * and removed it), the database file alone is the whole ledger, and it is
 * read as a snapshot in memory (`snapshot`). A log that exists but cannot be
 * read is an error: silently reading without it would show stale state.
 */
function openReadOnly(file: string, busyTimeoutMs: number): SqliteHandle {
  const dir = path.dirname(file);
  try {
    if (!fs.statSync(dir).isDirectory()) throw ledgerMissing(file, `the state directory "${dir}" is not a directory`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw ledgerMissing(file, `the state directory "${dir}" does not exist (nothing was pushed with it); point --state or HOLDFAST_STATE at the one to read`);
    }
    throw e;
  }
  try {
    if (!fs.statSync(file).isFile()) throw ledgerMissing(file, 'not a regular file');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw ledgerMissing(file, 'there is no ledger here (nothing was pushed with this state directory); point --state or HOLDFAST_STATE at the one to read');
    }
    throw e;
  }
  const db = new BetterSqlite3(file, { readonly: true, fileMustExist: true, timeout: busyTimeoutMs });
  try {
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
    db.pragma('foreign_keys = ON');
    // The first read opens the write-ahead log, if the database has one.
    db.prepare('SELECT count(*) FROM sqlite_master').get();
    return db;
  } catch (e) {
    db.close();
    const raw = (e as { code?: unknown }).code;
    const code = typeof raw === 'string' ? raw : '';
    if (!WAL_FILES_UNAVAILABLE.test(code)) throw e;
    if (walHasContent(file)) {
      throw ledgerMissing(
        file,
        `its write-ahead log (${path.basename(file)}-wal) holds recent changes, but SQLite cannot open it without writing ${path.basename(file)}-shm in "${dir}" (${code}); ` +
          'run the command as a user who may write that directory, or run a writing command (holdfast push) there once so the log is merged',
      );
    }
    return snapshot(file, busyTimeoutMs);
  }
}

function walHasContent(file: string): boolean {
  try {
    return fs.statSync(`${file}-wal`).size > 0;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/**
 * The database file read into memory, for a WAL-mode ledger with no log to
 * read and no way to create one. Consistent: with no -wal file, no writer
 * is between a commit and its checkpoint; the read is repeated if a writer
 * appeared meanwhile (a -wal, or the file changed under the read).
 */
function snapshot(file: string, busyTimeoutMs: number): SqliteHandle {
  for (let attempt = 0; attempt < 5; attempt++) {
    const before = fs.statSync(file);
    const bytes = fs.readFileSync(file);
    const after = fs.statSync(file);
    if (walHasContent(file) || before.size !== after.size || before.mtimeMs !== after.mtimeMs || bytes.length !== after.size) continue;
    // Bytes 18-19 of the header say "WAL" (2); in memory there is no log: read it as a rollback-journal database (1).
    if (bytes.length >= 20 && bytes[18] === 2 && bytes[19] === 2) {
      bytes[18] = 1;
      bytes[19] = 1;
    }
    const db = new BetterSqlite3(bytes, { readonly: true, timeout: busyTimeoutMs });
    db.pragma('foreign_keys = ON');
    return db;
  }
  throw new HoldfastError('HOLDFAST_E_LEDGER_BUSY', { detail: `${file}: another process kept writing the ledger while it was being read; try again` });
}

/**
 * Migrations a read-only open cannot apply: the ledger must already be at
 * this version's schema. Says which are missing, or which are unknown (a
 * ledger from a newer holdfast).
 */
function checkSchemaReadOnly(db: SqliteHandle, file: string): void {
  let applied: string[];
  const hasTable = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'holdfast_migrations'").all([]).length > 0;
  if (!hasTable) applied = [];
  else applied = (db.prepare('SELECT name FROM holdfast_migrations').all([]) as { name: string }[]).map((r) => r.name);
  const known = new Set(MIGRATIONS.map((m) => m.name));
  const unknown = applied.filter((n) => !known.has(n));
  if (unknown.length > 0) {
    throw new HoldfastError('HOLDFAST_E_LEDGER_OPEN', {
      path: file,
      detail: `the ledger has migrations this version of holdfast does not know (${unknown.join(', ')}); upgrade holdfast`,
    });
  }
  const missing = MIGRATIONS.map((m) => m.name).filter((n) => !applied.includes(n));
  if (missing.length > 0) {
    throw new HoldfastError('HOLDFAST_E_LEDGER_OPEN', {
      path: file,
      detail:
        `the ledger needs ${missing.length === MIGRATIONS.length ? 'to be initialised' : `migration(s) ${missing.join(', ')}`} before it can be read, and this command only reads; ` +
        'run a writing command (e.g. holdfast push) with this state directory once, as a user who may write it, then try again',
    });
  }
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
  const full = diskFull(file, e);
  if (full !== undefined) return new HoldfastError('HOLDFAST_E_LEDGER_OPEN', { path: file, detail: `${full} (${classified.message})` }, { cause: e });
  if (classified.code === 'HOLDFAST_E_LEDGER_OPEN') return classified;
  return new HoldfastError('HOLDFAST_E_LEDGER_OPEN', { path: file, detail: classified.message }, { cause: e });
}

/**
 * The real cause behind SQLite's "disk I/O error" when the file system under
 * the ledger is full: SQLite reports a failed write to its -shm or -wal file
 * as SQLITE_IOERR_*, and only a full database as SQLITE_FULL.
 */
function diskFull(file: string, e: unknown): string | undefined {
  let code = '';
  for (let c: unknown = e, i = 0; c !== undefined && c !== null && i < 5; c = (c as { cause?: unknown }).cause, i++) {
    const k = (c as { code?: unknown }).code;
    if (typeof k === 'string' && k.startsWith('SQLITE_')) {
      code = k;
      break;
    }
  }
  if (code !== 'SQLITE_FULL' && !code.startsWith('SQLITE_IOERR')) return undefined;
  const dir = path.dirname(file);
  try {
    if (Number(fs.statfsSync(dir).bavail) > 0) return undefined;
  } catch {
    return undefined;
  }
  return `no space left on the file system of "${dir}"`;
}

/** Opens the SQLite ledger at `file`, migrating it to the latest schema (read-only: refusing one that needs a migration). */
export async function openSqliteLedger(file: string, options: OpenSqliteOptions = {}): Promise<KyselyLedger> {
  let handle: SqliteHandle;
  try {
    handle = openSqliteDatabase(file, options);
  } catch (e) {
    throw openError(file, e);
  }
  if (options.readOnly === true) {
    try {
      checkSchemaReadOnly(handle, file);
    } catch (e) {
      handle.close();
      throw openError(file, e);
    }
  }
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(handle) }) });
  try {
    if (options.readOnly !== true) await migrateToLatest(db, 'sqlite');
  } catch (e) {
    await db.destroy().catch(() => undefined);
    throw openError(file, e);
  }
  return new KyselyLedger(db, { dialect: 'sqlite', location: file, ...(options.now ? { now: options.now } : {}) });
}
