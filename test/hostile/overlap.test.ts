// Overlapping paths are refused before anything is done (issue 10, points 4
// and 5; rclone refuses all of these): a destination inside the source (every
// run nests a new copy, watch never settles), the source inside a
// destination, two overlapping destinations of one run, and a --backup-dir
// that overlaps the destination (on any scheme: same bucket, overlapping
// prefixes). An excluded destination directory is allowed.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir, listTree, type TempDir } from '../helpers/tmp.js';
import { parseJsonReport, runCli } from '../helpers/cli.js';

describe('hostile input: overlapping paths', () => {
  let tmp: TempDir;
  let env: NodeJS.ProcessEnv;
  let src: string;
  before(async () => {
    tmp = await makeTempDir('holdfast-overlap-');
    src = join(tmp.path, 'src');
    mkdirSync(join(src, 'docs'), { recursive: true });
    writeFileSync(join(src, 'docs', 'a.txt'), 'a');
    writeFileSync(join(src, 'b.txt'), 'b');
    env = { HOLDFAST_STATE: join(tmp.path, 'state'), AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y', AWS_REGION: 'us-east-1' };
  });
  after(async () => tmp.cleanup());

  it('a destination inside the source is refused (exit 1), for push, sync and watch; nothing is written', async () => {
    const inside = `file://${join(src, 'backup')}`;
    for (const args of [
      ['push', src, inside],
      ['sync', src, inside],
      ['watch', src, inside],
    ]) {
      const r = await runCli(args, { env, timeoutMs: 30_000 });
      assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
      assert.match(r.stderr, /inside the source directory/);
      assert.match(r.stderr, /--exclude "backup\/"/);
    }
    assert.ok(!existsSync(join(src, 'backup')), 'nothing was written');
    const itself = await runCli(['push', src, `file://${src}`], { env });
    assert.equal(itself.code, 1);
    assert.match(itself.stderr, /is the source directory itself/);
  });

  it('…unless that directory is excluded: then each run sends only the source, never its own copies', async () => {
    const inside = `file://${join(src, 'out', 'backup')}`;
    for (let run = 0; run < 2; run++) {
      const r = await runCli(['push', src, inside, '--exclude', 'out/', '--json'], { env });
      assert.equal(r.code, 0, r.stderr);
    }
    assert.deepEqual(listTree(join(src, 'out', 'backup')), ['b.txt', 'docs/a.txt']);
  });

  it('a destination reached through a symlink into the source is refused too', async () => {
    const link = join(tmp.path, 'looks-elsewhere');
    symlinkSync(join(src, 'docs'), link);
    const r = await runCli(['push', src, `file://${join(link, 'copy')}`], { env });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /inside the source directory/);
  });

  it('the source inside the destination is refused', async () => {
    const r = await runCli(['sync', join(src, 'docs'), `file://${src}`], { env });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /is inside the destination/);
  });

  it('--backup-dir equal to, inside, or around the destination is refused on every scheme', async () => {
    const dst = `file://${join(tmp.path, 'dst')}`;
    const cases: [string, string][] = [
      [dst, dst],
      [dst, `${dst}/old`],
      [`${dst}/live`, dst],
      ['s3://bkt/site', 's3://bkt/site'],
      ['s3://bkt/site', 's3://bkt/site/.trash'],
      ['s3://bkt/site/', 's3://bkt/'],
    ];
    for (const [destination, backup] of cases) {
      const r = await runCli(['sync', src, destination, '--backup-dir', backup], { env });
      assert.equal(r.code, 1, `${destination} with --backup-dir ${backup}: ${r.stderr}`);
      assert.match(r.stderr, /--backup-dir .* overlaps the destination/);
    }
    assert.ok(!existsSync(join(tmp.path, 'dst')), 'nothing was written');
    // Next to each other is fine: a sibling prefix, another bucket.
    const ok = await runCli(['sync', src, `${dst}/live`, '--backup-dir', `${dst}/old`, '--json'], { env });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(parseJsonReport(ok).uploads.completed, listTree(src).length);
  });

  it('two destinations of one run that overlap are refused', async () => {
    const a = `file://${join(tmp.path, 'fan')}`;
    const r = await runCli(['push', src, a, `${a}/inner`], { env });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /overlap/);
  });
});
