// Hostile input: a planned source file whose name is pointed at something else
// between the scan and the send (issue 10 #1, #2). Holdfast often runs as root
// over directories that other users can write to; such a user can replace
// their own file by a symlink to a root-only file of the same size and mtime,
// or by a FIFO. Every open of a source file goes through one helper
// (src/scan/hash.ts `openSourceFile`): O_NOFOLLOW | O_NONBLOCK, then fstat of
// the descriptor against the scan's device/inode (hashing) or the plan's size
// and mtime (sending). Nothing of the other file is read, let alone sent, and
// a FIFO cannot block the run.
//
// The swaps are deterministic: a hook of the public API (`defer`, called for
// every scanned file before it is hashed; the `plan:ready` event, after the
// plan is recorded and before any file is opened to be sent) in a child
// process (test/hostile/fixtures/swap-push.ts), or the counting proxy's
// `start` event on the request that precedes the open (CreateMultipartUpload)
// for the CLI. The runs are done as root, which can read the secret: that is
// the situation the attack needs (as an unprivileged user the secret would be
// refused by permissions, and the test could not fail).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { RunReport } from '../../src/core/report.js';
import { parseJsonReport, runCli } from '../helpers/cli.js';
import { startProxy, type S3Proxy } from '../helpers/proxy.js';
import { s3TestEnv, startS3Server, testS3Client, type S3TestServer } from '../helpers/s3-server.js';
import { listTree, makeTempDir, type TempDir } from '../helpers/tmp.js';
import type { SwapArgs } from './fixtures/swap-push.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/swap-push.js', import.meta.url));
/** Far longer than any of these runs takes; a run still going then is blocked for ever (the FIFO bug). */
const HANG_MS = 30_000;
const MTIME = new Date('2026-01-02T03:04:05.678Z');

/** Runs the fixture; `hung` when it had to be killed. */
function runSwap(args: SwapArgs): Promise<{ hung: boolean; report?: RunReport; swapped?: boolean; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FIXTURE, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let hung = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      hung = true;
      child.kill('SIGKILL');
    }, HANG_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (hung) return resolve({ hung, stderr });
      if (code !== 0) return reject(new Error(`fixture exited ${code}:\n${stderr}`));
      const out = JSON.parse(stdout.trim()) as { swapped: boolean; report: RunReport };
      resolve({ hung, ...out, stderr });
    });
  });
}

/** A source with two innocent files and `victim`, and a root-only secret outside it of the same size and mtime. */
function setup(base: string, victim: string, size: number): { src: string; secret: Buffer; secretPath: string } {
  const src = join(base, 'src');
  mkdirSync(join(src, victim, '..'), { recursive: true });
  writeFileSync(join(src, 'a.txt'), 'first innocent file');
  writeFileSync(join(src, 'z.txt'), 'last innocent file');
  writeFileSync(join(src, victim), Buffer.alloc(size, 0x61));
  const secret = Buffer.alloc(size, 0x53);
  secret.write('ROOT-ONLY SECRET');
  const secretPath = join(base, 'secret');
  writeFileSync(secretPath, secret, { mode: 0o600 });
  for (const p of [join(src, victim), secretPath]) utimesSync(p, MTIME, MTIME);
  return { src, secret, secretPath };
}

function assertRefused(report: RunReport | undefined, key: string): void {
  assert.ok(report, 'the run finished');
  assert.equal(report.status, 'partial');
  assert.equal(report.uploads.completed, 2, 'the innocent files were sent');
  assert.equal(report.uploads.failed, 1);
  assert.deepEqual(
    report.errors.map((e) => [e.key, e.code]),
    [[key, 'HOLDFAST_E_SOURCE_CHANGED']],
  );
}

/** No file under `dir` holds the secret (its first 16 bytes are unique to it). */
function assertNowhere(dir: string, secret: Buffer): void {
  for (const rel of listTree(dir)) {
    assert.ok(!readFileSync(join(dir, rel)).includes(secret.subarray(0, 16)), `${rel} holds the secret`);
  }
}

