// The ledger's tables as kysely sees them (snake_case, as stored). Both
// dialects share this shape; the migrations in ./migrations create it.
//
// Integers: SQLite hands back JS numbers, PostgreSQL's `pg` hands back int8
// (bigint) columns as strings. Every integer column is therefore typed
// `number | string` on read and must go through `toNumber` (kysely-ledger.ts)
// before it leaves the ledger; writes always pass numbers.

import type { ColumnType } from 'kysely';

/** The SQL dialects the ledger runs on. Migrations and a few queries branch on it. */
export type DialectName = 'sqlite' | 'postgres';

/** An integer column: number | string when read (int8 in PostgreSQL), number when written. */
export type Int = ColumnType<number | string, number, number>;
/** A nullable integer column. */
export type NullableInt = ColumnType<number | string | null, number | null | undefined, number | null>;
/** An id assigned by the database. */
export type GeneratedId = ColumnType<number | string, never, never>;
/** An integer column with a database default. */
export type IntWithDefault = ColumnType<number | string, number | undefined, number>;
/** Text column with a database default. */
export type TextWithDefault = ColumnType<string, string | undefined, string>;

export interface DestinationsTable {
  id: GeneratedId;
  url: string;
  /** namespace + prefix (src/backends/location.ts); unique; null on rows from before migration 002 until first used. */
  identity: string | null;
  namespace: string | null;
  kind: string;
  /** JSON text (not a json type: the same on both dialects). */
  settings: TextWithDefault;
  created_at: Int;
  last_upload_at: NullableInt;
  last_status: string | null;
  last_error: string | null;
  consecutive_failures: IntWithDefault;
}

export interface ObjectsTable {
  id: GeneratedId;
  destination_id: Int;
  /** Compared in UTF-8 byte order (SQLite BINARY, PostgreSQL COLLATE "C"). */
  key: string;
  source_path: string | null;
  size: NullableInt;
  mtime_ms: NullableInt;
  sha256: string | null;
  status: string;
  attempt: IntWithDefault;
  attempt_id: string | null;
  lease_owner: string | null;
  lease_until: NullableInt;
  upload_id: string | null;
  etag: string | null;
  version_id: string | null;
  error_code: string | null;
  error_message: string | null;
  next_attempt_at: NullableInt;
  verified_at: NullableInt;
  /** Which source the row's file belongs to ("host:root" or a shared source's name); null on rows from before migration 003. */
  source_id: string | null;
  created_at: Int;
  updated_at: Int;
}

export interface PartsTable {
  object_id: Int;
  upload_id: string;
  part_number: Int;
  size: Int;
  etag: string;
  checksum: string | null;
}

export interface HistoryTable {
  id: GeneratedId;
  /** No foreign key: history outlives the rows it describes (forgetObjects). Null: an action on no row. */
  object_id: NullableInt;
  destination_id: Int;
  key: string;
  run_id: NullableInt;
  from_status: string | null;
  /** Null: an action that changed no status (see note). */
  to_status: string | null;
  attempt_id: string | null;
  error_code: string | null;
  error_message: string | null;
  note: string | null;
  at: Int;
}

export interface RunsTable {
  id: GeneratedId;
  command: string;
  destination_id: NullableInt;
  source: string | null;
  owner: string;
  started_at: Int;
  finished_at: NullableInt;
  status: string;
  /** JSON text. */
  summary: string | null;
}

export interface OutboxTable {
  id: GeneratedId;
  topic: string;
  /** JSON text. */
  payload: string;
  created_at: Int;
  delivered_at: NullableInt;
}

export interface FileCacheTable {
  /** The machine the file is on: a path names a file only on one host. */
  host: string;
  path: string;
  size: Int;
  mtime_ms: Int;
  ino: Int;
  sha256: string;
  updated_at: Int;
}

/** One process working on the ledger (a CLI run, watch, serve). */
export interface WorkersTable {
  /** host:pid:nonce, as written to objects.lease_owner. */
  id: string;
  host: string;
  pid: Int;
  command: string;
  source_id: string | null;
  started_at: Int;
  /** Last sign of life, on the ledger's clock. */
  heartbeat_at: Int;
  /** When it ended cleanly; null while running (or after a crash). */
  stopped_at: NullableInt;
}

export interface MigrationsTable {
  name: string;
  applied_at: Int;
}

export interface Database {
  workers: WorkersTable;
  destinations: DestinationsTable;
  objects: ObjectsTable;
  parts: PartsTable;
  history: HistoryTable;
  runs: RunsTable;
  outbox: OutboxTable;
  file_cache: FileCacheTable;
  holdfast_migrations: MigrationsTable;
}
