// Runs the numbered migrations at open, in order, each at most once, in one
// write transaction (the same on both dialects: SQLite and PostgreSQL both
// have transactional DDL). A ledger written by a newer Holdfast is refused
// rather than misread.

import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { HoldfastError } from '../../core/errors.js';
import { DIALECT_TRAITS, toNumber, writeTransaction } from '../kysely-ledger.js';
import type { Database, DialectName } from '../schema.js';

export interface Migration {
  /** Sorts in application order: "001-initial", "002-...". Never renamed once released. */
  readonly name: string;
  /** Typed against no schema on purpose: a migration sees the database as it was, not as the code is now. */
  up(db: Kysely<unknown>, dialect: DialectName): Promise<void>;
}

/** Applies the pending migrations; returns the names applied now (empty when up to date). */
export async function runMigrations(db: Kysely<Database>, dialect: DialectName, migrations: readonly Migration[]): Promise<string[]> {
  const known = new Set(migrations.map((m) => m.name));
  return writeTransaction(db, DIALECT_TRAITS[dialect], async (trx) => {
    if (dialect === 'postgres') {
      // Two processes opening a fresh database at once: the second waits here
      // instead of failing on CREATE TABLE. (SQLite's BEGIN IMMEDIATE already serializes.)
      await sql`select pg_advisory_xact_lock(${0x686f6c64})`.execute(trx);
    }
    await trx.schema
      .createTable('holdfast_migrations')
      .ifNotExists()
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('applied_at', 'bigint', (c) => c.notNull())
      .execute();
    const applied = new Set((await trx.selectFrom('holdfast_migrations').select('name').execute()).map((r) => r.name));
    const unknown = [...applied].filter((n) => !known.has(n));
    if (unknown.length > 0) {
      throw new HoldfastError('HOLDFAST_E_INTERNAL', {
        detail: `the ledger has migrations this version of holdfast does not know (${unknown.join(', ')}); upgrade holdfast`,
      });
    }
    const done: string[] = [];
    for (const m of [...migrations].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      if (applied.has(m.name)) continue;
      await m.up(trx as unknown as Kysely<unknown>, dialect);
      await trx.insertInto('holdfast_migrations').values({ name: m.name, applied_at: Date.now() }).execute();
      done.push(m.name);
    }
    return done;
  });
}

/** The names of the migrations applied to this database, in order. */
export async function appliedMigrations(db: Kysely<Database>): Promise<{ name: string; appliedAt: number }[]> {
  const rows = await db.selectFrom('holdfast_migrations').selectAll().orderBy('name').execute();
  return rows.map((r) => ({ name: r.name, appliedAt: toNumber(r.applied_at) }));
}
