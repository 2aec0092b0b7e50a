// Aborting a stale staged-block upload on azure:// (what `cleanup` does with
// uploads the ledger does not know) must never destroy anything but that
// upload's own blocks. Azure cannot delete chosen uncommitted blocks, only the
// whole blob, so abort deletes the blob only when nothing else lives there,
// against Azurite:
// - a blob committed between abort's checks and its delete survives (the
//   delete is conditional on what was listed);
// - the staged blocks of another, live upload of the same key survive cleanup,
//   and that upload then resumes with only its missing blocks.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import type { Backend } from '../../src/backends/backend.js';
import { parseBlockId, parseUploadId } from '../../src/backends/azure.js';
import { bufferBody } from '../../src/backends/body.js';
import { openBackend } from '../../src/backends/registry.js';
import { openLedger } from '../../src/ledger/open.js';
import { cleanup } from '../../src/sync/cleanup.js';
import { push } from '../../src/sync/push.js';
import { startAzurite, type AzuriteServer } from '../helpers/azurite.js';
import { caught, readAll } from '../helpers/checks.js';
import { gate, seededRandom, startProxy, type S3Proxy } from '../helpers/proxy.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';
import { destinationByUrl } from '../helpers/destinations.js';

const CONTAINER = 'stale';
const KiB = 1024;
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function seededBytes(n: number, seed: number): Buffer {
  const rnd = seededRandom(seed);
  const buf = Buffer.alloc(n);
  for (let i = 0; i < n; i++) buf[i] = Math.floor(rnd() * 256);
  return buf;
}

/** Upload tokens with blocks staged (uncommitted) on a blob. */
async function stagedTokens(container: ContainerClient, name: string): Promise<string[]> {
  const list = await container.getBlockBlobClient(name).getBlockList('uncommitted').catch(() => undefined);
  const tokens = new Set<string>();
  for (const b of list?.uncommittedBlocks ?? []) {
    const parsed = parseBlockId(b.name);
    if (parsed !== undefined) tokens.add(parsed.upload.token);
  }
  return [...tokens].sort();
}

