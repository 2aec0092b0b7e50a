// Fan-out (DESIGN §6 "Many destinations"): one source to several destinations
// in one run, each (destination, key) row independent. Real directories, a
// real S3 server (s3rver) behind the counting proxy, the real SQLite ledger.
// The proxy is stopped mid-run to play a destination going down: the other
// destination must complete, the first must report failed items only for
// itself, its health must say so, and the next run must finish it without
// re-sending what had arrived.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { push } from '../../src/sync/push.js';
import { sync } from '../../src/sync/sync.js';
import { openLedger } from '../../src/ledger/open.js';

import type { DestinationReport } from '../../src/core/report.js';
import { RunEvents } from '../../src/engine/events.js';
import { startS3Server, s3TestEnv, type S3TestServer } from '../helpers/s3-server.js';
import { stall, startProxy, type S3Proxy } from '../helpers/proxy.js';
import { listTree, makeTempDir, type TempDir } from '../helpers/tmp.js';
import { destinationByUrl } from '../helpers/destinations.js';

for (const [k, v] of Object.entries(s3TestEnv('unused'))) if (k !== 'AWS_ENDPOINT_URL') process.env[k] = v;

const fast = { retry: { attempts: 3, baseMs: 5, maxMs: 20 } };

function section(sections: readonly DestinationReport[] | undefined, url: string): DestinationReport {
  const s = sections?.find((d) => d.destination === url);
  assert.ok(s, `a section for ${url} in ${JSON.stringify(sections?.map((d) => d.destination))}`);
  return s;
}

