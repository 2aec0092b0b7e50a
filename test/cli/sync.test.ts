// `holdfast sync` from the command line: a directory that cannot be read in a
// run never has its objects deleted (the scan error makes the listing
// doubtful), while deletes elsewhere proceed; the exit code says partial.
// Permissions only bind non-root users, so the CLI runs as uid 65534.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { parseJsonReport, runCli } from '../helpers/cli.js';

const NOBODY = 65534;
const asNobody = process.getuid?.() === 0 ? { uid: NOBODY, gid: NOBODY } : {};

describe('holdfast sync: deletes never follow a scan error', () => {
  let tmp: TempDir;
  before(async () => (tmp = await makeTempDir('holdfast-cli-sync-')));
  after(async () => {
    chmodSync(join(tmp.path, 'src', 'locked'), 0o755);
    await tmp.cleanup();
  });

  it('keeps objects under an unreadable directory, deletes the rest, exits 2', async () => {
    const src = join(tmp.path, 'src');
    for (const d of ['locked', 'open']) mkdirSync(join(src, d), { recursive: true });
    for (const f of ['locked/a.txt', 'locked/b.txt', 'open/c.txt', 'open/d.txt', 'top.txt']) writeFileSync(join(src, f), f);
    const own = (p: string): void => chownSync(p, NOBODY, NOBODY);
    chmodSync(tmp.path, 0o777);
    for (const p of [src, join(src, 'locked'), join(src, 'open')]) own(p);
    for (const f of ['locked/a.txt', 'locked/b.txt', 'open/c.txt', 'open/d.txt', 'top.txt']) own(join(src, f));
    const env = { HOLDFAST_STATE: join(tmp.path, 'state') };
    const dst = `file://${join(tmp.path, 'dst')}`;

    const first = await runCli(['sync', src, dst, '--json'], { env, ...asNobody });
    assert.equal(first.code, 0, first.stderr);
    assert.equal(parseJsonReport(first).uploads.completed, 5);

    chmodSync(join(src, 'locked'), 0o000);
    rmSync(join(src, 'open/c.txt'));
    const second = await runCli(['sync', src, dst, '--json', '--max-delete', '100%'], { env, ...asNobody });
    const rep = parseJsonReport(second);
    assert.equal(second.code, 2, second.stderr);
    assert.equal(rep.status, 'partial');
    assert.equal(rep.deletes?.completed, 1, 'open/c.txt is deleted');
    assert.ok(rep.errors.some((e) => e.key === 'locked/' && e.code === 'HOLDFAST_E_SOURCE_UNREADABLE'), JSON.stringify(rep.errors));
    assert.ok(existsSync(join(tmp.path, 'dst', 'locked', 'a.txt')), 'objects under the unreadable directory are kept');
    assert.ok(existsSync(join(tmp.path, 'dst', 'locked', 'b.txt')));
    assert.ok(!existsSync(join(tmp.path, 'dst', 'open', 'c.txt')));
    assert.equal(rep.deletes?.refused, 2);
  });

  it('keeps the object of a file it could not stat (a directory listable but not searchable: r--)', async () => {
    const src = join(tmp.path, 'src-r');
    mkdirSync(join(src, 'listable'), { recursive: true });
    for (const f of ['listable/x.txt', 'top.txt']) writeFileSync(join(src, f), f);
    for (const p of [src, join(src, 'listable'), join(src, 'listable/x.txt'), join(src, 'top.txt')]) chownSync(p, NOBODY, NOBODY);
    chmodSync(tmp.path, 0o777);
    const env = { HOLDFAST_STATE: join(tmp.path, 'state-r') };
    const dst = `file://${join(tmp.path, 'dst-r')}`;
    const first = await runCli(['sync', src, dst, '--json'], { env, ...asNobody });
    assert.equal(first.code, 0, first.stderr);

    // Listable (r) but not searchable (no x): readdir works, lstat of its files fails with EACCES.
    chmodSync(join(src, 'listable'), 0o444);
    try {
      const second = await runCli(['sync', src, dst, '--json', '--max-delete', '100%'], { env, ...asNobody });
      const rep = parseJsonReport(second);
      assert.equal(second.code, 2, second.stderr);
      assert.ok(rep.errors.some((e) => e.key === 'listable/x.txt' && e.code === 'HOLDFAST_E_SOURCE_UNREADABLE'), JSON.stringify(rep.errors));
      assert.equal(rep.deletes?.completed, 0, 'the copy of a file that could not be read is not deleted');
      assert.ok(existsSync(join(tmp.path, 'dst-r', 'listable', 'x.txt')));
    } finally {
      chmodSync(join(src, 'listable'), 0o755);
    }
  });

  it('--follow-symlinks: a symlinked directory whose target is gone (an unmounted disk) keeps its objects', async () => {
    const src = join(tmp.path, 'src-l');
    const disk = join(tmp.path, 'disk');
    mkdirSync(src, { recursive: true });
    mkdirSync(disk, { recursive: true });
    for (let i = 0; i < 4; i++) writeFileSync(join(disk, `photo${i}.jpg`), `photo ${i}`);
    writeFileSync(join(src, 'local.txt'), 'local');
    symlinkSync(disk, join(src, 'mounted'));
    const env = { HOLDFAST_STATE: join(tmp.path, 'state-l') };
    const dst = `file://${join(tmp.path, 'dst-l')}`;
    const first = await runCli(['sync', src, dst, '--json', '--follow-symlinks'], { env });
    assert.equal(first.code, 0, first.stderr);
    assert.equal(parseJsonReport(first).uploads.completed, 5);

    renameSync(disk, `${disk}.unmounted`);
    const second = await runCli(['sync', src, dst, '--json', '--follow-symlinks', '--max-delete', '100%'], { env });
    const rep = parseJsonReport(second);
    assert.equal(second.code, 2, second.stderr);
    assert.ok(rep.errors.some((e) => e.key === 'mounted' && e.code === 'HOLDFAST_E_SOURCE_UNREADABLE'), JSON.stringify(rep.errors));
    assert.equal(rep.deletes?.completed, 0, JSON.stringify(rep));
    for (let i = 0; i < 4; i++) assert.ok(existsSync(join(tmp.path, 'dst-l', 'mounted', `photo${i}.jpg`)));
  });

  it('a name that is not valid UTF-8 is a failed file: push, sync and check exit 2, never "completed"', async () => {
    const src = join(tmp.path, 'src-u');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'good.txt'), 'good');
    writeFileSync(Buffer.concat([Buffer.from(src + '/'), Buffer.from([0x62, 0x61, 0x64, 0xff])]), 'latin-1 name');
    const env = { HOLDFAST_STATE: join(tmp.path, 'state-u') };
    const dst = `file://${join(tmp.path, 'dst-u')}`;
    for (const command of ['push', 'sync']) {
      const r = await runCli([command, src, dst, '--json'], { env });
      const rep = parseJsonReport(r);
      assert.equal(r.code, 2, `${command}: ${r.stdout}`);
      assert.equal(rep.status, 'partial');
      assert.ok(rep.errors.some((e) => e.code === 'HOLDFAST_E_KEY_INVALID' && e.key.startsWith('bad')), JSON.stringify(rep.errors));
    }
    const check = await runCli(['check', src, dst, '--json'], { env });
    assert.equal(check.code, 2, check.stdout);
    assert.match(check.stdout, /"unreadable":1/);
  });

  it('--help explains the delete safety rules', async () => {
    const r = await runCli(['sync', '--help']);
    assert.equal(r.code, 0);
    for (const word of ['--max-delete', '--allow-empty-source', '--backup-dir', '--delete-excluded', 'two-phase']) assert.ok(r.stdout.includes(word), `help lacks ${word}`);
  });
});
