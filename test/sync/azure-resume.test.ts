// The resumable-upload promise (DESIGN §3) on azure://, through the engine:
// `push()` sends a file larger than the multipart threshold to Azurite as
// staged blocks, through the counting proxy; the run is aborted (hard, as a
// second Ctrl-C would) once a few blocks were confirmed. The next push must
// continue the same upload: no new upload (no marker block), exactly the
// blocks the ledger had not recorded, one Put Block List, and a blob whose
// content and holdfast-sha256 are the file's, with the ledger row
// upload_completed.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BlobServiceClient } from '@azure/storage-blob';
import { parseBlockId } from '../../src/backends/azure.js';
import { openLedger } from '../../src/ledger/open.js';
import { push } from '../../src/sync/push.js';
import { startAzurite, type AzuriteServer } from '../helpers/azurite.js';
import { seededRandom, startProxy, type RequestRecord, type S3Proxy } from '../helpers/proxy.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { destinationByUrl } from '../helpers/destinations.js';

const KiB = 1024;
const PART = 256 * KiB;
const SIZE = 13 * PART + 12_345; // 14 blocks, the last one short
const PARTS = Math.ceil(SIZE / PART);
const ABORT_AFTER = 5; // confirmed blocks before the hard abort
const CONTAINER = 'resume';
const fast = { retry: { attempts: 2, baseMs: 1, maxMs: 2 } };

/** The staged block a proxied request carried, by part number (0: the marker create() stages); undefined for other requests. */
function blockPart(r: RequestRecord): number | undefined {
  const q = new URL(r.url, 'http://proxy.invalid').searchParams;
  if (r.method !== 'PUT' || q.get('comp') !== 'block') return undefined;
  return parseBlockId(q.get('blockid') ?? '')?.partNumber;
}

function isCommit(r: RequestRecord): boolean {
  return r.method === 'PUT' && new URL(r.url, 'http://proxy.invalid').searchParams.get('comp') === 'blocklist';
}

function seededBytes(n: number, seed: number): Buffer {
  const rnd = seededRandom(seed);
  const buf = Buffer.alloc(n);
  for (let i = 0; i < n; i += 4) buf.writeUInt32LE(Math.floor(rnd() * 0x1_0000_0000), i <= n - 4 ? i : n - 4);
  return buf;
}

