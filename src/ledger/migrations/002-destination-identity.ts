// Migration 002: a destination's identity includes its endpoint or account
// (DESIGN §4 "Identity"). Until now a row was keyed by its URL alone, so
// `s3://docs/p` on two servers shared one row, and a push to the second
// server was told "skipped, already there" without sending anything.
//
// `url` stays (what reports show) but is no longer unique; `identity`
// (namespace + prefix, see src/backends/location.ts) becomes the key, with
// `namespace` beside it for overlap checks. Rows of file:// destinations get
// their identity here (a path has no endpoint). Rows of other schemes keep a
// null identity: which endpoint they were made with is not recorded anywhere,
// so the first run that uses the URL claims the row for its endpoint
// (KyselyLedger.ensureDestination); docs/ledger.md says so.
//
// SQLite cannot drop the UNIQUE constraint of a column, so the table is
// rebuilt; foreign keys that point at it are deferred to the commit, by which
// time the new table holds every id again.

import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { fileURLToPath } from 'node:url';
import type { DialectName } from '../schema.js';
import type { Migration } from './runner.js';

/** The identity of a file:// row: "file://" + its absolute directory + "/". Undefined when the URL is not a usable file URL. */
export function fileIdentity(url: string): { identity: string; namespace: string } | undefined {
  try {
    const path = fileURLToPath(url);
    return { identity: `file://${path.endsWith('/') ? path : `${path}/`}`, namespace: 'file://' };
  } catch {
    return undefined;
  }
}

export const migration002: Migration = {
  name: '002-destination-identity',
  async up(db: Kysely<unknown>, dialect: DialectName): Promise<void> {
    if (dialect === 'sqlite') {
      // Keep the rows aside, drop the table, create it anew and put the rows back, ids unchanged.
      // The references to it (objects, runs) are checked at commit, not at the drop: each row
      // put back settles the references the drop had left pending.
      await sql`pragma defer_foreign_keys = on`.execute(db);
      await sql`create temp table destinations_001 as select * from destinations`.execute(db);
      await sql`drop table destinations`.execute(db);
      await sql`
        create table destinations (
          id integer primary key autoincrement,
          url text not null,
          identity text,
          namespace text,
          kind text not null,
          settings text not null default '{}',
          created_at bigint not null,
          last_upload_at bigint,
          last_status text,
          last_error text,
          consecutive_failures integer not null default 0
        )`.execute(db);
      await sql`
        insert into destinations (id, url, kind, settings, created_at, last_upload_at, last_status, last_error, consecutive_failures)
        select id, url, kind, settings, created_at, last_upload_at, last_status, last_error, consecutive_failures from destinations_001 order by id`.execute(db);
      await sql`drop table destinations_001`.execute(db);
    } else {
      // The name PostgreSQL gives an inline UNIQUE constraint: <table>_<column>_key.
      await sql`alter table destinations drop constraint if exists destinations_url_key`.execute(db);
      await sql`alter table destinations add column identity text`.execute(db);
      await sql`alter table destinations add column namespace text`.execute(db);
    }
    await sql`create unique index destinations_identity on destinations (identity)`.execute(db);
    await sql`create index destinations_url on destinations (url)`.execute(db);

    const rows = await sql<{ id: number | string; url: string }>`select id, url from destinations where kind = 'file' order by id`.execute(db);
    const given = new Set<string>();
    for (const r of rows.rows) {
      const id = fileIdentity(r.url);
      // Two spellings of one directory (never written by Holdfast, which normalises): the first keeps it.
      if (id === undefined || given.has(id.identity)) continue;
      given.add(id.identity);
      await sql`update destinations set identity = ${id.identity}, namespace = ${id.namespace} where id = ${r.id}`.execute(db);
    }
  },
};