describe('azure:// abort of a stale upload destroys nothing else', () => {
  let azurite: AzuriteServer;
  let proxy: S3Proxy;
  let tmp: TempDir;
  let container: ContainerClient;
  const opened: Backend[] = [];
  const open = async (path: string, viaProxy: boolean): Promise<Backend> => {
    const b = await openBackend(`azure://${CONTAINER}/${path}`, { azureConnectionString: viaProxy ? azurite.connectionStringFor(proxy.endpoint) : azurite.connectionString });
    opened.push(b);
    return b;
  };

  before(async () => {
    azurite = await startAzurite();
    proxy = await startProxy({ target: new URL(azurite.endpoint).origin });
    tmp = await makeTempDir('holdfast-azure-abort-');
    container = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient(CONTAINER);
    await container.createIfNotExists();
  });
  after(async () => {
    for (const b of opened) await b.close();
    await proxy?.stop();
    await azurite?.stop();
    await tmp?.cleanup();
  });

  it('a blob committed between the checks and the delete is kept: HOLDFAST_E_DELETE_REFUSED', async () => {
    const viaProxy = await open('race', true);
    const direct = await open('race', false);
    const stale = Buffer.from('an upload nobody finished');
    const uploadId = await viaProxy.multipart!.create('k', { sha256: sha256(stale), size: stale.length });
    await viaProxy.multipart!.uploadPart('k', uploadId, 1, stale);
    let listedMs = 0;
    for await (const b of container.listBlobsFlat({ prefix: 'race/k', includeUncommitedBlobs: true })) listedMs = b.properties.lastModified?.getTime() ?? 0;
    assert.ok(listedMs > 0);

    // Another writer commits the key while abort's DELETE is on its way. (Last-Modified has
    // one-second resolution; a stale upload is far older than that, so the commit is made
    // in a later second than the upload was listed in, as it always is outside a test.)
    const committed = Buffer.from('committed by another writer in between');
    proxy.setFaults([
      {
        match: (r) => r.method === 'DELETE' && r.key.endsWith(`${CONTAINER}/race/k`),
        rate: 1,
        limit: 1,
        faults: [
          gate(async () => {
            await until('a second after the upload was listed', () => Date.now() >= listedMs + 1000);
            await direct.put('k', bufferBody(committed), { size: committed.length, sha256: sha256(committed) });
          }),
        ],
      },
    ]);
    proxy.reset();
    const err = await caught(viaProxy.multipart!.abort('k', uploadId));
    proxy.setFaults([]);
    assert.equal(err.code, 'HOLDFAST_E_DELETE_REFUSED', err.message);
    assert.match(err.message, /written to since it was listed/);
    assert.equal(proxy.records.filter((r) => r.method === 'DELETE').map((r) => r.status).join(), '412', 'the conditional delete reached the server and was refused');
    const info = await direct.head('k');
    assert.equal(info?.sha256, sha256(committed), 'the committed blob is still there');
    assert.ok(Buffer.compare(await readAll(await direct.get('k')), committed) === 0);
  });

  it('cleanup leaves a stale upload whose blob holds a live upload’s blocks; the live upload then resumes', async () => {
    const src = join(tmp.path, 'src');
    const stateDir = join(tmp.path, 'state');
    mkdirSync(src, { recursive: true });
    const PART = 64 * KiB;
    const data = seededBytes(10 * PART + 123, 5);
    writeFileSync(join(src, 'big.bin'), data);
    const options = {
      source: src,
      destination: `azure://${CONTAINER}/live`,
      stateDir,
      backendOptions: { azureConnectionString: azurite.connectionStringFor(proxy.endpoint) },
      partSize: PART,
      multipartThreshold: PART,
      transfers: 1,
      retry: { attempts: 2, baseMs: 1, maxMs: 2 },
    };

    // A push interrupted after 3 confirmed blocks: its upload is live (the ledger references it).
    const ac = new AbortController();
    let okBlocks = 0;
    const off = proxy.on('end', (r) => {
      const q = new URL(r.url, 'http://proxy.invalid').searchParams;
      if (r.method === 'PUT' && q.get('comp') === 'block' && (parseBlockId(q.get('blockid') ?? '')?.partNumber ?? 0) > 0 && r.result === 'ok' && ++okBlocks === 3) ac.abort();
    });
    await push({ ...options, signal: ac.signal }).catch(() => undefined);
    off();
    const ledger = await openLedger({ stateDir });
    let live: string;
    try {
      const dest = await destinationByUrl(ledger, `azure://${CONTAINER}/live/`);
      const row = await ledger.getObject(dest!.id, 'big.bin');
      assert.ok(row?.uploadId, `the interrupted row keeps its upload id (${row?.status})`);
      live = row.uploadId;
    } finally {
      await ledger.close();
    }

    // Another host's upload of the same key, abandoned: unknown to this ledger, so stale.
    const other = await open('live', false);
    const strangerData = Buffer.from('another ledger, same key');
    const stranger = await other.multipart!.create('big.bin', { sha256: sha256(strangerData), size: strangerData.length });
    await other.multipart!.uploadPart('big.bin', stranger, 1, strangerData);
    const liveToken = parseUploadId(live)!.token;
    assert.deepEqual(await stagedTokens(container, 'live/big.bin'), [liveToken, parseUploadId(stranger)!.token].sort());

    const report = await cleanup({ destination: options.destination, stateDir, apply: true, olderThanMs: 0, backendOptions: options.backendOptions, retry: options.retry });
    assert.equal(report.done.aborted, 0, JSON.stringify(report));
    const left = report.items.filter((i) => i.action === 'leave' && i.key === 'big.bin');
    assert.equal(left.length, 1, JSON.stringify(report.items));
    assert.match(left[0]!.reason, new RegExp(`holds the staged blocks of upload ${live.replaceAll('.', '\\.')}`));
    assert.deepEqual(report.errors, []);
    assert.ok((await stagedTokens(container, 'live/big.bin')).includes(liveToken), 'the live upload’s blocks are still staged');

    // The live upload continues where it stopped.
    proxy.reset();
    const resumed = await push(options);
    assert.equal(resumed.status, 'completed', JSON.stringify(resumed.errors));
    assert.ok(resumed.notes?.some((n) => /resumed an interrupted upload/.test(n.note)), JSON.stringify(resumed.notes));
    const markers = proxy.records.filter((r) => r.method === 'PUT' && parseBlockId(new URL(r.url, 'http://proxy.invalid').searchParams.get('blockid') ?? '')?.partNumber === 0);
    assert.equal(markers.length, 0, 'no new upload was created');
    const blob = container.getBlockBlobClient('live/big.bin');
    assert.ok(Buffer.compare(await blob.downloadToBuffer(), readFileSync(join(src, 'big.bin'))) === 0);
  });
});
