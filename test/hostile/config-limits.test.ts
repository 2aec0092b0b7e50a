// Hostile input: the configuration file (issue 10 #3), and the ignore file in
// a source root others may write to. A 300-byte YAML file of
// nested aliases (a "billion laughs") used to keep `config check` busy for
// minutes and hundreds of MiB while every alias was copied out; a FIFO named
// as the configuration hung it for ever; a huge file was read whole. Now alias
// expansion is bounded (the yaml library's maxAliasCount, and a cap on copied
// nodes), the file must be a regular file of at most 1 MiB, and each refusal is
// a clear HOLDFAST_E_CONFIG (exit 1) in well under a second.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

/** Far above what these commands need (well under a second); the old code took minutes or never ended. */
const BOUND_MS = 20_000;

const VALID = `version: 1
destinations:
  nas: { url: "file:///mnt/nas" }
jobs:
  nightly: { source: /var/backups, to: nas }
`;

describe('config check refuses hostile configuration files', () => {
  let tmp: TempDir;
  before(async () => (tmp = await makeTempDir('holdfast-config-limits-')));
  after(async () => tmp.cleanup());

  async function check(name: string, content?: string): Promise<{ code: number | null; stderr: string; ms: number }> {
    const file = join(tmp.path, name);
    if (content !== undefined) writeFileSync(file, content);
    const started = Date.now();
    const r = await runCli(['config', 'check', '--config', file], { timeoutMs: BOUND_MS });
    return { code: r.code, stderr: r.stderr, ms: Date.now() - started };
  }

  it('an alias bomb (nine levels of nine aliases, a few hundred bytes) is refused at once', async () => {
    const levels = 'abcdefghi'.split('');
    const lines = [`${levels[0]}: &${levels[0]} [${Array(9).fill('"lol"').join(',')}]`];
    for (let i = 1; i < levels.length; i++) lines.push(`${levels[i]}: &${levels[i]} [${Array(9).fill(`*${levels[i - 1]}`).join(',')}]`);
    const bomb = `${VALID}${lines.join('\n')}\n`;
    assert.ok(Buffer.byteLength(bomb) < 1024, `${Buffer.byteLength(bomb)} bytes`);
    const r = await check('bomb.yaml', bomb);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /HOLDFAST_E_CONFIG: .*bomb\.yaml.*aliases .* expand to too much/);
  });

  it('a file over 1 MiB is refused without being parsed', async () => {
    // Valid YAML all the way: the old code accepted it.
    const big = `${VALID}${'# padding padding padding padding padding padding padding padding\n'.repeat(17_000)}`;
    assert.ok(Buffer.byteLength(big) > 1024 * 1024);
    const r = await check('big.yaml', big);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /HOLDFAST_E_CONFIG: .*big\.yaml: it is \d+ bytes; a configuration file may be at most 1048576 bytes \(1 MiB\)/);
  });

  it('a FIFO named as the configuration is refused, not waited on', async () => {
    const fifo = join(tmp.path, 'fifo.yaml');
    execFileSync('mkfifo', [fifo]);
    const r = await check('fifo.yaml');
    assert.notEqual(r.code, null, `killed after ${r.ms} ms: it blocked on the FIFO`);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /HOLDFAST_E_CONFIG: .*fifo\.yaml: it is not a regular file/);
  });

  it('a FIFO as the source root’s .holdfastignore is refused, not waited on (it would block even Ctrl-C)', async () => {
    const src = join(tmp.path, 'src-with-fifo-ignore');
    mkdirSync(src);
    writeFileSync(join(src, 'a.txt'), 'a');
    execFileSync('mkfifo', [join(src, '.holdfastignore')]);
    const r = await runCli(['push', src, `file://${join(tmp.path, 'fifo-ignore-dst')}`], { env: { HOLDFAST_STATE: join(tmp.path, 'fifo-ignore-state') }, timeoutMs: BOUND_MS });
    assert.notEqual(r.code, null, 'killed: it blocked on the FIFO');
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /HOLDFAST_E_CONFIG: .*\.holdfastignore: not a regular file/);
  });

  it('anchors and aliases used as people use them still work', async () => {
    const text = `version: 1
destinations:
  a: &common { url: "file:///mnt/a", fsync: false }
  b: { url: "file:///mnt/b", fsync: false }
types:
  db: &dumps ["*.sql.gz", "*.dump"]
jobs:
  one: { source: /var/backups, rules: [{ glob: *dumps, to: [a, b] }, { to: [a] }] }
  two: { source: /var/backups, rules: [{ glob: *dumps, to: [b] }] }
`;
    const r = await check('anchors.yaml', text);
    assert.equal(r.code, 0, r.stderr);
  });
});
