// `holdfast run <job>` and `holdfast config check`, end to end, as a user runs
// them: a configuration file with two file:// destinations and rules, run
// twice (the second run sends nothing), command-line flags over the file's
// settings, a sync job, and mistakes in the file reported with their places.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listTree, makeTempDir, type TempDir } from '../helpers/tmp.js';
import { parseJsonReport, runCli } from '../helpers/cli.js';

describe('holdfast run <job>', () => {
  let tmp: TempDir;
  let conf: string;
  let src: string;
  let a: string;
  let b: string;

  before(async () => {
    tmp = await makeTempDir('holdfast-cli-run-');
    src = join(tmp.path, 'src');
    a = join(tmp.path, 'a');
    b = join(tmp.path, 'b');
    const files: Record<string, string> = {
      'db/2026-01-01.sql.gz': 'dump one',
      'db/2026-01-02.sql.gz': 'dump two',
      'logs/app.log': 'log line\n',
      'logs/big.log': 'x'.repeat(4096),
      'full-2026-01.tar.zst': 'full backup',
      'notes.txt': 'hello',
      'tmp/scratch.tmp': 'scratch',
    };
    for (const [k, v] of Object.entries(files)) {
      mkdirSync(join(src, k, '..'), { recursive: true });
      writeFileSync(join(src, k), v);
    }
    conf = join(tmp.path, 'holdfast.yaml');
    writeFileSync(
      conf,
      `version: 1
state: ./state
destinations:
  offsite: { url: "file://${a}", fsync: false }
  nas:     { url: "file://${b}", fsync: false }
types:
  db:   ["*.sql.gz"]
  full: ["full-*.tar.zst"]
jobs:
  nightly:
    source: ./src
    exclude: ["*.tmp"]
    rules:
      - { type: db, to: [offsite, nas] }          # dumps: both
      - { glob: "logs/**", maxSize: 1KiB, to: [nas] }   # small logs: nas only
      - { type: full, to: [offsite] }
      # notes.txt and logs/big.log match no rule: they go nowhere
  mirror:
    command: sync
    source: ./src
    to: [offsite]
    maxDelete: 100%
  audit:
    source: ./src
    mode: all
    rules:
      - { type: db, to: [nas] }
`,
    );
  });
  after(async () => tmp.cleanup());

  const run = (...args: string[]) => runCli(['run', ...args, '--config', conf]);

  it('a dry run prints each destination’s plan and changes nothing', async () => {
    const r = await run('nightly', '--dry-run');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /== offsite \(file:\/\/.*\/a\)/);
    assert.match(r.stdout, /== nas \(file:\/\/.*\/b\)/);
    assert.ok(!existsSync(a) && !existsSync(b), 'no destination directory was created');
    assert.match(r.stderr, /note: 2 file\(s\) matched no rule of job "nightly" and went nowhere: (logs\/big\.log, notes\.txt|notes\.txt, logs\/big\.log)\./);
    assert.ok(!existsSync(join(tmp.path, 'state', 'holdfast.db')), 'no ledger was created');
  });

  it('sends each file where the first matching rule says, and nowhere when no rule matches', async () => {
    const r = await run('nightly', '--json', '--quiet');
    assert.equal(r.code, 0, r.stderr);
    const rep = parseJsonReport(r);
    assert.equal(rep.status, 'completed');
    assert.deepEqual(
      rep.destinations?.map((d) => [d.name, d.uploads.completed]),
      [
        ['offsite', 3],
        ['nas', 3],
      ],
    );
    assert.deepEqual(listTree(a), ['db/2026-01-01.sql.gz', 'db/2026-01-02.sql.gz', 'full-2026-01.tar.zst']);
    assert.deepEqual(listTree(b), ['db/2026-01-01.sql.gz', 'db/2026-01-02.sql.gz', 'logs/app.log']);
    assert.ok(existsSync(join(tmp.path, 'state', 'holdfast.db')), 'the ledger is where the file says, relative to the file');
  });

  it('a second run sends nothing', async () => {
    const rep = parseJsonReport(await run('nightly', '--json', '--quiet'));
    assert.equal(rep.status, 'completed');
    assert.equal(rep.uploads.completed, 0);
    assert.equal(rep.uploads.skipped, 6);
    assert.equal(rep.bytes, 0);
  });

  it('command-line flags override the file: --force sends again, --exclude adds to the file’s, --state moves the ledger', async () => {
    const state = join(tmp.path, 'other-state');
    const r = await run('nightly', '--json', '--quiet', '--force', '--exclude', 'db/2026-01-02.sql.gz', '--state', state);
    assert.equal(r.code, 0, r.stderr);
    const rep = parseJsonReport(r);
    assert.equal(rep.uploads.completed, 4, 'forced: every selected file but the newly excluded dump, on its destinations');
    assert.ok(existsSync(join(state, 'holdfast.db')));
  });

  it('an option left at its default does not override the file (mode: all stays), one given does', async () => {
    rmSync(join(b, 'db/2026-01-01.sql.gz'));
    const fromFile = await run('audit', '--dry-run', '--json', '--quiet');
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.deepEqual(
      parseJsonReport(fromFile).plan?.map((p) => [p.key, p.reason]),
      [['db/2026-01-01.sql.gz', 'missing']],
      'mode all (from the file) asks the destination and finds the object gone',
    );
    const overridden = await run('audit', '--dry-run', '--json', '--quiet', '--mode', 'incremental');
    assert.deepEqual(parseJsonReport(overridden).plan, [], '--mode incremental trusts the ledger');
    const repaired = await run('audit', '--json', '--quiet');
    assert.equal(parseJsonReport(repaired).uploads.completed, 1);
  });

  it('a sync job mirrors deletions on its destinations', async () => {
    const first = await run('mirror', '--json', '--quiet');
    assert.equal(first.code, 0, first.stderr);
    rmSync(join(src, 'notes.txt'));
    const second = await run('mirror', '--json', '--quiet');
    assert.equal(second.code, 0, second.stderr);
    assert.equal(parseJsonReport(second).deletes?.completed, 1);
    assert.ok(!existsSync(join(a, 'notes.txt')));
    assert.ok(existsSync(join(a, 'db/2026-01-01.sql.gz')));
  });

  it('an unknown job, or a sync flag on a push job, is a usage error (exit 1)', async () => {
    const unknown = await run('nighlty');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /HOLDFAST_E_USAGE: no job "nighlty" in .*holdfast\.yaml \(did you mean "nightly"\?\); jobs: nightly, mirror, audit/);
    const flag = await run('nightly', '--max-delete', '10');
    assert.equal(flag.code, 1);
    assert.match(flag.stderr, /maxDelete applies only to sync jobs/);
  });

  it('finds the file through $HOLDFAST_CONFIG', async () => {
    const r = await runCli(['run', 'nightly', '--dry-run', '--json', '--quiet'], { env: { HOLDFAST_CONFIG: conf } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(parseJsonReport(r).dryRun, true);
  });

  it('--help shows an example configuration', async () => {
    const r = await runCli(['run', '--help']);
    assert.equal(r.code, 0);
    for (const word of ['--config', 'holdfast.yaml', 'rules:', 'first match wins', 'docs/configuration.md']) assert.ok(r.stdout.includes(word), `help lacks ${word}`);
  });
});

