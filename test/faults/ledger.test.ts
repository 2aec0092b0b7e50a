// Proves DESIGN §3 when the ledger itself fails, with a real SQLite ledger and
// a real S3 server behind the counting proxy:
// (a) the outcome write fails after a successful upload → "partial" by key,
//     with the report saying no manual action is needed; the next run
//     resolves every such file with zero content bytes sent (proxy counters);
// (b) the intent write (claim) fails → nothing reaches the server, a clean
//     failure;
// (c) another process holds the ledger's write lock (BEGIN IMMEDIATE): a
//     short hold is waited out and the CLI run completes; a hold that outlasts
//     the busy timeout ends the run with HOLDFAST_E_LEDGER_BUSY and exit 3; a
//     hold that starts mid-run turns the files it blocks into partial or
//     failed results, and the next run sorts them out without re-sending.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { textReport } from '../../src/cli/report.js';
import { openLedger, ledgerPath } from '../../src/ledger/open.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import { push, type PushOptions } from '../../src/sync/push.js';
import { faultyLedger } from '../helpers/faulty-ledger.js';
import { parseJsonReport } from '../helpers/cli.js';
import { seededRandom, startProxy, type S3Proxy } from '../helpers/proxy.js';
import { s3TestEnv, startS3Server, type S3TestServer } from '../helpers/s3-server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { assertConverged, buildTree, directClient, fetchObject, KiB, listBucket, MiB, pushArgs, startCli, type Tree } from '../crash/harness.js';

for (const [k, v] of Object.entries(s3TestEnv('unused'))) if (k !== 'AWS_ENDPOINT_URL') process.env[k] = v;

const fast = { attempts: 3, baseMs: 5, maxMs: 20 };
const SHAPE = { smallFiles: 12, smallMin: 1 * KiB, smallMax: 16 * KiB, bigMin: 1, bigMax: 1, bigSizeMin: 11 * MiB, bigSizeMax: 11 * MiB };

/**
 * Another process holding the ledger's write lock: `lock()` runs BEGIN
 * IMMEDIATE there (waiting for any write in progress), `unlock()` commits.
 * A process, not a second connection here: better-sqlite3 waits for a lock
 * synchronously, which would freeze this process's own lock holder too.
 */
class LockHolder {
  readonly #child: ChildProcess;
  #acks = '';
  #waiters: { char: string; resolve: () => void }[] = [];