describe('fan-out to several destinations', () => {
  let tmp: TempDir;
  let server: S3TestServer;
  let n = 0;
  before(async () => {
    tmp = await makeTempDir('holdfast-fanout-');
    server = await startS3Server();
  });
  after(async () => {
    await server.stop();
    await tmp.cleanup();
  });

  function fixture(files: Record<string, Buffer | string>): { src: string; base: string } {
    const base = join(tmp.path, `case${n++}`);
    const src = join(base, 'src');
    for (const [name, body] of Object.entries(files)) {
      mkdirSync(join(src, name, '..'), { recursive: true });
      writeFileSync(join(src, name), body);
    }
    return { src, base };
  }

  it('sends every file to each destination, tracks each on its own, and reports one section per destination', async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 12; i++) files[`d${i % 3}/f${i}.txt`] = `content ${i}`;
    const { src, base } = fixture(files);
    const a = `file://${join(base, 'a')}`;
    const b = `file://${join(base, 'b')}`;
    const ledger = await openLedger({ stateDir: join(base, 'state') });
    const events = new RunEvents();
    const tagged = new Set<string>();
    events.on('file:done', (e) => tagged.add(`${e.destination ?? '?'} ${e.key}`));
    const first = await push({ source: src, destinations: [a, { url: b, name: 'second' }], ledger, events, ...fast });
    assert.equal(first.status, 'completed');
    assert.equal(first.uploads.completed, 24, 'the top-level counts are the sums');
    assert.equal(first.destinations?.length, 2);
    assert.equal(section(first.destinations, a).uploads.completed, 12);
    assert.equal(section(first.destinations, b).uploads.completed, 12);
    assert.equal(section(first.destinations, b).name, 'second');
    assert.equal(tagged.size, 24, 'every file event names its destination');
    assert.deepEqual(listTree(join(base, 'a')), listTree(src));
    assert.deepEqual(listTree(join(base, 'b')), listTree(src));
    // Two destinations, two independent rows per key, two runs.
    const [da, db] = [await destinationByUrl(ledger, a), await destinationByUrl(ledger, b)];
    assert.ok(da && db && da.id !== db.id);
    assert.equal((await ledger.listByStatus(da.id, ['upload_completed'], 100)).length, 12);
    assert.equal((await ledger.listByStatus(db.id, ['upload_completed'], 100)).length, 12);
    assert.notEqual(section(first.destinations, a).runId, section(first.destinations, b).runId);

    // A file changed since: sent to both; one destination's row does not move the other's.
    writeFileSync(join(src, 'd0/f0.txt'), 'changed');
    const second = await push({ source: src, destinations: [a, b], ledger, ...fast });
    assert.equal(section(second.destinations, a).uploads.completed, 1);
    assert.equal(section(second.destinations, b).uploads.completed, 1);
    assert.equal(second.uploads.skipped, 22);
    assert.equal(readFileSync(join(base, 'b', 'd0/f0.txt'), 'utf8'), 'changed');
    await ledger.close();
  });

  it('rules choose the destinations of each file; a file sent elsewhere is neither uploaded nor deleted here', async () => {
    const { src, base } = fixture({ 'db/nightly.sql.gz': 'dump', 'files/a.txt': 'a', 'files/b.txt': 'b', 'big.bin': randomBytes(4096) });
    const all = `file://${join(base, 'all')}`;
    const dbOnly = `file://${join(base, 'db')}`;
    const ledger = await openLedger({ stateDir: join(base, 'state') });
    const dests = [
      { url: all, select: (f: { key: string; size: number }) => f.size < 1024 },
      { url: dbOnly, select: (f: { key: string }) => f.key.endsWith('.sql.gz') },
    ];
    const first = await sync({ source: src, destinations: dests, ledger, ...fast });
    assert.deepEqual(first.errors, []);
    assert.equal(first.status, 'completed');
    assert.deepEqual(listTree(join(base, 'all')), ['db/nightly.sql.gz', 'files/a.txt', 'files/b.txt']);
    assert.deepEqual(listTree(join(base, 'db')), ['db/nightly.sql.gz']);

    // The rule for "all" now leaves out files/: sync keeps the copies there (like an exclude), deletes nothing.
    const narrower = [{ url: all, select: (f: { key: string }) => !f.key.startsWith('files/') }, dests[1]!];
    const second = await sync({ source: src, destinations: narrower, ledger, ...fast });
    assert.equal(second.status, 'completed');
    assert.equal(second.deletes?.completed, 0);
    assert.deepEqual(listTree(join(base, 'all')), ['big.bin', 'db/nightly.sql.gz', 'files/a.txt', 'files/b.txt']);
    await ledger.close();
  });

  it('a destination stopped mid-run fails only its own files; the other completes; the next run finishes it without re-sending', async () => {
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 60; i++) files[`f${String(i).padStart(2, '0')}.bin`] = randomBytes(32 * 1024);
    const { src, base } = fixture(files);
    await server.createBucket('fanout');
    const local = `file://${join(base, 'local')}`;
    const s3 = 's3://fanout/backups/';
    const ledger = await openLedger({ stateDir: join(base, 'state') });

    let proxy: S3Proxy = await startProxy({ target: server.endpoint });
    let stopping: Promise<void> | undefined;
    proxy.on('end', () => {
      if (stopping === undefined && proxy.op('PutObject').ok >= 10) stopping = proxy.stop();
    });
    const destinations = (endpoint: string) => [local, { url: s3, name: 'offsite', backendOptions: { s3Endpoint: endpoint } }];
    const first = await push({ source: src, destinations: destinations(proxy.endpoint), ledger, transfers: 4, ...fast });
    await stopping;
    const arrived = proxy.op('PutObject').ok;
    assert.equal(first.status, 'partial', 'one destination done, one not: partial');
    const l1 = section(first.destinations, local);
    const s1 = section(first.destinations, s3);
    assert.equal(l1.status, 'completed');
    assert.equal(l1.uploads.completed, 60, 'the local destination got everything');
    assert.equal(l1.errors.length, 0);
    assert.ok(s1.uploads.completed >= 10 && s1.uploads.completed < 60, `some reached s3 before it stopped (${s1.uploads.completed})`);
    assert.equal(s1.uploads.completed + s1.uploads.failed, 60, 'every s3 file is accounted for');
    assert.equal(s1.errors.length, s1.uploads.failed);
    assert.ok(first.errors.every((e) => e.destination === s3), 'errors name their destination, and only s3 has any');
    assert.ok(s1.errors.some((e) => e.code === 'HOLDFAST_E_DEST_UNREACHABLE'), 'after a few failures the rest fail at once, saying why');
    assert.deepEqual(listTree(join(base, 'local')), listTree(src));

    const ds = await destinationByUrl(ledger, s3);
    assert.ok(ds);
    assert.equal((await ledger.listByStatus(ds.id, ['upload_failed'], 100)).length, s1.uploads.failed, 'failed items are queued in the ledger');
    const health = (await ledger.listDestinations()).find((d) => d.id === ds.id);
    assert.equal(health?.consecutiveFailures, 1);
    assert.match(health?.lastError ?? '', /HOLDFAST_E_/);
    assert.ok(health?.lastUploadAt, 'some uploads did work: last_upload_at is set');

    // The destination is back (the same endpoint, the same bucket): the next run finishes it.
    proxy = await startProxy({ target: server.endpoint, port: Number(new URL(proxy.endpoint).port) });
    const second = await push({ source: src, destinations: destinations(proxy.endpoint), ledger, transfers: 4, ...fast });
    assert.equal(second.status, 'completed');
    assert.equal(section(second.destinations, local).uploads.completed, 0);
    assert.equal(section(second.destinations, local).uploads.skipped, 60);
    const s2 = section(second.destinations, s3);
    assert.equal(s2.uploads.completed + s2.uploads.recovered, s1.uploads.failed);
    assert.ok(proxy.op('PutObject').requests <= s1.uploads.failed, `only the failed files were sent again (${proxy.op('PutObject').requests} PUTs for ${s1.uploads.failed} failed)`);
    assert.ok(arrived + proxy.op('PutObject').ok >= 60);
    const healed = (await ledger.listDestinations()).find((d) => d.id === ds.id);
    assert.equal(healed?.consecutiveFailures, 0);
    assert.equal(healed?.lastError, null);
    await proxy.stop();
    await ledger.close();
  });

  it('a destination down from the start: its files are queued as failed, the others complete; all down: the run cannot start', async () => {
    const { src, base } = fixture({ 'a.txt': 'a', 'b.txt': 'b' });
    const local = `file://${join(base, 'local')}`;
    const dead = await startProxy({ target: server.endpoint });
    const deadEndpoint = dead.endpoint;
    await dead.stop();
    const ledger = await openLedger({ stateDir: join(base, 'state') });
    const down = { url: 's3://nowhere/x/', backendOptions: { s3Endpoint: deadEndpoint } };
    const report = await push({ source: src, destinations: [local, down], ledger, ...fast });
    assert.equal(report.status, 'partial');
    const s = section(report.destinations, 's3://nowhere/x/');
    assert.equal(s.status, 'failed');
    assert.equal(s.uploads.failed, 2);
    assert.ok(s.errors.every((e) => e.code === 'HOLDFAST_E_DEST_UNREACHABLE'));
    assert.equal(section(report.destinations, local).uploads.completed, 2);
    const d = await destinationByUrl(ledger, 's3://nowhere/x/');
    assert.ok(d);
    assert.equal((await ledger.listByStatus(d.id, ['upload_failed'], 10)).length, 2);
    assert.equal((await ledger.listDestinations()).find((x) => x.id === d.id)?.consecutiveFailures, 1);

    await assert.rejects(
      push({ source: src, destinations: [down, { url: 's3://nowhere2/y', backendOptions: { s3Endpoint: deadEndpoint } }], ledger, ...fast }),
      (e: unknown) => (e as { code?: string }).code === 'HOLDFAST_E_DEST_UNREACHABLE',
    );
    await ledger.close();
  });

  it('destinations upload in parallel, and --transfers bounds the requests of the whole run', async () => {
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 24; i++) files[`f${i}.bin`] = randomBytes(8 * 1024);
    const { src, base } = fixture(files);
    await server.createBucket('par');
    // Every PUT is held a little, so requests overlap and the limit is what bounds them.
    const proxies = [await startProxy({ target: server.endpoint, faults: [{ ops: ['PutObject'], rate: 1, faults: [stall(40)] }] }), await startProxy({ target: server.endpoint, faults: [{ ops: ['PutObject'], rate: 1, faults: [stall(40)] }] })];
    let inFlight = 0;
    let peak = 0;
    let overlapped = false;
    const perProxyPeak = [0, 0];
    proxies.forEach((p, i) => {
      p.on('start', (r) => {
        if (r.op !== 'PutObject') return;
        inFlight++;
        peak = Math.max(peak, inFlight);
        perProxyPeak[i] = Math.max(perProxyPeak[i]!, p.inFlight().filter((x) => x.op === 'PutObject').length);
        if (proxies[1 - i]!.inFlight().some((x) => x.op === 'PutObject')) overlapped = true;
      });
      p.on('end', (r) => {
        if (r.op === 'PutObject') inFlight--;
      });
    });
    const ledger = await openLedger({ stateDir: join(base, 'state') });
    const report = await push({
      source: src,
      destinations: proxies.map((p, i) => ({ url: `s3://par/d${i}`, backendOptions: { s3Endpoint: p.endpoint } })),
      ledger,
      transfers: 4,
      ...fast,
    });
    assert.equal(report.status, 'completed');
    assert.equal(report.uploads.completed, 48);
    assert.ok(peak <= 4, `at most 4 requests in flight across both destinations (saw ${peak})`);
    assert.ok(overlapped, `both destinations had requests in flight at the same moment (peaks ${perProxyPeak.join('/')}, total ${peak})`);
    for (const p of proxies) await p.stop();
    await ledger.close();
  });

  it('refuses the same destination twice, and --backup-dir with several destinations', async () => {
    const { src, base } = fixture({ 'a.txt': 'a' });
    const url = `file://${join(base, 'x')}`;
    await assert.rejects(push({ source: src, destinations: [url, url], stateDir: join(base, 'state') }), /given twice/);
    await assert.rejects(sync({ source: src, destinations: [url, `file://${join(base, 'y')}`], backupDir: `file://${join(base, 'z')}`, stateDir: join(base, 'state') }), /one destination/);
  });
});


