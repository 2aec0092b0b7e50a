// `holdfast sync` from the command line: a directory that cannot be read in a
// run never has its objects deleted (the scan error makes the listing
// doubtful), while deletes elsewhere proceed; the exit code says partial.
// Permissions only bind non-root users, so the CLI runs as uid 65534.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
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

  it('--help explains the delete safety rules', async () => {
    const r = await runCli(['sync', '--help']);
    assert.equal(r.code, 0);
    for (const word of ['--max-delete', '--allow-empty-source', '--backup-dir', '--delete-excluded', 'two-phase']) assert.ok(r.stdout.includes(word), `help lacks ${word}`);
  });
});
