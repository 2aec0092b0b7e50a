// The walker against real directories: key order, names exactly as on disk,
// names that cannot be keys, symlinks, special files, unreadable directories.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { HoldfastError } from '../../src/core/errors.js';
import type { SourceFile } from '../../src/core/types.js';
import { compileExcludes } from '../../src/scan/ignore.js';
import { compareKeys } from '../../src/scan/key-order.js';
import type { WalkOptions } from '../../src/scan/walk.js';
import { SKIP_REASONS, createScanStats, walkSource } from '../../src/scan/walk.js';

const tmp = mkdtempSync(join(tmpdir(), 'holdfast-walk-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
function freshDir(): string {
  const d = join(tmp, `t${n++}`);
  mkdirSync(d);
  return d;
}

function makeFiles(root: string, keys: readonly string[]): void {
  for (const k of keys) {
    mkdirSync(dirname(join(root, k)), { recursive: true });
    writeFileSync(join(root, k), `content of ${k}`);
  }
}

async function collect(root: string, opts: WalkOptions = {}): Promise<{ files: SourceFile[]; skips: [string, string][]; errors: [string, HoldfastError][] }> {
  const skips: [string, string][] = [];
  const errors: [string, HoldfastError][] = [];
  const files: SourceFile[] = [];
  for await (const f of walkSource(root, { ...opts, onSkip: (k, r) => skips.push([k, r]), onError: (k, e) => errors.push([k, e]) })) files.push(f);
  return { files, skips, errors };
}

const isCode = (code: string) => (e: unknown) => e instanceof HoldfastError && e.code === code;

void test('keys come in compareKeys order across nested directories and tricky names', async () => {
  const root = freshDir();
  const keys = [
    'a', 'a.txt', 'a-b', 'a b', 'a0', 'ab', 'A', '_', '~',
    'a/x', 'a/ y', 'a/x/deeper', 'a-b/inner', 'a.d/inner', 'a b/inner',
    'dir/sub/file', 'dir/sub.txt', 'dir/sub-x/f', 'dir.x', 'dir-x/file', 'dir/ z', 'dir/a',
    '\u00e9', 'e\u0301', 'z/\u65e5\u672c', '\u{1F600}', '\u{1F600}/inner', '\uE000', '\uFF5E', '\uFFFD',
  ];
  // 'a' and 'a/x' cannot both exist: keep the directory forms, drop the clashing files.
  const files = keys.filter((k) => !keys.some((o) => o.startsWith(k + '/')));
  makeFiles(root, files);
  const stats = createScanStats();
  const { files: got, skips, errors } = await collect(root, { stats });
  assert.deepEqual(skips, []);
  assert.deepEqual(errors, []);
  const want = [...files].sort(compareKeys);
  assert.deepEqual(got.map((f) => f.key), want);
  // And that is UTF-8 byte order.
  assert.deepEqual(
    want,
    files.map((k) => Buffer.from(k)).sort((x, y) => Buffer.compare(x, y)).map((b) => b.toString('utf8')),
  );
  assert.equal(stats.files, files.length);
  assert.equal(stats.bytes, got.reduce((s, f) => s + f.size, 0));
});

void test('random trees of tricky names walk in the order of a full sort', async () => {
  // Deterministic PRNG: a failure names its seed.
  for (const seed of [1, 2, 3]) {
    let a = seed;
    const rand = (): number => {
      a = (a * 1103515245 + 12345) % 2147483648;
      return a / 2147483648;
    };
    const alphabet = ['a', 'b', '-', '.', ' ', '_', '0', 'A', '\u00e9', 'e\u0301', '\uFF5E', '\uE000', '\u{1F600}', '\u{20000}'];
    const segment = (): string => Array.from({ length: 1 + Math.floor(rand() * 3) }, () => alphabet[Math.floor(rand() * alphabet.length)]!).join('');
    const keys = new Set<string>();
    for (let i = 0; i < 150; i++) {
      const depth = 1 + Math.floor(rand() * 3);
      const k = Array.from({ length: depth }, segment).join('/');
      if (k.split('/').some((s) => s === '.' || s === '..')) continue;
      keys.add(k);
    }
    // A name cannot be both a file and a directory: keep the directories.
    const files = [...keys].filter((k) => ![...keys].some((o) => o.startsWith(k + '/')));
    const root = freshDir();
    makeFiles(root, files);
    const { files: got } = await collect(root);
    assert.deepEqual(got.map((f) => f.key), [...files].sort(compareKeys), `seed ${seed}`);
  }
});

void test('file metadata: path, size, whole-millisecond mtime, inode', async () => {
  const root = freshDir();
  makeFiles(root, ['sub/f.txt']);
  const { files } = await collect(root);
  const st = statSync(join(root, 'sub/f.txt'));
  assert.deepEqual(files, [{ key: 'sub/f.txt', path: join(root, 'sub', 'f.txt'), size: st.size, mtimeMs: Math.floor(st.mtimeMs), ctimeMs: st.ctimeMs, ino: st.ino, dev: st.dev }]);
  assert.ok(Number.isInteger(files[0]!.mtimeMs));
});

void test('NFC and NFD names are two different files, keys exactly as on disk', async () => {
  const root = freshDir();
  const nfc = 'caf\u00e9.txt';
  const nfd = 'cafe\u0301.txt';
  assert.notEqual(nfc, nfd);
  assert.equal(nfc.normalize('NFC'), nfd.normalize('NFC'));
  writeFileSync(join(root, nfc), 'composed');
  writeFileSync(join(root, nfd), 'decomposed!');
  const { files } = await collect(root);
  assert.deepEqual(files.map((f) => f.key).sort(), [nfc, nfd].sort());
  assert.equal(files.find((f) => f.key === nfc)!.size, 8);
  assert.equal(files.find((f) => f.key === nfd)!.size, 11);
});

void test('a name that is not valid UTF-8 is an error (a file left behind), unless excluded', async () => {
  const root = freshDir();
  const bad = Buffer.concat([Buffer.from(root + '/'), Buffer.from([0x66, 0xff, 0x2e, 0x74])]);
  writeFileSync(bad, 'x');
  mkdirSync(Buffer.concat([Buffer.from(root + '/'), Buffer.from([0x64, 0xc3, 0x28])]));
  makeFiles(root, ['good.txt']);
  const { files, skips, errors } = await collect(root);
  assert.deepEqual(files.map((f) => f.key), ['good.txt']);
  assert.deepEqual(skips, []);
  assert.equal(errors.length, 2);
  for (const [key, e] of errors) {
    assert.equal(e.code, 'HOLDFAST_E_KEY_INVALID');
    assert.ok(key.includes('\uFFFD'), `reported with a replacement character: ${JSON.stringify(key)}`);
  }
  assert.ok(errors.some(([key]) => key.startsWith('d') && key.endsWith('/')), 'the directory is reported by its prefix');
  // Excluded by the name as shown (with U+FFFD): nothing to report.
  const quiet = await collect(root, { exclude: compileExcludes(['f\uFFFD*', 'd\uFFFD*']) });
  assert.deepEqual(quiet.errors, []);
  assert.deepEqual(quiet.files.map((f) => f.key), ['good.txt']);
});

void test('symlinks are skipped by default and followed on request, with cycles detected', async () => {
  const root = freshDir();
  makeFiles(root, ['real/a.txt', 'real/sub/b.txt', 'target.txt']);
  symlinkSync(join(root, 'target.txt'), join(root, 'link-file'));
  symlinkSync(join(root, 'real'), join(root, 'link-dir'));
  symlinkSync(join(root, 'missing'), join(root, 'link-broken'));
  symlinkSync('..', join(root, 'real', 'sub', 'loop')); // real/sub/loop → real

  const plain = await collect(root);
  assert.deepEqual(plain.files.map((f) => f.key), ['real/a.txt', 'real/sub/b.txt', 'target.txt']);
  assert.deepEqual(
    plain.skips.sort(),
    [
      ['link-broken', SKIP_REASONS.symlink],
      ['link-dir', SKIP_REASONS.symlink],
      ['link-file', SKIP_REASONS.symlink],
      ['real/sub/loop', SKIP_REASONS.symlink],
    ],
  );

  const followed = await collect(root, { followSymlinks: true });
  const keys = followed.files.map((f) => f.key);
  assert.deepEqual(keys, ['link-dir/a.txt', 'link-dir/sub/b.txt', 'link-file', 'real/a.txt', 'real/sub/b.txt', 'target.txt']);
  assert.deepEqual(keys, [...keys].sort(compareKeys));
  const linkFile = followed.files.find((f) => f.key === 'link-file')!;
  assert.equal(linkFile.size, statSync(join(root, 'target.txt')).size);
  assert.equal(linkFile.ino, statSync(join(root, 'target.txt')).ino);
  assert.deepEqual(
    followed.skips.sort(),
    [
      ['link-dir/sub/loop/', SKIP_REASONS.cycle],
      ['real/sub/loop/', SKIP_REASONS.cycle],
    ],
  );
  // A followed symlink whose target is missing hides whatever was there: an error, not a skip.
  assert.deepEqual(followed.errors.map(([k, e]) => [k, e.code]), [['link-broken', 'HOLDFAST_E_SOURCE_UNREADABLE']]);
});

void test('FIFOs and other special files are skipped', async (t) => {
  const root = freshDir();
  makeFiles(root, ['f.txt']);
  try {
    execFileSync('mkfifo', [join(root, 'pipe')]);
  } catch {
    t.skip('mkfifo is not available');
    return;
  }
  const { files, skips } = await collect(root);
  assert.deepEqual(files.map((f) => f.key), ['f.txt']);
  assert.deepEqual(skips, [['pipe', SKIP_REASONS.special]]);
});

void test('a missing root, or a root that is a file, is HOLDFAST_E_SOURCE_MISSING', async () => {
  const root = freshDir();
  makeFiles(root, ['file']);
  await assert.rejects(collect(join(root, 'nope')), isCode('HOLDFAST_E_SOURCE_MISSING'));
  await assert.rejects(collect(join(root, 'file')), isCode('HOLDFAST_E_SOURCE_MISSING'));
});

void test('an aborted signal stops the walk with HOLDFAST_E_CANCELLED', async () => {
  const root = freshDir();
  makeFiles(root, ['a/1', 'b/2']);
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(collect(root, { signal: ac.signal }), isCode('HOLDFAST_E_CANCELLED'));
  // Aborting mid-walk: between directories.
  const ac2 = new AbortController();
  const seen: string[] = [];
  await assert.rejects(async () => {
    for await (const f of walkSource(root, { signal: ac2.signal })) {
      seen.push(f.key);
      ac2.abort();
    }
  }, isCode('HOLDFAST_E_CANCELLED'));
  assert.deepEqual(seen, ['a/1']);
});

void test('bounded memory: a wide and deep tree walks in order with many files', async () => {
  const root = freshDir();
  const keys: string[] = [];
  for (let d = 0; d < 20; d++) for (let f = 0; f < 50; f++) keys.push(`d${d}/${d % 3 === 0 ? 'x/' : ''}f${f}.bin`);
  makeFiles(root, keys);
  const { files } = await collect(root);
  assert.deepEqual(files.map((f) => f.key), [...keys].sort(compareKeys));
});

// Runs as an unprivileged user when the tests run as root: root reads a
// chmod 000 directory anyway, so the check would prove nothing.
void test('an unreadable directory is reported with its prefix and the walk goes on', async () => {
  const root = freshDir();
  makeFiles(root, ['a.txt', 'locked/secret.txt', 'locked2/x', 'z/after.txt']);
  chmodSync(join(root, 'locked'), 0o000);
  const walkUrl = new URL('../../src/scan/walk.js', import.meta.url).href;
  const script = `
    const { walkSource } = await import(${JSON.stringify(walkUrl)});
    const out = { files: [], errors: [] };
    for await (const f of walkSource(process.argv[1], { onError: (k, e) => out.errors.push([k, e.code]) })) out.files.push(f.key);
    console.log(JSON.stringify(out));
  `;
  let out: { files: string[]; errors: [string, string][] };
  if (process.getuid?.() === 0) {
    // Let the unprivileged user reach the tree (mkdtemp makes 0700 directories).
    for (const d of [tmp, root, join(root, 'locked2'), join(root, 'z')]) chmodSync(d, 0o755);
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, root], { uid: 65534, gid: 65534, encoding: 'utf8' });
    // Root can always run a child as uid 65534: if it cannot, the setup is broken, and the test says so.
    assert.ok(!r.error && r.status === 0, `cannot run the walk as an unprivileged user (uid 65534): ${r.error?.message ?? r.stderr}`);
    out = JSON.parse(r.stdout) as typeof out;
  } else {
    const got = await collect(root);
    out = { files: got.files.map((f) => f.key), errors: got.errors.map(([k, e]) => [k, e.code]) };
  }
  chmodSync(join(root, 'locked'), 0o755);
  assert.deepEqual(out.files, ['a.txt', 'locked2/x', 'z/after.txt']);
  assert.deepEqual(out.errors, [['locked/', 'HOLDFAST_E_SOURCE_UNREADABLE']]);
});
