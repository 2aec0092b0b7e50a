// A resumed multipart upload trusts a part from the interrupted attempt only if
// the bytes at its place in the file are the bytes that were sent (issue 9 #6).
// Through the engine (`push()`), against each multipart destination on a real
// server (s3rver, Azurite, the fake Drive):
//
// - the file changes under the first attempt after part 1 was sent, so part 2 is
//   sent from other bytes, the attempt is interrupted, and the file is put back
//   as it was (same size and mtime: the plan sees nothing to re-hash). The next
//   run must not complete the object with that part 2: it sends it again (S3,
//   Azure: parts can be replaced), or starts the upload afresh (Drive: parts
//   are offsets into one stream). The object ends up equal to the file.
// - parts recorded without a SHA-256 (a ledger written by an earlier version)
//   are not trusted either: the upload is started afresh.
// - the ledger records each part's SHA-256 ("sha256:<hex>").

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, statSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import type { BackendOptions } from '../../src/backends/backend.js';
import { openBackend } from '../../src/backends/registry.js';
import { RunEvents } from '../../src/engine/events.js';
import { openLedger } from '../../src/ledger/open.js';
import { push } from '../../src/sync/push.js';
import { startAzurite, type AzuriteServer } from '../helpers/azurite.js';
import { readAll } from '../helpers/checks.js';
import { startFakeDrive, type FakeDrive } from '../helpers/fake-drive.js';
import { seededRandom } from '../helpers/proxy.js';
import { startS3Server, s3TestEnv, type S3TestServer } from '../helpers/s3-server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function seededBytes(n: number, seed: number): Buffer {
  const rnd = seededRandom(seed);
  const buf = Buffer.alloc(n);
  for (let i = 0; i < n; i++) buf[i] = Math.floor(rnd() * 256);
  return buf;
}

interface Target {
  readonly name: string;
  /** A fresh destination URL for one test. */
  readonly destination: (tag: string) => string;
  readonly backendOptions: BackendOptions;
  readonly partSize: number;
  /** Parts are offsets into one stream (Drive): a mismatching part restarts the upload. */
  readonly sequential: boolean;
}

const targets: { name: string; start(): Promise<{ target: Target; stop(): Promise<void> }> }[] = [
  {
    name: 's3:// on s3rver',
    async start() {
      const server: S3TestServer = await startS3Server();
      await server.createBucket('parts');
      const saved = { ...process.env };
      Object.assign(process.env, s3TestEnv(server.endpoint));
      return {
        target: { name: 's3', destination: (tag) => `s3://parts/${tag}`, backendOptions: { s3Endpoint: server.endpoint }, partSize: 5 * MiB, sequential: false },
        async stop() {
          for (const k of Object.keys(s3TestEnv(server.endpoint))) {
            if (saved[k] === undefined) delete process.env[k];
            else process.env[k] = saved[k];
          }
          await server.stop();
        },
      };
    },
  },
  {
    name: 'azure:// on Azurite',
    async start() {
      const azurite: AzuriteServer = await startAzurite();
      return {
        target: { name: 'azure', destination: (tag) => `azure://parts/${tag}`, backendOptions: { azureConnectionString: azurite.connectionString }, partSize: 64 * KiB, sequential: false },
        stop: () => azurite.stop(),
      };
    },
  },
  {
    name: 'gdrive:// on the fake Drive',
    async start() {
      const drive: FakeDrive = await startFakeDrive();
      return {
        target: {
          name: 'gdrive',
          destination: (tag) => `gdrive://${drive.createFolder(tag)}`,
          backendOptions: { gdriveApiRoot: drive.apiRoot, gdriveAccessToken: drive.token },
          partSize: 256 * KiB,
          sequential: true,
        },
        stop: () => drive.stop(),
      };
    },
  },
];

