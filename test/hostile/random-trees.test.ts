// Property-style test of hostile and careless input (issue 10): random source
// trees with awkward names and entry types — spaces, `%`, `#`, `?`, leading
// dashes, NFC and NFD spellings of one name, emoji, names that are not UTF-8,
// empty files, symlinks into and out of the source (to a secret), FIFOs,
// unreadable files and directories — pushed by an unprivileged user to a
// file:// destination. For every tree:
//
// - the exit code, the report's status and its counts agree (0 ↔ completed,
//   2 ↔ partial; every regular readable file is completed or failed; every
//   entry that could not be taken is reported);
// - the destination holds exactly the readable regular files with valid
//   names, byte for byte, and nothing else;
// - nothing outside the source was read (the secret never reaches the
//   destination) and nothing outside the destination and the state directory
//   was written (the rest of the sandbox is unchanged);
// - `check` agrees with the push: exit 0 only when nothing was left behind.
//
// HOLDFAST_HOSTILE_SEED=S replays one tree; HOLDFAST_HOSTILE_TREES=N runs N.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { seededRandom } from '../helpers/proxy.js';
import { parseJsonReport, runCli } from '../helpers/cli.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const NOBODY = 65534;
const asRoot = process.getuid?.() === 0;
const asNobody = asRoot ? { uid: NOBODY, gid: NOBODY } : {};
const seedEnv = process.env.HOLDFAST_HOSTILE_SEED;
const count = seedEnv !== undefined && seedEnv !== '' ? 1 : Number(process.env.HOLDFAST_HOSTILE_TREES ?? 6);
const base = seedEnv !== undefined && seedEnv !== '' ? Number(seedEnv) : Math.floor(Math.random() * 2 ** 31);
const SECRET = 'TOP-SECRET-CONTENT-OUTSIDE-THE-SOURCE';

const NAME_PARTS = ['a', 'b c', '%41', '#1', 'q?', '-rf', 'é', 'e\u0301', '🙂', 'x.y', 'LONG'.repeat(30), '~tmp', '[x]', "it's", 'tab\there', ' lead'];

interface Expected {
  /** Keys that must arrive, with their content. */
  readonly files: Map<string, Buffer>;
  /** Entries that must be reported as failed (unreadable, not UTF-8, dangling followed symlink...). */
  failures: number;
}

/** Every path below `root` (files, dirs, links; names as raw bytes) with mode, size and mtime: a fingerprint of what is there. */
function snapshot(root: string, skip: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (dir: Buffer): void => {
    for (const name of readdirSync(dir, { encoding: 'buffer' })) {
      const path = Buffer.concat([dir, Buffer.from('/'), name]);
      if (skip.some((s) => path.equals(Buffer.from(s)) || path.toString('latin1').startsWith(`${s}/`))) continue;
      const st = lstatSync(path);
      out.push(`${path.toString('hex')} ${st.mode} ${st.size} ${st.mtimeMs}`);
      if (st.isDirectory() && (st.mode & 0o500) === 0o500) walk(path);
    }
  };
  walk(Buffer.from(root));
  return out.sort();
}

/** The destination's files, as key → content (keys as UTF-8). */
function destinationFiles(root: string, prefix = ''): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  if (!existsSync(root)) return out;
  for (const name of readdirSync(join(root, prefix))) {
    const rel = prefix === '' ? name : `${prefix}/${name}`;
    const st = lstatSync(join(root, rel));
    if (st.isDirectory()) for (const [k, v] of destinationFiles(root, rel)) out.set(k, v);
    else out.set(rel, readFileSync(join(root, rel)));
  }
  return out;
}

function buildTree(src: string, outside: string, random: () => number): Expected {
  const int = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));
  const pickName = (): string => {
    const n = int(1, 2);
    let name = '';
    for (let i = 0; i < n; i++) name += NAME_PARTS[int(0, NAME_PARTS.length - 1)];
    return name;
  };
  const expected: Expected = { files: new Map(), failures: 0 };
  const dirs: string[] = [''];
  const taken = new Set<string>();
  const fresh = (dir: string): string | undefined => {
    for (let tries = 0; tries < 5; tries++) {
      const key = dir === '' ? pickName() : `${dir}/${pickName()}`;
      if (!taken.has(key)) {
        taken.add(key);
        return key;
      }
    }
    return undefined;
  };
  for (let i = int(2, 5); i > 0; i--) {
    const key = fresh(dirs[int(0, dirs.length - 1)]!);
    if (key === undefined) continue;
    mkdirSync(join(src, key));
    dirs.push(key);
  }
  for (let i = int(10, 25); i > 0; i--) {
    const dir = dirs[int(0, dirs.length - 1)]!;
    const key = fresh(dir);
    if (key === undefined) continue;
    const kind = random();
    const path = join(src, key);
    if (kind < 0.6) {
      const body = Buffer.from(random() < 0.15 ? '' : `content of ${key} ${int(0, 1e9)}`);
      writeFileSync(path, body);
      expected.files.set(key, body);
    } else if (kind < 0.68) {
      symlinkSync(join(outside, 'secret.txt'), path); // out of the source: never followed
    } else if (kind < 0.74) {
      const targets = [...expected.files.keys()];
      if (targets.length > 0) symlinkSync(join(src, targets[0]!), path); // into the source: not followed either
    } else if (kind < 0.8) {
      execFileSync('mkfifo', [path]);
    } else if (kind < 0.88 && asRoot) {
      writeFileSync(path, 'unreadable');
      chmodSync(path, 0o000);
      expected.failures++;
    } else if (kind < 0.94) {
      // A name that is not valid UTF-8: reported as failed, never silently skipped.
      const digit = int(0, 9);
      const badKey = `${dir}/bad\uFFFD${digit}`;
      if (!taken.has(badKey)) {
        taken.add(badKey);
        writeFileSync(Buffer.concat([Buffer.from(join(src, dir) + '/'), Buffer.from([0x62, 0x61, 0x64, 0xff, 0x30 + digit])]), 'latin-1');
        expected.failures++;
      }
    } else if (asRoot) {
      // A directory that can be listed but not searched: its files cannot be read.
      mkdirSync(path);
      writeFileSync(join(path, 'inner.txt'), 'inner');
      chmodSync(path, 0o444);
      expected.failures++;
    }
  }
  return expected;
}

