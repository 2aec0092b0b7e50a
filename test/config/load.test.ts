// Loading the configuration file: YAML and JSON, where it is looked for,
// ${VAR} expansion, ~ and relative paths, and the warnings about secrets
// written in plain text (whose values must never be printed).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, formatWarnings, loadConfig, loadConfigText, type Config } from '../../src/config/index.js';
import { HoldfastError } from '../../src/core/errors.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const EXAMPLE_YAML = `version: 1
state: ./.holdfast-state          # the ledger, next to this file
destinations:
  offsite:  { url: s3://backups/host1, endpoint: https://s3.example.com, region: eu-west-1, pathStyle: true }
  local:    { url: "file:///mnt/nas/backups", fsync: false }
types:
  db:    ["*.sql.gz", "*.dump"]
  full:  full-*.tar.zst
jobs:
  nightly:
    description: database dumps and logs
    command: push
    source: /var/backups
    exclude: ["*.tmp"]
    transfers: 8
    mode: incremental
    force: false
    multipartThreshold: 128MiB
    partSize: 8388608
    retries: 3
    rules:
      - { type: db,  to: [offsite, local] }
      - { glob: "logs/**", maxSize: 100MiB, to: [local] }
      - { to: [offsite] }
  mirror:
    command: sync
    source: ~/site
    to: offsite
    maxDelete: 10%
    allowEmptySource: false
    deleteExcluded: true
`;

const EXAMPLE_JSON = JSON.stringify(
  {
    version: 1,
    destinations: { offsite: { url: 's3://backups/host1', region: 'eu-west-1' }, local: { url: 'file:///mnt/nas/backups' } },
    types: { db: ['*.sql.gz'] },
    jobs: { nightly: { source: 'dumps', rules: [{ type: 'db', to: ['offsite', 'local'] }, { to: ['local'] }] } },
  },
  null,
  2,
);

function load(text: string, file = '/etc/holdfast/holdfast.yaml', env: NodeJS.ProcessEnv = { HOME: '/home/op' }): Config {
  return loadConfigText(text, { file, env }).config;
}

describe('loading a valid configuration', () => {
  it('reads the YAML example: destinations with their backend options, types, jobs, settings', () => {
    const c = load(EXAMPLE_YAML);
    assert.equal(c.version, 1);
    assert.equal(c.stateDir, '/etc/holdfast/.holdfast-state', 'relative to the file');
    assert.deepEqual([...c.destinations.keys()], ['offsite', 'local']);
    const offsite = c.destinations.get('offsite')!;
    assert.equal(offsite.url, 's3://backups/host1');
    assert.deepEqual(offsite.backendOptions, { s3Endpoint: 'https://s3.example.com', s3Region: 'eu-west-1', s3PathStyle: true });
    assert.deepEqual(c.destinations.get('local')!.backendOptions, { fsync: false });
    assert.deepEqual(c.types.get('db'), ['*.sql.gz', '*.dump']);
    assert.deepEqual(c.types.get('full'), ['full-*.tar.zst'], 'a single glob is a list of one');
    const nightly = c.jobs.get('nightly')!;
    assert.equal(nightly.command, 'push');
    assert.equal(nightly.source, '/var/backups');
    assert.deepEqual(nightly.to, ['offsite', 'local'], 'the destinations its rules name, in order');
    assert.deepEqual(nightly.exclude, ['*.tmp']);
    assert.deepEqual(nightly.settings, { transfers: 8, mode: 'incremental', force: false, multipartThreshold: 128 * 1024 ** 2, partSize: 8388608, retries: 3 });
    assert.equal(nightly.rules?.length, 3);
    assert.deepEqual(nightly.rules?.[1], { index: 1, glob: ['logs/**'], maxSize: 100 * 1024 ** 2, to: ['local'], pos: { line: 23, col: 9 } });
    const mirror = c.jobs.get('mirror')!;
    assert.equal(mirror.command, 'sync');
    assert.equal(mirror.source, '/home/op/site', '~ is $HOME');
    assert.deepEqual(mirror.to, ['offsite'], 'a single destination name is a list of one');
    assert.equal(mirror.rules, undefined);
    assert.deepEqual(mirror.deletion, { maxDelete: '10%', allowEmptySource: false, deleteExcluded: true });
  });

  it('requestTimeout is seconds in the file and milliseconds in the backend options, for network destinations only', () => {
    const c = load('destinations:\n  offsite: { url: s3://b/p, requestTimeout: 30 }\n  blob: { url: azure://backups/p, requestTimeout: "600" }\njobs:\n  j: { source: /x, to: [offsite, blob] }\n');
    assert.equal(c.destinations.get('offsite')!.backendOptions.requestTimeoutMs, 30_000);
    assert.equal(c.destinations.get('blob')!.backendOptions.requestTimeoutMs, 600_000);
    assert.throws(
      () => load('destinations:\n  nas: { url: "file:///mnt/nas", requestTimeout: 30 }\n  s3: { url: s3://b/p, requestTimeout: soon }\njobs:\n  j: { source: /x, to: [nas, s3] }\n'),
      (e: unknown) => {
        const m = (e as Error).message;
        assert.match(m, /destinations\.nas\.requestTimeout: applies only to s3:\/\/ and azure:\/\/ and gdrive:\/\/ destinations/);
        assert.match(m, /destinations\.s3\.requestTimeout: expected a whole number from 1 to 86400/);
        return true;
      },
    );
  });

  it('reads JSON (by extension) with the same meaning, relative source against the file', () => {
    const c = load(EXAMPLE_JSON, '/srv/conf/holdfast.json');
    assert.equal(c.jobs.get('nightly')!.source, '/srv/conf/dumps');
    assert.deepEqual(c.jobs.get('nightly')!.to, ['offsite', 'local']);
    assert.equal(c.stateDir, undefined);
  });

  it('detects JSON by content when the name says nothing, and holds JSON to JSON rules', () => {
    assert.equal(load(EXAMPLE_JSON, '/srv/conf/holdfast.conf').jobs.size, 1);
    // YAML-only syntax (a comment) in a .json file is an error, with its place.
    const bad = EXAMPLE_JSON.replace('"version": 1,', '"version": 1, // the format\n');
    assert.throws(() => load(bad, '/srv/conf/holdfast.json'), (e: unknown) => e instanceof ConfigError && /^configuration error: \/srv\/conf\/holdfast\.json:2:\d+: invalid JSON/.test(e.message));
  });

  it('accepts anchors and aliases (a shared list of destinations)', () => {
    const c = load(`destinations:
  a: { url: "file:///a" }
  b: { url: "file:///b" }
jobs:
  one: { source: /x, to: &both [a, b] }
  two: { source: /y, to: *both }
`);
    assert.deepEqual(c.jobs.get('two')!.to, ['a', 'b']);
  });
});

describe('${VAR} expansion', () => {
  const text = `destinations:
  offsite: { url: "s3://\${BUCKET}/\${HOST}", region: "\${REGION}" }
jobs:
  nightly: { source: "\${BACKUP_DIR}/dumps", to: offsite, transfers: "\${TRANSFERS}", exclude: ["$\${literal}"] }
`;

  it('expands from the environment, in any string, numbers included; $${ is a literal ${', () => {
    const c = load(text, '/c/holdfast.yaml', { BUCKET: 'bk', HOST: 'h1', REGION: 'eu-west-1', BACKUP_DIR: '/var/backups', TRANSFERS: '4' });
    assert.equal(c.destinations.get('offsite')!.url, 's3://bk/h1');
    assert.equal(c.destinations.get('offsite')!.backendOptions.s3Region, 'eu-west-1');
    assert.equal(c.jobs.get('nightly')!.source, '/var/backups/dumps');
    assert.equal(c.jobs.get('nightly')!.settings.transfers, 4);
    assert.deepEqual(c.jobs.get('nightly')!.exclude, ['${literal}']);
  });

  it('an unquoted ${VAR} inside { } is a YAML error, with a hint', () => {
    assert.throws(
      () => load('destinations:\n  o: { url: s3://b/p, region: ${REGION} }\njobs: { j: { source: /x, to: o } }\n', 'holdfast.yaml', { REGION: 'r' }),
      (e: unknown) => e instanceof ConfigError && /\n {2}holdfast\.yaml:2:\d+: YAML syntax: .*a value with \$\{\.\.\.\} must be quoted/.test(e.message),
    );
  });

  it('a missing variable is an error naming it and the field; every missing one is reported', () => {
    try {
      load(text, 'holdfast.yaml', { BUCKET: 'bk', REGION: 'r', TRANSFERS: '4' });
      assert.fail('should have thrown');
    } catch (e) {
      assert.ok(e instanceof ConfigError, String(e));
      assert.equal(e.code, 'HOLDFAST_E_CONFIG');
      assert.deepEqual(
        e.message.split('\n').slice(1),
        ['  holdfast.yaml:2:19: destinations.offsite.url: environment variable HOST is not set', '  holdfast.yaml:4:22: jobs.nightly.source: environment variable BACKUP_DIR is not set'],
      );
    }
  });
});

describe('secrets written in plain text', () => {
  const SECRET = 'c2VjcmV0LWtleS12YWx1ZQ==';
  const WARNING = 'a secret is written in plain text in this file; write ${VARIABLE} instead and set the variable in the environment';
  const azureText = `destinations:
  blob:
    url: azure://backups/host1
    account: acme
    accountKey: ${SECRET}
  viaenv:
    url: azure://backups/host2
    connectionString: \${AZURE_STORAGE_CONNECTION_STRING}
  mixed:
    url: azure://backups/host3
    connectionString: "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=${SECRET};EndpointSuffix=core.windows.net"
  safe:
    url: azure://backups/host4
    connectionString: "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=\${KEY}"
  sas:
    url: azure://backups/host5
    account: acme
    sasToken: "\${SAS}"
jobs:
  j: { source: /x, to: [blob, viaenv, mixed, safe, sas] }
`;
  const env = { AZURE_STORAGE_CONNECTION_STRING: `AccountName=acme;AccountKey=${SECRET}`, KEY: SECRET, SAS: `sv=2024&sig=${SECRET}` };
  let tmp: TempDir;
  before(async () => (tmp = await makeTempDir('holdfast-config-')));
  after(async () => tmp.cleanup());

  // The settings exist for azure:// and gdrive:// only. Both are always registered: were one missing,
  // these tests would fail (a broken build), not be skipped.

  it('warns for each plain secret, naming the field and line, never the value', () => {
    const loaded = loadConfigText(azureText, { file: 'holdfast.yaml', env, mode: 0o600 });
    const lines = formatWarnings(loaded);
    assert.deepEqual(lines, [`warning: holdfast.yaml:5:17: destinations.blob.accountKey: ${WARNING}`, `warning: holdfast.yaml:11:23: destinations.mixed.connectionString: ${WARNING}`]);
    for (const l of lines) assert.ok(!l.includes(SECRET), l);
    // The values reach the backend options all the same.
    assert.equal(loaded.config.destinations.get('blob')!.backendOptions.azureAccountKey, SECRET);
    assert.equal(loaded.config.destinations.get('viaenv')!.backendOptions.azureConnectionString, env.AZURE_STORAGE_CONNECTION_STRING);
    assert.equal(loaded.config.destinations.get('sas')!.backendOptions.azureSasToken, env.SAS);
    // What `config check` shows: references, never values.
    const shown = JSON.stringify([...loaded.config.destinations.values()].map((d) => d.shown));
    assert.ok(!shown.includes(SECRET), shown);
    assert.ok(shown.includes('${AZURE_STORAGE_CONNECTION_STRING}') && shown.includes('*** (plain text in the file)'), shown);
  });

  it('a Drive access token in plain text is warned about too', () => {
    const loaded = loadConfigText(`destinations:\n  drive: { url: "gdrive://1AbC", accessToken: ${SECRET} }\njobs:\n  j: { source: /x, to: drive }\n`, { file: 'holdfast.yaml', env: {} });
    assert.deepEqual(formatWarnings(loaded), [`warning: holdfast.yaml:2:47: destinations.drive.accessToken: ${WARNING}`]);
  });

  it('warns when the file is readable by others while it holds plain secrets', () => {
    const file = join(tmp.path, 'holdfast.yaml');
    writeFileSync(file, azureText);
    chmodSync(file, 0o644);
    const open = formatWarnings(loadConfig(file, { env }));
    assert.ok(open.some((l) => l.includes('holds 2 secret(s) in plain text and is readable by everyone (mode 644)') && l.includes('chmod 600')), open.join('\n'));
    assert.ok(!open.join('\n').includes(SECRET));
    chmodSync(file, 0o640);
    assert.ok(formatWarnings(loadConfig(file, { env })).some((l) => l.includes('readable by its group (mode 640)')));
    chmodSync(file, 0o600);
    assert.ok(!formatWarnings(loadConfig(file, { env })).some((l) => l.includes('readable by')));
    // Secrets only as ${VAR}: no permission warning, whatever the mode.
    writeFileSync(file, azureText.replace(`accountKey: ${SECRET}`, 'accountKey: "${KEY}"').replace(`AccountKey=${SECRET}`, 'AccountKey=${KEY}'));
    chmodSync(file, 0o644);
    assert.deepEqual(formatWarnings(loadConfig(file, { env })), []);
  });

  it('a secret of the wrong type, or in a line YAML cannot parse, is not echoed in the error', () => {
    const texts = [
      'destinations:\n  a: { url: "azure://c/p", accountKey: 918273645 }\njobs: { j: { source: /x, to: a } }\n',
      'destinations:\n  a: { url: "azure://c/p", accountKey: "918273645" "x" }\n',
      'destinations:\n  a: { url: "azure://c/p" }\n  accountKey: 918273645: x\n',
      'destinations:\n  a: { url: "azure://c/p", accountKey: [918273645}\n',
      'destinations:\n  a: { url: "azure://c/p", accountKey: "918273645\n',
    ];
    for (const t of texts) {
      assert.throws(
        () => loadConfigText(t, { file: 'holdfast.yaml', env: {} }),
        (e: unknown) => e instanceof ConfigError && !e.message.includes('918273645') && /holdfast\.yaml:\d+:\d+: /.test(e.message),
        t,
      );
    }
  });

  it('S3 credentials in the file are an error that does not print them', () => {
    try {
      load(`destinations:\n  s: { url: s3://b/p, secretAccessKey: ${SECRET} }\njobs:\n  j: { source: /x, to: s }\n`, 'holdfast.yaml');
      assert.fail('should have thrown');
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /holdfast\.yaml:2:23: destinations\.s\.secretAccessKey: S3 credentials do not go in the configuration file/);
      assert.ok(!e.message.includes(SECRET));
    }
  });
});

