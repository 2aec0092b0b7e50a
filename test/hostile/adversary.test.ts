// What an adversarial review of issues 9 and 10 found, each reproduced
// through the CLI or the public API as it was reported, and held to what the
// docs promise: --backup-dir never overwrites what someone else keeps; the
// ledger is never kept inside a destination; symlinked spellings of one
// directory are seen as one place by cleanup; URLs and arguments that would
// silently name something else are refused; numbers a timer cannot take are
// refused; pull never lowers its checks because the ledger cannot be opened;
// sync's notes tell the truth about deletes it resumes; cleanup finishes the
// deletes a killed run left in progress.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openLedger } from '../../src/ledger/open.js';
import { push } from '../../src/sync/push.js';
import { CLI_PATH, parseJsonReport, runCli } from '../helpers/cli.js';
import { destinationByUrl } from '../helpers/destinations.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const NOBODY = 65534;
const asRoot = process.getuid?.() === 0;

describe('hostile input: what the adversarial review found', () => {
  let tmp: TempDir;
  let n = 0;
  /** A fresh directory tree for one test: src (with files), state, and a root to put destinations in. */
  const fresh = (files: Record<string, string> = { 'a.txt': 'a', 'b.txt': 'b' }): { root: string; src: string; state: string } => {
    const root = join(tmp.path, `t${n++}`);
    const src = join(root, 'src');
    mkdirSync(src, { recursive: true });
    for (const [k, v] of Object.entries(files)) {
      mkdirSync(join(src, k, '..'), { recursive: true });
      writeFileSync(join(src, k), v);
    }
    return { root, src, state: join(root, 'state') };
  };
  before(async () => {
    tmp = await makeTempDir('holdfast-adversary-');
    chmodSync(tmp.path, 0o755);
  });
  after(async () => tmp.cleanup());

  it('D1: --backup-dir onto another destination of the ledger, or onto the source, is refused', async () => {
    const { root, src, state } = fresh();
    const other = join(root, 'other');
    mkdirSync(other);
    writeFileSync(join(other, 'a.txt'), 'OTHER');
    assert.equal((await runCli(['push', other, `file://${root}/X`, '--state', state])).code, 0);
    assert.equal((await runCli(['sync', src, `file://${root}/dst`, '--state', state])).code, 0);
    const onTracked = await runCli(['sync', src, `file://${root}/dst`, '--state', state, '--backup-dir', `file://${root}/X`]);
    assert.equal(onTracked.code, 1, onTracked.stderr);
    assert.match(onTracked.stderr, /overlaps file:\/\/.*\/X, a destination this ledger tracks/);
    for (const backup of [`file://${src}`, `file://${src}/old`, `file://${root}`]) {
      const r = await runCli(['sync', src, `file://${root}/dst`, '--state', state, '--backup-dir', backup]);
      assert.equal(r.code, 1, `${backup}: ${r.stderr}`);
      assert.match(r.stderr, /overlap/);
    }
    assert.equal(readFileSync(join(root, 'X', 'a.txt'), 'utf8'), 'OTHER');
  });

  it('D1: a backup never overwrites other content at its key (another ledger’s object): the object stays, the run says why', async () => {
    const { root, src, state } = fresh();
    const backup = join(root, 'backup');
    mkdirSync(backup);
    writeFileSync(join(backup, 'a.txt'), 'kept by someone else');
    assert.equal((await runCli(['sync', src, `file://${root}/dst`, '--state', state])).code, 0);
    writeFileSync(join(src, 'b.txt'), 'b'); // unchanged
    const { rmSync } = await import('node:fs');
    rmSync(join(src, 'a.txt'));
    rmSync(join(src, 'b.txt'));
    writeFileSync(join(src, 'c.txt'), 'c');
    const r = await runCli(['sync', src, `file://${root}/dst`, '--state', state, '--backup-dir', `file://${backup}`, '--max-delete', '100%', '--json']);
    const rep = parseJsonReport(r);
    assert.equal(r.code, 2, r.stdout);
    assert.equal(rep.deletes?.completed, 1, 'b.txt was moved');
    assert.equal(rep.deletes?.failed, 1, 'a.txt was not');
    assert.ok(rep.errors.some((e) => e.key === 'a.txt' && e.code === 'HOLDFAST_E_DELETE_REFUSED' && /already holds other content/.test(e.message)), JSON.stringify(rep.errors));
    assert.equal(readFileSync(join(backup, 'a.txt'), 'utf8'), 'kept by someone else');
    assert.equal(readFileSync(join(root, 'dst', 'a.txt'), 'utf8'), 'a', 'the object that could not be backed up is not deleted');
    assert.equal(readFileSync(join(backup, 'b.txt'), 'utf8'), 'b');
  });

  it('D2: the ledger is never kept inside a file:// destination: push and cleanup refuse, the ledger survives', async () => {
    const { root, src } = fresh();
    const dst = join(root, 'dst');
    for (const args of [
      ['push', src, `file://${dst}`, '--state', dst],
      ['push', src, `file://${dst}`, '--state', join(dst, '.holdfast')],
    ]) {
      const r = await runCli(args);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /ledger's directory .* is inside the destination/);
    }
    // A ledger put there before (by an older version, or by hand): cleanup refuses to look.
    assert.equal((await runCli(['push', src, `file://${dst}`, '--state', join(root, 'elsewhere')])).code, 0);
    const { cpSync } = await import('node:fs');
    cpSync(join(root, 'elsewhere'), join(dst, 'ledger'), { recursive: true });
    const c = await runCli(['cleanup', `file://${dst}`, '--state', join(dst, 'ledger'), '--apply']);
    assert.equal(c.code, 1, c.stderr);
    assert.ok(existsSync(join(dst, 'ledger', 'holdfast.db')));
  });

  it('D3: cleanup through a symlinked spelling keeps what another destination of the ledger tracks', async () => {
    const { root, src, state } = fresh({ 'b1.txt': 'b1' });
    const real = join(root, 'real');
    mkdirSync(real);
    symlinkSync(real, join(root, 'mnt'));
    const inner = join(root, 'inner');
    mkdirSync(inner);
    writeFileSync(join(inner, 'a1.txt'), 'a1');
    assert.equal((await runCli(['push', src, `file://${root}/mnt`, '--state', state])).code, 0);
    assert.equal((await runCli(['push', inner, `file://${real}/sub`, '--state', state])).code, 0);
    const r = await runCli(['cleanup', `file://${root}/mnt`, '--state', state, '--apply', '--max-delete', '100', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(join(real, 'sub', 'a1.txt')), 'the inner destination’s object is kept');
  });

  it('D7, D13: an s3:// prefix with a control character, and a file:// path with a NUL, are refused as bad URLs', async () => {
    const { src, state } = fresh();
    for (const url of ['s3://b1/x%0d', 's3://b1/%ef%bf%bf', 'file:///tmp/x%00y']) {
      const r = await runCli(['push', src, url, '--state', state], { env: { AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y', AWS_REGION: 'us-east-1' } });
      assert.equal(r.code, 1, `${url}: ${r.stderr}`);
      assert.match(r.stderr, /HOLDFAST_E_BAD_URL/);
    }
  });

  it('D8: pull with a ledger that exists but cannot be opened stops (exit 3) instead of restoring unverified; --no-ledger opts out', async () => {
    const { root, src, state } = fresh();
    assert.equal((await runCli(['push', src, `file://${root}/dst`, '--state', state])).code, 0);
    writeFileSync(join(state, 'holdfast.db'), Buffer.alloc(4096, 7)); // damaged beyond reading
    const r = await runCli(['pull', `file://${root}/dst`, join(root, 'restore'), '--state', state]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /HOLDFAST_E_LEDGER_OPEN.*--no-ledger/);
    assert.ok(!existsSync(join(root, 'restore', 'a.txt')));
    const opted = await runCli(['pull', `file://${root}/dst`, join(root, 'restore'), '--state', state, '--no-ledger']);
    assert.equal(opted.code, 0, opted.stderr);
  });

  it('D8: a user who may read the ledger but not write it still gets every object checked against it', { skip: asRoot ? false : 'needs root to switch to an unprivileged user' }, async () => {
    const { root, src, state } = fresh();
    assert.equal((await runCli(['push', src, `file://${root}/dst`, '--state', state])).code, 0);
    writeFileSync(join(root, 'dst', 'a.txt'), 'tampered');
    for (const f of ['holdfast.db', 'holdfast.db-wal', 'holdfast.db-shm']) if (existsSync(join(state, f))) chmodSync(join(state, f), 0o644);
    chmodSync(state, 0o555);
    chmodSync(root, 0o777);
    const r = await runCli(['pull', `file://${root}/dst`, join(root, 'restore'), '--state', state], { uid: NOBODY, gid: NOBODY });
    assert.equal(r.code, 2, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout + r.stderr, /HOLDFAST_E_CHECKSUM/);
  });

  it('D10: seconds a timer cannot wait are refused, not turned into "at once"', async () => {
    const { root, src, state } = fresh();
    for (const args of [
      ['--drain-timeout', '99999999'],
      ['--request-timeout', '9999999'],
    ]) {
      const r = await runCli(['push', src, `file://${root}/dst`, '--state', state, ...args]);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /HOLDFAST_E_USAGE/);
    }
    const w = await runCli(['watch', src, `file://${root}/dst`, '--state', state, '--quiet-period', '9999999']);
    assert.equal(w.code, 1, w.stderr);
  });

  it('D11: a retry policy that would never stop (NaN attempts) is refused at once', async () => {
    const { root, src, state } = fresh();
    await assert.rejects(
      push({ source: src, destination: `file://${root}/dst`, stateDir: state, retry: { attempts: Number.NaN, baseMs: 1, maxMs: 1 } }),
      (e: unknown) => (e as { code?: string }).code === 'HOLDFAST_E_USAGE',
    );
  });

  it('D12: an argument that is not valid UTF-8 is refused, never taken for the path it decodes to', async () => {
    const { root, state } = fresh();
    // The decoded spelling exists, the real one does not: the old behaviour pushed the wrong directory.
    mkdirSync(join(root, 's\uFFFD'));
    writeFileSync(join(root, 's\uFFFD', 'decoy.txt'), 'decoy');
    // Node would send a JS string as UTF-8: the raw byte 0xff goes through a shell.
    const raw = spawnSync('/bin/sh', ['-c', `exec "${process.execPath}" "${CLI_PATH}" push "${root}/s"$(printf '\\377') "file://${root}/dst" --state "${state}"`], { encoding: 'utf8' });
    assert.equal(raw.status, 1, raw.stderr);
    assert.match(raw.stderr, /not valid UTF-8/);
    assert.ok(!existsSync(join(root, 'dst', 'decoy.txt')), 'the other directory was not pushed');
  });

  it('B2: a sync that carries out deletes an interrupted run recorded says nothing false about them', async () => {
    const { root, src, state } = fresh({ 'a.txt': 'a', 'b.txt': 'b', 'c.txt': 'c', 'd.txt': 'd' });
    assert.equal((await runCli(['sync', src, `file://${root}/dst`, '--state', state])).code, 0);
    // A sync that recorded its deletes and died before doing them: rows delete_pending.
    const ledger = await openLedger({ stateDir: state });
    try {
      const d = (await destinationByUrl(ledger, `file://${root}/dst`))!;
      const rows = [await ledger.getObject(d.id, 'a.txt'), await ledger.getObject(d.id, 'b.txt')];
      await ledger.planDeletes(
        rows.map((row) => ({ objectId: row!.id, key: row!.key, seen: { status: row!.status, sha256: row!.sha256 } })),
        'source file gone (sync)',
        null,
      );
    } finally {
      await ledger.close();
    }
    const { rmSync } = await import('node:fs');
    rmSync(join(src, 'a.txt'));
    rmSync(join(src, 'b.txt'));
    const r = await runCli(['sync', src, `file://${root}/dst`, '--state', state, '--max-delete', '100%', '--json']);
    const rep = parseJsonReport(r);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(rep.deletes?.completed, 2);
    assert.ok(!(rep.notes ?? []).some((nn) => /changed since it was planned/.test(nn.note)), JSON.stringify(rep.notes));
  });

  it('cleanup finishes the deletes a killed run left in progress (it asks the destination first)', async () => {
    const { root, src, state } = fresh();
    const dst = join(root, 'dst');
    assert.equal((await runCli(['push', src, `file://${dst}`, '--state', state])).code, 0);
    writeFileSync(join(dst, 'stray.tmp'), 'orphan');
    // A cleanup that recorded its delete intent and was killed before deleting: a row in delete_in_progress, its owner dead.
    const ledger = await openLedger({ stateDir: state });
    try {
      const d = (await destinationByUrl(ledger, `file://${dst}`))!;
      await ledger.markOrphansForDeletion(d.id, ['stray.tmp'], 'orphaned object', null);
      await ledger.claim({ destinationId: d.id, owner: 'gone-host:1:dead', limit: 10, leaseMs: 0, runId: null, statuses: ['delete_pending'] });
    } finally {
      await ledger.close();
    }
    const r = await runCli(['cleanup', `file://${dst}`, '--state', state, '--apply', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!existsSync(join(dst, 'stray.tmp')), r.stdout);
    const check = await runCli(['check', src, `file://${dst}`, '--state', state]);
    assert.equal(check.code, 0, check.stdout);
  });
});
