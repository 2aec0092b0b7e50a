// The SQLite ledger: the conformance suite against real database files, plus
// what only SQLite has (file modes, WAL, busy_timeout, opening and migrating
// a file) and the migration SQL the PostgreSQL dialect will run.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { DummyDriver, Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler, SqliteDialect } from 'kysely';
import { isHoldfastError } from '../../src/core/errors.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import { appliedMigrations, migrateToLatest, MIGRATIONS } from '../../src/ledger/migrations/index.js';
import { runMigrations } from '../../src/ledger/migrations/runner.js';
import { defaultStateDir, ledgerPath, openLedger } from '../../src/ledger/open.js';
import type { Database } from '../../src/ledger/schema.js';
import { openSqliteDatabase, openSqliteLedger } from '../../src/ledger/sqlite.js';
import { ledgerConformance } from '../conformance/ledger-suite.js';
import { destinationRef } from '../helpers/destinations.js';

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'holdfast-'));
  tempDirs.push(dir);
  return dir;
}
after(() => {
  for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
});

function modeOf(p: string): number {
  return fs.statSync(p).mode & 0o777;
}

async function rejectsWithCode(p: Promise<unknown>, code: string): Promise<unknown> {
  let caught: unknown;
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isHoldfastError(e), `expected a HoldfastError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    caught = e;
    return true;
  });
  return caught;
}

ledgerConformance('sqlite', async () => {
  const dir = tempDir();
  const ledger = await openLedger({ stateDir: dir });
  return {
    ledger,
    async cleanup() {
      await ledger.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
});

void describe('sqlite ledger: migration 002 (destination identity)', () => {
  void it('an existing ledger keeps every row; file:// rows get their identity; others are claimed by the first run that uses their URL', async () => {
    const file = path.join(tempDir(), 'holdfast.db');
    // A ledger as the previous version left it: migration 001 only, with rows that reference destinations.
    const old = new Kysely<Database>({ dialect: new SqliteDialect({ database: openSqliteDatabase(file) }) });
    await runMigrations(old, 'sqlite', MIGRATIONS.slice(0, 1));
    const now = Date.now();
    for (const [url, kind] of [
      ['file:///srv/backup%20one', 'file'],
      ['s3://docs/p/', 's3'],
    ] as const) {
      await old.insertInto('destinations').values({ url, kind, created_at: now }).execute();
    }
    const dests = await old.selectFrom('destinations').select(['id', 'url']).orderBy('id').execute();
    const s3Id = Number(dests[1]!.id);
    await old.insertInto('objects').values({ destination_id: s3Id, key: 'a.txt', status: 'upload_completed', sha256: 'a'.repeat(64), size: 1, created_at: now, updated_at: now }).execute();
    await old.insertInto('runs').values({ command: 'push', destination_id: s3Id, owner: 'o', started_at: now, status: 'completed' }).execute();
    await old.destroy();

    const ledger = await openSqliteLedger(file);
    try {
      const [f, s3] = await ledger.listDestinations();
      assert.equal(f?.identity, 'file:///srv/backup one/');
      assert.equal(f?.namespace, 'file://');
      assert.equal(s3?.identity, null, 'the endpoint of an old s3:// row was never recorded');
      // The first run on the URL (here through MinIO) claims the row, with its objects.
      const claimed = await ledger.ensureDestination({ url: 's3://docs/p/', kind: 's3', location: { namespace: 's3+http://127.0.0.1:9000/docs/', prefix: 'p/' } });
      assert.equal(claimed.id, s3Id);
      assert.equal(claimed.identity, 's3+http://127.0.0.1:9000/docs/p/');
      assert.equal((await ledger.getObject(s3Id, 'a.txt'))?.status, 'upload_completed');
      // Another endpoint with the same URL is another destination, with nothing in it.
      const aws = await ledger.ensureDestination({ url: 's3://docs/p/', kind: 's3', location: { namespace: 's3://docs/', prefix: 'p/' } });
      assert.notEqual(aws.id, s3Id);
      assert.equal(await ledger.getObject(aws.id, 'a.txt'), undefined);
      // New destinations still get fresh ids after the table was rebuilt.
      const next = await ledger.ensureDestination(destinationRef('file:///elsewhere'));
      assert.ok(next.id > aws.id);
    } finally {
      await ledger.close();
    }
    const raw = new BetterSqlite3(file, { readonly: true });
    try {
      assert.deepEqual(raw.prepare('pragma foreign_key_check').all(), [], 'every reference to destinations still resolves');
      assert.deepEqual(
        raw.prepare("select name from holdfast_migrations order by name").all().map((r) => (r as { name: string }).name),
        MIGRATIONS.map((m) => m.name),
      );
    } finally {
      raw.close();
    }
  });
});

void describe('sqlite ledger: files and connection', () => {
  void it('creates a 0700 state dir and a 0600 database (and -wal/-shm), whatever the umask', async () => {
    const root = tempDir();
    const stateDir = path.join(root, 'nested', 'state');
    const old = process.umask(0o000);
    let ledger: Ledger;
    try {
      ledger = await openLedger({ stateDir });
    } finally {
      process.umask(old);
    }
    try {
      await ledger.ensureDestination(destinationRef('file:///x', 'file'));
      const file = ledgerPath(stateDir);
      assert.equal(ledger.location, file);
      assert.equal(ledger.dialect, 'sqlite');
      assert.equal(modeOf(stateDir), 0o700);
      assert.equal(modeOf(file), 0o600);
      for (const suffix of ['-wal', '-shm']) {
        if (fs.existsSync(file + suffix)) assert.equal(modeOf(file + suffix), 0o600, suffix);
      }
    } finally {
      await ledger.close();
    }
  });

  void it('turns on WAL, synchronous=FULL (a commit survives a power loss), foreign keys and busy_timeout', () => {
    const file = path.join(tempDir(), 'p.db');
    const db = openSqliteDatabase(file, { busyTimeoutMs: 1234 });
    try {
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      assert.equal(db.pragma('synchronous', { simple: true }), 2); // FULL
      assert.equal(db.pragma('foreign_keys', { simple: true }), 1);
      assert.equal(db.pragma('busy_timeout', { simple: true }), 1234);
    } finally {
      db.close();
    }
    // WAL is a property of the file: another connection sees it too.
    const other = new BetterSqlite3(file);
    try {
      assert.equal(other.pragma('journal_mode', { simple: true }), 'wal');
    } finally {
      other.close();
    }
  });

  void it('migrations run once: reopening keeps the data and applies nothing', async () => {
    const dir = tempDir();
    const first = await openLedger({ stateDir: dir });
    const dest = await first.ensureDestination(destinationRef('file:///keep', 'file'));
    await first.planUploads(dest.id, [{ key: 'k', sourcePath: '/k', size: 1, mtimeMs: 1, sha256: 'x', reason: 'new' }], null);
    await first.close();

    const second = await openSqliteLedger(ledgerPath(dir));
    try {
      assert.equal((await second.getObject(dest.id, 'k'))?.status, 'upload_pending');
    } finally {
      await second.close();
    }

    const handle = openSqliteDatabase(ledgerPath(dir));
    const { SqliteDialect } = await import('kysely');
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: handle }) });
    try {
      assert.deepEqual(await migrateToLatest(db, 'sqlite'), []);
      assert.deepEqual(
        (await appliedMigrations(db)).map((m) => m.name),
        MIGRATIONS.map((m) => m.name),
      );
    } finally {
      await db.destroy();
    }
  });

  void it('refuses a ledger written by a newer holdfast (unknown migration)', async () => {
    const dir = tempDir();
    await (await openLedger({ stateDir: dir })).close();
    const raw = new BetterSqlite3(ledgerPath(dir));
    raw.prepare('insert into holdfast_migrations (name, applied_at) values (?, ?)').run('999-from-the-future', 1);
    raw.close();
    const e = await rejectsWithCode(openLedger({ stateDir: dir }), 'HOLDFAST_E_LEDGER_OPEN');
    assert.match((e as Error).message, /999-from-the-future/);
    assert.match((e as Error).message, new RegExp(ledgerPath(dir).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  });

  void it('a failing migration leaves nothing half-applied', async () => {
    const file = path.join(tempDir(), 'm.db');
    const { SqliteDialect, sql } = await import('kysely');
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: openSqliteDatabase(file) }) });
    try {
      const broken = {
        name: '999-broken',
        async up(k: Kysely<unknown>) {
          await k.schema.createTable('half').addColumn('x', 'integer').execute();
          await sql`this is not sql`.execute(k);
        },
      };
      await assert.rejects(runMigrations(db, 'sqlite', [...MIGRATIONS, broken]));
      const tables = await sql<{ name: string }>`select name from sqlite_master where type = 'table' and name in ('half', 'objects')`.execute(db);
      assert.deepEqual(tables.rows, [], 'the whole sequence rolled back');
      assert.deepEqual(await migrateToLatest(db, 'sqlite'), MIGRATIONS.map((m) => m.name));
    } finally {
      await db.destroy();
    }
  });

  void it('opening errors name the path', async () => {
    const dir = tempDir();
    const blocker = path.join(dir, 'not-a-dir');
    fs.writeFileSync(blocker, 'x');
    const e = await rejectsWithCode(openLedger({ stateDir: path.join(blocker, 'state') }), 'HOLDFAST_E_LEDGER_OPEN');
    assert.match((e as Error).message, /not-a-dir/);

    const garbageDir = tempDir();
    fs.writeFileSync(ledgerPath(garbageDir), Buffer.alloc(4096, 7));
    await rejectsWithCode(openLedger({ stateDir: garbageDir }), 'HOLDFAST_E_LEDGER_OPEN');
  });

  void it('a ledger URL of another kind is refused without showing its password', async () => {
    const e = await rejectsWithCode(openLedger({ url: 'mysql://u:secret@h/db' }), 'HOLDFAST_E_CONFIG');
    assert.doesNotMatch((e as Error).message, /secret/);
  });

  void it('waits busy_timeout for a write lock held elsewhere, then fails with HOLDFAST_E_LEDGER_BUSY', async () => {
    const dir = tempDir();
    const ledger = await openLedger({ stateDir: dir, busyTimeoutMs: 300 });
    const dest = await ledger.ensureDestination(destinationRef('file:///busy', 'file'));
    const other = new BetterSqlite3(ledgerPath(dir));
    try {
      other.exec('begin immediate');
      const started = Date.now();
      const e = await rejectsWithCode(
        ledger.planUploads(dest.id, [{ key: 'k', sourcePath: '/k', size: 1, mtimeMs: 1, sha256: 'x', reason: 'new' }], null),
        'HOLDFAST_E_LEDGER_BUSY',
      );
      const waited = Date.now() - started;
      assert.ok(waited >= 250, `waited ${waited} ms`);
      assert.ok(waited < 5000, `waited ${waited} ms`);
      assert.equal((e as { transient: boolean }).transient, true);
      // Reads still work in WAL mode while another connection writes.
      assert.equal(await ledger.getObject(dest.id, 'k'), undefined);
      other.exec('rollback');
      // Once the lock is gone the same call goes through: nothing was left half-done.
      await ledger.planUploads(dest.id, [{ key: 'k', sourcePath: '/k', size: 1, mtimeMs: 1, sha256: 'x', reason: 'new' }], null);
      assert.equal((await ledger.history(dest.id, 'k')).length, 1);
    } finally {
      other.close();
      await ledger.close();
    }
  });

  void it('delete statuses: claim, outcome, and a key that comes back', async () => {
    // The interface has no planDeletes yet, so the row is put in delete_pending by hand.
    const dir = tempDir();
    const ledger = await openLedger({ stateDir: dir });
    try {
      const dest = await ledger.ensureDestination(destinationRef('file:///del', 'file'));
      await ledger.planUploads(dest.id, [{ key: 'd', sourcePath: '/d', size: 1, mtimeMs: 1, sha256: 'x', reason: 'new' }], null);
      const raw = new BetterSqlite3(ledgerPath(dir));
      raw.prepare(`update objects set status = 'delete_pending' where key = 'd'`).run();
      raw.close();
      assert.deepEqual(await ledger.claim({ destinationId: dest.id, owner: 'o', limit: 5, leaseMs: 1000, runId: null }), []);
      const [d] = await ledger.claim({ destinationId: dest.id, owner: 'o', limit: 5, leaseMs: 1000, runId: null, statuses: ['delete_pending', 'delete_failed'] });
      assert.equal(d?.status, 'delete_in_progress');
      await rejectsWithCode(ledger.recordOutcomes([{ objectId: d.id, attemptId: d.attemptId!, status: 'upload_completed' }], null), 'HOLDFAST_E_INTERNAL');
      const [res] = await ledger.recordOutcomes([{ objectId: d.id, attemptId: d.attemptId!, status: 'delete_completed' }], null);
      assert.equal(res?.applied, true);
      const row = await ledger.getObject(dest.id, 'd');
      assert.equal(row?.status, 'delete_completed');
      assert.equal(row?.attempt, 0);
      assert.equal(row?.leaseOwner, null);
      await ledger.planUploads(dest.id, [{ key: 'd', sourcePath: '/d', size: 2, mtimeMs: 2, sha256: 'y', reason: 'new' }], null);
      assert.equal((await ledger.getObject(dest.id, 'd'))?.status, 'upload_pending');
      const hist = await ledger.history(dest.id, 'd');
      assert.deepEqual(
        hist.map((h) => h.toStatus),
        ['upload_pending', 'delete_in_progress', 'delete_completed', 'upload_pending'],
      );
    } finally {
      await ledger.close();
    }
  });
});

void describe('default state dir', () => {
  void it('prefers $HOLDFAST_STATE, then $XDG_STATE_HOME/holdfast, then ~/.local/state/holdfast', () => {
    assert.equal(defaultStateDir({ HOLDFAST_STATE: '/srv/hf', XDG_STATE_HOME: '/x', HOME: '/home/u' }), '/srv/hf');
    assert.equal(defaultStateDir({ XDG_STATE_HOME: '/x/state', HOME: '/home/u' }), '/x/state/holdfast');
    assert.equal(defaultStateDir({ HOME: '/home/u' }), '/home/u/.local/state/holdfast');
    assert.equal(defaultStateDir({ HOLDFAST_STATE: '', XDG_STATE_HOME: '', HOME: '/home/u' }), '/home/u/.local/state/holdfast');
    // A relative XDG_STATE_HOME is invalid per the XDG spec and ignored.
    assert.equal(defaultStateDir({ XDG_STATE_HOME: 'rel/state', HOME: '/home/u' }), '/home/u/.local/state/holdfast');
    assert.equal(ledgerPath('/srv/hf'), '/srv/hf/holdfast.db');
  });
});

void describe('migrations on PostgreSQL (compiled, not executed)', () => {
  void it('use identity columns and COLLATE "C" on keys', async () => {
    const statements: string[] = [];
    const db = new Kysely<Database>({
      dialect: {
        createAdapter: () => new PostgresAdapter(),
        createDriver: () => new DummyDriver(),
        createIntrospector: (k) => new PostgresIntrospector(k),
        createQueryCompiler: () => new PostgresQueryCompiler(),
      },
      log: (event) => {
        statements.push(event.query.sql);
      },
    });
    try {
      await migrateToLatest(db, 'postgres');
    } finally {
      await db.destroy();
    }
    const ddl = statements.join(';\n');
    assert.match(ddl, /pg_advisory_xact_lock/);
    assert.match(ddl, /create table "objects" \([^;]*"key" text collate "C" not null/);
    assert.match(ddl, /create table "history" \([^;]*"key" text collate "C" not null/);
    assert.match(ddl, /"id" bigint generated by default as identity primary key/);
    assert.doesNotMatch(ddl, /autoincrement/i);
  });
});