for (const spec of targets) {
  describe(`resumed multipart uploads check their parts: ${spec.name}`, () => {
    let t: Target;
    let stop: () => Promise<void>;
    let tmp: TempDir;
    before(async () => {
      const started = await spec.start();
      t = started.target;
      stop = () => started.stop();
      tmp = await makeTempDir('holdfast-part-checksums-');
    });
    after(async () => {
      await stop?.();
      await tmp?.cleanup();
    });

    /** A source with one 3-part file; push options for it. */
    function setup(tag: string): { file: string; data: Buffer; options: Parameters<typeof push>[0]; destination: string; stateDir: string } {
      const src = join(tmp.path, tag, 'src');
      const stateDir = join(tmp.path, tag, 'state');
      mkdirSync(src, { recursive: true });
      const data = seededBytes(2 * t.partSize + 1234, tag.length);
      const file = join(src, 'big.bin');
      writeFileSync(file, data);
      const destination = t.destination(tag);
      const options = {
        source: src,
        destination,
        stateDir,
        backendOptions: t.backendOptions,
        partSize: t.partSize,
        multipartThreshold: t.partSize,
        // One request at a time: part N+1 is read only after part N was confirmed.
        transfers: 1,
        retry: { attempts: 2, baseMs: 1, maxMs: 2 },
      };
      return { file, data, options, destination, stateDir };
    }

    async function stored(destination: string): Promise<Buffer> {
      const b = await openBackend(destination, t.backendOptions);
      try {
        return await readAll(await b.get('big.bin'));
      } finally {
        await b.close();
      }
    }

    /** Runs a push that is aborted once `parts` parts are confirmed; `onPart(n)` runs as part n is confirmed. */
    async function interrupted(options: Parameters<typeof push>[0], parts: number, onPart: (n: number) => void = () => undefined): Promise<void> {
      const ac = new AbortController();
      const events = new RunEvents();
      events.on('file:progress', ({ sentBytes }) => {
        if (sentBytes === 0 || sentBytes % t.partSize !== 0) return;
        const n = sentBytes / t.partSize;
        onPart(n);
        if (n === parts) ac.abort();
      });
      await push({ ...options, events, signal: ac.signal }).catch(() => undefined);
      assert.ok(ac.signal.aborted, 'the first run was interrupted');
    }

    it('a part sent from bytes the file no longer has is sent again (or the upload restarted), never completed into the object', async () => {
      const { file, data, options, destination, stateDir } = setup('changed');
      const { mtime } = statSync(file);
      // While part 1 is on its way out, part 2's bytes change: the first run sends part 2 from other bytes.
      await interrupted(options, 2, (n) => {
        if (n !== 1) return;
        const fd = openSync(file, 'r+');
        writeSync(fd, Buffer.alloc(t.partSize, 0x5a), 0, t.partSize, t.partSize);
        closeSync(fd);
      });
      const ledger = await openLedger({ stateDir });
      let recorded: (string | null)[];
      try {
        const [dest] = await ledger.listDestinations();
        const row = await ledger.getObject(dest!.id, 'big.bin');
        assert.ok(row?.uploadId, `the interrupted row keeps its upload id (${row?.status})`);
        const parts = await ledger.listParts(row.id, row.uploadId);
        assert.deepEqual(parts.map((p) => p.partNumber), [1, 2]);
        recorded = parts.map((p) => p.checksum);
      } finally {
        await ledger.close();
      }

      // The file is put back as it was, mtime included: same size, same mtime, same content as planned.
      writeFileSync(file, data);
      utimesSync(file, mtime, mtime);
      const second = await push(options);
      assert.equal(second.status, 'completed', JSON.stringify(second.errors));
      assert.equal(sha256(await stored(destination)), sha256(data), 'the object is the file (not the file with the first attempt’s part 2)');
      const notes = (second.notes ?? []).map((n) => n.note).join(' | ');
      const last = data.length - 2 * t.partSize;
      if (t.sequential) {
        assert.match(notes, /did not match the file's bytes; starting a new upload/);
        assert.equal(second.bytes, data.length, 'a fresh upload sends the whole file');
      } else {
        assert.match(notes, /1 part\(s\) of the interrupted upload did not match the file's bytes and were sent again/);
        assert.match(notes, /resumed an interrupted upload: 1 of 3 parts/);
        assert.equal(second.bytes, t.partSize + last, 'part 2 again and part 3; part 1 was kept');
      }
      assert.deepEqual(
        recorded,
        [`sha256:${sha256(data.subarray(0, t.partSize))}`, `sha256:${sha256(Buffer.alloc(t.partSize, 0x5a))}`],
        'the ledger recorded the SHA-256 of the bytes each part was sent from',
      );
    });

    it('parts recorded without a SHA-256 (an earlier version) are not trusted: the upload starts afresh', async () => {
      const { data, options, destination, stateDir } = setup('legacy');
      await interrupted(options, 2);
      // As an earlier version left them: no checksum on the parts.
      const db = new Database(join(stateDir, 'holdfast.db'));
      try {
        assert.ok(db.prepare('UPDATE parts SET checksum = NULL').run().changes >= 2);
      } finally {
        db.close();
      }
      const second = await push(options);
      assert.equal(second.status, 'completed', JSON.stringify(second.errors));
      assert.match((second.notes ?? []).map((n) => n.note).join(' | '), /without a recorded SHA-256/);
      assert.equal(second.bytes, data.length, 'every part was sent to a new upload');
      assert.equal(sha256(await stored(destination)), sha256(data));
    });
  });
}