describe('a source file swapped between scan and send (file://)', () => {
  let tmp: TempDir;
  let n = 0;
  before(async () => (tmp = await makeTempDir('holdfast-swap-')));
  after(async () => tmp.cleanup());
  const fresh = (): string => {
    const dir = join(tmp.path, `case-${n++}`);
    mkdirSync(dir);
    return dir;
  };

  it('a symlink to a root-only file, swapped in after the scan: refused with SOURCE_CHANGED, the secret is sent nowhere', async () => {
    const base = fresh();
    const { src, secret, secretPath } = setup(base, 'victim.txt', 4096);
    const dst = join(base, 'dst');
    const r = await runSwap({ source: src, destination: `file://${dst}`, stateDir: join(base, 'state'), key: 'victim.txt', at: 'scanned', to: { symlink: secretPath } });
    assert.equal(r.hung, false);
    assert.equal(r.swapped, true);
    assertRefused(r.report, 'victim.txt');
    assert.deepEqual(listTree(dst), ['a.txt', 'z.txt']);
    assertNowhere(dst, secret);
  });

  it('a FIFO swapped in after the scan: the run completes, that file fails with SOURCE_CHANGED', async () => {
    const base = fresh();
    const { src } = setup(base, 'victim.txt', 4096);
    const dst = join(base, 'dst');
    const r = await runSwap({ source: src, destination: `file://${dst}`, stateDir: join(base, 'state'), key: 'victim.txt', at: 'scanned', to: { fifo: true } });
    assert.equal(r.hung, false, 'the run did not block on the FIFO');
    assertRefused(r.report, 'victim.txt');
    assert.deepEqual(listTree(dst), ['a.txt', 'z.txt']);
  });

  it('a FIFO swapped in after the plan: the send refuses it at once, no hang', async () => {
    const base = fresh();
    const { src } = setup(base, 'victim.txt', 4096);
    const dst = join(base, 'dst');
    const r = await runSwap({ source: src, destination: `file://${dst}`, stateDir: join(base, 'state'), key: 'victim.txt', at: 'planned', to: { fifo: true } });
    assert.equal(r.hung, false, 'the run did not block on the FIFO');
    assertRefused(r.report, 'victim.txt');
  });
});

