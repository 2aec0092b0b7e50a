// The error registry and its documentation agree in both directions, and the
// classifier maps real-world failures to the right codes.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ERROR_CODES, EXIT, HoldfastError, classifyError, exitCodeOf, type ErrorCode } from '../../src/core/errors.js';
import { repoRoot } from '../helpers/paths.js';

const docsPath = join(repoRoot(), 'docs', 'errors.md');

describe('error registry', () => {
  it('every code is documented in docs/errors.md, and every documented code exists', () => {
    const doc = readFileSync(docsPath, 'utf8');
    const documented = new Set(doc.match(/HOLDFAST_E_[A-Z_]+/g) ?? []);
    for (const code of Object.keys(ERROR_CODES)) assert.ok(documented.has(code), `${code} is not documented in docs/errors.md`);
    for (const code of documented) assert.ok(code in ERROR_CODES, `docs/errors.md mentions ${code}, which does not exist`);
  });

  it('every code has a valid exit code and HTTP status', () => {
    const exits = new Set<number>(Object.values(EXIT));
    for (const [code, spec] of Object.entries(ERROR_CODES)) {
      assert.ok(exits.has(spec.exit), `${code} has exit ${spec.exit}`);
      assert.ok(spec.http >= 400 && spec.http < 600, `${code} has http ${spec.http}`);
    }
  });

  it('each code heads a row of the table for its exit code ("… — exit N") in docs/errors.md', () => {
    const doc = readFileSync(docsPath, 'utf8');
    const seen = new Set<string>();
    for (const part of doc.split(/^## /m).slice(1)) {
      const heading = part.slice(0, part.indexOf('\n'));
      const exit = /exit (\d+)/.exec(heading);
      if (!exit) continue;
      for (const m of part.matchAll(/^\| `(HOLDFAST_E_[A-Z_]+)` \|/gm)) {
        const code = m[1] as ErrorCode;
        assert.ok(code in ERROR_CODES, `${code} in "${heading}" does not exist`);
        assert.equal(ERROR_CODES[code].exit, Number(exit[1]), `${code} is listed under "${heading}" but exits ${ERROR_CODES[code].exit}`);
        seen.add(code);
      }
    }
    for (const code of Object.keys(ERROR_CODES)) assert.ok(seen.has(code), `${code} heads no row of an exit-code table`);
  });

  it('a command stopped before its run exits by the code, a per-file kind meaning "could not run" (3)', () => {
    assert.equal(exitCodeOf(new HoldfastError('HOLDFAST_E_USAGE', { detail: 'x' })), 1);
    assert.equal(exitCodeOf(new HoldfastError('HOLDFAST_E_LEDGER_WRITE', { detail: 'x' })), 3);
    assert.equal(exitCodeOf(new HoldfastError('HOLDFAST_E_SOURCE_UNREADABLE', { path: '/src', detail: 'EACCES' })), 3);
    assert.equal(exitCodeOf(new HoldfastError('HOLDFAST_E_CANCELLED')), 130);
  });

  it('renders details into the message', () => {
    const e = new HoldfastError('HOLDFAST_E_KEY_TOO_LONG', { key: 'k', bytes: 1025, max: 1024 });
    assert.equal(e.message, 'key "k" is 1025 bytes; this destination allows at most 1024');
    assert.equal(e.transient, false);
  });
});

describe('classifyError', () => {
  const cases: [string, unknown, string, boolean][] = [
    ['connection reset', Object.assign(new Error('x'), { code: 'ECONNRESET' }), 'HOLDFAST_E_NETWORK', true],
    ['timeout', Object.assign(new Error('x'), { code: 'ETIMEDOUT' }), 'HOLDFAST_E_TIMEOUT', true],
    ['S3 SlowDown', Object.assign(new Error('x'), { name: 'SlowDown', $metadata: { httpStatusCode: 503 } }), 'HOLDFAST_E_THROTTLED', true],
    ['HTTP 500', Object.assign(new Error('x'), { name: 'InternalError', $metadata: { httpStatusCode: 500 } }), 'HOLDFAST_E_DEST_SERVER', true],
    ['HTTP 403', Object.assign(new Error('x'), { name: 'Forbidden', $metadata: { httpStatusCode: 403 } }), 'HOLDFAST_E_AUTH', false],
    ['HTTP 400', Object.assign(new Error('x'), { name: 'InvalidArgument', $metadata: { httpStatusCode: 400 } }), 'HOLDFAST_E_DEST_REJECTED', false],
    ['SQLite busy', Object.assign(new Error('x'), { code: 'SQLITE_BUSY' }), 'HOLDFAST_E_LEDGER_BUSY', true],
    ['PostgreSQL serialization failure', Object.assign(new Error('x'), { code: '40001' }), 'HOLDFAST_E_LEDGER_BUSY', true],
    ['abort', Object.assign(new Error('x'), { name: 'AbortError' }), 'HOLDFAST_E_CANCELLED', false],
    ['wrapped reset', new Error('outer', { cause: Object.assign(new Error('x'), { code: 'ECONNRESET' }) }), 'HOLDFAST_E_NETWORK', true],
  ];
  for (const [name, input, code, transient] of cases) {
    it(`${name} → ${code}`, () => {
      const e = classifyError(input);
      assert.equal(e.code, code);
      assert.equal(e.transient, transient);
    });
  }

  it('uses the caller’s fallback for unknown errors, and ENOENT on a source read means vanished', () => {
    assert.equal(classifyError(new Error('?'), 'HOLDFAST_E_LEDGER_WRITE').code, 'HOLDFAST_E_LEDGER_WRITE');
    assert.equal(classifyError(Object.assign(new Error('gone'), { code: 'ENOENT' }), 'HOLDFAST_E_SOURCE_UNREADABLE').code, 'HOLDFAST_E_SOURCE_VANISHED');
  });
});
