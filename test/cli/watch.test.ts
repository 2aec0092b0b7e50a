// `holdfast watch` as a user runs it: a file dropped into the watched
// directory appears on both destinations, one line per round on stdout
// (JSON Lines with --json), and SIGTERM stops it cleanly with exit 0.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startCli } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';


describe('holdfast watch', () => {
  let tmp: TempDir;
  before(async () => (tmp = await makeTempDir('holdfast-cli-watch-')));
  after(async () => tmp.cleanup());

  it('sends a new file to every destination, prints a JSON line per round, and exits 0 on SIGTERM', async () => {
    const src = join(tmp.path, 'src');
    mkdirSync(src);
    const a = join(tmp.path, 'a');
    const b = join(tmp.path, 'b');
    const { child, done } = startCli(['watch', src, `file://${a}`, `file://${b}`, '--state', join(tmp.path, 'state'), '--quiet-period', '0.2', '--json']);
    let stdout = '';
    child.stdout?.on('data', (d: Buffer | string) => (stdout += String(d)));
    await until('the first round', () => stdout.includes('"round":1'));
    writeFileSync(join(src, 'export-2026-11-23.csv'), 'a,b\n1,2\n');
    await until('the file on both destinations', () => existsSync(join(a, 'export-2026-11-23.csv')) && existsSync(join(b, 'export-2026-11-23.csv')));
    child.kill('SIGTERM');
    const r = await done;
    assert.equal(r.code, 0, r.stderr);
    const rounds = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { round: number; reason: string; status: string; uploads: { completed: number }; destinations: unknown[] });
    assert.ok(rounds.length >= 2);
    assert.equal(rounds[0]?.reason, 'start');
    assert.equal(
      rounds.reduce((n, x) => n + x.uploads.completed, 0),
      2,
      'one upload per destination',
    );
    assert.ok(rounds.every((x) => x.destinations.length === 2));
    assert.match(r.stderr, /stopped after \d+ round\(s\): 2 file\(s\) uploaded/);
  });

  it('--job watches a configured job: its source, destinations and rules', async () => {
    const base = join(tmp.path, 'job');
    const src = join(base, 'backups');
    mkdirSync(src, { recursive: true });
    const config = join(base, 'holdfast.yaml');
    writeFileSync(
      config,
      [
        'version: 1',
        'destinations:',
        `  nas: { url: "file://${join(base, 'nas')}" }`,
        `  offsite: { url: "file://${join(base, 'offsite')}" }`,
        'types:',
        '  db: ["*.sql.gz"]',
        'jobs:',
        '  backups:',
        '    source: ./backups',
        '    rules:',
        '      - { type: db, to: [nas, offsite] }',
        '      - { to: [nas] }',
        '',
      ].join('\n'),
    );
    const { child, done } = startCli(['watch', '--job', 'backups', '--config', config, '--state', join(base, 'state'), '--quiet-period', '0.2', '--json']);
    let stdout = '';
    child.stdout?.on('data', (d: Buffer | string) => (stdout += String(d)));
    await until('the first round', () => stdout.includes('"round":1'));
    writeFileSync(join(src, 'app.sql.gz'), 'dump');
    writeFileSync(join(src, 'files.tar'), 'files');
    await until('the dump on both, the tarball on the NAS', () => existsSync(join(base, 'offsite', 'app.sql.gz')) && existsSync(join(base, 'nas', 'app.sql.gz')) && existsSync(join(base, 'nas', 'files.tar')));
    child.kill('SIGINT');
    const r = await done;
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!existsSync(join(base, 'offsite', 'files.tar')), 'the rules kept the tarball off the offsite destination');
  });

  it('refuses --dry-run with a pointer to push --dry-run', async () => {
    const { done } = startCli(['watch', tmp.path, `file://${join(tmp.path, 'x')}`, '--dry-run']);
    const r = await done;
    assert.equal(r.code, 1);
    assert.match(r.stderr, /push --dry-run/);
  });
});
