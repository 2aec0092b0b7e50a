// Exclude rules: gitignore-like globs, the ignore file, and the walk
// not descending into excluded directories.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { HoldfastError } from '../../src/core/errors.js';
import { IGNORE_FILE, compileExcludes, excludesPath, parseIgnoreFile } from '../../src/scan/ignore.js';
import { createScanStats, walkSource } from '../../src/scan/walk.js';

const tmp = mkdtempSync(join(tmpdir(), 'holdfast-ignore-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// [patterns, key, isDir, excluded?]
const TABLE: [string[], string, boolean, boolean][] = [
  // No "/": a basename at any depth.
  [['*.tmp'], 'a.tmp', false, true],
  [['*.tmp'], 'deep/er/a.tmp', false, true],
  [['*.tmp'], 'a.tmp.txt', false, false],
  [['*.tmp'], '.hidden.tmp', false, true],
  [['node_modules'], 'node_modules', true, true],
  [['node_modules'], 'pkg/node_modules', true, true],
  [['node_modules'], 'pkg/node_modules_x', true, false],
  [['.DS_Store'], 'a/b/.DS_Store', false, true],
  // A "/" anchors to the root.
  [['/logs'], 'logs', true, true],
  [['/logs'], 'app/logs', true, false],
  [['build/**'], 'build/a/b.o', false, true],
  [['build/**'], 'build', true, false],
  [['build/**'], 'src/build/x', false, false],
  [['docs/*.pdf'], 'docs/a.pdf', false, true],
  [['docs/*.pdf'], 'docs/sub/a.pdf', false, false],
  [['**/cache'], 'x/y/cache', true, true],
  [['**/cache'], 'cache', true, true],
  // A trailing "/" matches directories only.
  [['cache/'], 'cache', true, true],
  [['cache/'], 'cache', false, false],
  [['cache/'], 'a/cache', true, true],
  [['/out/'], 'out', true, true],
  [['/out/'], 'a/out', true, false],
  // "!" re-includes; the last match wins.
  [['*.log', '!keep.log'], 'keep.log', false, false],
  [['*.log', '!keep.log'], 'drop.log', false, true],
  [['!keep.log', '*.log'], 'keep.log', false, true],
  [['build/**', '!build/keep.txt'], 'build/keep.txt', false, false],
  [['build/**', '!build/keep.txt'], 'build/other.txt', false, true],
  // Escapes, case, braces, unicode.
  [['\\!important'], '!important', false, true],
  [['\\#hash'], '#hash', false, true],
  [['*.TMP'], 'a.tmp', false, false],
  [['*.{jpg,png}'], 'p/x.png', false, true],
  [['caf\u00e9'], 'caf\u00e9', false, true],
  [['caf\u00e9'], 'cafe\u0301', false, false],
  [[], 'anything', false, false],
];

void test('exclude rules table', () => {
  for (const [patterns, key, isDir, want] of TABLE) {
    const m = compileExcludes(patterns);
    assert.equal(m.excludes(key, isDir), want, `${JSON.stringify(patterns)} on ${key}${isDir ? '/' : ''}`);
  }
});

void test('excludesPath: a key under an excluded directory stays excluded', () => {
  const m = compileExcludes(['node_modules/', '!keep.js']);
  assert.equal(m.excludes('a/node_modules/keep.js', false), false, 'the entry alone is re-included');
  assert.equal(excludesPath(m, 'a/node_modules/keep.js'), true, 'but its ancestor is excluded');
  assert.equal(excludesPath(m, 'a/src/keep.js'), false);
  assert.equal(excludesPath(m, 'node_modules', true), true);
});

void test('parseIgnoreFile: comments, blank lines, CRLF and trailing spaces', () => {
  const text = '# comment\r\n\r\n*.tmp  \r\n  \n\\#literal\nkeep\\ \n!x\n';
  assert.deepEqual(parseIgnoreFile(text), ['*.tmp', '\\#literal', 'keep\\ ', '!x']);
});

void test('compileExcludes reads the ignore file before the command-line patterns', () => {
  const dir = join(tmp, 'ignfile');
  mkdirSync(dir);
  writeFileSync(join(dir, IGNORE_FILE), '# ignore logs\n*.log\n');
  const m = compileExcludes(['!important.log'], { ignoreFile: join(dir, IGNORE_FILE) });
  assert.equal(m.excludes('debug.log', false), true);
  assert.equal(m.excludes('important.log', false), false, 'the command line has the last word');
  // A missing ignore file is fine.
  assert.equal(compileExcludes([], { ignoreFile: join(dir, 'nope') }).excludes('debug.log', false), false);
});

void test('an unreadable ignore file is a configuration error, not silence', () => {
  const dir = join(tmp, 'ignisdir');
  mkdirSync(join(dir, IGNORE_FILE), { recursive: true });
  assert.throws(
    () => compileExcludes([], { ignoreFile: join(dir, IGNORE_FILE) }),
    (e: unknown) => e instanceof HoldfastError && e.code === 'HOLDFAST_E_CONFIG',
  );
});

void test('walk with .holdfastignore: excluded directories are not descended into', async () => {
  const root = join(tmp, 'walk');
  for (const d of ['node_modules/pkg', 'src/node_modules', 'build/sub', 'logs', 'app/logs']) mkdirSync(join(root, d), { recursive: true });
  const files = [
    'node_modules/pkg/index.js',
    'src/node_modules/x.js',
    'src/main.ts',
    'src/main.tmp',
    'build/sub/a.o',
    'build/keep.txt',
    'logs/today.log',
    'app/logs/today.log',
    'README.md',
  ];
  for (const f of files) writeFileSync(join(root, f), f);
  writeFileSync(join(root, IGNORE_FILE), 'node_modules/\n*.tmp\nbuild/**\n!build/keep.txt\n/logs\n');
  const exclude = compileExcludes([], { ignoreFile: join(root, IGNORE_FILE) });
  const stats = createScanStats();
  const keys: string[] = [];
  for await (const f of walkSource(root, { exclude, stats })) keys.push(f.key);
  assert.deepEqual(keys, [IGNORE_FILE, 'README.md', 'app/logs/today.log', 'build/keep.txt', 'src/main.ts']);
  // node_modules x2, main.tmp, build/sub, /logs: five entries, and the walk never listed inside node_modules or logs.
  assert.equal(stats.excluded, 5);
  assert.equal(stats.dirs, 5, 'root, app, app/logs, build, src');
});
