// Error codes that match the documentation (issue 10, point 9):
// - a source root that cannot be read is the source's own error
//   (HOLDFAST_E_SOURCE_UNREADABLE, exit 3: the run could not start), not a
//   configuration error about a .holdfastignore that does not exist;
// - a full disk under the ledger: before the run starts, exit 3 with
//   HOLDFAST_E_LEDGER_WRITE; once it has started, the files whose intent could
//   not be recorded fail with that code and the run exits 2 — and
//   docs/errors.md says both;
// - an S3 server refusing the access key says which key (its id, never the secret).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { exitCodeFor } from '../../src/cli/common.js';
import { ERROR_CODES, type ErrorCode } from '../../src/core/errors.js';
import { openLedger } from '../../src/ledger/open.js';
import { push } from '../../src/sync/push.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { faultyLedger } from '../helpers/faulty-ledger.js';
import { repoRoot } from '../helpers/paths.js';
import { s3TestEnv, startS3Server, type S3TestServer } from '../helpers/s3-server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const NOBODY = 65534;
// Root ignores permission bits: run as nobody where they matter.
const asNobody = process.getuid?.() === 0 ? { uid: NOBODY, gid: NOBODY } : {};

/** The sections of docs/errors.md: heading → its text (tables and paragraphs). */
function errorsDocSections(): Map<string, string> {
  const doc = readFileSync(join(repoRoot(), 'docs', 'errors.md'), 'utf8');
  const sections = new Map<string, string>();
  for (const part of doc.split(/^## /m).slice(1)) {
    const nl = part.indexOf('\n');
    sections.set(part.slice(0, nl).trim(), part.slice(nl + 1));
  }
  return sections;
}

function jsonError(r: CliResult): { code: string; message: string } {
  const parsed = JSON.parse(r.stdout.trim()) as { status: string; error: { code: string; message: string } };
  assert.equal(parsed.status, 'failed');
  return parsed.error;
}

describe('exit codes and error codes agree with docs/errors.md', () => {
  let tmp: TempDir;
  before(async () => {
    tmp = await makeTempDir('holdfast-hostile-exit-');
    chmodSync(tmp.path, 0o777);
  });
  after(async () => {
    // Give permissions back so the directory can be removed.
    for (const d of ['root-000', 'root-wx']) if (existsSync(join(tmp.path, d))) chmodSync(join(tmp.path, d), 0o755);
    await tmp.cleanup();
  });

  for (const [name, mode] of [
    ['root-000', 0o000],
    ['root-wx', 0o300],
  ] as const) {
    it(`an unreadable source root (mode ${mode.toString(8).padStart(3, '0')}) is HOLDFAST_E_SOURCE_UNREADABLE for the root, exit 3, for push and check`, async () => {
      const root = join(tmp.path, name);
      mkdirSync(root);
      writeFileSync(join(root, 'f.txt'), 'data');
      if (process.getuid?.() === 0) chownSync(root, NOBODY, NOBODY);
      chmodSync(root, mode);
      const dst = join(tmp.path, `dst-${name}`);
      const state = join(tmp.path, `state-${name}`);
      for (const args of [
        ['push', root, pathToFileURL(dst).href, '--state', state, '--json'],
        ['check', root, pathToFileURL(dst).href, '--state', state, '--json'],
      ]) {
        const r = await runCli(args, asNobody);
        assert.equal(r.code, 3, `${args[0]}: ${r.stderr}`);
        const e = jsonError(r);
        assert.equal(e.code, 'HOLDFAST_E_SOURCE_UNREADABLE', r.stderr);
        assert.match(e.message, new RegExp(`^cannot read "${root.replace(/[/.]/g, '\\$&')}": EACCES`));
        assert.ok(!/holdfastignore/.test(r.stderr), `no word about a .holdfastignore: ${r.stderr}`);
        assert.match(r.stderr, /^holdfast: HOLDFAST_E_SOURCE_UNREADABLE: cannot read /m);
      }
      assert.ok(!existsSync(join(dst, 'f.txt')), 'nothing was sent');
      chmodSync(root, 0o755);
    });
  }

  it('an unreadable .holdfastignore in a readable root stays a configuration error (exit 1), as documented', async () => {
    const root = join(tmp.path, 'root-ignore');
    mkdirSync(root);
    writeFileSync(join(root, 'f.txt'), 'data');
    writeFileSync(join(root, '.holdfastignore'), 'secret*\n');
    chmodSync(root, 0o755);
    chmodSync(join(root, '.holdfastignore'), 0o000);
    const r = await runCli(['push', root, pathToFileURL(join(tmp.path, 'dst-ignore')).href, '--state', join(tmp.path, 'state-ignore'), '--json'], asNobody);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(jsonError(r).code, 'HOLDFAST_E_CONFIG');
    assert.match(r.stderr, /cannot read .*\.holdfastignore: EACCES/);
  });

  it('a ledger write failing for the files of a started run (a full disk) fails those files with HOLDFAST_E_LEDGER_WRITE, exit 2, as docs/errors.md says', async () => {
    const src = join(tmp.path, 'src-full');
    mkdirSync(src);
    for (let i = 0; i < 5; i++) writeFileSync(join(src, `f${i}.txt`), `file ${i}`);
    const dst = join(tmp.path, 'dst-full');
    const ledger = await openLedger({ stateDir: join(tmp.path, 'state-full') });
    try {
      // What SQLite says when the disk under the ledger is full, on every intent.
      const full = faultyLedger(ledger, [{ method: 'claim', error: () => Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' }) }]);
      const report = await push({ source: src, destination: pathToFileURL(dst).href, ledger: full, backendOptions: { fsync: false }, retry: { attempts: 2, baseMs: 1, maxMs: 2 } });
      assert.equal(report.status, 'failed');
      assert.equal(exitCodeFor(report), 2, 'a started run exits by its report');
      const codes = new Set(report.errors.map((e) => e.code));
      assert.deepEqual([...codes], ['HOLDFAST_E_LEDGER_WRITE']);
      assert.ok(!existsSync(join(dst, 'f0.txt')), 'no intent, no upload');
      // Every code a started run reports for a file is documented in the per-file section.
      const perFile = [...errorsDocSections()].find(([h]) => /^Per file/.test(h))?.[1] ?? '';
      for (const code of codes) assert.ok(perFile.includes(`\`${code}\``), `docs/errors.md "Per file" does not say that ${code} can fail a file (exit 2)`);
    } finally {
      await ledger.close();
    }
  });

  it('a full disk under the ledger before the run starts: exit 3, saying the disk is full (real tmpfs)', async (t) => {
    const mnt = join(tmp.path, 'tiny');
    mkdirSync(mnt);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0777', 'tmpfs', mnt], { stdio: 'pipe' });
    } catch (e) {
      t.skip(`cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): ${(e as Error).message.split('\n')[0]}`);
      return;
    }
    try {
      const src = join(tmp.path, 'src-tiny');
      mkdirSync(src);
      writeFileSync(join(src, 'a.txt'), 'alpha');
      const dst = pathToFileURL(join(tmp.path, 'dst-tiny')).href;
      const state = join(mnt, 'state');
      const first = await runCli(['push', src, dst, '--state', state, '--no-fsync']);
      assert.equal(first.code, 0, first.stderr);
      // Fill the file system to the last block.
      const { bavail, bsize } = statfsSync(mnt);
      try {
        writeFileSync(join(mnt, 'filler'), Buffer.alloc(Number(bavail) * Number(bsize)));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
      }
      writeFileSync(join(src, 'b.txt'), 'beta');
      const r = await runCli(['push', src, dst, '--state', state, '--no-fsync', '--json', '--retries', '1']);
      assert.equal(r.code, 3, r.stderr);
      const e = jsonError(r);
      // Where the first write fails decides the code: opening (the -shm/-wal files) or the run's first transaction.
      assert.ok(e.code === 'HOLDFAST_E_LEDGER_OPEN' || e.code === 'HOLDFAST_E_LEDGER_WRITE', r.stderr);
      assert.equal(ERROR_CODES[e.code as ErrorCode].exit, 3);
      assert.match(e.message, /no space left on the file system|disk is full/, 'the message says the disk is full, not just "disk I/O error"');
    } finally {
      execFileSync('umount', [mnt]);
    }
  });
});

describe('an S3 server refusing the credentials', () => {
  let tmp: TempDir;
  let server: S3TestServer;
  before(async () => {
    tmp = await makeTempDir('holdfast-hostile-auth-');
    server = await startS3Server();
    await server.createBucket('bkt');
  });
  after(async () => {
    await server.stop();
    await tmp.cleanup();
  });

  it('names the access key id that was refused and where it came from, never the secret', async () => {
    const src = join(tmp.path, 'src');
    mkdirSync(src);
    writeFileSync(join(src, 'a.txt'), 'alpha');
    const secret = 'do-not-print-this-secret-7c1e';
    const env = { ...s3TestEnv(server.endpoint), AWS_ACCESS_KEY_ID: 'AKIAHOLDFASTBADKEY', AWS_SECRET_ACCESS_KEY: secret };
    const r = await runCli(['push', src, 's3://bkt/x', '--state', join(tmp.path, 'state'), '--json', '--retries', '1'], { env });
    assert.equal(r.code, 3, r.stderr);
    const e = jsonError(r);
    assert.equal(e.code, 'HOLDFAST_E_AUTH');
    assert.match(e.message, /access key id "AKIAHOLDFASTBADKEY" \(from AWS_ACCESS_KEY_ID\) was refused \(HTTP 403\)/);
    assert.ok(!/UnknownError/.test(r.stderr + r.stdout), r.stderr);
    assert.ok(!(r.stderr + r.stdout).includes(secret), 'the secret is never printed');
  });
});
