// Rules: which destinations each file goes to. The first matching rule
// decides; a rule's conditions (glob, type, minSize, maxSize) must all hold;
// a file no rule matches goes nowhere. And jobOptions: the file's settings,
// with the caller's (command-line) overrides on top.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compileRules, describeRule, jobOptions, loadConfigText, type Config } from '../../src/config/index.js';
import { HoldfastError } from '../../src/core/errors.js';
import type { DestinationSpec } from '../../src/sync/run.js';

const MiB = 1024 ** 2;

function config(text: string): Config {
  return loadConfigText(text, { file: '/etc/holdfast/holdfast.yaml', env: { HOME: '/home/op' } }).config;
}

const TEXT = `version: 1
destinations:
  offsite: { url: s3://backups/host1, region: eu-west-1 }
  azure:   { url: "file:///mnt/azure-stand-in" }
  local:   { url: "file:///mnt/nas", fsync: false }
types:
  db:   ["*.sql.gz", "*.dump"]
  full: ["full-*.tar.zst"]
jobs:
  nightly:
    source: /var/backups
    exclude: ["*.tmp"]
    transfers: 8
    rules:
      - { type: db, to: [offsite, azure] }
      - { glob: "logs/**", maxSize: 100MiB, to: [local] }
      - { glob: "scratch", to: [] }
      - { type: full, minSize: 1GiB, to: [offsite] }
      - { glob: ["*.tar.zst", "!keep-*.tar.zst"], to: [local] }
  everything:
    command: sync
    source: /srv
    to: [local, offsite]
    maxDelete: 25
`;

const file = (key: string, size = 10) => ({ key, size, mtimeMs: 0 });

describe('rules', () => {
  const c = config(TEXT);
  const job = c.jobs.get('nightly')!;
  const rules = compileRules(job, c.types);
  const where = (key: string, size?: number): readonly string[] => rules.destinationsOf(file(key, size));

  it('type: a file of the type, at any depth (a glob without "/" matches the name)', () => {
    assert.deepEqual(where('db/2026-01-01.sql.gz'), ['offsite', 'azure']);
    assert.deepEqual(where('pg.dump'), ['offsite', 'azure']);
  });

  it('glob: the same rules as --exclude ("logs/**" is anchored; a directory name matches what is under it)', () => {
    assert.deepEqual(where('logs/app.log'), ['local']);
    assert.deepEqual(where('logs/2026/01/app.log'), ['local']);
    assert.deepEqual(where('old/logs/app.log'), [], 'anchored at the source root');
    assert.deepEqual(where('scratch/a/b.bin'), [], 'a directory name matches the files under it; to: [] sends them nowhere');
  });

  it('sizes are inclusive bounds, and every condition of a rule must hold', () => {
    assert.deepEqual(where('logs/huge.log', 100 * MiB), ['local']);
    assert.deepEqual(where('logs/huge.log', 100 * MiB + 1), [], 'too big for the logs rule, and no later rule takes it');
    assert.deepEqual(where('full-2026-01.tar.zst', 1024 * MiB), ['offsite']);
    assert.deepEqual(where('full-2026-01.tar.zst', 1024 * MiB - 1), ['local'], 'too small for the full rule: the next one that matches decides');
  });

  it('the first matching rule wins, even when a later one would match too', () => {
    // A db file under logs/: rule 0 (type db) comes before rule 1 (logs/**).
    assert.deepEqual(where('logs/x.sql.gz'), ['offsite', 'azure']);
    assert.equal(rules.ruleFor(file('logs/x.sql.gz'))?.index, 0);
  });

  it('negated globs re-include, as in an exclude list', () => {
    assert.deepEqual(where('other.tar.zst'), ['local']);
    assert.deepEqual(where('keep-this.tar.zst'), []);
  });

  it('a file no rule matches goes nowhere', () => {
    assert.deepEqual(where('readme.txt'), []);
    assert.equal(rules.ruleFor(file('readme.txt')), undefined);
    for (const d of job.to) assert.equal(rules.select(d)(file('readme.txt')), false);
  });

  it('each destination’s selector says yes exactly for the files its rules send there', () => {
    const keys = ['a.sql.gz', 'logs/l.txt', 'full-1.tar.zst', 'z.tar.zst', 'readme.txt'];
    const selected = Object.fromEntries(job.to.map((d) => [d, keys.filter((k) => rules.select(d)(file(k)))]));
    assert.deepEqual(selected, { offsite: ['a.sql.gz'], azure: ['a.sql.gz'], local: ['logs/l.txt', 'full-1.tar.zst', 'z.tar.zst'] });
  });

  it('without rules every file goes to every destination of the job', () => {
    const all = compileRules(c.jobs.get('everything')!, c.types);
    assert.deepEqual(all.destinationsOf(file('anything/at/all')), ['local', 'offsite']);
    assert.equal(all.select('local')(file('x')), true);
  });

  it('rules in words, for config check', () => {
    const fmt = (n: number): string => `${n / MiB} MiB`;
    assert.deepEqual(
      job.rules!.map((r) => describeRule(r, fmt)),
      [
        'files of type db → offsite, azure',
        'files matching "logs/**", at most 100 MiB → local',
        'files matching "scratch" → nowhere',
        'files of type full, at least 1024 MiB → offsite',
        'files matching "*.tar.zst", "!keep-*.tar.zst" → local',
      ],
    );
    assert.equal(describeRule({ index: 0, to: ['a'], pos: { line: 1, col: 1 } }, fmt), 'every file → a');
    assert.equal(describeRule({ index: 3, to: ['a'], pos: { line: 1, col: 1 } }, fmt), 'every other file → a');
  });
});

