// The protocol of DESIGN §3 through the library API, with a real SQLite ledger
// wrapped to fail on purpose and real destinations:
// - outcome write fails after a successful upload → "partial" by key, and the
//   next run resolves it by asking the destination: recovered, zero bytes sent;
// - intent (claim) or plan write fails → nothing is sent, a clean failure;
// - a file that changes or vanishes mid-run is never recorded with a hash that
//   does not match what was sent.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { push } from '../../src/sync/push.js';
import { openLedger } from '../../src/ledger/open.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import { RunEvents } from '../../src/engine/events.js';
import { faultyLedger } from '../helpers/faulty-ledger.js';
import { makeTempDir } from '../helpers/tmp.js';
import { destinationByUrl } from '../helpers/destinations.js';

const fast = { retry: { attempts: 2, baseMs: 1, maxMs: 2 } };

describe('push protocol under ledger faults', () => {
  let tmp: { path: string; cleanup(): Promise<void> };
  let n = 0;
  before(async () => (tmp = await makeTempDir('holdfast-protocol-')));
  after(async () => tmp.cleanup());

  async function fixture(count: number): Promise<{ src: string; dst: string; ledger: Ledger }> {
    const base = join(tmp.path, `case${n++}`);
    const src = join(base, 'src');
    mkdirSync(src, { recursive: true });
    for (let i = 0; i < count; i++) writeFileSync(join(src, `f${i}.txt`), `file ${i}`);
    const ledger = await openLedger({ stateDir: join(base, 'state') });
    return { src, dst: join(base, 'dst'), ledger };
  }

  it('outcome write fails after upload: partial by key, then recovered with zero bytes', async () => {
    const { src, dst, ledger } = await fixture(5);
    const faulty = faultyLedger(ledger, [{ method: 'recordOutcomes' }]);
    const first = await push({ source: src, destination: `file://${dst}`, ledger: faulty, ...fast });
    assert.equal(first.status, 'partial');
    assert.equal(first.uploads.partial, 5);
    assert.equal(first.uploads.completed, 0);
    assert.deepEqual(first.errors.map((e) => e.code), Array(5).fill('HOLDFAST_E_LEDGER_OUTCOME'));
    assert.deepEqual(first.errors.map((e) => e.key).sort(), ['f0.txt', 'f1.txt', 'f2.txt', 'f3.txt', 'f4.txt']);
    assert.equal(readdirSync(dst).length, 5, 'the files did reach the destination');

    const second = await push({ source: src, destination: `file://${dst}`, ledger, ...fast });
    assert.equal(second.status, 'completed');
    assert.equal(second.uploads.recovered, 5);
    assert.equal(second.uploads.completed, 0);
    assert.equal(second.uploads.skipped, 0, 'recovered files are not also counted as skipped');
    assert.equal(second.bytes, 0, 'nothing was sent again');

    const third = await push({ source: src, destination: `file://${dst}`, ledger, ...fast });
    assert.deepEqual(third.uploads, { completed: 0, failed: 0, partial: 0, skipped: 5, recovered: 0, fenced: 0 });
    await ledger.close();
  });

  it('intent write fails: nothing is sent, every file is a clean failure', async () => {
    const { src, dst, ledger } = await fixture(4);
    const faulty = faultyLedger(ledger, [{ method: 'claim' }]);
    const r = await push({ source: src, destination: `file://${dst}`, ledger: faulty, ...fast });
    assert.equal(r.status, 'failed');
    assert.equal(r.uploads.failed, 4);
    assert.equal(r.uploads.completed, 0);
    assert.ok(r.errors.some((e) => e.code === 'HOLDFAST_E_LEDGER_WRITE'));
    assert.ok(!existsSync(dst) || readdirSync(dst).length === 0, 'no file may be sent without its intent');

    const again = await push({ source: src, destination: `file://${dst}`, ledger, ...fast });
    assert.equal(again.status, 'completed');
    assert.equal(again.uploads.completed, 4);
    await ledger.close();
  });

  it('plan write fails: nothing is sent, a clean failure', async () => {
    const { src, dst, ledger } = await fixture(3);
    const faulty = faultyLedger(ledger, [{ method: 'planUploads' }]);
    const r = await push({ source: src, destination: `file://${dst}`, ledger: faulty, ...fast });
    assert.equal(r.uploads.failed, 3);
    assert.ok(!existsSync(dst) || readdirSync(dst).length === 0);
    await ledger.close();
  });

  it('a small file that changes before it is sent fails with SOURCE_CHANGED and is sent on the next run', async () => {
    const { src, dst, ledger } = await fixture(3);
    const events = new RunEvents();
    events.on('file:start', (e) => {
      if (e.key === 'f1.txt') writeFileSync(join(src, 'f1.txt'), 'changed!');
    });
    const r = await push({ source: src, destination: `file://${dst}`, ledger, events, ...fast });
    assert.equal(r.status, 'partial');
    assert.equal(r.uploads.completed, 2);
    assert.equal(r.errors[0]?.code, 'HOLDFAST_E_SOURCE_CHANGED');
    assert.ok(!existsSync(join(dst, 'f1.txt')), 'nothing mismatching was stored');
    const row = await ledger.getObject((await destinationByUrl(ledger, `file://${dst}`))!.id, 'f1.txt');
    assert.equal(row?.status, 'upload_failed');

    const again = await push({ source: src, destination: `file://${dst}`, ledger, ...fast });
    assert.equal(again.uploads.completed, 1);
    assert.equal(readFileSync(join(dst, 'f1.txt'), 'utf8'), 'changed!');
    await ledger.close();
  });

  it('a large file rewritten while streaming is never stored with the old hash', async () => {
    const { src, dst, ledger } = await fixture(0);
    const big = Buffer.alloc(12 * 1024 * 1024, 1);
    writeFileSync(join(src, 'big.bin'), big);
    const events = new RunEvents();
    events.on('file:start', () => writeFileSync(join(src, 'big.bin'), Buffer.alloc(big.length, 2)));
    const r = await push({ source: src, destination: `file://${dst}`, ledger, events, multipartThreshold: 64 * 1024 * 1024, ...fast });
    assert.equal(r.uploads.failed, 1);
    assert.equal(r.errors[0]?.code, 'HOLDFAST_E_SOURCE_CHANGED');
    assert.ok(!existsSync(join(dst, 'big.bin')), 'the mismatching body was not kept');
    assert.deepEqual(readdirSync(dst).filter((f) => f.endsWith('.tmp')), [], 'no temp file left behind');
    await ledger.close();
  });

  it('a file that vanishes before it is sent fails alone; the next run forgets it', async () => {
    const { src, dst, ledger } = await fixture(3);
    const events = new RunEvents();
    events.on('file:start', (e) => {
      if (e.key === 'f2.txt') rmSync(join(src, 'f2.txt'));
    });
    const r = await push({ source: src, destination: `file://${dst}`, ledger, events, ...fast });
    assert.equal(r.uploads.completed, 2);
    assert.equal(r.uploads.failed, 1);
    assert.equal(r.errors[0]?.code, 'HOLDFAST_E_SOURCE_VANISHED');
    const again = await push({ source: src, destination: `file://${dst}`, ledger, ...fast });
    assert.equal(again.status, 'completed');
    assert.deepEqual(again.uploads, { completed: 0, failed: 0, partial: 0, skipped: 2, recovered: 0, fenced: 0 });
    const dest = await destinationByUrl(ledger, `file://${dst}`);
    assert.equal(await ledger.getObject(dest!.id, 'f2.txt'), undefined);
    await ledger.close();
  });

  it('progress events add up to the plan', async () => {
    const { src, dst, ledger } = await fixture(10);
    const events = new RunEvents();
    let planned = { files: -1, bytes: -1 };
    let done = 0;
    let doneBytes = 0;
    events.on('plan:ready', (e) => (planned = { files: e.files, bytes: e.bytes }));
    events.on('file:done', (e) => {
      done++;
      doneBytes += e.bytes;
    });
    const r = await push({ source: src, destination: `file://${dst}`, ledger, events });
    assert.equal(planned.files, 10);
    assert.equal(done, 10);
    assert.equal(doneBytes, planned.bytes);
    assert.equal(r.bytes, planned.bytes);
    await ledger.close();
  });
});