describe('finding the file', () => {
  let tmp: TempDir;
  const minimal = 'destinations: { d: { url: "file:///d" } }\njobs: { j: { source: ., to: d } }\n';
  before(async () => (tmp = await makeTempDir('holdfast-config-find-')));
  after(async () => tmp.cleanup());

  it('--config first, then $HOLDFAST_CONFIG, then holdfast.yaml, .yml, .json in the current directory', () => {
    const dir = join(tmp.path, 'order');
    mkdirSync(dir);
    for (const name of ['holdfast.yml', 'holdfast.json', 'explicit.yaml', 'fromenv.yaml']) writeFileSync(join(dir, name), name.endsWith('.json') ? JSON.stringify({ destinations: { d: { url: 'file:///d' } }, jobs: { j: { source: '.', to: 'd' } } }) : minimal);
    assert.equal(loadConfig(join(dir, 'explicit.yaml'), { cwd: dir, env: { HOLDFAST_CONFIG: join(dir, 'fromenv.yaml') } }).config.file, join(dir, 'explicit.yaml'));
    assert.equal(loadConfig(undefined, { cwd: dir, env: { HOLDFAST_CONFIG: join(dir, 'fromenv.yaml') } }).config.file, join(dir, 'fromenv.yaml'));
    const found = loadConfig(undefined, { cwd: dir, env: {} });
    assert.ok(found.config.file.endsWith('holdfast.yml'), found.config.file);
    assert.ok(formatWarnings(found).some((w) => w.includes('holdfast.json is also present and is ignored')));
    writeFileSync(join(dir, 'holdfast.yaml'), minimal);
    assert.ok(loadConfig(undefined, { cwd: dir, env: {} }).config.file.endsWith('holdfast.yaml'));
  });

  it('no file anywhere, or a named file that does not exist: HOLDFAST_E_CONFIG saying where it looked', () => {
    const empty = join(tmp.path, 'empty');
    mkdirSync(empty);
    assert.throws(() => loadConfig(undefined, { cwd: empty, env: {} }), (e: unknown) => e instanceof HoldfastError && e.code === 'HOLDFAST_E_CONFIG' && /looked for holdfast\.yaml, holdfast\.yml, holdfast\.json/.test(e.message));
    assert.throws(() => loadConfig(join(empty, 'nope.yaml')), (e: unknown) => e instanceof HoldfastError && e.code === 'HOLDFAST_E_CONFIG' && /nope\.yaml: no such file/.test(e.message));
  });
});
