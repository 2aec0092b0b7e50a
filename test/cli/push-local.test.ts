// `holdfast push` end to end against a real directory destination, run as a
// child process exactly as a user runs it: first sync, no-op re-run, touched
// files, changed files, --force, --dry-run, awkward names, and bad input.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir, listTree } from '../helpers/tmp.js';
import { spawn } from 'node:child_process';
import { CLI_PATH, parseJsonReport, runCli } from '../helpers/cli.js';

const AWKWARD = ['with space.txt', 'caf\u00e9-nfc.txt', 'cafe\u0301-nfd.txt', 'hash#q?pct%plus+.txt', 'line\nbreak.txt', 'emoji-\u{1F600}.txt', 'zero.bin'];

function makeTree(root: string): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const add = (key: string, content: Buffer): void => {
    const p = join(root, key);
    mkdirSync(join(p, '..'), { recursive: true });
    writeFileSync(p, content);
    files.set(key, content);
  };
  for (let i = 0; i < 40; i++) add(`dir${i % 4}/file-${i}.dat`, Buffer.from(`content of file ${i}\n`.repeat(i + 1)));
  for (const name of AWKWARD) add(`awkward/${name}`, name === 'zero.bin' ? Buffer.alloc(0) : Buffer.from(`I am ${name}`));
  add('big/large.bin', Buffer.alloc(3 * 1024 * 1024 + 17, 7));
  return files;
}


