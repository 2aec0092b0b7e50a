// Migration 001: the ledger's tables (DESIGN §4). Written with kysely's schema
// builder so the same file runs on SQLite and PostgreSQL; the two places where
// the dialects differ (identity columns, the key collation) are the helpers
// below, nowhere else.

import { sql } from 'kysely';
import type { ColumnDefinitionBuilder, CreateTableBuilder, Kysely } from 'kysely';
import type { DialectName } from '../schema.js';
import type { Migration } from './runner.js';

/** An auto-assigned primary key that is never reused (history keeps ids of deleted rows). */
function withId<T extends string>(table: CreateTableBuilder<T>, dialect: DialectName): CreateTableBuilder<T, 'id'> {
  return dialect === 'postgres'
    ? table.addColumn('id', 'bigint', (c) => c.generatedByDefaultAsIdentity().primaryKey())
    : // AUTOINCREMENT: without it SQLite may hand a deleted row's id to a new row.
      table.addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement());
}

/**
 * Keys sort in UTF-8 byte order so the ledger's order matches the scanner's
 * (Buffer.compare) in the merge-join. SQLite's default BINARY collation on a
 * UTF-8 database already is byte order; PostgreSQL needs COLLATE "C".
 */
function byteOrdered(dialect: DialectName): (c: ColumnDefinitionBuilder) => ColumnDefinitionBuilder {
  return (c) => (dialect === 'postgres' ? c.modifyFront(sql`collate "C"`).notNull() : c.notNull());
}

export const migration001: Migration = {
  name: '001-initial',
  async up(db: Kysely<unknown>, dialect: DialectName): Promise<void> {
    await withId(db.schema.createTable('destinations'), dialect)
      .addColumn('url', 'text', (c) => c.notNull().unique())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('settings', 'text', (c) => c.notNull().defaultTo('{}'))
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('last_upload_at', 'bigint')
      .addColumn('last_status', 'text')
      .addColumn('last_error', 'text')
      .addColumn('consecutive_failures', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();

    await withId(db.schema.createTable('objects'), dialect)
      .addColumn('destination_id', 'bigint', (c) => c.notNull().references('destinations.id'))
      .addColumn('key', 'text', byteOrdered(dialect))
      .addColumn('source_path', 'text')
      .addColumn('size', 'bigint')
      // mtime is a file attribute, not a ledger time: fs.stat's mtimeMs has a
      // fraction, and change detection compares it exactly, so store a double.
      .addColumn('mtime_ms', 'double precision')
      .addColumn('sha256', 'text')
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('attempt', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('attempt_id', 'text')
      .addColumn('lease_owner', 'text')
      .addColumn('lease_until', 'bigint')
      .addColumn('upload_id', 'text')
      .addColumn('etag', 'text')
      .addColumn('version_id', 'text')
      .addColumn('error_code', 'text')
      .addColumn('error_message', 'text')
      .addColumn('next_attempt_at', 'bigint')
      .addColumn('verified_at', 'bigint')
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      // Also the index behind streamObjects' keyset pagination.
      .addUniqueConstraint('objects_destination_key', ['destination_id', 'key'])
      .execute();
    // (destination_id, status, key): claim filters by status and takes rows in
    // key order; the leading pair also serves countByStatus and listInProgress.
    await db.schema.createIndex('objects_destination_status').on('objects').columns(['destination_id', 'status', 'key']).execute();

    await db.schema
      .createTable('parts')
      .addColumn('object_id', 'bigint', (c) => c.notNull().references('objects.id').onDelete('cascade'))
      .addColumn('upload_id', 'text', (c) => c.notNull())
      .addColumn('part_number', 'integer', (c) => c.notNull())
      .addColumn('size', 'bigint', (c) => c.notNull())
      .addColumn('etag', 'text', (c) => c.notNull())
      .addColumn('checksum', 'text')
      .addPrimaryKeyConstraint('parts_pk', ['object_id', 'upload_id', 'part_number'])
      .execute();

    await withId(db.schema.createTable('runs'), dialect)
      .addColumn('command', 'text', (c) => c.notNull())
      .addColumn('destination_id', 'bigint', (c) => c.references('destinations.id'))
      .addColumn('source', 'text')
      .addColumn('owner', 'text', (c) => c.notNull())
      .addColumn('started_at', 'bigint', (c) => c.notNull())
      .addColumn('finished_at', 'bigint')
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('summary', 'text')
      .execute();

    // Append-only. No foreign keys to objects or runs: the audit trail must
    // outlive the rows it describes (forgetObjects, pruning old runs).
    // object_id and to_status are null for actions that touch no row (e.g. cleanup
    // aborting a stale multipart upload of a key the ledger does not know).
    await withId(db.schema.createTable('history'), dialect)
      .addColumn('object_id', 'bigint')
      .addColumn('destination_id', 'bigint', (c) => c.notNull())
      .addColumn('key', 'text', byteOrdered(dialect))
      .addColumn('run_id', 'bigint')
      .addColumn('from_status', 'text')
      .addColumn('to_status', 'text')
      .addColumn('attempt_id', 'text')
      .addColumn('error_code', 'text')
      .addColumn('error_message', 'text')
      .addColumn('note', 'text')
      .addColumn('at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('history_destination_key').on('history').columns(['destination_id', 'key']).execute();

    // Not written yet; created now so the relay can arrive without a migration.
    await withId(db.schema.createTable('outbox'), dialect)
      .addColumn('topic', 'text', (c) => c.notNull())
      .addColumn('payload', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('delivered_at', 'bigint')
      .execute();

    await db.schema
      .createTable('file_cache')
      .addColumn('path', 'text', (c) => c.primaryKey())
      .addColumn('size', 'bigint', (c) => c.notNull())
      .addColumn('mtime_ms', 'double precision', (c) => c.notNull())
      .addColumn('ino', 'bigint', (c) => c.notNull())
      .addColumn('sha256', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .execute();
  },
};
