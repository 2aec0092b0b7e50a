// Read-only use of the ledger and a state directory that cannot be made
// (issue 10, points 10 and 11): `status`, `history`, `runs` and `check` read a
// ledger the user may not write (or on a read-only mount), create nothing,
// migrate nothing, and still see what a running writer has in its WAL; a state
// directory on /proc or /sys, or under a read-only mount, is refused with the
// real cause — at once, never by spinning.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ledgerPath, openLedger } from '../../src/ledger/open.js';
import type { StatusReport, RunsReport, HistoryReport } from '../../src/sync/inspect.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { destinationRef } from '../helpers/destinations.js';

const NOBODY = 65534;
const asNobody = process.getuid?.() === 0 ? { uid: NOBODY, gid: NOBODY } : {};

function json<T>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout.trim()) as T;
  } catch {
    throw new Error(`stdout is not one JSON object (exit ${r.code}):\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
}

/** Everything in `dir`: names, sizes, mtimes and content hashes. */
function snapshotDir(dir: string): string {
  return readdirSync(dir)
    .sort()
    .map((n) => {
      const st = statSync(join(dir, n));
      return `${n} ${st.size} ${st.mtimeMs} ${createHash('sha256').update(readFileSync(join(dir, n))).digest('hex')}`;
    })
    .join('\n');
}

describe('read-only commands on a ledger the user may only read', () => {
  let tmp: TempDir;
  let src: string;
  let dst: string;
  let url: string;
  let state: string;

  before(async () => {
    tmp = await makeTempDir('holdfast-hostile-ro-');
    chmodSync(tmp.path, 0o755);
    src = join(tmp.path, 'src');
    mkdirSync(src);
    writeFileSync(join(src, 'a.txt'), 'alpha');
    writeFileSync(join(src, 'b.txt'), 'beta');
    chmodSync(src, 0o755);
    dst = join(tmp.path, 'dst');
    url = pathToFileURL(dst).href;
    state = join(tmp.path, 'state');
    const r = await runCli(['push', src, url, '--state', state, '--no-fsync']);
    assert.equal(r.code, 0, r.stderr);
    // The destination is the reader's (check looks at it); the ledger is not.
    if (process.getuid?.() === 0) execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, dst]);
    for (const f of readdirSync(state)) chmodSync(join(state, f), 0o444);
    chmodSync(state, 0o555);
  });
  after(async () => {
    chmodSync(state, 0o755);
    await tmp.cleanup();
  });

  it('status, history, runs and check read it, and leave every byte and file of the state directory as it was', async () => {
    const before = snapshotDir(state);
    assert.deepEqual(readdirSync(state), ['holdfast.db'], 'a cleanly closed ledger: no -wal, no -shm');

    const st = await runCli(['status', '--state', state, '--json'], asNobody);
    assert.equal(st.code, 0, st.stderr);
    const rep = json<StatusReport>(st);
    assert.deepEqual(rep.destinations.map((d) => [d.url, d.objects.upload_completed.count]), [[url, 2]]);

    const runs = await runCli(['runs', '--state', state, '--json'], asNobody);
    assert.equal(runs.code, 0, runs.stderr);
    assert.deepEqual(json<RunsReport>(runs).runs.map((r) => [r.command, r.status]), [['push', 'completed']]);

    const hist = await runCli(['history', 'a.txt', '--state', state, '--json'], asNobody);
    assert.equal(hist.code, 0, hist.stderr);
    assert.deepEqual(json<HistoryReport>(hist).current.map((c) => c.status), ['upload_completed']);

    const check = await runCli(['check', src, url, '--state', state, '--json'], asNobody);
    assert.equal(check.code, 0, check.stderr);
    assert.equal(json<{ status: string }>(check).status, 'consistent');

    assert.equal(snapshotDir(state), before, 'nothing was created, migrated or written');
  });

  it('sees what a running writer has only in its write-ahead log', async () => {
    chmodSync(state, 0o755);
    for (const f of readdirSync(state)) chmodSync(join(state, f), 0o644);
    // This process plays the running push: the ledger open, a new destination and run committed, not checkpointed.
    const writer = await openLedger({ stateDir: state });
    try {
      const d = await writer.ensureDestination(destinationRef('file:///tmp/holdfast-only-in-the-wal'));
      await writer.startRun({ command: 'push', destinationId: d.id, source: src, owner: 'test:1:writer' });
      assert.ok(statSync(`${ledgerPath(state)}-wal`).size > 0, 'the new rows are in the WAL');
      for (const f of readdirSync(state)) chmodSync(join(state, f), 0o444);
      chmodSync(state, 0o555);
      const before = snapshotDir(state);

      const st = await runCli(['status', '--state', state, '--json'], asNobody);
      assert.equal(st.code, 0, st.stderr);
      assert.deepEqual(
        json<StatusReport>(st).destinations.map((x) => x.url),
        [url, 'file:///tmp/holdfast-only-in-the-wal'],
      );
      const runs = await runCli(['runs', '--state', state, '--json'], asNobody);
      assert.equal(runs.code, 0, runs.stderr);
      assert.equal(json<RunsReport>(runs).runs.length, 2);
      assert.equal(snapshotDir(state), before, 'the reader wrote nothing');
    } finally {
      chmodSync(state, 0o755);
      await writer.close();
      for (const f of readdirSync(state)) chmodSync(join(state, f), 0o444);
      chmodSync(state, 0o555);
    }
  });
});

describe('read-only opening never creates or migrates', () => {
  let tmp: TempDir;
  before(async () => {
    tmp = await makeTempDir('holdfast-hostile-ro2-');
  });
  after(async () => tmp.cleanup());

  it('a ledger that needs a migration is refused, untouched, with what to do', async () => {
    const state = join(tmp.path, 'needs-migration');
    mkdirSync(state);
    // An empty database file: what an interrupted first open leaves; every migration is pending.
    writeFileSync(ledgerPath(state), '');
    for (const cmd of [['status'], ['runs'], ['history', 'a.txt']]) {
      const r = await runCli([...cmd, '--state', state, '--json']);
      assert.equal(r.code, 3, `${cmd[0]}: ${r.stderr}`);
      const e = json<{ error: { code: string; message: string } }>(r).error;
      assert.equal(e.code, 'HOLDFAST_E_LEDGER_OPEN');
      assert.match(e.message, /needs to be initialised before it can be read, and this command only reads; run a writing command \(e\.g\. holdfast push\)/);
    }
    assert.equal(statSync(ledgerPath(state)).size, 0, 'no migration ran');
    assert.deepEqual(readdirSync(state), ['holdfast.db']);
  });

  it('a missing state directory is named as such, and not created', async () => {
    const state = join(tmp.path, 'never-made');
    const r = await runCli(['status', '--state', state]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /HOLDFAST_E_LEDGER_OPEN: .*the state directory ".*never-made" does not exist/);
    assert.ok(!existsSync(state));
  });
});

describe('state directories that cannot be made', () => {
  let tmp: TempDir;
  before(async () => {
    tmp = await makeTempDir('holdfast-hostile-state-');
    mkdirSync(join(tmp.path, 'src'));
    writeFileSync(join(tmp.path, 'src', 'a.txt'), 'alpha');
  });
  after(async () => tmp.cleanup());

  it('on /proc or /sys: refused at once (no endless mkdir), naming the file system', async () => {
    const url = pathToFileURL(join(tmp.path, 'dst')).href;
    for (const [state, fs] of [
      [`/proc/holdfast-test-${process.pid}/state`, 'proc'],
      [`/proc/self/holdfast-state`, 'proc'],
      [`/sys/holdfast-test-${process.pid}`, 'sysfs'],
    ] as const) {
      if (!existsSync(state.split('/').slice(0, 2).join('/'))) continue;
      // Before the fix the first spun at 100% CPU, deaf to signals: the timeout kills it.
      const r = await runCli(['push', join(tmp.path, 'src'), url, '--state', state], { timeoutMs: 20_000 });
      assert.equal(r.signal, null, `${state}: killed after 20 s`);
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, new RegExp(`HOLDFAST_E_LEDGER_OPEN: .* is on a ${fs} file system \\(kernel pseudo-files, not storage\\); choose a directory on a disk`));
    }
    assert.ok(!existsSync(join(tmp.path, 'dst', 'a.txt')), 'nothing was sent without a ledger');
  });

  it('on a read-only mount: status reads the ledger there, and a missing state directory says EROFS (real tmpfs)', async (t) => {
    const mnt = join(tmp.path, 'ro');
    mkdirSync(mnt);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0755', 'tmpfs', mnt], { stdio: 'pipe' });
    } catch (e) {
      t.skip(`cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): ${(e as Error).message.split('\n')[0]}`);
      return;
    }
    try {
      const url = pathToFileURL(join(tmp.path, 'dst-ro')).href;
      const state = join(mnt, 'state');
      const first = await runCli(['push', join(tmp.path, 'src'), url, '--state', state, '--no-fsync']);
      assert.equal(first.code, 0, first.stderr);
      execFileSync('mount', ['-o', 'remount,ro', mnt]);

      const st = await runCli(['status', url, '--state', state, '--json']);
      assert.equal(st.code, 0, st.stderr);
      assert.equal(json<StatusReport>(st).destinations[0]?.objects.upload_completed.count, 1);

      const missing = await runCli(['push', join(tmp.path, 'src'), url, '--state', join(mnt, 'new', 'state')]);
      assert.equal(missing.code, 3, missing.stderr);
      assert.match(missing.stderr, /HOLDFAST_E_LEDGER_OPEN: .*EROFS: read-only file system, mkdir/);
      assert.ok(!/ENOENT/.test(missing.stderr), missing.stderr);
    } finally {
      execFileSync('umount', [mnt]);
    }
  });
});