describe('holdfast push to file://', () => {
  let tmp: { path: string; cleanup(): Promise<void> };
  let src: string;
  let dst: string;
  let state: string;
  let files: Map<string, Buffer>;
  const push = (...extra: string[]) => runCli(['push', src, `file://${dst}`, '--json', '--quiet', ...extra], { env: { HOLDFAST_STATE: state } });

  before(async () => {
    tmp = await makeTempDir('holdfast-cli-local-');
    src = join(tmp.path, 'src');
    dst = join(tmp.path, 'dst');
    state = join(tmp.path, 'state');
    mkdirSync(src);
    files = makeTree(src);
  });
  after(async () => tmp.cleanup());

  it('a dry run prints the plan and changes nothing, not even the ledger', async () => {
    const r = await runCli(['push', src, `file://${dst}`, '--dry-run'], { env: { HOLDFAST_STATE: state } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /would upload\s+new/);
    assert.match(r.stdout, new RegExp(`would upload ${files.size} file`));
    assert.ok(!existsSync(join(state, 'holdfast.db')), 'dry run created the ledger');
    assert.ok(!existsSync(dst), 'dry run created the destination directory');
  });

  it('first run uploads every file, byte-identical, with exact counts', async () => {
    const r = await push();
    assert.equal(r.code, 0, r.stderr);
    const rep = parseJsonReport(r);
    assert.equal(rep.status, 'completed');
    assert.deepEqual(rep.uploads, { completed: files.size, failed: 0, partial: 0, skipped: 0, recovered: 0, fenced: 0 });
    assert.equal(rep.bytes, [...files.values()].reduce((n, b) => n + b.length, 0));
    assert.deepEqual(rep.errors, []);
    assert.deepEqual(listTree(dst).sort(), [...files.keys()].sort());
    for (const [key, content] of files) assert.ok(readFileSync(join(dst, key)).equals(content), `content of ${JSON.stringify(key)}`);
    const mode = statSync(join(state, 'holdfast.db')).mode & 0o777;
    assert.equal(mode, 0o600, `ledger file mode ${mode.toString(8)}`);
  });

  it('a second run sends nothing', async () => {
    const rep = parseJsonReport(await push());
    assert.equal(rep.status, 'completed');
    assert.deepEqual(rep.uploads, { completed: 0, failed: 0, partial: 0, skipped: files.size, recovered: 0, fenced: 0 });
    assert.equal(rep.bytes, 0);
  });

  it('a touched file (new mtime, same content) is not uploaded', async () => {
    const p = join(src, 'dir1/file-1.dat');
    const later = new Date(Date.now() + 60_000);
    utimesSync(p, later, later);
    const rep = parseJsonReport(await push());
    assert.equal(rep.uploads.completed, 0);
    assert.equal(rep.uploads.skipped, files.size);
    // And the ledger now knows the new mtime: the next run does not even re-hash it.
    const again = parseJsonReport(await push());
    assert.equal(again.uploads.completed, 0);
  });

  it('a changed file is uploaded, and only that one', async () => {
    const key = 'dir2/file-2.dat';
    const content = Buffer.from('new content, same name');
    writeFileSync(join(src, key), content);
    files.set(key, content);
    const rep = parseJsonReport(await push());
    assert.equal(rep.uploads.completed, 1);
    assert.equal(rep.bytes, content.length);
    assert.ok(readFileSync(join(dst, key)).equals(content));
  });

  it('--force uploads everything again', async () => {
    const rep = parseJsonReport(await push('--force'));
    assert.equal(rep.uploads.completed, files.size);
    assert.equal(rep.uploads.skipped, 0);
  });

  it('--mode all re-checks the destination and repairs a missing object', async () => {
    const key = 'dir3/file-3.dat';
    await import('node:fs/promises').then((fs) => fs.rm(join(dst, key)));
    const incremental = parseJsonReport(await push());
    assert.equal(incremental.uploads.completed, 0, 'incremental mode trusts the ledger');
    const all = parseJsonReport(await push('--mode', 'all'));
    assert.equal(all.uploads.completed, 1);
    assert.ok(readFileSync(join(dst, key)).equals(files.get(key)!));
  });

  it('--exclude and .holdfastignore leave files out', async () => {
    const src2 = join(tmp.path, 'src2');
    const dst2 = join(tmp.path, 'dst2');
    mkdirSync(join(src2, 'keep'), { recursive: true });
    mkdirSync(join(src2, 'node_modules/x'), { recursive: true });
    writeFileSync(join(src2, 'keep/a.txt'), 'a');
    writeFileSync(join(src2, 'keep/b.tmp'), 'b');
    writeFileSync(join(src2, 'node_modules/x/c.js'), 'c');
    writeFileSync(join(src2, '.holdfastignore'), '# generated\nnode_modules/\n');
    const r = await runCli(['push', src2, `file://${dst2}`, '--json', '--exclude', '*.tmp'], { env: { HOLDFAST_STATE: state } });
    const rep = parseJsonReport(r);
    assert.equal(rep.status, 'completed', r.stderr);
    assert.deepEqual(listTree(dst2).sort(), ['.holdfastignore', 'keep/a.txt']);
  });

  it('symlinks are skipped and reported, not followed', async () => {
    const src3 = join(tmp.path, 'src3');
    mkdirSync(src3);
    writeFileSync(join(src3, 'real.txt'), 'real');
    const { symlinkSync } = await import('node:fs');
    symlinkSync(join(src3, 'real.txt'), join(src3, 'link.txt'));
    const r = await runCli(['push', src3, `file://${join(tmp.path, 'dst3')}`, '--json'], { env: { HOLDFAST_STATE: state } });
    const rep = parseJsonReport(r);
    assert.equal(rep.uploads.completed, 1);
    assert.ok(rep.notes?.some((n) => n.key === 'link.txt' && /symlink/.test(n.note)), JSON.stringify(rep.notes));
  });

  it('an unreadable file fails with its code; the rest goes on; exit 2', async () => {
    // Root ignores permission bits, so run the CLI as an unprivileged user.
    const nobody = 65534;
    const base = join(tmp.path, 'perm');
    mkdirSync(join(base, 'src'), { recursive: true });
    writeFileSync(join(base, 'src/ok.txt'), 'fine');
    writeFileSync(join(base, 'src/secret.txt'), 'hidden');
    chmodSync(join(base, 'src/secret.txt'), 0o000);
    for (const p of [tmp.path, base, join(base, 'src')]) chmodSync(p, 0o777);
    chmodSync(join(base, 'src/ok.txt'), 0o644);
    const r = await runCli(['push', join(base, 'src'), `file://${join(base, 'dst')}`, '--json'], {
      env: { HOLDFAST_STATE: join(base, 'state') },
      ...(process.getuid?.() === 0 ? { uid: nobody, gid: nobody } : {}),
    });
    assert.equal(r.code, 2, r.stderr);
    const rep = parseJsonReport(r);
    assert.equal(rep.status, 'partial');
    assert.equal(rep.uploads.completed, 1);
    assert.equal(rep.uploads.failed, 1);
    assert.equal(rep.errors[0]?.key, 'secret.txt');
    assert.equal(rep.errors[0]?.code, 'HOLDFAST_E_SOURCE_UNREADABLE');
  });
});

describe('holdfast push: bad input', () => {
  let tmp: { path: string; cleanup(): Promise<void> };
  before(async () => (tmp = await makeTempDir('holdfast-cli-bad-')));
  after(async () => tmp.cleanup());

  it('a missing source directory exits 3 and says which', async () => {
    const r = await runCli(['push', join(tmp.path, 'nope'), `file://${tmp.path}/d`], { env: { HOLDFAST_STATE: join(tmp.path, 's') } });
    assert.equal(r.code, 3);
    assert.match(r.stderr, /HOLDFAST_E_SOURCE_MISSING/);
    assert.match(r.stderr, /nope/);
  });

  it('an unknown scheme exits 1 and lists the supported ones', async () => {
    mkdirSync(join(tmp.path, 'src'), { recursive: true });
    const r = await runCli(['push', join(tmp.path, 'src'), 'ftp://host/x'], { env: { HOLDFAST_STATE: join(tmp.path, 's') } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /HOLDFAST_E_UNKNOWN_SCHEME/);
    assert.match(r.stderr, /s3/);
    assert.match(r.stderr, /file/);
  });

  it('bad option values exit 1 with a usage message', async () => {
    const r = await runCli(['push', tmp.path, `file://${tmp.path}/d`, '--transfers', 'zero']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /transfers/);
    const r2 = await runCli(['push', tmp.path]);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /missing required argument/);
  });

  it('--help explains the command, its exit codes and Ctrl-C', async () => {
    const r = await runCli(['push', '--help']);
    assert.equal(r.code, 0);
    for (const word of ['--dry-run', '--mode', '--force', '--transfers', '--json', 'Exit codes', '130', 'Ctrl-C']) assert.ok(r.stdout.includes(word), `help lacks ${word}`);
  });

  it('a reader that goes away (`--help | head -1`) is not a crash', async () => {
    // As in a shell, with a reader that is gone before holdfast writes (`true` reads nothing and exits).
    const child = spawn('sh', ['-c', `"${process.execPath}" "${CLI_PATH}" sync --help | true`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += String(d)));
    await new Promise<void>((r) => child.on('close', () => r()));
    assert.doesNotMatch(stderr, /EPIPE|Unhandled/, stderr);
  });
});
