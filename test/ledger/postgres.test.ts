// The PostgreSQL ledger: the same conformance suite as SQLite, against a real
// server (test/helpers/postgres.ts says which, and skips with one line when
// there is none), plus what only PostgreSQL has: connection failures named by
// URL with the password redacted, the server's clock, concurrent migrations.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isHoldfastError } from '../../src/core/errors.js';
import { openLedger } from '../../src/ledger/open.js';
import { ledgerConformance } from '../conformance/ledger-suite.js';
import { createTestDatabase, postgresUnavailable, type TestDatabase } from '../helpers/postgres.js';

const unavailable = await postgresUnavailable();

void describe('postgres ledger', { skip: unavailable }, () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase('ledger');
  });
  after(async () => {
    await db?.drop();
  });

  ledgerConformance('postgres', async () => {
    const url = await db.schemaUrl();
    const ledger = await openLedger({ url });
    return {
      ledger,
      async cleanup() {
        await ledger.close();
      },
    };
  });

  void it('migrates once when several processes open a fresh database at once', async () => {
    const url = await db.schemaUrl();
    const ledgers = await Promise.all([1, 2, 3, 4].map(() => openLedger({ url })));
    try {
      const rows = await Promise.all(ledgers.map((l) => l.listDestinations()));
      for (const r of rows) assert.deepEqual(r, []);
    } finally {
      await Promise.all(ledgers.map((l) => l.close()));
    }
  });

  void it('takes its time from the server: clock() is the server’s now()', async () => {
    const ledger = await openLedger({ url: await db.schemaUrl() });
    try {
      const t = await ledger.clock();
      assert.ok(Math.abs(t - Date.now()) < 60_000, 'same machine: within a minute');
    } finally {
      await ledger.close();
    }
  });

  void it('a server that cannot be reached, a bad password, a missing database: HOLDFAST_E_LEDGER_* naming the URL, never the password', async () => {
    const cases: [string, string][] = [
      ['postgres://holdfast:s3cret-pass@127.0.0.1:1/holdfast', 'HOLDFAST_E_LEDGER_UNREACHABLE'],
      [db.url.replace(/\/[^/]*$/, '/holdfast_no_such_database'), 'HOLDFAST_E_LEDGER_OPEN'],
    ];
    for (const [url, code] of cases) {
      await assert.rejects(openLedger({ url }), (e: unknown) => {
        assert.ok(isHoldfastError(e), String(e));
        assert.equal(e.code, code, e.message);
        assert.ok(!e.message.includes('s3cret-pass'), e.message);
        return true;
      });
    }
  });
});
