// Opening the PostgreSQL ledger (DESIGN §4, §10): node-postgres's pool under
// kysely's PostgresDialect, the same numbered migrations as SQLite (run under
// an advisory lock, so two processes starting at once migrate once), and the
// same KyselyLedger on top. Every failure to reach or use the server becomes a
// HOLDFAST_E_LEDGER_* error that names the URL without its password.

import pg from 'pg';
import { Kysely, PostgresDialect, sql } from 'kysely';
import { HoldfastError, classifyError } from '../core/errors.js';
import { KyselyLedger } from './kysely-ledger.js';
import { migrateToLatest, MIGRATIONS } from './migrations/index.js';
import type { Database } from './schema.js';

/** The subset of a `pg.Pool` the ledger uses (kysely's PostgresPool plus error events). */
interface Pool {
  connect(): Promise<pg.PoolClient>;
  end(): Promise<void>;
  on(event: 'error', listener: (e: Error) => void): unknown;
}

export interface OpenPostgresOptions {
  /** Connections in the pool (default 4: a run's claims, outcomes, renewals and reads). */
  readonly poolSize?: number;
  /** Give up connecting after this long (default 10 s). */
  readonly connectTimeoutMs?: number;
  /** Read only: no migration is run (a ledger that needs one is refused), writes fail. */
  readonly readOnly?: boolean;
  /** Clock (epoch ms) for the ledger; tests may pass their own. Default: the server's `now()`. */
  readonly now?: () => number;
}

/** `postgres://user:secret@host/db` → `postgres://user:***@host/db`: what messages and the ledger's location show. */
export function redactLedgerUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    for (const name of [...u.searchParams.keys()]) if (/pass|secret|key/i.test(name)) u.searchParams.set(name, '***');
    return u.toString();
  } catch {
    return '(a URL that does not parse)';
  }
}

/** PostgreSQL error codes (SQLSTATE) that mean "cannot use this database at all", with what to tell the user. */
const OPEN_FAILURES: Readonly<Record<string, string>> = {
  '28P01': 'the password was refused',
  '28000': 'the user is not allowed to connect (pg_hba.conf, or no such role)',
  '3D000': 'the database does not exist; create it (createdb), or fix the URL',
  '42501': 'the user lacks a privilege the ledger needs (CREATE on the database for the first run, then SELECT/INSERT/UPDATE/DELETE on its tables)',
  '53300': 'the server has no free connection slots',
  '57P03': 'the server is starting up or shutting down',
};

/**
 * What went wrong, as a HoldfastError naming `shown` (the redacted URL):
 * HOLDFAST_E_LEDGER_UNREACHABLE for connection-level failures (transient: the
 * server may come back), HOLDFAST_E_LEDGER_OPEN for refusals that need a
 * person (auth, missing database, privileges).
 */
export function postgresError(e: unknown, shown: string): HoldfastError {
  if (e instanceof HoldfastError && e.code.startsWith('HOLDFAST_E_LEDGER')) return e;
  const code = typeof (e as { code?: unknown })?.code === 'string' ? (e as { code: string }).code : '';
  const message = e instanceof Error ? e.message : String(e);
  const refusal = OPEN_FAILURES[code];
  if (refusal !== undefined) return new HoldfastError('HOLDFAST_E_LEDGER_OPEN', { path: shown, detail: `${refusal} (${code}: ${message})` }, { cause: e });
  const classified = classifyError(e, 'HOLDFAST_E_LEDGER_WRITE');
  if (classified.code === 'HOLDFAST_E_NETWORK' || classified.code === 'HOLDFAST_E_TIMEOUT' || /terminat|Connection ended|connection timeout/i.test(message) || code === '57P01') {
    return new HoldfastError('HOLDFAST_E_LEDGER_UNREACHABLE', { url: shown, detail: message }, { cause: e });
  }
  return classified;
}

/** Opens (migrating if needed) the PostgreSQL ledger at `url`. */
export async function openPostgresLedger(url: string, options: OpenPostgresOptions = {}): Promise<KyselyLedger> {
  const shown = redactLedgerUrl(url);
  const poolSize = options.poolSize ?? 4;
  if (!Number.isInteger(poolSize) || poolSize < 1 || poolSize > 100) throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `the ledger's pool size must be from 1 to 100, got ${poolSize}` });
  let pool: Pool;
  try {
    pool = new pg.Pool({
      connectionString: url,
      max: poolSize,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
      // A connection the server dropped (restart, failover) is replaced on the next checkout.
      idleTimeoutMillis: 30_000,
      application_name: 'holdfast',
    });
  } catch (e) {
    throw new HoldfastError('HOLDFAST_E_CONFIG', { detail: `the ledger URL ${shown} is not usable: ${(e as Error).message}` }, { cause: e });
  }
  // An idle connection the server drops must not crash the process: the next query reconnects.
  pool.on('error', () => undefined);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    if (options.readOnly === true) {
      await requireMigrated(db, shown);
    } else {
      await migrateToLatest(db, 'postgres');
    }
  } catch (e) {
    await db.destroy().catch(() => undefined);
    throw postgresError(e, shown);
  }
  return new KyselyLedger(db, { dialect: 'postgres', location: shown, classify: (e) => postgresError(e, shown), ...(options.now ? { now: options.now } : {}) });
}

/** A read-only open: the schema must already be there, at this version. */
async function requireMigrated(db: Kysely<Database>, shown: string): Promise<void> {
  const exists = await sql<{ t: string | null }>`select to_regclass('holdfast_migrations')::text as t`.execute(db);
  const applied = exists.rows[0]?.t ? (await db.selectFrom('holdfast_migrations').select('name').execute()).map((r) => r.name) : [];
  const missing = MIGRATIONS.filter((m) => !applied.includes(m.name));
  if (missing.length > 0) {
    throw new HoldfastError('HOLDFAST_E_LEDGER_OPEN', {
      path: shown,
      detail: applied.length === 0 ? 'there is no ledger in this database yet (nothing was pushed with it)' : `the ledger needs migration ${missing.map((m) => m.name).join(', ')}; this command only reads: run a writing command (e.g. holdfast push) once`,
    });
  }
}
