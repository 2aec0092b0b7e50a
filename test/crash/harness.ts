// The crash harness's tools: a seeded source tree, the real CLI as a child
// process that a test can SIGKILL at any instant, and the end-state checks
// every crash test makes against s3rver (content by GET, listing) and against
// the SQLite ledger (every row upload_completed with the right hash and size).

import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import assert from 'node:assert/strict';
import type { S3Client } from '@aws-sdk/client-s3';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { openLedger } from '../../src/ledger/open.js';
import { CLI_PATH, type CliResult } from '../helpers/cli.js';
import { s3TestEnv, testS3Client } from '../helpers/s3-server.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;

export interface TreeFile {
  readonly size: number;
  readonly sha256: string;
}

/** Source keys → size and SHA-256. */
export type Tree = Map<string, TreeFile>;

/** Fills `buf` with bytes from a seeded xorshift32 stream (fast enough for tens of MiB). */
export function fillSeeded(buf: Buffer, seed: number): void {
  let x = seed >>> 0 || 0x9e3779b9;
  const words = Math.floor(buf.length / 4);
  const view = new Uint32Array(buf.buffer, buf.byteOffset, words);
  if (buf.byteOffset % 4 === 0) {
    for (let i = 0; i < words; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      view[i] = x >>> 0;
    }
  } else {
    for (let i = 0; i < words; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      buf.writeUInt32LE(x >>> 0, i * 4);
    }
  }
  for (let i = words * 4; i < buf.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf[i] = x & 0xff;
  }
}

/** Writes a file of `size` seeded bytes under `root` and records it in `tree`. */
export function writeSeededFile(root: string, key: string, size: number, seed: number, tree: Tree): void {
  const buf = Buffer.allocUnsafe(size);
  fillSeeded(buf, seed);
  const path = join(root, key);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, buf);
  tree.set(key, { size, sha256: createHash('sha256').update(buf).digest('hex') });
}

export interface TreeShape {
  readonly smallFiles: number;
  readonly smallMin: number;
  readonly smallMax: number;
  /** How many large (multipart) files: picked in [bigMin, bigMax]. */
  readonly bigMin: number;
  readonly bigMax: number;
  readonly bigSizeMin: number;
  readonly bigSizeMax: number;
}

const DIRS = ['', 'docs', 'docs/2024', 'docs/2024/q3', 'img', 'img/raw', 'logs', 'x y'];

/** A mixed tree drawn from `random`: small files over a few directories, plus some multipart-sized ones. */
export function buildTree(root: string, random: () => number, shape: TreeShape): Tree {
  const tree: Tree = new Map();
  const int = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));
  for (let i = 0; i < shape.smallFiles; i++) {
    const dir = DIRS[int(0, DIRS.length - 1)] ?? '';
    const key = `${dir === '' ? '' : `${dir}/`}f${String(i).padStart(3, '0')}.dat`;
    writeSeededFile(root, key, int(shape.smallMin, shape.smallMax), int(1, 2 ** 31), tree);
  }
  const bigs = int(shape.bigMin, shape.bigMax);
  for (let i = 0; i < bigs; i++) writeSeededFile(root, `big/b${i}.bin`, int(shape.bigSizeMin, shape.bigSizeMax), int(1, 2 ** 31), tree);
  return tree;
}

export function treeBytes(tree: Tree): number {
  let n = 0;
  for (const f of tree.values()) n += f.size;
  return n;
}

/** A running `holdfast` child process. */
export interface CliRun {
  readonly child: ChildProcess;
  readonly startedAt: number;
  /** Resolves when the process has exited and been reaped (its pid is then really gone). */
  readonly done: Promise<CliResult>;
  kill(): void;
}