  constructor(dbFile: string) {
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    const script = `
      const Database = require(process.argv[1]);
      let db;
      process.stdin.setEncoding('utf8');
      process.stdin.on('data', (d) => {
        for (const c of d) {
          if (c === 'L') { db ??= new Database(process.argv[2], { timeout: 30000 }); db.exec('BEGIN IMMEDIATE'); process.stdout.write('L'); }
          if (c === 'U') { db.exec('COMMIT'); process.stdout.write('U'); }
        }
      });
      process.stdin.on('end', () => process.exit(0));`;
    this.#child = spawn(process.execPath, ['-e', script, driver, dbFile], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.#child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      this.#acks += d;
      for (const w of [...this.#waiters]) {
        if (this.#acks.includes(w.char)) {
          this.#acks = this.#acks.replace(w.char, '');
          this.#waiters.splice(this.#waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    });
  }

  #send(char: string): Promise<void> {
    return new Promise((resolve) => {
      this.#waiters.push({ char, resolve });
      this.#child.stdin!.write(char);
    });
  }

  lock(): Promise<void> {
    return this.#send('L');
  }

  unlock(): Promise<void> {
    return this.#send('U');
  }

  /** Ends the process (an open transaction is rolled back by SQLite). */
  async stop(): Promise<void> {
    if (this.#child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => this.#child.once('exit', () => resolve()));
    this.#child.stdin!.end();
    await exited;
  }
}

describe('push when the ledger fails', { concurrency: false }, () => {
  let s3: S3TestServer;
  let proxy: S3Proxy;
  let client: S3Client;
  let tmp: TempDir;
  let n = 0;
  const holders: LockHolder[] = [];

  before(async () => {
    s3 = await startS3Server();
    proxy = await startProxy({ target: s3.endpoint });
    client = directClient(s3.endpoint);
    tmp = await makeTempDir('holdfast-ledger-faults-');
  });
  after(async () => {
    for (const h of holders) await h.stop();
    client?.destroy();
    await proxy?.stop();
    await s3?.stop();
    await tmp?.cleanup();
  });

  async function fixture(shape = SHAPE): Promise<{ src: string; state: string; bucket: string; tree: Tree; options: PushOptions }> {
    const i = n++;
    const bucket = `ledger-faults-${i}`;
    await s3.createBucket(bucket);
    const src = join(tmp.path, `src${i}`);
    const state = join(tmp.path, `state${i}`);
    const tree = buildTree(src, seededRandom(100 + i), shape);
    const options: PushOptions = {
      source: src,
      destination: `s3://${bucket}/l`,
      backendOptions: { s3Endpoint: proxy.endpoint },
      transfers: 4,
      multipartThreshold: 5 * MiB,
      partSize: 5 * MiB,
      retry: fast,
    };
    return { src, state, bucket, tree, options };
  }

  const contentRequests = (): number => proxy.op('PutObject').requests + proxy.op('UploadPart').requests + proxy.op('CreateMultipartUpload').requests;

  it('(a) outcome write fails after the upload: partial by key, no manual action needed, then recovered with zero bytes', async () => {
    const { state, bucket, tree, options } = await fixture();
    const ledger = await openLedger({ stateDir: state });
    try {
      const faulty = faultyLedger(ledger, [{ method: 'recordOutcomes' }]);
      proxy.reset();
      const first = await push({ ...options, ledger: faulty });
      assert.equal(first.status, 'partial');
      assert.deepEqual(first.uploads, { completed: 0, failed: 0, partial: tree.size, skipped: 0, recovered: 0, fenced: 0 });
      assert.deepEqual(first.errors.map((e) => e.key).sort(), [...tree.keys()].sort(), 'every partial file is named');
      assert.ok(first.errors.every((e) => e.code === 'HOLDFAST_E_LEDGER_OUTCOME'));
      assert.ok(proxy.contentBytes() >= [...tree.values()].reduce((s, f) => s + f.size, 0), 'the files were sent');
      for (const [key, file] of tree) assert.equal((await fetchObject(client, bucket, `l/${key}`)).sha256, file.sha256, `${key} reached the server`);

      // What the CLI prints for this report: prominent, by key, and reassuring.
      const text = textReport(first, { destination: options.destination ?? '', dryRun: false });
      assert.match(text, new RegExp(`NOTE: ${tree.size} file\\(s\\) reached the destination but the ledger could not record it`));
      assert.match(text, /No manual action is needed: the next run confirms them with the destination and sends nothing again\./);
      for (const key of tree.keys()) assert.ok(text.includes(key), `the text report names ${key}`);

      proxy.reset();
      const second = await push({ ...options, ledger });
      assert.equal(second.status, 'completed');
      assert.deepEqual(second.uploads, { completed: 0, failed: 0, partial: 0, skipped: 0, recovered: tree.size, fenced: 0 });
      assert.equal(second.bytes, 0);
      assert.equal(proxy.contentBytes(), 0, 'zero PutObject/UploadPart bytes on the recovering run');
      assert.equal(contentRequests(), 0, 'not even an empty upload request');
      assert.equal(proxy.op('HeadObject').requests, tree.size, 'one HEAD per interrupted file: recovery asked the destination');
    } finally {
      await ledger.close();
    }
    await assertConverged({ client, bucket, prefix: 'l/', tree, stateDir: state, context: '(a)' });
  });

  it('(b) the intent write (claim) fails: nothing reaches the server, a clean failure', async () => {
    const { state, bucket, tree, options } = await fixture();
    const ledger = await openLedger({ stateDir: state });
    try {
      const faulty = faultyLedger(ledger, [{ method: 'claim' }]);
      proxy.reset();
      const r = await push({ ...options, ledger: faulty });
      assert.equal(r.status, 'failed');
      assert.deepEqual(r.uploads, { completed: 0, failed: tree.size, partial: 0, skipped: 0, recovered: 0, fenced: 0 });
      assert.ok(r.errors.some((e) => e.code === 'HOLDFAST_E_LEDGER_WRITE' && /could not record upload intents/.test(e.message)));
      assert.equal(contentRequests(), 0, 'no intent, no upload request');
      assert.equal(proxy.contentBytes(), 0);
      assert.equal((await listBucket(client, bucket)).size, 0, 'the bucket is empty');
      const dest = (await ledger.listDestinations())[0]!;
      for await (const row of ledger.streamObjects(dest.id)) assert.equal(row.status, 'upload_pending', `${row.key} stays planned, not in progress`);

      const again = await push({ ...options, ledger });
      assert.equal(again.status, 'completed');
      assert.equal(again.uploads.completed, tree.size);
    } finally {
      await ledger.close();
    }
    await assertConverged({ client, bucket, prefix: 'l/', tree, stateDir: state, context: '(b)' });
  });

  it('(c) the ledger locked by another process for ~1 s mid-run: the CLI waits and completes', async () => {
    const { src, state, bucket, tree } = await fixture();
    const args = pushArgs(src, `s3://${bucket}/l`, { endpoint: proxy.endpoint, state, partSize: '5MiB', threshold: '5MiB', transfers: 4 });
    const holder = new LockHolder(ledgerPath(state));
    holders.push(holder);

    proxy.reset();
    const run = startCli(args, proxy.endpoint);
    let released = 0;
    let locking: Promise<void> | undefined;
    const off = proxy.on('start', (r) => {
      if (r.op !== 'PutObject' || locking) return;
      // Mid-run: the plan and the first intents are committed, uploads have begun.
      locking = holder.lock().then(async () => {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        await holder.unlock();
        released = Date.now();
      });
    });
    const result = await run.done;
    off();
    const finished = Date.now();
    await locking;
    assert.equal(result.code, 0, result.stderr);
    assert.ok(released > 0 && finished >= released, 'the run could not finish while the lock was held');
    assert.equal(parseJsonReport(result).uploads.completed, tree.size);
    console.log(`ledger busy for 1 s mid-run: the CLI completed ${finished - released} ms after the lock was released`);
    await assertConverged({ client, bucket, prefix: 'l/', tree, stateDir: state, context: '(c) short hold' });
    await holder.stop();
  });

  it('(c) the ledger locked longer than the busy timeout: exit 3 with HOLDFAST_E_LEDGER_BUSY, and the next run completes', async () => {
    const { state, bucket, tree, src } = await fixture({ ...SHAPE, smallFiles: 3, bigMin: 0, bigMax: 0 });
    const args = pushArgs(src, `s3://${bucket}/l`, { endpoint: proxy.endpoint, state, partSize: '5MiB', threshold: '5MiB', transfers: 4 });
    const first = await startCli(args, proxy.endpoint).done;
    assert.equal(first.code, 0, first.stderr);
    writeFileSync(join(src, 'later.txt'), 'added after the first run');

    const holder = new LockHolder(ledgerPath(state));
    holders.push(holder);
    await holder.lock();
    proxy.reset();
    const t0 = Date.now();
    const blocked = await startCli(args, proxy.endpoint).done;
    const waited = Date.now() - t0;
    await holder.unlock();
    assert.equal(blocked.code, 3, `exit code (stderr: ${blocked.stderr})`);
    const out = JSON.parse(blocked.stdout.trim()) as { status: string; error: { code: string; message: string } };
    assert.equal(out.status, 'failed');
    assert.equal(out.error.code, 'HOLDFAST_E_LEDGER_BUSY');
    assert.match(out.error.message, /the ledger is locked by another process/);
    assert.match(blocked.stderr, /HOLDFAST_E_LEDGER_BUSY: the ledger is locked by another process/);
    // The CLI waits 1 s per attempt (SQLite busy timeout) over 5 attempts with backoff before giving up.
    assert.ok(waited >= 4500, `waited ${waited} ms for the lock`);
    assert.equal(contentRequests(), 0, 'nothing was sent while the ledger could not be written');
    console.log(`ledger busy: the CLI gave up after ${waited} ms with: ${out.error.message}`);

    const after = await startCli(args, proxy.endpoint).done;
    assert.equal(after.code, 0, after.stderr);
    assert.equal(parseJsonReport(after).uploads.completed, 1);
    tree.set('later.txt', { size: 25, sha256: (await fetchObject(client, bucket, 'l/later.txt')).sha256 });
    await assertConverged({ client, bucket, prefix: 'l/', tree, stateDir: state, context: '(c) long hold' });
    await holder.stop();
  });

  it('(c) the ledger locked mid-run for longer than the run will wait: files blocked are partial or failed, the next run sends nothing twice', async () => {
    const { state, bucket, tree, options } = await fixture({ ...SHAPE, smallFiles: 16 });
    // A ledger of our own with a short busy timeout, so giving up takes ~1 s, not minutes.
    const prepared: Ledger = await openLedger({ stateDir: state, busyTimeoutMs: 100 });
    const holder = new LockHolder(ledgerPath(state));
    holders.push(holder);
    let locking: Promise<void> | undefined;
    const off = proxy.on('end', (r) => {
      if (r.op === 'PutObject' && r.result === 'ok' && !locking) locking = holder.lock();
    });
    proxy.reset();
    let first;
    try {
      first = await push({ ...options, ledger: prepared, transfers: 2 });
    } finally {
      off();
      await locking;
      await holder.unlock();
      await prepared.close();
    }
    const u = first.uploads;
    console.log(`ledger busy mid-run: ${first.status} ${JSON.stringify(u)}; errors: ${[...new Set(first.errors.map((e) => `${e.code}: ${e.message}`))].slice(0, 3).join(' | ')}`);
    assert.equal(u.completed + u.failed + u.partial + u.skipped + u.recovered, tree.size, 'every file accounted for');
    assert.ok(u.partial + u.failed > 0, 'the lock blocked some files');
    for (const e of first.errors) assert.ok(['HOLDFAST_E_LEDGER_OUTCOME', 'HOLDFAST_E_LEDGER_BUSY', 'HOLDFAST_E_LEDGER_WRITE'].includes(e.code), `${e.key}: ${e.code}: ${e.message}`);
    for (const e of first.errors.filter((x) => x.code === 'HOLDFAST_E_LEDGER_OUTCOME')) {
      assert.equal((await fetchObject(client, bucket, `l/${e.key}`)).sha256, tree.get(e.key)?.sha256, `partial ${e.key} is on the server`);
    }
    const sentFirst = proxy.contentBytes();

    proxy.reset();
    const second = await push({ ...options, stateDir: state });
    assert.equal(second.status, 'completed');
    assert.equal(second.uploads.recovered, u.partial, 'every partial file is recovered, not re-sent');
    const total = [...tree.values()].reduce((s, f) => s + f.size, 0);
    // Partial files cost nothing; only files never confirmed may be sent again.
    assert.ok(sentFirst + proxy.contentBytes() <= total + 4 * 5 * MiB, `sent ${sentFirst} + ${proxy.contentBytes()} for ${total}`);
    await assertConverged({ client, bucket, prefix: 'l/', tree, stateDir: state, context: '(c) mid-run' });
    await holder.stop();
  });
});