describe('jobOptions', () => {
  const c = config(TEXT);
  const specs = (o: { destinations?: readonly (string | DestinationSpec)[] }): DestinationSpec[] => (o.destinations ?? []).map((d) => (typeof d === 'string' ? { url: d } : d));

  it('one DestinationSpec per destination of the job, named, with its backend options and its selector', () => {
    const { command, options } = jobOptions(c, 'nightly');
    assert.equal(command, 'push');
    assert.equal(options.source, '/var/backups');
    assert.equal(options.destination, undefined);
    const ds = specs(options);
    assert.deepEqual(
      ds.map((d) => [d.name, d.url, d.backendOptions]),
      [
        ['offsite', 's3://backups/host1', { s3Region: 'eu-west-1' }],
        ['azure', 'file:///mnt/azure-stand-in', {}],
        ['local', 'file:///mnt/nas', { fsync: false }],
      ],
    );
    assert.equal(ds[0]!.select?.(file('x.dump')), true);
    assert.equal(ds[2]!.select?.(file('x.dump')), false);
    assert.deepEqual(options.exclude, ['*.tmp']);
    assert.equal(options.transfers, 8);
    assert.equal(options.stateDir, undefined, 'no state in the file: the usual default applies');
  });

  it('counts the files no rule matched, once each however many destinations ask', () => {
    const run = jobOptions(c, 'nightly');
    const ds = specs(run.options);
    for (const d of ds) for (const k of ['a.sql.gz', 'readme.txt', 'scratch/x', 'notes/n.md']) d.select?.(file(k));
    assert.deepEqual(run.unmatched(), { count: 2, keys: ['readme.txt', 'notes/n.md'] }, 'scratch/x is sent nowhere on purpose (to: []), not unmatched');
    assert.deepEqual(jobOptions(c, 'everything').unmatched(), { count: 0, keys: [] });
  });

  it('a job without rules has no selectors; a sync job carries its delete settings', () => {
    const { command, options } = jobOptions(c, 'everything');
    assert.equal(command, 'sync');
    assert.ok(specs(options).every((d) => d.select === undefined));
    assert.equal(options.maxDelete, 25);
  });

  it('overrides win over the file; excludes are added after the file’s; backend flags go to the destinations of their scheme', () => {
    const { options } = jobOptions(c, 'nightly', {
      transfers: 2,
      dryRun: true,
      mode: 'all',
      exclude: ['!keep.tmp'],
      stateDir: '/tmp/state',
      backendOptions: { s3Endpoint: 'http://127.0.0.1:9000', fsync: true },
      partSize: undefined,
    });
    assert.equal(options.transfers, 2);
    assert.equal(options.dryRun, true);
    assert.equal(options.mode, 'all');
    assert.equal(options.stateDir, '/tmp/state');
    assert.deepEqual(options.exclude, ['*.tmp', '!keep.tmp']);
    const ds = specs(options);
    assert.deepEqual(ds[0]!.backendOptions, { s3Region: 'eu-west-1', s3Endpoint: 'http://127.0.0.1:9000' });
    assert.deepEqual(ds[2]!.backendOptions, { fsync: true }, '--no-fsync/fsync concerns file:// destinations only');
  });

  it('the file’s state directory is used unless overridden', () => {
    const withState = config(`state: ./state\n${TEXT.replace('version: 1\n', '')}`);
    assert.equal(jobOptions(withState, 'nightly').options.stateDir, '/etc/holdfast/state');
  });

  it('an unknown job, and sync-only overrides on a push job, are usage errors', () => {
    assert.throws(() => jobOptions(c, 'nightyl'), (e: unknown) => e instanceof HoldfastError && e.code === 'HOLDFAST_E_USAGE' && /no job "nightyl" in \/etc\/holdfast\/holdfast\.yaml \(did you mean "nightly"\?\); jobs: nightly, everything/.test(e.message));
    assert.throws(() => jobOptions(c, 'nightly', { maxDelete: '10' }), (e: unknown) => e instanceof HoldfastError && e.code === 'HOLDFAST_E_USAGE' && /maxDelete applies only to sync jobs/.test(e.message));
    assert.throws(() => jobOptions(c, 'everything', { backupDir: 'file:///attic' }), (e: unknown) => e instanceof HoldfastError && /one destination/.test(e.message));
  });
});
