// `holdfast pull` end to end, run as a child process as a user runs it,
// against a real S3 server (s3rver on loopback): a restore on a fresh machine
// (no ledger), a restore killed with SIGKILL half-way and resumed, a damaged
// object, a dry run, and the errors that stop a run.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { CLI_PATH, runCli, type CliResult } from '../helpers/cli.js';
import { s3TestEnv, startS3Server, type S3TestServer, testS3Client } from '../helpers/s3-server.js';
import { makeTempDir, type TempDir, listTree } from '../helpers/tmp.js';

/** What `pull --json` prints. */
interface PullJson {
  status: string;
  downloads: { completed: number; failed: number; skipped: number; unverified: number };
  bytes: number;
  durationMs: number;
  errors: { key: string; code: string; message: string }[];
  plan?: { key: string; reason: string; size: number }[];
  destination: string;
  target: string;
  dryRun: boolean;
}

function parse(r: CliResult): PullJson {
  try {
    return JSON.parse(r.stdout.trim()) as PullJson;
  } catch {
    throw new Error(`stdout is not one JSON object (exit ${r.code}):\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
}


describe('holdfast pull from s3://', () => {
  let tmp: TempDir;
  let server: S3TestServer;
  let client: S3Client;
  let src: string;
  let n = 0;
  const fresh = (name: string): string => join(tmp.path, `${name}-${n++}`);
  /** A fresh state directory each time: the machine restoring has no ledger. */
  const envFresh = (): NodeJS.ProcessEnv => ({ ...s3TestEnv(server.endpoint), HOLDFAST_STATE: fresh('state') });
  const files = new Map<string, { content: Buffer; mtimeMs: number }>();

  before(async () => {
    tmp = await makeTempDir('holdfast-cli-pull-');
    server = await startS3Server();
    await server.createBucket('vault');
    client = testS3Client(server.endpoint);
    src = join(tmp.path, 'src');
    // Enough files, one folder, that a SIGKILL lands half-way through a one-at-a-time restore.
    for (let i = 0; i < 120; i++) {
      const key = i % 10 === 0 ? `odd name ${i} #?%+.bin` : `f${String(i).padStart(3, '0')}.bin`;
      const content = Buffer.alloc(96 * 1024 + i, i % 251);
      const p = join(src, 'docs', key);
      mkdirSync(join(p, '..'), { recursive: true });
      writeFileSync(p, content);
      utimesSync(p, new Date(), (1_650_000_000_000 + i * 60_001) / 1000);
      files.set(`docs/${key}`, { content, mtimeMs: Math.floor(statSync(p).mtimeMs) });
    }
    const r = await runCli(['push', src, 's3://vault/backup', '--json', '--quiet'], { env: { ...s3TestEnv(server.endpoint), HOLDFAST_STATE: join(tmp.path, 'push-state') } });
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    client.destroy();
    await server.stop();
    await tmp.cleanup();
  });

  function assertRestored(target: string): void {
    assert.deepEqual(listTree(target), [...files.keys()].sort());
    for (const [key, f] of files) {
      const p = join(target, key);
      assert.ok(readFileSync(p).equals(f.content), `content of ${key}`);
      assert.equal(Math.floor(statSync(p).mtimeMs), f.mtimeMs, `mtime of ${key}`);
    }
  }

  it('restores everything on a machine with no ledger; --json reports like push', async () => {
    const target = fresh('restore');
    const r = await runCli(['pull', 's3://vault/backup', target, '--json'], { env: envFresh() });
    assert.equal(r.code, 0, r.stderr);
    const rep = parse(r);
    assert.equal(rep.status, 'completed');
    assert.deepEqual(rep.downloads, { completed: files.size, failed: 0, skipped: 0, unverified: 0 });
    assert.equal(rep.bytes, [...files.values()].reduce((s, f) => s + f.content.length, 0));
    assert.deepEqual(rep.errors, []);
    assert.match(r.stderr, /plan: 120 file\(s\) to download/);
    assertRestored(target);
  });

  it('killed with SIGKILL half-way, the next run resumes: identical files skipped, temp files gone', async () => {
    const target = fresh('restore-killed');
    const env = envFresh();
    const killed = await new Promise<{ signal: NodeJS.Signals | null; completed: number }>((resolve, reject) => {
      const child = spawn(process.execPath, [CLI_PATH, 'pull', 's3://vault/backup', target, '--transfers', '1', '--verbose'], {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let completed = 0;
      let buffer = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        buffer += d;
        completed = (buffer.match(/^completed: /gm) ?? []).length;
        if (completed >= 30) child.kill('SIGKILL');
      });
      child.on('error', reject);
      child.on('close', (_code, signal) => resolve({ signal, completed }));
    });
    assert.equal(killed.signal, 'SIGKILL', 'the first run was killed before it finished');
    const before = listTree(target).filter((k) => !k.includes('.holdfast-pull.'));
    assert.ok(before.length >= 30 && before.length < files.size, `${before.length} files restored before the kill`);

    const r = await runCli(['pull', 's3://vault/backup', target, '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    const rep = parse(r);
    assert.equal(rep.status, 'completed');
    assert.equal(rep.downloads.skipped, before.length, 'every file the killed run finished is skipped');
    assert.equal(rep.downloads.completed, files.size - before.length);
    assert.deepEqual(
      listTree(target).filter((k) => k.includes('.holdfast-pull.')),
      [],
      'the temp file of the killed download was removed',
    );
    assertRestored(target);
  });

  it('a damaged object fails alone with HOLDFAST_E_CHECKSUM, exit 2, and nothing is left at its path', async () => {
    const key = 'backup/docs/f001.bin';
    const head = await client.send(new HeadObjectCommand({ Bucket: 'vault', Key: key }));
    const damaged = Buffer.from(files.get('docs/f001.bin')!.content);
    damaged[damaged.length - 1] = damaged[damaged.length - 1]! ^ 1;
    await client.send(new PutObjectCommand({ Bucket: 'vault', Key: key, Body: damaged, Metadata: head.Metadata }));
    try {
      const target = fresh('restore-damaged');
      const r = await runCli(['pull', 's3://vault/backup', target, '--json'], { env: envFresh() });
      assert.equal(r.code, 2, r.stderr);
      const rep = parse(r);
      assert.equal(rep.status, 'partial');
      assert.equal(rep.downloads.failed, 1);
      assert.equal(rep.downloads.completed, files.size - 1);
      assert.deepEqual(rep.errors.map((e) => [e.key, e.code]), [['docs/f001.bin', 'HOLDFAST_E_CHECKSUM']]);
      assert.ok(!existsSync(join(target, 'docs/f001.bin')));
      assert.ok(!listTree(target).some((k) => k.includes('.holdfast-pull.')));
      assert.match(r.stderr, /failed: docs\/f001\.bin: HOLDFAST_E_CHECKSUM/);

      const text = await runCli(['pull', 's3://vault/backup', target, '--quiet'], { env: envFresh() });
      assert.equal(text.code, 2);
      assert.match(text.stdout, /^partial: 0 downloaded \(0 B\), 119 already identical, 1 failed/m);
      assert.match(text.stdout, /docs\/f001\.bin: HOLDFAST_E_CHECKSUM/);
    } finally {
      await client.send(new PutObjectCommand({ Bucket: 'vault', Key: key, Body: files.get('docs/f001.bin')!.content, Metadata: head.Metadata }));
    }
  });

  it('--dry-run lists what it would download and writes nothing', async () => {
    const target = fresh('restore-dry');
    const r = await runCli(['pull', 's3://vault/backup', target, '--dry-run', '--json'], { env: envFresh() });
    assert.equal(r.code, 0, r.stderr);
    const rep = parse(r);
    assert.equal(rep.dryRun, true);
    assert.equal(rep.plan?.length, files.size);
    assert.ok(!existsSync(target));
    const text = await runCli(['pull', 's3://vault/backup', target, '--dry-run', '--prefix', 'docs/odd'], { env: envFresh() });
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /would download\s+missing\s+.*docs\/odd name 0 #\?%\+\.bin/);
    assert.match(text.stdout, /dry run: would download 12 file\(s\)/);
    assert.ok(!existsSync(target));
  });

  it('a missing bucket exits 3; a target that is a file exits 3; bad options exit 1', async () => {
    const r = await runCli(['pull', 's3://no-such-bucket/x', fresh('t'), '--json'], { env: envFresh() });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /HOLDFAST_E_DEST_NOT_FOUND/);
    const file = fresh('file');
    writeFileSync(file, 'x');
    const t = await runCli(['pull', 's3://vault/backup', file], { env: envFresh() });
    assert.equal(t.code, 3, t.stderr);
    assert.match(t.stderr, /HOLDFAST_E_TARGET_UNUSABLE/);
    const u = await runCli(['pull', 's3://vault/backup', fresh('t'), '--transfers', '0'], { env: envFresh() });
    assert.equal(u.code, 1);
  });
});
