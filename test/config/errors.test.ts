// Every class of mistake in a configuration file is reported with the file,
// line, column and field path, and all of them at once: a user fixes the file
// in one pass, not one error per run.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, loadConfigText } from '../../src/config/index.js';

/** The error lines for `text` (each `file:line:col: path: message`). */
function errorsOf(text: string, env: NodeJS.ProcessEnv = {}, file = 'holdfast.yaml'): string[] {
  try {
    loadConfigText(text, { file, env, cwd: '/work' });
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    assert.equal(e.code, 'HOLDFAST_E_CONFIG');
    assert.equal(e.exitCode, 1);
    const lines = e.message.replace(/^configuration error: /, '').split('\n');
    return lines.length === 1 ? lines : lines.slice(1).map((l) => l.trim());
  }
  assert.fail('the configuration was accepted');
}

const HEAD = `version: 1
destinations:
  offsite: { url: s3://backups/host1 }
  local: { url: "file:///mnt/nas" }
types:
  db: ["*.sql.gz"]
jobs:
`;

describe('configuration errors name file, line, column and field', () => {
  const cases: [string, string, string][] = [
    ['unknown destination in a rule, with the known ones', `${HEAD}  nightly:\n    source: /x\n    rules:\n      - { type: db, to: [offsite] }\n      - { to: [azur] }\n`, 'holdfast.yaml:12:16: jobs.nightly.rules[1].to[0]: unknown destination "azur" (known: offsite, local)'],
    ['a close misspelling gets a suggestion', `${HEAD}  nightly: { source: /x, to: [ofsite] }\n`, 'holdfast.yaml:8:31: jobs.nightly.to[0]: unknown destination "ofsite" (did you mean "offsite"?) (known: offsite, local)'],
    ['unknown field, with "did you mean"', `${HEAD}  nightly: { source: /x, to: local, tranfers: 4 }\n`, 'holdfast.yaml:8:37: jobs.nightly.tranfers: unknown field (did you mean "transfers"?); known fields here: description, command, source, to, rules, exclude, transfers, mode, force, followSymlinks, multipartThreshold, partSize, retries, maxDelete, allowEmptySource, deleteExcluded, backupDir'],
    ['kebab-case spelling of a field', `${HEAD}  nightly: { source: /x, to: local, command: sync, max-delete: 5 }\n`, 'holdfast.yaml:8:52: jobs.nightly.max-delete: unknown field (did you mean "maxDelete"?); known fields here: description, command, source, to, rules, exclude, transfers, mode, force, followSymlinks, multipartThreshold, partSize, retries, maxDelete, allowEmptySource, deleteExcluded, backupDir'],
    ['unknown top-level field', `${HEAD}  nightly: { source: /x, to: local }\ndestination: {}\n`, 'holdfast.yaml:9:1: destination: unknown field (did you mean "destinations"?); known fields here: version, state, ledger, destinations, types, jobs'],
    ['a ledger that is neither PostgreSQL nor SQLite', `version: 1\nledger: "mysql://db/x"\ndestinations:\n  local: { url: "file:///mnt/nas" }\njobs:\n  j: { source: /x, to: local }\n`, 'holdfast.yaml:2:9: ledger: unsupported ledger "mysql://db/x"; expected postgres://… or sqlite:<state directory>'],
    ['a setting of another scheme', `version: 1\ndestinations:\n  local: { url: "file:///mnt/nas", region: eu-west-1 }\njobs:\n  j: { source: /x, to: local }\n`, 'holdfast.yaml:3:36: destinations.local.region: applies only to s3:// destinations, and this one is file://'],
    ['a destination without a URL', `version: 1\ndestinations:\n  local: { fsync: false }\njobs:\n  j: { source: /x, to: local }\n`, 'holdfast.yaml:3:3: destinations.local: missing field "url" (file:///path, s3://bucket/prefix, azure://container/prefix, gdrive://folder-id)'],
    ['a path where a URL belongs', `version: 1\ndestinations:\n  local: { url: /mnt/nas }\njobs:\n  j: { source: /x, to: local }\n`, 'holdfast.yaml:3:17: destinations.local.url: invalid destination URL "/mnt/nas": not a URL; for a directory write file:///mnt/nas'],
    ['an unknown scheme', `version: 1\ndestinations:\n  x: { url: "ftp://host/dir" }\njobs:\n  j: { source: /x, to: x }\n`, 'holdfast.yaml:3:13: destinations.x.url: unknown destination scheme "ftp" in "ftp://host/dir"; supported:'],
    ['a job without source', `${HEAD}  nightly:\n    to: local\n`, 'holdfast.yaml:8:3: jobs.nightly: missing field "source" (the directory to copy)'],
    ['a job without to or rules', `${HEAD}  nightly:\n    source: /x\n`, 'holdfast.yaml:8:3: jobs.nightly: missing "to" (the destinations every file goes to) or "rules" (which files go where)'],
    ['both to and rules', `${HEAD}  nightly:\n    source: /x\n    to: local\n    rules: [{ to: [local] }]\n`, 'holdfast.yaml:10:5: jobs.nightly.to: give either "to" (every file to these destinations) or "rules", not both;'],
    ['a rule without to', `${HEAD}  nightly:\n    source: /x\n    rules:\n      - { glob: "*.log" }\n`, 'holdfast.yaml:11:9: jobs.nightly.rules[0]: missing field "to" (the destinations of the files this rule matches; [] for none)'],
    ['an unknown type', `${HEAD}  nightly:\n    source: /x\n    rules:\n      - { type: dbs, to: [local] }\n`, 'holdfast.yaml:11:17: jobs.nightly.rules[0].type: unknown type "dbs" (did you mean "db"?) (known: db)'],
    ['a bad size', `${HEAD}  nightly:\n    source: /x\n    rules:\n      - { maxSize: 100 MeB, to: [local] }\n`, 'holdfast.yaml:11:20: jobs.nightly.rules[0].maxSize: expected a size such as 100MiB, 64M or 1048576, got "100 MeB"'],
    ['minSize above maxSize', `${HEAD}  nightly:\n    source: /x\n    rules:\n      - { minSize: 2MiB, maxSize: 1MiB, to: [local] }\n`, 'holdfast.yaml:11:35: jobs.nightly.rules[0].maxSize: is smaller than minSize (1048576 < 2097152 bytes): no file can match'],
    ['a wrong type of value', `${HEAD}  nightly: { source: /x, to: local, transfers: lots }\n`, 'holdfast.yaml:8:48: jobs.nightly.transfers: expected a whole number from 1 to 1024, got "lots"'],
    ['an out-of-range number', `${HEAD}  nightly: { source: /x, to: local, transfers: 5000 }\n`, 'holdfast.yaml:8:48: jobs.nightly.transfers: expected a whole number from 1 to 1024, got the number 5000'],
    ['a YAML 1.1 boolean', `${HEAD}  nightly: { source: /x, to: local, force: yes }\n`, 'holdfast.yaml:8:44: jobs.nightly.force: expected true or false, got "yes" (YAML 1.2 reads yes/no/on/off as text)'],
    ['a bad choice', `${HEAD}  nightly: { source: /x, to: local, mode: incrmental }\n`, 'holdfast.yaml:8:43: jobs.nightly.mode: expected "incremental" or "all", got "incrmental" (did you mean "incremental"?)'],
    ['a sync setting on a push job', `${HEAD}  nightly: { source: /x, to: local, maxDelete: 10 }\n`, 'holdfast.yaml:8:37: jobs.nightly.maxDelete: applies only to jobs with "command: sync" (push never deletes)'],
    ['a bad maxDelete', `${HEAD}  nightly: { source: /x, to: local, command: sync, maxDelete: "120%" }\n`, 'holdfast.yaml:8:63: jobs.nightly.maxDelete: max-delete percentage must be at most 100%, got "120%"'],
    ['backupDir with several destinations', `${HEAD}  nightly: { source: /x, to: [local, offsite], command: sync, backupDir: "file:///attic" }\n`, 'holdfast.yaml:8:63: jobs.nightly.backupDir: works with a job of one destination; this job has several'],
    ['a destination listed twice', `${HEAD}  nightly: { source: /x, to: [local, local] }\n`, 'holdfast.yaml:8:38: jobs.nightly.to[1]: destination "local" is listed twice'],
    ['a bad job name', `${HEAD}  "night ly": { source: /x, to: local }\n`, 'holdfast.yaml:8:3: jobs."night ly": "night ly" cannot name a job: use letters, digits, ".", "_" and "-", starting with a letter or digit'],
    ['an unsupported version', `version: 2\ndestinations:\n  local: { url: "file:///mnt/nas" }\njobs:\n  j: { source: /x, to: local }\n`, 'holdfast.yaml:1:10: version: this Holdfast reads version 1, not 2'],
    ['a mapping where a list belongs', `${HEAD}  nightly:\n    source: /x\n    rules: { to: [local] }\n`, 'holdfast.yaml:10:5: jobs.nightly.rules: expected a list of rules, got a mapping'],
    ['~user paths', `${HEAD}  nightly: { source: ~bob/x, to: local }\n`, 'holdfast.yaml:8:22: jobs.nightly.source: only "~" and "~/..." are expanded (not "~user"); write the full path'],
    ['an unterminated ${', `${HEAD}  nightly: { source: "\${HOME/x", to: local }\n`, 'holdfast.yaml:8:22: jobs.nightly.source: "${" without a closing "}" (write "$${" for a literal "${")'],
    ['no destinations, no jobs', `version: 1\n`, 'holdfast.yaml:1:1: destinations: missing: name at least one destination'],
    ['a key given twice (YAML)', `${HEAD}  nightly: { source: /x, to: local }\n  nightly: { source: /y, to: local }\n`, 'holdfast.yaml:9:3: a key is given twice in the same mapping'],
    ['a syntax error', `${HEAD}  nightly: { source: /x, to: [local }\n`, 'holdfast.yaml:8:'],
    ['an empty file', ``, 'holdfast.yaml:1:1: the file is empty'],
    ['a merge key', `${HEAD}  nightly: { <<: {}, source: /x, to: local }\n`, 'holdfast.yaml:8:14: jobs.nightly."<<": YAML merge keys (<<) are not supported'],
  ];
  for (const [name, text, expected] of cases) {
    it(name, () => {
      const errors = errorsOf(text);
      assert.ok(
        errors.some((l) => l.startsWith(expected)),
        `expected a line starting with\n  ${expected}\ngot\n  ${errors.join('\n  ')}`,
      );
    });
  }
});

