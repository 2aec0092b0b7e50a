// A stale file-cache entry (issue 9 #11). The cache maps (path, size, mtime,
// inode) → SHA-256. A file rewritten in place with its mtime put back (touch
// -r, some sync tools) keeps all four, so the plan takes the old hash from the
// cache, the upload reads the new content, and the file fails with
// HOLDFAST_E_SOURCE_CHANGED. That failure must forget the entry: the next run
// hashes the file again and sends it, instead of failing the same way on
// every run for ever.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseJsonReport, runCli } from '../helpers/cli.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

describe('a stale file-cache entry', () => {
  let tmp: TempDir;
  before(async () => (tmp = await makeTempDir('holdfast-stale-cache-')));
  after(async () => tmp.cleanup());

  it('fails one run with SOURCE_CHANGED, is forgotten, and the next run sends the file', async () => {
    const src = join(tmp.path, 'src');
    mkdirSync(src);
    const file = join(src, 'report.txt');
    const mtime = new Date('2026-03-04T05:06:07.089Z');
    writeFileSync(file, 'version one of the report');
    writeFileSync(join(src, 'other.txt'), 'unchanged');
    utimesSync(file, mtime, mtime);
    const env = { HOLDFAST_STATE: join(tmp.path, 'state') };

    const first = await runCli(['push', src, `file://${join(tmp.path, 'd1')}`, '--json', '--quiet'], { env });
    assert.equal(first.code, 0, first.stderr);
    const { ino } = statSync(file);

    // Rewritten in place, same size, mtime put back: size, mtime and inode all match the cache entry.
    writeFileSync(file, 'VERSION TWO of the report');
    utimesSync(file, mtime, mtime);
    assert.equal(statSync(file).ino, ino);

    const d2 = join(tmp.path, 'd2');
    const second = await runCli(['push', src, `file://${d2}`, '--json', '--quiet'], { env });
    assert.equal(second.code, 2, second.stderr);
    assert.deepEqual(
      parseJsonReport(second).errors.map((e) => [e.key, e.code]),
      [['report.txt', 'HOLDFAST_E_SOURCE_CHANGED']],
    );

    const third = await runCli(['push', src, `file://${d2}`, '--json', '--quiet'], { env });
    assert.equal(third.code, 0, third.stderr);
    assert.equal(parseJsonReport(third).uploads.completed, 1);
    assert.equal(readFileSync(join(d2, 'report.txt'), 'utf8'), 'VERSION TWO of the report');
  });
});
