// The ledger may live inside the directory being copied (`--state ./src/.state`,
// or the default ~/.local/state/holdfast when the source is the home
// directory). Its files change while they are read and are not the user's
// data: they are never sent, and `watch` does not take its own ledger writes
// for changes to send.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { push } from '../../src/sync/push.js';
import { ledgerDirKey } from '../../src/sync/run.js';
import { watch, type WatchRound } from '../../src/sync/watch.js';
import { stopAfterEach, until } from '../helpers/wait.js';
import { ManualClock } from '../helpers/clock.js';
import { listTree, makeTempDir, type TempDir } from '../helpers/tmp.js';

describe('a ledger inside the source', () => {
  let tmp: TempDir;
  let n = 0;
  // Every watcher a test starts is stopped after it, even when an assertion failed first.
  const stopper = stopAfterEach();
  before(async () => (tmp = await makeTempDir('holdfast-ledger-inside-')));
  after(async () => tmp.cleanup());

  function source(): { base: string; src: string } {
    const base = join(tmp.path, `case${n++}`);
    const src = join(base, 'src');
    mkdirSync(join(src, 'docs'), { recursive: true });
    writeFileSync(join(src, 'docs', 'a.txt'), 'a');
    writeFileSync(join(src, 'b.txt'), 'b');
    return { base, src };
  }

  it('is never sent: in a subdirectory, or as the source root itself', async () => {
    for (const state of ['.state', 'docs/.holdfast', '']) {
      const { base, src } = source();
      const dst = join(base, 'dst');
      const first = await push({ source: src, destination: `file://${dst}`, stateDir: join(src, state) });
      assert.equal(first.status, 'completed', `${state || '(root)'}: ${JSON.stringify(first.errors)}`);
      assert.deepEqual(listTree(dst), ['b.txt', 'docs/a.txt'], `state in "${state || '(root)'}"`);
      const second = await push({ source: src, destination: `file://${dst}`, stateDir: join(src, state) });
      assert.equal(second.status, 'completed');
      assert.equal(second.uploads.completed, 0, 'the second run sends nothing (the ledger changed, but it is not source)');
    }
  });

  it('ledgerDirKey: the key below the source, "" for the root itself, undefined outside', () => {
    assert.equal(ledgerDirKey('/data/src', '/data/src/.state'), '.state');
    assert.equal(ledgerDirKey('/data/src', '/data/src/a/b'), 'a/b');
    assert.equal(ledgerDirKey('/data/src', '/data/src'), '');
    assert.equal(ledgerDirKey('/data/src', '/data/state'), undefined);
    assert.equal(ledgerDirKey('/data/src', '/data/src-other'), undefined);
  });

  it('watch does not take its own ledger writes for changes', async () => {
    const { base, src } = source();
    const rounds: WatchRound[] = [];
    const stop = stopper();
    const rescanMs = 60_000;
    const batchMs = 50;
    // Time moves only when this test moves it, so which round comes next, and why, is decided here, not by the machine's speed.
    const clock = new ManualClock();
    const running = watch({ source: src, destination: `file://${join(base, 'dst')}`, stateDir: join(src, '.state'), quietMs: 0, batchMs, rescanMs, clock, stopSignal: stop.signal, onRound: (r) => rounds.push(r) });
    await until('the first round', () => rounds.length >= 1);
    // Each round writes the ledger inside the source. Were those writes taken for changes, the
    // next round would start as a 'change' round; with no change it is the periodic rescan.
    for (const n of [2, 3]) {
      clock.advance(rescanMs);
      await until(`round ${n}`, () => rounds.length >= n);
      assert.equal(rounds[n - 1]?.reason, 'rescan', `round ${n} came from the timer, not from the ledger's writes (${rounds.map((r) => r.reason).join(', ')})`);
      assert.equal(rounds[n - 1]?.report.uploads.completed, 0);
    }
    writeFileSync(join(src, 'c.txt'), 'c');
    await until('a round for the new file', () => {
      clock.advance(batchMs);
      return rounds.length >= 4;
    });
    assert.equal(rounds[3]?.reason, 'change');
    assert.equal(rounds[3]?.report.uploads.completed, 1);
    stop.abort();
    await running;
  });
});
