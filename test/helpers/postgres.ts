// A real PostgreSQL for tests: the server named by HOLDFAST_TEST_PG (default
// postgres://postgres@127.0.0.1:5432/postgres), one fresh database per test
// file (dropped afterwards) and, inside it, one schema per ledger a test opens.
// A machine without PostgreSQL skips the PostgreSQL suites with one line saying
// why and how to point them at a server; with HOLDFAST_TEST_PG_REQUIRED=1 (CI)
// an unreachable server fails them instead.

import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const PG_ADMIN_URL = process.env.HOLDFAST_TEST_PG !== undefined && process.env.HOLDFAST_TEST_PG !== '' ? process.env.HOLDFAST_TEST_PG : 'postgres://postgres@127.0.0.1:5432/postgres';
const REQUIRED = process.env.HOLDFAST_TEST_PG_REQUIRED === '1';

export interface TestDatabase {
  /** The new database's URL. */
  readonly url: string;
  /** A URL whose connections use a fresh schema of their own (search_path), for one isolated ledger. */
  schemaUrl(): Promise<string>;
  /** Drops the database (its connections are closed first). */
  drop(): Promise<void>;
}

async function admin<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

/**
 * Why the PostgreSQL suites cannot run here (undefined: they can). Throws,
 * instead of returning a reason, when HOLDFAST_TEST_PG_REQUIRED=1.
 */
export async function postgresUnavailable(): Promise<string | undefined> {
  try {
    await admin(PG_ADMIN_URL, (c) => c.query('select 1'));
    return undefined;
  } catch (e) {
    const why = `PostgreSQL suites skipped: cannot reach ${redact(PG_ADMIN_URL)} (${(e as Error).message}); set HOLDFAST_TEST_PG=postgres://user@host:port/db to a server where that user may create databases`;
    if (REQUIRED) throw new Error(`${why} — and HOLDFAST_TEST_PG_REQUIRED=1 says they must run`, { cause: e });
    console.log(why);
    return why;
  }
}

function redact(url: string): string {
  const u = new URL(url);
  if (u.password !== '') u.password = '***';
  return u.toString();
}

/** Creates a fresh database on the test server. */
export async function createTestDatabase(tag: string): Promise<TestDatabase> {
  const name = `holdfast_test_${tag}_${process.pid}_${randomBytes(3).toString('hex')}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  await admin(PG_ADMIN_URL, (c) => c.query(`create database ${name}`));
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${name}`;
  const url = u.toString();
  let schemas = 0;
  return {
    url,
    async schemaUrl(): Promise<string> {
      const schema = `s${++schemas}`;
      await admin(url, (c) => c.query(`create schema ${schema}`));
      const s = new URL(url);
      s.searchParams.set('options', `-c search_path=${schema}`);
      return s.toString();
    },
    async drop(): Promise<void> {
      await admin(PG_ADMIN_URL, async (c) => {
        await c.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [name]);
        await c.query(`drop database if exists ${name}`);
      });
    },
  };
}
