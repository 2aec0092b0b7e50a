// Migration 003: workers and sources (DESIGN §4, §10), for many processes on
// one ledger.
//
// - `workers`: one row per live process (CLI run, watch, serve), with a
//   heartbeat on the database's clock. A worker whose heartbeat stopped is
//   dead, and its leases may be taken over before they expire.
// - `objects.source_id`: which source a row's file belongs to ("host:root",
//   or a name the user gives a shared source). A worker claims, forgets and
//   deletes only rows of its own source, so two hosts with different files
//   under the same path never act on each other's rows, and two hosts that
//   mount one shared source split its work. Older rows have none: any source
//   may take them (the first to plan one sets it).
// - `file_cache` is keyed by (host, path): /data/a.txt on two hosts is two
//   files. The old cache is dropped (a cache: it costs one re-hash).

import type { Kysely } from 'kysely';
import type { DialectName } from '../schema.js';
import type { Migration } from './runner.js';

export const migration003: Migration = {
  name: '003-workers',
  async up(db: Kysely<unknown>, _dialect: DialectName): Promise<void> {
    await db.schema
      .createTable('workers')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('host', 'text', (c) => c.notNull())
      .addColumn('pid', 'integer', (c) => c.notNull())
      .addColumn('command', 'text', (c) => c.notNull())
      .addColumn('source_id', 'text')
      .addColumn('started_at', 'bigint', (c) => c.notNull())
      .addColumn('heartbeat_at', 'bigint', (c) => c.notNull())
      .addColumn('stopped_at', 'bigint')
      .execute();
    await db.schema.createIndex('workers_heartbeat').on('workers').column('heartbeat_at').execute();

    await db.schema.alterTable('objects').addColumn('source_id', 'text').execute();
    // Leases by owner: what `holdfast workers` counts, and what a dead worker's takeover looks for.
    await db.schema.createIndex('objects_lease_owner').on('objects').columns(['lease_owner', 'status']).execute();

    await db.schema.dropTable('file_cache').execute();
    await db.schema
      .createTable('file_cache')
      .addColumn('host', 'text', (c) => c.notNull())
      .addColumn('path', 'text', (c) => c.notNull())
      .addColumn('size', 'bigint', (c) => c.notNull())
      .addColumn('mtime_ms', 'double precision', (c) => c.notNull())
      .addColumn('ino', 'bigint', (c) => c.notNull())
      .addColumn('sha256', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('file_cache_pk', ['host', 'path'])
      .execute();
  },
};