describe('a source file swapped after the plan (s3:// through a counting proxy)', () => {
  let tmp: TempDir;
  let server: S3TestServer;
  let proxy: S3Proxy;
  let client: S3Client;
  let n = 0;
  before(async () => {
    tmp = await makeTempDir('holdfast-swap-s3-');
    server = await startS3Server();
    await server.createBucket('swap');
    proxy = await startProxy({ target: server.endpoint });
    client = testS3Client(server.endpoint);
  });
  after(async () => {
    client.destroy();
    await proxy.stop();
    await server.stop();
    await tmp.cleanup();
  });
  const fresh = (): string => {
    const dir = join(tmp.path, `case-${n++}`);
    mkdirSync(dir);
    return dir;
  };
  async function keys(prefix: string): Promise<string[]> {
    const r = await client.send(new ListObjectsV2Command({ Bucket: 'swap', Prefix: prefix }));
    return (r.Contents ?? []).map((o) => o.Key ?? '').sort();
  }
  async function objectSize(key: string): Promise<number | undefined> {
    const r = await client.send(new ListObjectsV2Command({ Bucket: 'swap', Prefix: key }));
    return r.Contents?.find((o) => o.Key === key)?.Size;
  }
  /** Request-body bytes the proxy forwarded for `key` (PutObject and UploadPart). */
  const contentBytesFor = (key: string): number =>
    proxy.records.filter((r) => (r.op === 'PutObject' || r.op === 'UploadPart') && r.key === key).reduce((s, r) => s + r.bodyBytes, 0);

  it('a streamed file (over 8 MiB) swapped for a symlink: not a byte of the secret reaches the server', async () => {
    const base = fresh();
    const size = 9 * 1024 * 1024;
    const { src, secretPath } = setup(base, 'big.bin', size);
    proxy.reset();
    const r = await runSwap({
      source: src,
      destination: `s3://swap/c${n}`,
      stateDir: join(base, 'state'),
      key: 'big.bin',
      at: 'planned',
      to: { symlink: secretPath },
      env: s3TestEnv(proxy.endpoint),
    });
    assert.equal(r.hung, false);
    assertRefused(r.report, 'big.bin');
    // The PutObject request may have started (its body is opened as the SDK sends it) and been cut at
    // byte 0: s3rver then leaves an empty partial object where real S3 stores nothing. Not one byte went.
    assert.equal(contentBytesFor(`c${n}/big.bin`), 0, 'no request carried its bytes');
    assert.ok(!(await keys(`c${n}/`)).includes(`c${n}/big.bin`) || (await objectSize(`c${n}/big.bin`)) === 0);
  });

  it('a folder on the way swapped for a symlink to another folder: nothing is read through it', async () => {
    const base = fresh();
    const size = 9 * 1024 * 1024;
    const { src, secret } = setup(base, 'sub/big.bin', size);
    // The attacker's folder holds a file of the same name, size and mtime: the secret (a hard link in real life).
    const elsewhere = join(base, 'elsewhere');
    mkdirSync(elsewhere);
    writeFileSync(join(elsewhere, 'big.bin'), secret, { mode: 0o600 });
    utimesSync(join(elsewhere, 'big.bin'), MTIME, MTIME);
    proxy.reset();
    const r = await runSwap({
      source: src,
      destination: `s3://swap/c${n}`,
      stateDir: join(base, 'state'),
      key: 'sub/big.bin',
      replace: 'sub',
      at: 'planned',
      to: { symlink: elsewhere },
      env: s3TestEnv(proxy.endpoint),
    });
    assert.equal(r.hung, false);
    assertRefused(r.report, 'sub/big.bin');
    assert.equal(contentBytesFor(`c${n}/sub/big.bin`), 0, 'no request carried its bytes');
  });

  describe('through the CLI, multipart (the swap lands while CreateMultipartUpload is answered)', () => {
    const MULTIPART = ['--multipart-threshold', '5MiB', '--part-size', '5MiB', '--json', '--quiet'];

    it('a symlink: exit 2, SOURCE_CHANGED, no part sent', async () => {
      const base = fresh();
      const { src, secretPath } = setup(base, 'big.bin', 6 * 1024 * 1024);
      const prefix = `c${n}`;
      proxy.reset();
      const off = proxy.on('start', (rec) => {
        if (rec.op === 'CreateMultipartUpload' && rec.key === `${prefix}/big.bin`) {
          unlinkSync(join(src, 'big.bin'));
          symlinkSync(secretPath, join(src, 'big.bin'));
        }
      });
      const r = await runCli(['push', src, `s3://swap/${prefix}`, ...MULTIPART], { env: { ...s3TestEnv(proxy.endpoint), HOLDFAST_STATE: join(base, 'state') }, timeoutMs: HANG_MS });
      off();
      assert.equal(r.code, 2, r.stderr);
      const rep = parseJsonReport(r);
      assert.deepEqual(
        rep.errors.map((e) => [e.key, e.code]),
        [['big.bin', 'HOLDFAST_E_SOURCE_CHANGED']],
      );
      assert.equal(proxy.op('CreateMultipartUpload').requests, 1, 'the swap happened where intended');
      assert.equal(proxy.op('UploadPart').requests, 0, 'not one part of the secret was sent');
    });

    it('a FIFO: exit 2, SOURCE_CHANGED, within the bound (no hang)', async () => {
      const base = fresh();
      const { src } = setup(base, 'big.bin', 6 * 1024 * 1024);
      const prefix = `c${n}`;
      proxy.reset();
      const off = proxy.on('start', (rec) => {
        if (rec.op === 'CreateMultipartUpload' && rec.key === `${prefix}/big.bin`) {
          unlinkSync(join(src, 'big.bin'));
          execFileSync('mkfifo', [join(src, 'big.bin')]);
        }
      });
      const r = await runCli(['push', src, `s3://swap/${prefix}`, ...MULTIPART], { env: { ...s3TestEnv(proxy.endpoint), HOLDFAST_STATE: join(base, 'state') }, timeoutMs: HANG_MS });
      off();
      assert.equal(r.signal, null, 'it was not killed: it ended by itself');
      assert.equal(r.code, 2, r.stderr);
      assert.deepEqual(
        parseJsonReport(r).errors.map((e) => [e.key, e.code]),
        [['big.bin', 'HOLDFAST_E_SOURCE_CHANGED']],
      );
      assert.ok(existsSync(join(src, 'big.bin')));
    });
  });
});