/** Starts the built CLI with `args`, talking to `endpoint` with s3rver's credentials. */
export function startCli(args: readonly string[], endpoint: string, timeoutMs = 180_000): CliRun {
  const child = spawn(process.execPath, [CLI_PATH, ...args], {
    env: { ...process.env, ...s3TestEnv(endpoint) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  // A hung run must not hang the suite: it is killed and then fails its test.
  const timer = setTimeout(kill, timeoutMs);
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, startedAt: Date.now(), done, kill };
}

/** The `push` arguments every crash run uses (`command` "sync" mirrors deletions too). */
export function pushArgs(src: string, url: string, opts: { endpoint: string; state: string; partSize: string; threshold: string; transfers: number; command?: 'push' | 'sync' }): string[] {
  return [
    opts.command ?? 'push',
    src,
    url,
    '--s3-endpoint',
    opts.endpoint,
    '--state',
    opts.state,
    '--json',
    '--quiet',
    '--multipart-threshold',
    opts.threshold,
    '--part-size',
    opts.partSize,
    '--transfers',
    String(opts.transfers),
  ];
}

/** A client straight to s3rver (not through the proxy), for checks that must not disturb the counters. */
export function directClient(endpoint: string): S3Client {
  return testS3Client(endpoint);
}

/** Every key in a bucket (with the full S3 key, prefix included). */
export async function listBucket(client: S3Client, bucket: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    for (const o of page.Contents ?? []) if (o.Key !== undefined) out.set(o.Key, o.Size ?? 0);
    token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  return out;
}

/** GETs an object and returns the SHA-256 and length of what came back, and its holdfast-sha256 metadata. */
export async function fetchObject(client: S3Client, bucket: string, key: string): Promise<{ sha256: string; size: number; meta: string | undefined }> {
  const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of out.Body as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest('hex'), size, meta: out.Metadata?.['holdfast-sha256'] };
}

/**
 * The end state every crash iteration must reach (DESIGN §2, promises 1 and 3):
 * every source file on the destination with identical content (GET, SHA-256 of
 * the bytes received), nothing else in the bucket, and every ledger row
 * upload_completed with the source's hash and size.
 */
export async function assertConverged(opts: {
  client: S3Client;
  bucket: string;
  prefix: string;
  tree: Tree;
  stateDir: string;
  context: string;
  /** Keys deleted from the source along the way: their rows must say delete_completed (or be gone). */
  deleted?: boolean;
}): Promise<void> {
  const { client, bucket, prefix, tree, context } = opts;
  const listed = await listBucket(client, bucket);
  const expected = [...tree.keys()].map((k) => prefix + k).sort();
  assert.deepEqual([...listed.keys()].sort(), expected, `${context}: the bucket holds exactly the source's keys`);
  for (const [key, file] of tree) {
    const got = await fetchObject(client, bucket, prefix + key);
    assert.equal(got.size, file.size, `${context}: size of ${key}`);
    assert.equal(got.sha256, file.sha256, `${context}: content of ${key}`);
    assert.equal(got.meta, file.sha256, `${context}: holdfast-sha256 of ${key}`);
  }
  const ledger = await openLedger({ stateDir: opts.stateDir });
  try {
    const dests = await ledger.listDestinations();
    assert.equal(dests.length, 1, `${context}: one destination in the ledger`);
    const seen = new Set<string>();
    for await (const row of ledger.streamObjects(dests[0]!.id)) {
      const file = tree.get(row.key);
      if (file === undefined && opts.deleted === true) {
        assert.equal(row.status, 'delete_completed', `${context}: the row of ${row.key}, deleted from the source, says its object is deleted`);
        continue;
      }
      seen.add(row.key);
      assert.ok(file, `${context}: ledger row ${row.key} has a source file`);
      assert.equal(row.status, 'upload_completed', `${context}: status of ${row.key}`);
      assert.equal(row.sha256, file.sha256, `${context}: ledger sha256 of ${row.key}`);
      assert.equal(row.size, file.size, `${context}: ledger size of ${row.key}`);
    }
    assert.equal(seen.size, tree.size, `${context}: a ledger row for every source file`);
  } finally {
    await ledger.close();
  }
}