describe('configuration mistakes from the command line', () => {
  let tmp: TempDir;
  before(async () => (tmp = await makeTempDir('holdfast-cli-config-')));
  after(async () => tmp.cleanup());

  it('every error is listed with file:line:col and field; exit 1; nothing runs', async () => {
    const conf = join(tmp.path, 'bad.yaml');
    writeFileSync(
      conf,
      `destinations:
  offsite: { url: "file://${tmp.path}/dst" }
jobs:
  nightly:
    source: ${tmp.path}
    transfers: many
    rules:
      - { to: [ofsite] }
`,
    );
    for (const args of [['run', 'nightly'], ['config', 'check']]) {
      const r = await runCli([...args, '--config', conf]);
      assert.equal(r.code, 1, r.stderr);
      assert.equal(
        r.stderr,
        `holdfast: HOLDFAST_E_CONFIG: configuration error: 2 problems in ${conf}:
  ${conf}:6:16: jobs.nightly.transfers: expected a whole number from 1 to 1024, got "many"
  ${conf}:8:16: jobs.nightly.rules[0].to[0]: unknown destination "ofsite" (did you mean "offsite"?) (known: offsite)
`,
      );
      assert.ok(!existsSync(join(tmp.path, 'dst')));
    }
  });

  it('--json prints the error as one JSON object', async () => {
    const r = await runCli(['run', 'nightly', '--json', '--config', join(tmp.path, 'missing.yaml')]);
    assert.equal(r.code, 1);
    const out = JSON.parse(r.stdout) as { status: string; error: { code: string; message: string } };
    assert.equal(out.error.code, 'HOLDFAST_E_CONFIG');
    assert.match(out.error.message, /missing\.yaml: no such file/);
  });
});

describe('holdfast config check', () => {
  let tmp: TempDir;
  before(async () => (tmp = await makeTempDir('holdfast-cli-config-check-')));
  after(async () => tmp.cleanup());

  it('shows destinations (secrets as their ${VAR}), types, and each job with its rules in words', async () => {
    const conf = join(tmp.path, 'holdfast.yaml');
    writeFileSync(
      conf,
      `destinations:
  offsite: { url: "s3://backups/host1", region: eu-west-1, endpoint: "\${S3_URL}" }
  nas:     { url: "file:///mnt/nas" }
types:
  db: ["*.sql.gz", "*.dump"]
jobs:
  nightly:
    description: dumps and logs
    source: ./backups
    transfers: 4
    rules:
      - { type: db, to: [offsite, nas] }
      - { glob: "logs/**", maxSize: 100MiB, to: [nas] }
      - { to: [offsite] }
`,
    );
    const r = await runCli(['config', 'check', '--config', conf], { env: { S3_URL: 'https://s3.example.com' } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      `${conf}: valid
destinations:
  offsite  s3://backups/host1  (region: eu-west-1, endpoint: https://s3.example.com/)
  nas      file:///mnt/nas
types:
  db: *.sql.gz, *.dump
jobs:
  nightly: push ${tmp.path}/backups → offsite, nas  # dumps and logs
    (the source directory does not exist yet)
    settings: transfers 4
    rules (the first that matches decides; a file no rule matches goes nowhere):
      1. files of type db → offsite, nas
      2. files matching "logs/**", at most 100 MiB → nas
      3. every other file → offsite
`,
    );
    const json = await runCli(['config', 'check', '--json', '--config', conf], { env: { S3_URL: 'https://s3.example.com' } });
    assert.equal(json.code, 0, json.stderr);
    const parsed = JSON.parse(json.stdout) as { valid: boolean; jobs: Record<string, { to: string[]; rules: { explained: string }[] }> };
    assert.equal(parsed.valid, true);
    assert.deepEqual(parsed.jobs.nightly?.to, ['offsite', 'nas']);
    assert.equal(parsed.jobs.nightly?.rules[2]?.explained, 'every other file → offsite');
  });
});
