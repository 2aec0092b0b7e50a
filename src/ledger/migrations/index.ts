// The migration sequence, in order. Both dialects run exactly this list.
// Add a migration by adding a numbered file and listing it here; never edit
// or rename one that has been released.

import type { Kysely } from 'kysely';
import type { Database, DialectName } from '../schema.js';
import { migration001 } from './001-initial.js';
import { migration002 } from './002-destination-identity.js';
import { migration003 } from './003-workers.js';
import { runMigrations } from './runner.js';
import type { Migration } from './runner.js';

export const MIGRATIONS: readonly Migration[] = [migration001, migration002, migration003];

/** Brings the database to the latest schema; returns the migrations applied now. */
export function migrateToLatest(db: Kysely<Database>, dialect: DialectName): Promise<string[]> {
  return runMigrations(db, dialect, MIGRATIONS);
}

export { appliedMigrations } from './runner.js';
export type { Migration } from './runner.js';
