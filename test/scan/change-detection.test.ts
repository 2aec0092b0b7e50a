// Change detection: the merge-join and the classification table.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HoldfastError } from '../../src/core/errors.js';
import type { ObjectStatus } from '../../src/core/status.js';
import { OBJECT_STATUSES } from '../../src/core/status.js';
import type { ObjectRow, SourceFile } from '../../src/core/types.js';
import type { ChangeKind, ChangeMode, JoinedKey } from '../../src/scan/change-detection.js';
import { classifyChange, mergeJoin } from '../../src/scan/change-detection.js';
import { compareKeys } from '../../src/scan/key-order.js';

function file(key: string, size = 10, mtimeMs = 1000): SourceFile {
  return { key, path: `/src/${key}`, size, mtimeMs, ino: 1 };
}

function row(key: string, status: ObjectStatus = 'upload_completed', size: number | null = 10, mtimeMs: number | null = 1000, sha256: string | null = 'ab'.repeat(32)): ObjectRow {
  return {
    id: 1, destinationId: 1, key, sourcePath: null, size, mtimeMs, sha256, status, attempt: 0, attemptId: null, leaseOwner: null,
    leaseUntil: null, uploadId: null, etag: null, versionId: null, errorCode: null, errorMessage: null, nextAttemptAt: null,
    verifiedAt: null, sourceId: null, updatedAt: 0,
  };
}

async function* from<T>(items: readonly T[], onClose?: () => void): AsyncGenerator<T> {
  try {
    for (const i of items) yield i;
  } finally {
    onClose?.();
  }
}

async function join(files: readonly SourceFile[], rows: readonly ObjectRow[]): Promise<JoinedKey[]> {
  const out: JoinedKey[] = [];
  for await (const j of mergeJoin(from(files), from(rows))) out.push(j);
  return out;
}

const shape = (js: JoinedKey[]): string[] => js.map((j) => `${j.file ? 'F' : '-'}${j.row ? 'R' : '-'} ${j.key}`);

void test('mergeJoin: interleaved keys, in compareKeys order', async () => {
  const files = ['a', 'a b', 'a-b', 'a/c', 'b', '\uFF5E', '\u{1F600}'].sort(compareKeys).map((k) => file(k));
  const rows = ['a', 'a.z', 'a/c', 'c', '\u{1F600}'].sort(compareKeys).map((k) => row(k));
  assert.deepEqual(shape(await join(files, rows)), [
    'FR a', 'F- a b', 'F- a-b', '-R a.z', 'FR a/c', 'F- b', '-R c', 'F- \uFF5E', 'FR \u{1F600}',
  ]);
});

void test('mergeJoin: empty sides', async () => {
  assert.deepEqual(await join([], []), []);
  assert.deepEqual(shape(await join([file('a'), file('b')], [])), ['F- a', 'F- b']);
  assert.deepEqual(shape(await join([], [row('a'), row('b')])), ['-R a', '-R b']);
});

void test('mergeJoin: an input that goes backwards (or repeats) is an internal error', async () => {
  const internal = (e: unknown) => e instanceof HoldfastError && e.code === 'HOLDFAST_E_INTERNAL';
  await assert.rejects(join([file('b'), file('a')], []), internal);
  await assert.rejects(join([], [row('a'), row('a')]), internal);
  // UTF-16 order is not UTF-8 order: a ledger sorted by JS `<` is caught.
  await assert.rejects(join([], [row('\u{1F600}'), row('\uFF5E')]), internal);
});

void test('mergeJoin: stopping early closes both inputs', async () => {
  let closed = 0;
  const j = mergeJoin(from([file('a'), file('b')], () => closed++), from([row('a'), row('c')], () => closed++));
  for await (const x of j) {
    assert.equal(x.key, 'a');
    break;
  }
  assert.equal(closed, 2);
});

// The expected kind, written independently of the implementation's branches.
const MODES: ChangeMode[] = ['incremental', 'all', 'force'];

function expected(status: ObjectStatus | undefined, hasFile: boolean, same: boolean, mode: ChangeMode): ChangeKind {
  if (status === 'upload_in_progress' || status === 'delete_in_progress') return 'in-progress';
  if (!hasFile) return 'gone';
  if (status !== 'upload_completed') return 'new';
  if (mode === 'force') return 'forced';
  if (mode === 'all' || !same) return 'maybe-changed';
  return 'unchanged';
}

void test('classifyChange table: every status × file present/absent × changed or not × mode', () => {
  let count = 0;
  for (const mode of MODES) {
    for (const status of [undefined, ...OBJECT_STATUSES]) {
      for (const hasFile of [true, false]) {
        if (!hasFile && status === undefined) continue;
        for (const [size, mtime, same] of [[10, 1000, true], [11, 1000, false], [10, 2000, false], [10, 1000.7, true]] as const) {
          const f = hasFile ? file('k', size, mtime) : undefined;
          const r = status ? row('k', status) : undefined;
          const got = classifyChange(f, r, mode);
          assert.equal(got.kind, expected(status, hasFile, same, mode), `${mode} ${status ?? 'no row'} file=${hasFile} size=${size} mtime=${mtime}`);
          if (got.kind === 'maybe-changed') assert.equal(got.sizeChanged, size !== 10);
          count++;
        }
      }
    }
  }
  assert.equal(count, 3 * (9 * 2 - 1) * 4);
});

void test('classifyChange: a completed row without size, mtime or hash proves nothing', () => {
  assert.equal(classifyChange(file('k'), row('k', 'upload_completed', 10, 1000, null), 'incremental').kind, 'maybe-changed');
  assert.equal(classifyChange(file('k'), row('k', 'upload_completed', 10, null), 'incremental').kind, 'maybe-changed');
  const noSize = classifyChange(file('k'), row('k', 'upload_completed', null), 'incremental');
  assert.deepEqual(noSize, { kind: 'maybe-changed', sizeChanged: true });
});

void test('classifyChange: neither file nor row is a caller bug', () => {
  assert.throws(() => classifyChange(undefined, undefined, 'incremental'), (e: unknown) => e instanceof HoldfastError && e.code === 'HOLDFAST_E_INTERNAL');
});