function chownTree(root: string): void {
  if (!asRoot) return;
  execFileSync('chown', ['-R', '-h', `${NOBODY}:${NOBODY}`, root]);
}

describe('hostile input: random trees of awkward names and entry types', () => {
  let tmp: TempDir;
  before(async () => {
    tmp = await makeTempDir('holdfast-random-trees-');
    chmodSync(tmp.path, 0o777);
  });
  after(async () => {
    execFileSync('chmod', ['-R', 'u+rwx', tmp.path]);
    await tmp.cleanup();
  });

  for (let t = 0; t < count; t++) {
    const seed = (base + t) >>> 0;
    it(`tree ${t + 1}, seed ${seed}: exit code, report and destination agree; nothing outside is read or written`, async () => {
      const root = join(tmp.path, `t${t}`);
      const src = join(root, 'src');
      const outside = join(root, 'outside');
      const dst = join(root, 'dst');
      const state = join(root, 'state');
      mkdirSync(src, { recursive: true });
      mkdirSync(outside, { recursive: true });
      writeFileSync(join(outside, 'secret.txt'), SECRET);
      const expected = buildTree(src, outside, seededRandom(seed));
      chownTree(root);
      if (asRoot) chownSync(root, NOBODY, NOBODY);
      const context = `seed ${seed} (replay: HOLDFAST_HOSTILE_SEED=${seed})`;
      const before = snapshot(root, [dst, state]);

      const r = await runCli(['push', src, `file://${dst}`, '--state', state, '--json', '--no-fsync'], { ...asNobody, timeoutMs: 60_000 });
      const rep = parseJsonReport(r);
      // Exit code ↔ status ↔ counts.
      assert.equal(r.code, rep.status === 'completed' ? 0 : 2, `${context}: exit ${r.code} for status ${rep.status}\n${r.stderr}`);
      assert.equal(rep.status, expected.failures > 0 ? 'partial' : 'completed', `${context}: ${JSON.stringify(rep.errors)}`);
      assert.equal(rep.uploads.completed, expected.files.size, `${context}: every readable regular file with a valid name is sent`);
      assert.equal(rep.uploads.partial + rep.uploads.fenced + rep.uploads.recovered, 0);
      assert.equal(rep.errors.length, expected.failures, `${context}: every entry left behind is reported: ${JSON.stringify(rep.errors)}`);

      // The destination holds exactly those files, byte for byte.
      const got = destinationFiles(dst);
      assert.deepEqual([...got.keys()].sort(), [...expected.files.keys()].sort(), context);
      for (const [k, body] of expected.files) assert.ok(got.get(k)?.equals(body), `${context}: content of ${JSON.stringify(k)}`);
      for (const [k, body] of got) assert.ok(!body.toString('latin1').includes(SECRET), `${context}: ${JSON.stringify(k)} carries the secret from outside the source`);
      // Nothing outside the destination and the state directory was written.
      assert.deepEqual(snapshot(root, [dst, state]), before, `${context}: the source and its surroundings are unchanged`);

      // check agrees; a second push sends nothing.
      const c = await runCli(['check', src, `file://${dst}`, '--state', state, '--json'], { ...asNobody, timeoutMs: 60_000 });
      assert.equal(c.code, expected.failures > 0 ? 2 : 0, `${context}: check\n${c.stdout}\n${c.stderr}`);
      const again = parseJsonReport(await runCli(['push', src, `file://${dst}`, '--state', state, '--json', '--no-fsync'], { ...asNobody, timeoutMs: 60_000 }));
      assert.equal(again.uploads.completed, 0, context);
      assert.equal(again.uploads.skipped, expected.files.size, context);
    });
  }
});
