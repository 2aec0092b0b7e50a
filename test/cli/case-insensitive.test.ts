// `holdfast sync` to a file:// destination on a case-insensitive file system
// (a real exFAT, test/helpers/exfat.ts), from a case-sensitive source: keys
// that differ only in case are one name there. Neither may overwrite the other
// and then be deleted as the other: two such keys fail the later one (exit 2)
// naming both; a source renamed only in case (README → Readme, Photos/ →
// photos/) converges in two runs with nothing lost on the way.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountExfat, type ExfatMount } from '../helpers/exfat.js';
import { parseJsonReport, runCli, type CliResult } from '../helpers/cli.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

describe('holdfast sync to a case-insensitive file:// destination (exFAT)', () => {
  let tmp: TempDir;
  let mount: ExfatMount | undefined;
  let skip: string | undefined;
  let n = 0;
  before(async () => {
    tmp = await makeTempDir('holdfast-cli-case-');
    const m = await mountExfat();
    if ('skip' in m) skip = m.skip;
    else mount = m;
  });
  after(async () => {
    await mount?.stop();
    await tmp.cleanup();
  });

  /** A source with `files`, a destination directory on the exFAT mount, and a sync command for them. */
  function setup(files: Record<string, string>): { src: string; dst: string; sync: (...extra: string[]) => Promise<CliResult> } {
    const base = join(tmp.path, `case${n}`);
    const src = join(base, 'src');
    const dst = join(mount!.path, `case${n++}`);
    for (const [key, content] of Object.entries(files)) {
      mkdirSync(join(src, key, '..'), { recursive: true });
      writeFileSync(join(src, key), content);
    }
    const env = { HOLDFAST_STATE: join(base, 'state') };
    return { src, dst, sync: (...extra) => runCli(['sync', src, `file://${dst}`, '--json', ...extra], { env }) };
  }
  const other = { 'a.txt': 'a', 'b.txt': 'b', 'c.txt': 'c', 'd.txt': 'd' };

  it('two keys that differ only in case: the later is refused naming both, nothing is overwritten, then deleted', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const { src, dst, sync } = setup({ ...other, 'Report.txt': 'upper', 'report.txt': 'lower' });
    const first = await sync();
    const rep = parseJsonReport(first);
    assert.equal(first.code, 2, first.stderr);
    assert.equal(rep.uploads.completed, 5);
    assert.equal(rep.uploads.failed, 1);
    const err = rep.errors.find((e) => e.key === 'report.txt');
    assert.equal(err?.code, 'HOLDFAST_E_KEY_COLLISION', JSON.stringify(rep.errors));
    assert.match(err.message, /"report\.txt" and "Report\.txt"/);
    assert.equal(readFileSync(join(dst, 'Report.txt'), 'utf8'), 'upper', 'the first spelling is stored, not overwritten');
    assert.deepEqual(readdirSync(dst).sort(), ['Report.txt', 'a.txt', 'b.txt', 'c.txt', 'd.txt']);

    // A dry run (which may not write to probe) sees it too, from the names already there.
    const dry = parseJsonReport(await sync('--dry-run'));
    assert.ok(dry.errors.some((e) => e.key === 'report.txt' && e.code === 'HOLDFAST_E_KEY_COLLISION'), JSON.stringify(dry.errors));

    // Every run says so again, and deletes nothing.
    const second = await sync();
    assert.equal(second.code, 2, second.stderr);
    assert.equal(parseJsonReport(second).deletes?.completed ?? 0, 0);
    assert.equal(readFileSync(join(dst, 'Report.txt'), 'utf8'), 'upper');

    // The user keeps one: the other spelling is deleted, then sent.
    rmSync(join(src, 'Report.txt'));
    const third = await sync();
    assert.equal(third.code, 2, third.stderr);
    assert.ok(parseJsonReport(third).errors.some((e) => e.key === 'report.txt' && e.code === 'HOLDFAST_E_KEY_COLLISION'));
    const fourth = await sync();
    assert.equal(fourth.code, 0, fourth.stderr);
    assert.deepEqual(readdirSync(dst).sort(), ['a.txt', 'b.txt', 'c.txt', 'd.txt', 'report.txt']);
    assert.equal(readFileSync(join(dst, 'report.txt'), 'utf8'), 'lower');
  });

  it('a file renamed only in case (README → Readme): never overwritten then deleted; the next run sends it', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const { src, dst, sync } = setup({ ...other, README: 'read me' });
    assert.equal((await sync()).code, 0);
    renameSync(join(src, 'README'), join(src, 'Readme'));
    const renamed = await sync();
    const rep = parseJsonReport(renamed);
    assert.equal(renamed.code, 2, renamed.stderr);
    assert.ok(rep.errors.some((e) => e.key === 'Readme' && e.code === 'HOLDFAST_E_KEY_COLLISION' && /"README"/.test(e.message)), JSON.stringify(rep.errors));
    assert.equal(rep.deletes?.completed, 1, 'README is deleted');
    const next = await sync();
    assert.equal(next.code, 0, next.stderr);
    assert.deepEqual(readdirSync(dst).sort(), ['Readme', 'a.txt', 'b.txt', 'c.txt', 'd.txt']);
    assert.equal(readFileSync(join(dst, 'Readme'), 'utf8'), 'read me');
    const check = await runCli(['check', src, `file://${dst}`, '--json'], { env: { HOLDFAST_STATE: join(src, '..', 'state') } });
    assert.equal(check.code, 0, `check is clean: ${check.stdout}${check.stderr}`);
  });

  it('a folder renamed only in case (Photos/ → photos/): every file survives and lands under the new name', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const { src, dst, sync } = setup({ ...other, 'Photos/1.jpg': 'one', 'Photos/2.jpg': 'two' });
    assert.equal((await sync()).code, 0);
    renameSync(join(src, 'Photos'), join(src, 'photos'));
    const renamed = await sync();
    assert.equal(renamed.code, 2, renamed.stderr);
    const rep = parseJsonReport(renamed);
    assert.deepEqual(
      rep.errors.map((e) => [e.key, e.code]).sort(),
      [
        ['photos/1.jpg', 'HOLDFAST_E_KEY_COLLISION'],
        ['photos/2.jpg', 'HOLDFAST_E_KEY_COLLISION'],
      ],
    );
    const next = await sync();
    assert.equal(next.code, 0, next.stderr);
    assert.deepEqual(readdirSync(dst).sort(), ['a.txt', 'b.txt', 'c.txt', 'd.txt', 'photos']);
    assert.deepEqual(readdirSync(join(dst, 'photos')).sort(), ['1.jpg', '2.jpg']);
    assert.equal(readFileSync(join(dst, 'photos', '2.jpg'), 'utf8'), 'two');
  });
});