describe('several errors at once', () => {
  it('reports every error, in file order, in one HOLDFAST_E_CONFIG', () => {
    const text = `version: 1
destinations:
  offsite: { url: s3://backups/host1, regoin: eu-west-1 }
  local: { url: "file:///mnt/nas", fsync: maybe }
types:
  db: ["*.sql.gz"]
jobs:
  nightly:
    source: \${MISSING_DIR}
    transfers: 0
    rules:
      - { type: dump, to: [offsite] }
      - { glob: "logs/**", to: [nas] }
  weekly:
    source: /x
    to: [offsite]
    schedule: weekly
`;
    const errors = errorsOf(text);
    assert.deepEqual(errors, [
      'holdfast.yaml:3:39: destinations.offsite.regoin: unknown field (did you mean "region"?); known fields here: url, endpoint, region, pathStyle, requestTimeout',
      'holdfast.yaml:4:43: destinations.local.fsync: expected true or false, got "maybe"',
      'holdfast.yaml:9:13: jobs.nightly.source: environment variable MISSING_DIR is not set',
      'holdfast.yaml:10:16: jobs.nightly.transfers: expected a whole number from 1 to 1024, got the number 0',
      'holdfast.yaml:12:17: jobs.nightly.rules[0].type: unknown type "dump" (known: db)',
      'holdfast.yaml:13:33: jobs.nightly.rules[1].to[0]: unknown destination "nas" (known: offsite, local)',
      'holdfast.yaml:17:5: jobs.weekly.schedule: unknown field; known fields here: description, command, source, to, rules, exclude, transfers, mode, force, followSymlinks, multipartThreshold, partSize, retries, maxDelete, allowEmptySource, deleteExcluded, backupDir',
    ]);
  });

  it('the first line of the message counts them and names the file', () => {
    try {
      loadConfigText('destinations: 5\njobs: []\n', { file: 'conf/h.yaml', env: {} });
      assert.fail('accepted');
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.message.split('\n')[0], 'configuration error: 2 problems in conf/h.yaml:');
      assert.equal(e.issues.length, 2);
      assert.deepEqual(
        e.issues.map((i) => i.path),
        ['destinations', 'jobs'],
      );
    }
  });

  it('an unreachable rule is a warning, not an error', () => {
    const loaded = loadConfigText(`${HEAD}  nightly:\n    source: /x\n    rules:\n      - { to: [local] }\n      - { type: db, to: [offsite] }\n`, { file: 'holdfast.yaml', env: {} });
    assert.deepEqual(
      loaded.warnings.map((w) => `${w.pos?.line}:${w.pos?.col} ${w.path}: ${w.message}`),
      ['12:9 jobs.nightly.rules[1]: can never match: rules[0] before it matches every file'],
    );
  });
});
