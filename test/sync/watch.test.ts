// `watch` against real directories, a real S3 server behind the fault proxy
// and the real ledger: new files are sent once they stop changing, a file
// written under a temp name and renamed is sent under its final name only,
// a destination outage is ridden out with retry rounds while the other
// destination carries on, and stopping ends the watcher cleanly.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { watch, type WatchRound, type WatchSummary } from '../../src/sync/watch.js';
import { openLedger } from '../../src/ledger/open.js';
import { startS3Server, s3TestEnv, testS3Client, type S3TestServer } from '../helpers/s3-server.js';
import { FAULT_503, startProxy } from '../helpers/proxy.js';
import { stopAfterEach, until } from '../helpers/wait.js';
import { ManualClock } from '../helpers/clock.js';
import { listTree, makeTempDir, type TempDir } from '../helpers/tmp.js';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { destinationByUrl } from '../helpers/destinations.js';

for (const [k, v] of Object.entries(s3TestEnv('unused'))) if (k !== 'AWS_ENDPOINT_URL') process.env[k] = v;

const fast = { retry: { attempts: 2, baseMs: 5, maxMs: 10 } };


describe('watch', () => {
  let tmp: TempDir;
  let server: S3TestServer;
  let n = 0;
  // Every watcher a test starts is stopped after it, even when an assertion failed first.
  const stopper = stopAfterEach();
  before(async () => {
    tmp = await makeTempDir('holdfast-watch-');
    server = await startS3Server();
  });
  after(async () => {
    await server.stop();
    await tmp.cleanup();
  });

  function dirs(): { src: string; dst: string; state: string } {
    const base = join(tmp.path, `case${n++}`);
    const src = join(base, 'src');
    mkdirSync(src, { recursive: true });
    return { src, dst: join(base, 'dst'), state: join(base, 'state') };
  }

  it('sends new files after their quiet period, never a temp name, and a growing file only once it is complete', async () => {
    const { src, dst, state } = dirs();
    const quietMs = 400;
    writeFileSync(join(src, 'before.txt'), 'there before watch started');
    // The watcher's clock starts a quiet period after before.txt was written and moves only when this test moves it.
    const clock = new ManualClock(Date.now() + quietMs);
    // What the test writes from here on "changed" at `changing` on that clock: still changing until the clock passes it.
    const changing = clock.now() + 10_000;
    const touch = (path: string): void => utimesSync(path, changing / 1000, changing / 1000);
    const stop = stopper();
    const rounds: WatchRound[] = [];
    const running = watch({ source: src, destination: `file://${dst}`, stateDir: state, quietMs, batchMs: 0, clock, stopSignal: stop.signal, onRound: (r) => rounds.push(r), ...fast });
    await until('the first round, with the existing file', () => rounds.length >= 1);
    assert.equal(rounds[0]?.reason, 'start');
    assert.equal(rounds[0]?.report.uploads.completed, 1);
    assert.ok(existsSync(join(dst, 'before.txt')));

    // A backup tool's pattern: write under a temp name in steps, then rename; and a log that keeps growing.
    // Every write starts rounds (batchMs 0); none may send a file that is still changing.
    const tmpName = join(src, 'backup-1.tar.tmp');
    for (let i = 0; i < 8; i++) {
      appendFileSync(tmpName, Buffer.alloc(4096, i));
      touch(tmpName);
    }
    renameSync(tmpName, join(src, 'backup-1.tar'));
    const growing = join(src, 'growing.log');
    for (let i = 0; i < 10; i++) {
      appendFileSync(growing, `line ${i}\n`);
      touch(growing);
      const seen = rounds.length;
      await until(`a round after line ${i}`, () => rounds.length > seen);
    }
    await until('a round that saw both files still changing', () => rounds.some((r) => r.settling === 2));
    assert.ok(!existsSync(join(dst, 'backup-1.tar')) && !existsSync(join(dst, 'growing.log')), 'nothing changing was sent');

    // The quiet period passes on the watcher's clock: a settle round sends both, once, complete.
    clock.set(changing + quietMs);
    await until('the renamed backup and the finished log', () => existsSync(join(dst, 'backup-1.tar')) && existsSync(join(dst, 'growing.log')));
    assert.equal(readFileSync(join(dst, 'backup-1.tar')).length, 8 * 4096, 'the whole backup, as renamed');
    assert.equal(readFileSync(join(dst, 'growing.log'), 'utf8'), readFileSync(growing, 'utf8'), 'the log as it was when it stopped changing');
    assert.ok(!existsSync(join(dst, 'backup-1.tar.tmp')), 'the temp name is never sent');

    stop.abort();
    const summary: WatchSummary = await running;
    assert.equal(summary.stoppedCleanly, true);
    assert.deepEqual(listTree(dst), ['backup-1.tar', 'before.txt', 'growing.log']);

    // Exactly one upload of the growing file: it was never sent half-written.
    const ledger = await openLedger({ stateDir: state });
    const dest = await destinationByUrl(ledger, `file://${dst}`);
    assert.ok(dest);
    const completions = (await ledger.history(dest.id, 'growing.log')).filter((h) => h.toStatus === 'upload_completed');
    assert.equal(completions.length, 1);
    await ledger.close();
  });

  it('rides out a destination outage with retry rounds while the other destination carries on', async () => {
    const { src, dst, state } = dirs();
    await server.createBucket('watched');
    const proxy = await startProxy({ target: server.endpoint });
    const client = testS3Client(server.endpoint);
    const stop = stopper();
    const rounds: WatchRound[] = [];
    const s3 = { url: 's3://watched/w', backendOptions: { s3Endpoint: proxy.endpoint } };
    const running = watch({
      source: src,
      destinations: [`file://${dst}`, s3],
      stateDir: state,
      quietMs: 100,
      batchMs: 50,
      retryBaseMs: 200,
      retryMaxMs: 400,
      stopSignal: stop.signal,
      onRound: (r) => rounds.push(r),
      ...fast,
    });
    await until('the first round', () => rounds.length >= 1);
    // The S3 destination goes down.
    proxy.setFaults([{ rate: 1, faults: [FAULT_503] }]);
    writeFileSync(join(src, 'dump.sql.gz'), 'nightly dump');
    await until('the local copy', () => existsSync(join(dst, 'dump.sql.gz')));
    await until('a round with the s3 failure', () => rounds.some((r) => r.report.destinations?.find((d) => d.destination === 's3://watched/w/')?.uploads.failed === 1));
    const failedAt = rounds.length;
    // Back up: a retry round (no new event needed) finishes it.
    proxy.setFaults([]);
    await until('a retry round that completes s3', () => rounds.slice(failedAt).some((r) => r.reason === 'retry' && r.report.status === 'completed'));
    const head = await client.send(new HeadObjectCommand({ Bucket: 'watched', Key: 'w/dump.sql.gz' }));
    assert.equal(head.ContentLength, 'nightly dump'.length);
    const localRounds = rounds.map((r) => r.report.destinations?.find((d) => d.destination === `file://${dst}`)?.uploads.completed ?? 0);
    assert.equal(
      localRounds.reduce((a, b) => a + b, 0),
      1,
      'the local destination got the file once, and no retry round re-sent it',
    );
    stop.abort();
    assert.equal((await running).stoppedCleanly, true);
    await proxy.stop();
  });

  it('when no destination can be reached, the round is reported and retried until one can', async () => {
    const { src, state } = dirs();
    await server.createBucket('alldown');
    const proxy = await startProxy({ target: server.endpoint, faults: [{ rate: 1, faults: [FAULT_503] }] });
    writeFileSync(join(src, 'a.txt'), 'a');
    const stop = stopper();
    const roundErrors: { code: string; retryInMs: number }[] = [];
    const rounds: WatchRound[] = [];
    const running = watch({
      source: src,
      destination: 's3://alldown/x',
      backendOptions: { s3Endpoint: proxy.endpoint },
      stateDir: state,
      quietMs: 0,
      retryBaseMs: 100,
      retryMaxMs: 200,
      stopSignal: stop.signal,
      onRound: (r) => rounds.push(r),
      onRoundError: (e, retryInMs) => roundErrors.push({ code: e.code, retryInMs }),
      ...fast,
    });
    await until('two failed rounds', () => roundErrors.length >= 2);
    assert.ok(roundErrors.every((e) => e.code === 'HOLDFAST_E_DEST_UNREACHABLE'));
    assert.deepEqual(
      roundErrors.slice(0, 2).map((e) => e.retryInMs),
      [100, 200],
      'the wait doubles, up to retryMaxMs',
    );
    proxy.setFaults([]);
    await until('a completed round', () => rounds.some((r) => r.report.status === 'completed' && r.report.uploads.completed === 1));
    stop.abort();
    assert.equal((await running).stoppedCleanly, true);
    await proxy.stop();
  });

  it('batches a burst: 200 files written at once are sent in one round, not 200', async () => {
    const { src, dst, state } = dirs();
    const stop = stopper();
    const rounds: WatchRound[] = [];
    const batchMs = 200;
    const quietMs = 200;
    // The clock moves only when this test moves it: no round can start while the burst is being written.
    const clock = new ManualClock();
    const running = watch({ source: src, destination: `file://${dst}`, stateDir: state, quietMs, batchMs, clock, stopSignal: stop.signal, onRound: (r) => rounds.push(r), ...fast });
    await until('the first round', () => rounds.length >= 1);
    mkdirSync(join(src, 'burst'));
    for (let i = 0; i < 200; i++) writeFileSync(join(src, 'burst', `f${i}.txt`), `file ${i}`);
    assert.equal(rounds.length, 1, 'no round during the burst');
    // Every file quiet on the clock; then a batch window at a time until the events' round has run.
    clock.set(Date.now() + quietMs);
    // Counted by name: the destination's own temp files come and go meanwhile.
    const sent = (): number => (existsSync(join(dst, 'burst')) ? readdirSync(join(dst, 'burst')).filter((n) => /^f\d+\.txt$/.test(n)).length : 0);
    const reported = (): number => rounds.slice(1).reduce((n, r) => n + r.report.uploads.completed, 0);
    await until('all 200 on the destination, and reported', () => {
      clock.advance(batchMs);
      return sent() === 200 && reported() >= 200;
    });
    const after = rounds.slice(1);
    assert.equal(
      after.reduce((n, r) => n + r.report.uploads.completed, 0),
      200,
      'each file sent once',
    );
    assert.deepEqual(
      after.filter((r) => r.report.uploads.completed > 0).map((r) => [r.reason, r.report.uploads.completed]),
      [['change', 200]],
      'one round sent the whole burst',
    );
    stop.abort();
    await running;
  });

  it('a missing source is refused at once; usage errors are not retried', async () => {
    const { dst, state } = dirs();
    await assert.rejects(watch({ source: join(tmp.path, 'nope'), destination: `file://${dst}`, stateDir: state }), /does not exist/);
    await assert.rejects(watch({ source: tmp.path, destination: `file://${dst}`, stateDir: state, quietMs: -1 }), /quietMs/);
  });
});
