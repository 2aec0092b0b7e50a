// `holdfast status`, `history` and `runs` against a ledger written by real
// pushes (run as an unprivileged user, so an unreadable file really is one):
// counts, the failure's code and next retry, a key's transitions in order,
// runs newest first; and the library functions on states that pushes rarely
// leave behind (stale leases, pending deletes, long lists).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openLedger } from '../../src/ledger/open.js';
import { status } from '../../src/sync/inspect.js';
import type { DestinationStatus, HistoryReport, RunsReport, StatusReport } from '../../src/sync/inspect.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { destinationRef } from '../helpers/destinations.js';

const SECRET = 'secret\nfile.txt';

function json<T>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout.trim()) as T;
  } catch {
    throw new Error(`stdout is not one JSON object (exit ${r.code}):\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
}

describe('holdfast status / history / runs', () => {
  let tmp: TempDir;
  let src: string;
  let state: string;
  let urlA: string;
  let urlB: string;
  let secondRunStartedAt: number;
  // Root ignores permission bits: run every command as nobody, so one user owns the ledger and its WAL files.
  const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  const cli = (...args: string[]): Promise<CliResult> => runCli(args, { env: { HOLDFAST_STATE: state }, ...asUser });

  before(async () => {
    tmp = await makeTempDir('holdfast-cli-inspect-');
    chmodSync(tmp.path, 0o777);
    src = join(tmp.path, 'src');
    state = join(tmp.path, 'state');
    mkdirSync(join(src, 'b'), { recursive: true });
    writeFileSync(join(src, 'a.txt'), 'alpha');
    writeFileSync(join(src, 'b/c.txt'), 'gamma gamma');
    writeFileSync(join(src, SECRET), 'hidden words');
    for (const p of [src, join(src, 'b')]) chmodSync(p, 0o777);
    for (const p of ['a.txt', 'b/c.txt', SECRET]) chmodSync(join(src, p), 0o644);
    urlA = `file://${join(tmp.path, 'dst-a')}`;
    urlB = `file://${join(tmp.path, 'dst-b')}`;

    // Run 1: everything to A (and the hashes into the file cache).
    let r = await cli('push', src, urlA, '--json', '--quiet');
    assert.equal(r.code, 0, r.stderr);
    // Run 2: to B, with the secret unreadable by then. Its hash comes from the
    // cache, so it is planned and claimed, and the upload itself fails: a
    // ledger row in upload_failed with an error code and a next retry time.
    chmodSync(join(src, SECRET), 0o000);
    secondRunStartedAt = Date.now();
    r = await cli('push', src, urlB, '--json', '--quiet');
    assert.equal(r.code, 2, r.stderr);
  });
  after(async () => tmp.cleanup());

  it('status --json: counts, bytes, last run, health and the failing item with its code and next retry', async () => {
    const r = await cli('status', '--json');
    assert.equal(r.code, 0, r.stderr);
    const rep = json<StatusReport>(r);
    assert.equal(rep.ledger, join(state, 'holdfast.db'));
    assert.deepEqual(
      rep.destinations.map((d) => d.url),
      [urlA, urlB],
    );
    const [a, b] = rep.destinations as [DestinationStatus, DestinationStatus];
    assert.deepEqual(a.objects.upload_completed, { count: 3, bytes: 5 + 11 + 12 });
    assert.deepEqual(a.tracked, { count: 3, bytes: 28 });
    assert.equal(a.needsAttention, 0);
    assert.equal(a.lastRun?.status, 'completed');
    assert.equal(a.lastRun?.command, 'push');
    assert.deepEqual((a.lastRun?.summary as { uploads: unknown }).uploads, { completed: 3, failed: 0, partial: 0, skipped: 0, recovered: 0, fenced: 0 });
    assert.equal(a.health.consecutiveFailures, 0);
    assert.ok(a.health.lastUploadAt !== null);

    assert.deepEqual(b.objects.upload_completed, { count: 2, bytes: 16 });
    assert.deepEqual(b.objects.upload_failed, { count: 1, bytes: 12 });
    assert.equal(b.objects.upload_pending.count, 0);
    // "Tracked" is what the ledger records as stored there (upload_completed, delete_pending), as for --max-delete: not the failed file.
    assert.deepEqual(b.tracked, { count: 2, bytes: 16 });
    assert.equal(b.lastRun?.status, 'partial');
    assert.deepEqual((b.lastRun?.summary as { uploads: unknown }).uploads, { completed: 2, failed: 1, partial: 0, skipped: 0, recovered: 0, fenced: 0 });
    assert.equal(b.health.lastStatus, 'partial');
    assert.equal(b.health.consecutiveFailures, 1);
    assert.match(b.health.lastError ?? '', /HOLDFAST_E_SOURCE_UNREADABLE/);
    assert.equal(b.failing.count, 1);
    const item = b.failing.items[0]!;
    assert.equal(item.key, SECRET);
    assert.equal(item.status, 'upload_failed');
    assert.equal(item.errorCode, 'HOLDFAST_E_SOURCE_UNREADABLE');
    assert.equal(item.attempt, 1);
    assert.ok(item.nextAttemptAt !== null && Date.parse(item.nextAttemptAt) >= secondRunStartedAt, `next retry ${item.nextAttemptAt}`);
    assert.equal(b.needsAttention, 1);

    // One destination, typed the way the user wrote it (a trailing slash).
    const one = json<StatusReport>(await cli('status', `${urlB}/`, '--json'));
    assert.deepEqual(
      one.destinations.map((d) => d.url),
      [urlB],
    );
  });

  it('status for people: aligned columns, the key shown escaped, the failure and its retry', async () => {
    const r = await cli('status', urlB);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^${urlB.replace(/[/.]/g, '\\$&')}  \\(file\\)$`, 'm'));
    // Columns line up: the counts and the sizes end where their headers end.
    const lines = r.stdout.split('\n');
    const header = lines.find((l) => /^ {2}status\s+objects\s+bytes$/.test(l))!;
    for (const [label, count, bytes] of [['upload_completed', '2', '16 B'], ['upload_failed', '1', '12 B']]) {
      const line = lines.find((l) => l.startsWith(`  ${label} `))!;
      assert.equal(line.length, header.length, line);
      assert.ok(line.endsWith(bytes!), line);
      assert.equal(line.indexOf(`${count} `) + 1, header.indexOf('objects') + 'objects'.length, line);
    }
    assert.match(r.stdout, /^ {2}tracked: 2 object\(s\), 16 B stored \(upload_completed \+ delete_pending\)$/m);
    assert.match(r.stdout, /last run: #2 push partial/);
    assert.match(r.stdout, /"secret\\nfile\.txt"\s+upload_failed\s+1\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+HOLDFAST_E_SOURCE_UNREADABLE/);
    assert.ok(!r.stdout.includes('secret\nfile'), 'a raw newline never reaches the output (keys nor messages)');
    assert.match(r.stdout, /1 item\(s\) need attention/);
  });

  it('history: every transition of a key, in order, across runs', async () => {
    // Run 3: the file is readable again; the failed item is retried and completes.
    chmodSync(join(src, SECRET), 0o644);
    const push = await cli('push', src, urlB, '--json', '--quiet');
    assert.equal(push.code, 0, push.stderr);

    const r = await cli('history', SECRET, '--destination', urlB, '--json');
    assert.equal(r.code, 0, r.stderr);
    const rep = json<HistoryReport>(r);
    assert.equal(rep.key, SECRET);
    assert.deepEqual(
      rep.entries.map((e) => [e.runId, e.from, e.to, e.errorCode]),
      [
        [2, null, 'upload_pending', null],
        [2, 'upload_pending', 'upload_in_progress', null],
        [2, 'upload_in_progress', 'upload_failed', 'HOLDFAST_E_SOURCE_UNREADABLE'],
        [3, 'upload_failed', 'upload_pending', null],
        [3, 'upload_pending', 'upload_in_progress', null],
        [3, 'upload_in_progress', 'upload_completed', null],
      ],
    );
    assert.ok(rep.entries.every((e, i) => i === 0 || e.at >= rep.entries[i - 1]!.at), 'times in order');
    assert.ok(rep.entries.every((e) => e.destination === urlB));
    assert.equal(rep.entries[1]!.attemptId, rep.entries[2]!.attemptId, 'the outcome belongs to the attempt of its intent');
    assert.notEqual(rep.entries[4]!.attemptId, rep.entries[1]!.attemptId, 'a retry is a new attempt');
    assert.equal(rep.entries[0]!.note, 'new');
    assert.equal(rep.entries[3]!.note, 'retry');
    assert.deepEqual(
      rep.current.map((c) => [c.destination, c.status]),
      [[urlB, 'upload_completed']],
    );

    // Without --destination: both destinations' histories.
    const all = json<HistoryReport>(await cli('history', SECRET, '--json'));
    assert.deepEqual([...new Set(all.entries.map((e) => e.destination))], [urlA, urlB]);
    const text = await cli('history', SECRET, '--destination', urlB);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /upload_in_progress → upload_failed\s+[0-9a-f]{8}\s+HOLDFAST_E_SOURCE_UNREADABLE: /);
    const none = json<HistoryReport>(await cli('history', 'no/such/key', '--json'));
    assert.deepEqual(none.entries, []);
  });

  it('runs: newest first, with command, status, duration and counts', async () => {
    const r = await cli('runs', '--json');
    assert.equal(r.code, 0, r.stderr);
    const rep = json<RunsReport>(r);
    assert.deepEqual(
      rep.runs.map((x) => [x.id, x.command, x.status, x.destination]),
      [
        [3, 'push', 'completed', urlB],
        [2, 'push', 'partial', urlB],
        [1, 'push', 'completed', urlA],
      ],
    );
    assert.ok(rep.runs.every((x) => x.durationMs !== null && x.durationMs >= 0 && x.finishedAt !== null));
    assert.equal((rep.runs[1]!.summary as { uploads: { failed: number } }).uploads.failed, 1);
    assert.deepEqual(
      json<RunsReport>(await cli('runs', '--limit', '2', '--json')).runs.map((x) => x.id),
      [3, 2],
    );
    assert.deepEqual(
      json<RunsReport>(await cli('runs', '--destination', urlA, '--json')).runs.map((x) => x.id),
      [1],
    );
    const text = await cli('runs');
    assert.match(text.stdout, /^run\s+command\s+started\s+duration\s+status\s+destination\s+counts$/m);
    assert.match(text.stdout, /^ +#2 {2}push {5}\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ +[\d.]+ m?s {2}partial +file:\S+dst-b {2}2 uploaded \(16 B\), 1 failed$/m);
  });

  it('an unknown destination exits 1 and lists the known ones; no ledger exits 3 and creates none', async () => {
    for (const args of [['status', 'file:///nowhere'], ['history', 'a.txt', '--destination', 'file:///nowhere'], ['runs', '--destination', 'file:///nowhere']]) {
      const r = await cli(...args, '--json');
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /HOLDFAST_E_UNKNOWN_DESTINATION/);
      assert.ok(r.stderr.includes(urlA) && r.stderr.includes(urlB), r.stderr);
      assert.equal(json<{ status: string; error: { code: string } }>(r).error.code, 'HOLDFAST_E_UNKNOWN_DESTINATION');
    }
    const empty = join(tmp.path, 'no-state');
    const r = await runCli(['status'], { env: { HOLDFAST_STATE: empty } });
    assert.equal(r.code, 3);
    assert.match(r.stderr, /HOLDFAST_E_LEDGER_OPEN/);
    const { existsSync } = await import('node:fs');
    assert.ok(!existsSync(empty), 'a read-only command created no ledger');
  });

  it('workers: every run was a worker that ended; one still registered shows in workers and status', async () => {
    const ended = json<{ workers: { command: string; state: string; host: string; leased: number }[] }>(await cli('workers', '--all', '--json'));
    assert.ok(ended.workers.length >= 2, JSON.stringify(ended));
    assert.ok(ended.workers.every((w) => w.command === 'push' && w.state === 'stopped' && w.leased === 0));
    assert.deepEqual(json<{ workers: unknown[] }>(await cli('workers', '--json')).workers, [], 'none is running');
    // A worker of another host, heard from just now.
    const ledger = await openLedger({ stateDir: state });
    try {
      await ledger.registerWorker({ id: 'otherhost:4242:abcd', host: 'otherhost', pid: 4242, command: 'watch', sourceId: 'shared:exports' });
    } finally {
      await ledger.close();
    }
    const text = await cli('workers');
    assert.match(text.stdout, /^host\s+pid\s+command\s+started\s+heartbeat\s+state\s+leased\s+source$/m);
    assert.match(text.stdout, /^otherhost\s+4242\s+watch\s+\S+ \S+\s+\d+ s ago\s+running\s+0\s+shared:exports$/m);
    const st = await cli('status');
    assert.match(st.stdout, /^workers: 1 running on otherhost; 0 row\(s\) leased/m);
    assert.deepEqual(
      json<StatusReport>(await cli('status', '--json')).workers.map((w) => w.id),
      ['otherhost:4242:abcd'],
    );
  });
});

describe('status() on states pushes rarely leave', () => {
  let tmp: TempDir;
  before(async () => (tmp = await makeTempDir('holdfast-inspect-lib-')));
  after(async () => tmp.cleanup());

  it('lists stale in-progress rows and pending deletes; long lists are cut at limit, counts stay whole', async () => {
    const ledger = await openLedger({ stateDir: tmp.path });
    try {
      const dest = await ledger.ensureDestination(destinationRef('s3://bucket/p/', 's3'));
      const sha = 'a'.repeat(64);
      const keys = Array.from({ length: 30 }, (_, i) => `k${String(i).padStart(2, '0')}`);
      await ledger.planUploads(dest.id, keys.map((key) => ({ key, sourcePath: `/s/${key}`, size: 10, mtimeMs: 1, sha256: sha, reason: 'new' })), null);
      // A crashed run on another host: its lease is over.
      const dead = await ledger.claim({ destinationId: dest.id, owner: 'elsewhere:1:ab', limit: 2, leaseMs: -1000, runId: null });
      // A live run on another host: its lease still runs; not stale.
      await ledger.claim({ destinationId: dest.id, owner: 'elsewhere:2:cd', limit: 1, leaseMs: 600_000, runId: null });
      const failing = await ledger.claim({ destinationId: dest.id, owner: 'me:1:ef', limit: 25, leaseMs: 60_000, runId: null });
      await ledger.recordOutcomes(
        failing.map((r) => ({ objectId: r.id, attemptId: r.attemptId!, status: 'upload_failed' as const, errorCode: 'HOLDFAST_E_NETWORK', errorMessage: 'reset', nextAttemptAt: 2_000_000_000_000 })),
        null,
      );
      const rest = await ledger.claim({ destinationId: dest.id, owner: 'me:1:ef', limit: 10, leaseMs: 60_000, runId: null });
      await ledger.recordOutcomes(rest.map((r) => ({ objectId: r.id, attemptId: r.attemptId!, status: 'upload_completed' as const })), null);
      const completed = (await ledger.listByStatus(dest.id, ['upload_completed'], 10)).map((r) => ({ objectId: r.id, key: r.key, seen: { status: r.status, sha256: r.sha256 } }));
      await ledger.planDeletes(completed, 'source file gone', null);

      const rep = await status({ ledger, destination: 's3://bucket/p', limit: 5 });
      const d = rep.destinations[0]!;
      assert.equal(d.url, 's3://bucket/p/');
      assert.equal(d.failing.count, 25);
      assert.equal(d.failing.items.length, 5);
      assert.deepEqual(
        d.failing.items.map((i) => i.key),
        failing.slice(0, 5).map((r) => r.key),
      );
      assert.equal(d.failing.items[0]!.nextAttemptAt, new Date(2_000_000_000_000).toISOString());
      assert.equal(d.stale.inProgress, 3);
      assert.deepEqual(
        d.stale.items.map((i) => [i.key, i.leaseOwner]),
        dead.map((r) => [r.key, 'elsewhere:1:ab']),
      );
      assert.equal(d.deletePending.count, 2);
      assert.deepEqual(
        d.deletePending.items.map((i) => i.key),
        rest.map((r) => r.key),
      );
      assert.equal(d.needsAttention, 25 + 2 + 2);
      assert.equal(d.objects.upload_in_progress.count, 3);
      // Tracked: recorded as stored there, i.e. the 2 pending deletes; not the 25 failed nor the 3 in progress.
      assert.equal(d.tracked.count, 2);
      assert.equal(d.lastRun, null);
    } finally {
      await ledger.close();
    }
  });
});
