// The ledger room's public surface: the interface, opening, and the pieces a
// second dialect or a test needs (the kysely implementation, migrations).

export type {
  ClaimOptions,
  FileCacheEntry,
  Ledger,
  OpenLedgerOptions,
  Outcome,
  OutcomeResult,
  OutcomeStatus,
  PlannedUpload,
  StartRunInput,
  StatusCount,
  TouchedObject,
} from './ledger.js';
export { LEDGER_FILE_NAME, defaultStateDir, ledgerPath, openLedger } from './open.js';
export { DEFAULT_BUSY_TIMEOUT_MS, openSqliteDatabase, openSqliteLedger } from './sqlite.js';
export type { OpenSqliteOptions, SqliteHandle } from './sqlite.js';
export { DIALECT_TRAITS, KyselyLedger, writeTransaction } from './kysely-ledger.js';
export type { DialectTraits, KyselyLedgerOptions } from './kysely-ledger.js';
export { MIGRATIONS, appliedMigrations, migrateToLatest } from './migrations/index.js';
export type { Migration } from './migrations/index.js';
export type { Database, DialectName } from './schema.js';