describe('azure:// through the engine: an interrupted staged-block upload resumes with only the missing blocks', () => {
  let azurite: AzuriteServer;
  let proxy: S3Proxy;
  let tmp: TempDir;

  before(async () => {
    azurite = await startAzurite();
    proxy = await startProxy({ target: new URL(azurite.endpoint).origin });
    tmp = await makeTempDir('holdfast-azure-resume-');
  });
  after(async () => {
    await proxy?.stop();
    await azurite?.stop();
    await tmp?.cleanup();
  });

  it(`${(SIZE / KiB).toFixed(0)} KiB in ${PARTS} blocks of ${PART / KiB} KiB, aborted after ${ABORT_AFTER} confirmed blocks`, async () => {
    const src = join(tmp.path, 'src');
    const stateDir = join(tmp.path, 'state');
    mkdirSync(src, { recursive: true });
    const data = seededBytes(SIZE, 7);
    writeFileSync(join(src, 'large.bin'), data);
    writeFileSync(join(src, 'small.txt'), 'a small file, sent whole');
    const sha = createHash('sha256').update(data).digest('hex');
    const options = {
      source: src,
      destination: `azure://${CONTAINER}/backup`,
      stateDir,
      backendOptions: { azureConnectionString: azurite.connectionStringFor(proxy.endpoint) },
      partSize: PART,
      multipartThreshold: 1024 * KiB,
      transfers: 2,
      ...fast,
    };

    // First run: a hard abort the moment the proxy relays the ABORT_AFTER-th 2xx to a block.
    const ac = new AbortController();
    let okBlocks = 0;
    const off = proxy.on('end', (r) => {
      const part = blockPart(r);
      if (part !== undefined && part > 0 && r.result === 'ok' && ++okBlocks === ABORT_AFTER) ac.abort();
    });
    const first = await push({ ...options, signal: ac.signal }).catch((e: unknown) => e);
    off();
    assert.ok(ac.signal.aborted, 'the first run was interrupted');
    assert.ok(!(first instanceof Error) || /cancel/i.test(first.message), `the first run ended by cancellation: ${String(first)}`);
    const firstBlocks = proxy.records.map(blockPart).filter((p): p is number => p !== undefined);
    assert.equal(firstBlocks.filter((p) => p === 0).length, 1, 'one upload was created (one marker block)');
    assert.equal(proxy.records.filter(isCommit).length, 0, 'nothing was committed');

    // What the ledger knows after the interruption: the upload id and the confirmed parts.
    const ledger = await openLedger({ stateDir });
    let recorded: number[];
    let uploadId: string;
    try {
      const dest = await destinationByUrl(ledger, `azure://${CONTAINER}/backup/`);
      assert.ok(dest, 'the destination is in the ledger');
      const row = await ledger.getObject(dest.id, 'large.bin');
      assert.ok(row?.uploadId, `the interrupted row keeps its upload id (status ${row?.status})`);
      assert.notEqual(row.status, 'upload_completed');
      uploadId = row.uploadId;
      recorded = (await ledger.listParts(row.id, uploadId)).map((p) => p.partNumber).sort((a, b) => a - b);
    } finally {
      await ledger.close();
    }
    assert.ok(recorded.length >= ABORT_AFTER - 2 && recorded.length < PARTS, `some but not all parts recorded: ${recorded.join(',')}`);

    // Second run: continues the same upload.
    proxy.reset();
    const second = await push(options);
    assert.equal(second.status, 'completed', JSON.stringify(second.errors));
    const sent = proxy.records.map(blockPart).filter((p): p is number => p !== undefined);
    assert.ok(!sent.includes(0), 'no new upload was created: the interrupted one was continued');
    const missing = Array.from({ length: PARTS }, (_, i) => i + 1).filter((n) => !recorded.includes(n));
    assert.deepEqual([...sent].sort((a, b) => a - b), missing, 'exactly the blocks the ledger had not recorded were sent, each once');
    assert.equal(proxy.records.filter(isCommit).length, 1, 'one Put Block List');
    const partLen = (n: number): number => Math.min(PART, SIZE - (n - 1) * PART);
    const blockBytes = proxy.records.filter((r) => (blockPart(r) ?? 0) > 0).reduce((n, r) => n + r.bodyBytes, 0);
    assert.equal(blockBytes, missing.reduce((n, p) => n + partLen(p), 0));
    console.log(
      `azure resume: first run confirmed ${okBlocks}+ blocks (ledger recorded ${recorded.length}), ` +
        `second run sent ${sent.length} of ${PARTS} blocks (${(blockBytes / KiB).toFixed(0)} of ${(SIZE / KiB).toFixed(0)} KiB)`,
    );

    // The blob, read directly from Azurite (not through the proxy or Holdfast).
    const blob = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient(CONTAINER).getBlockBlobClient('backup/large.bin');
    const props = await blob.getProperties();
    assert.equal(props.contentLength, SIZE);
    assert.equal(props.metadata?.holdfast_sha256, sha);
    assert.ok(Buffer.compare(await blob.downloadToBuffer(), readFileSync(join(src, 'large.bin'))) === 0, 'the content is the file');
    const committed = await blob.getBlockList('all');
    assert.equal(committed.committedBlocks?.length, PARTS);
    assert.equal(committed.uncommittedBlocks?.length ?? 0, 0, 'the marker and nothing else was left uncommitted');

    const after = await openLedger({ stateDir });
    try {
      const dest = await destinationByUrl(after, `azure://${CONTAINER}/backup/`);
      const row = await after.getObject(dest!.id, 'large.bin');
      assert.equal(row?.status, 'upload_completed');
      assert.equal(row?.sha256, sha);
      assert.equal((await after.getObject(dest!.id, 'small.txt'))?.status, 'upload_completed');
    } finally {
      await after.close();
    }
  });
});
