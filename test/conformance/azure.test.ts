// The backend conformance suite against the azure:// backend on a real Azure
// Blob service (Azurite on loopback, started here), plus Azure-specific checks:
// credentials and their messages, containers that are missing, metadata names,
// block ids, and a staged-block upload resumed by a new backend instance.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import {
  AccountSASPermissions,
  AccountSASResourceTypes,
  AccountSASServices,
  BlobServiceClient,
  StorageSharedKeyCredential,
  generateAccountSASQueryParameters,
} from '@azure/storage-blob';
import type { Backend, BackendOptions, UploadedPart } from '../../src/backends/backend.js';
import { AzureBackend, blockIdOf, fromAzureMetadataName, parseBlockId, parseUploadId, resolveAccess, toAzureMetadataName } from '../../src/backends/azure.js';
import { compareKeys } from '../../src/backends/keys.js';
import { bufferBody } from '../../src/backends/body.js';
import { openBackend } from '../../src/backends/registry.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite } from '../helpers/azurite.js';
import type { AzuriteServer } from '../helpers/azurite.js';
import { caught, readAll, sha256 } from '../helpers/checks.js';
import { backendConformance } from './backend-suite.js';

const CONTAINER = 'holdfast-conformance';
const AZURE_ENV = [
  'AZURE_STORAGE_CONNECTION_STRING',
  'AZURE_STORAGE_ACCOUNT',
  'AZURE_STORAGE_KEY',
  'AZURE_STORAGE_ACCESS_KEY',
  'AZURE_STORAGE_SAS_TOKEN',
  'AZURE_STORAGE_BLOB_ENDPOINT',
] as const;

/** Runs `fn` with the Azure variables set to `vars` (and every other one unset), then restores them. */
async function withAzureEnv<T>(vars: Partial<Record<(typeof AZURE_ENV)[number], string>>, fn: () => Promise<T>): Promise<T> {
  const saved = new Map(AZURE_ENV.map((k) => [k, process.env[k]]));
  for (const k of AZURE_ENV) delete process.env[k];
  Object.assign(process.env, vars);
  try {
    return await fn();
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** An account SAS that may read and list but not create or write (so it cannot create a container). */
function readListSas(): string {
  const cred = new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY);
  return generateAccountSASQueryParameters(
    {
      expiresOn: new Date(Date.now() + 3600_000),
      permissions: AccountSASPermissions.parse('rl'),
      resourceTypes: AccountSASResourceTypes.parse('sco').toString(),
      services: AccountSASServices.parse('b').toString(),
    },
    cred,
  ).toString();
}

backendConformance('azure:// on Azurite', async () => {
  const server = await startAzurite();
  // A prefix, so the suite also checks that keys are relative to it.
  const open = (): Promise<Backend> => openBackend(`azure://${CONTAINER}/conformance`, { azureConnectionString: server.connectionString });
  const backend = await open();
  // Creates the container, as a first push would.
  await backend.ensureReady();
  const target = {
    backend,
    // A missing container, and credentials that may not create one.
    openUnready: () => openBackend('azure://holdfast-no-such-container/x', { azureEndpoint: server.endpoint, azureSasToken: readListSas() }),
    // A second instance on the same destination, as a later run would open (resume tests).
    reopen: open,
    async cleanup() {
      await backend.close();
      await server.stop();
    },
  };
  return target;
});

describe('azure:// specifics', () => {
  let server: AzuriteServer;
  let raw: BlobServiceClient;
  const opened: Backend[] = [];
  const open = async (url: string, options: BackendOptions = { azureConnectionString: server.connectionString }): Promise<Backend> => {
    const b = await openBackend(url, options);
    opened.push(b);
    return b;
  };
  before(async () => {
    server = await startAzurite();
    raw = BlobServiceClient.fromConnectionString(server.connectionString);
    await raw.getContainerClient(CONTAINER).createIfNotExists();
  });
  after(async () => {
    for (const b of opened) await b.close();
    await server.stop();
  });

  describe('credentials', () => {
    it('none at all: HOLDFAST_E_AUTH naming the variables to set', async () => {
      const err = await withAzureEnv({}, () => caught(openBackend(`azure://${CONTAINER}/x`)));
      assert.equal(err.code, 'HOLDFAST_E_AUTH');
      for (const name of ['AZURE_STORAGE_CONNECTION_STRING', 'AZURE_STORAGE_ACCOUNT', 'AZURE_STORAGE_KEY', 'AZURE_STORAGE_SAS_TOKEN']) {
        assert.ok(err.message.includes(name), `the message names ${name}: ${err.message}`);
      }
      assert.equal(err.transient, false);
    });

    it('an account without a key or SAS token says which part is missing', async () => {
      const err = await withAzureEnv({ AZURE_STORAGE_ACCOUNT: 'someaccount' }, () => caught(openBackend(`azure://${CONTAINER}/x`)));
      assert.equal(err.code, 'HOLDFAST_E_AUTH');
      assert.match(err.message, /"someaccount", but neither a key nor a SAS token/);
    });

    it('from the environment: a connection string; an account with AZURE_STORAGE_KEY or AZURE_STORAGE_ACCESS_KEY; a SAS token', async () => {
      const data = Buffer.from('env');
      const variants: Partial<Record<(typeof AZURE_ENV)[number], string>>[] = [
        { AZURE_STORAGE_CONNECTION_STRING: server.connectionString },
        { AZURE_STORAGE_ACCOUNT: AZURITE_ACCOUNT, AZURE_STORAGE_KEY: AZURITE_KEY, AZURE_STORAGE_BLOB_ENDPOINT: server.endpoint },
        { AZURE_STORAGE_ACCOUNT: AZURITE_ACCOUNT, AZURE_STORAGE_ACCESS_KEY: AZURITE_KEY, AZURE_STORAGE_BLOB_ENDPOINT: server.endpoint },
      ];
      for (const [i, vars] of variants.entries()) {
        await withAzureEnv(vars, async () => {
          const b = await open(`azure://${CONTAINER}/env${i}`, {});
          await b.ensureReady();
          await b.put('k', bufferBody(data), { size: data.length, sha256: sha256(data) });
          assert.equal((await b.head('k'))?.sha256, sha256(data), `variant ${i}`);
        });
      }
      // A read-only SAS token: reads work, writes are refused as HOLDFAST_E_AUTH.
      await withAzureEnv({ AZURE_STORAGE_SAS_TOKEN: readListSas(), AZURE_STORAGE_BLOB_ENDPOINT: server.endpoint }, async () => {
        const b = await open(`azure://${CONTAINER}/env0`, {});
        await b.ensureReady({ forReading: true });
        assert.equal((await b.head('k'))?.size, data.length);
        assert.equal((await caught(b.put('w', bufferBody(data), { size: data.length, sha256: sha256(data) }))).code, 'HOLDFAST_E_AUTH');
      });
    });

    it('options win over the environment', async () => {
      await withAzureEnv({ AZURE_STORAGE_CONNECTION_STRING: 'DefaultEndpointsProtocol=http;AccountName=wrong;AccountKey=d3Jvbmc=;BlobEndpoint=http://127.0.0.1:1/wrong;' }, async () => {
        const b = await open(`azure://${CONTAINER}/opt`, { azureAccount: AZURITE_ACCOUNT, azureAccountKey: AZURITE_KEY, azureEndpoint: server.endpoint });
        await b.ensureReady();
      });
    });

    it('a wrong key: HOLDFAST_E_AUTH, and no secret in the URL, the message, the details or the cause', async () => {
      const wrongKey = Buffer.from('very-secret-value-123-very-secret-value-123').toString('base64');
      const b = await open(`azure://${CONTAINER}/x`, { azureAccount: AZURITE_ACCOUNT, azureAccountKey: wrongKey, azureEndpoint: server.endpoint });
      const err = await caught(b.ensureReady());
      assert.equal(err.code, 'HOLDFAST_E_AUTH');
      const seen = JSON.stringify({ url: b.url, m: err.message, d: err.details, c: String(err.cause), cs: Object.entries(err.cause ?? {}) });
      assert.ok(!seen.includes(wrongKey), seen);
      assert.equal(b.url, `azure://${CONTAINER}/x/`);
    });

    it('a SAS token never shows in the URL or in errors', async () => {
      const sas = readListSas();
      const sig = new URLSearchParams(sas).get('sig') ?? '';
      assert.ok(sig.length > 10);
      const b = await open(`azure://${CONTAINER}/sas`, { azureEndpoint: server.endpoint, azureSasToken: sas });
      const data = Buffer.from('x');
      const err = await caught(b.put('k', bufferBody(data), { size: 1, sha256: sha256(data) }));
      const seen = JSON.stringify({ url: b.url, m: err.message, d: err.details, c: String(err.cause), cs: Object.entries(err.cause ?? {}) });
      assert.ok(!seen.includes(sig) && !seen.includes(encodeURIComponent(sig)), seen);
    });

    it('a malformed connection string is a configuration error that does not echo it', async () => {
      const err = await caught(openBackend(`azure://${CONTAINER}/x`, { azureConnectionString: 'AccountKey=c2VjcmV0LXNlY3JldA==;nonsense' }));
      assert.equal(err.code, 'HOLDFAST_E_CONFIG');
      assert.ok(!err.message.includes('c2VjcmV0LXNlY3JldA=='), err.message);
    });

    it('AWS_CA_BUNDLE in the environment (the system bundle, or a missing file) changes nothing', async () => {
      const saved = process.env.AWS_CA_BUNDLE;
      try {
        for (const bundle of ['/etc/ssl/certs/ca-certificates.crt', '/nonexistent/ca.pem']) {
          process.env.AWS_CA_BUNDLE = bundle;
          const b = await open(`azure://${CONTAINER}/ca-bundle`);
          await b.ensureReady();
          const data = Buffer.from(`through ${bundle}`);
          await b.put('x', bufferBody(data), { size: data.length, sha256: sha256(data) });
          assert.equal((await b.head('x'))?.size, data.length);
        }
      } finally {
        if (saved === undefined) delete process.env.AWS_CA_BUNDLE;
        else process.env.AWS_CA_BUNDLE = saved;
      }
    });
  });

  describe('URLs and keys', () => {
    it('invalid URLs: HOLDFAST_E_BAD_URL', async () => {
      for (const url of ['azure://', 'azure://Upper/x', 'azure://ab/x', 'azure://a--b/x', 'azure://user:secret@box/x', 'azure://box/x?sig=abc', 'azure://box:10000/x', 'azure://box/a//b']) {
        const err = await caught(openBackend(url, { azureConnectionString: server.connectionString }));
        assert.equal(err.code, 'HOLDFAST_E_BAD_URL', url);
        assert.ok(!err.message.includes('secret'), err.message);
      }
    });

    it('keys are stored under the URL prefix and listed relative to it', async () => {
      const b = await open(`azure://${CONTAINER}/nested/prefix`);
      const whole = await open(`azure://${CONTAINER}`);
      const data = Buffer.from('p');
      await b.put('a/b.txt', bufferBody(data), { size: 1, sha256: sha256(data) });
      assert.equal((await whole.head('nested/prefix/a/b.txt'))?.size, 1);
      const keys: string[] = [];
      for await (const o of b.list()) keys.push(o.key);
      assert.deepEqual(keys, ['a/b.txt']);
      assert.equal(b.url, `azure://${CONTAINER}/nested/prefix/`);
      assert.equal(whole.url, `azure://${CONTAINER}/`);
    });

    it('keys Azure cannot keep as they are ("\\", a segment-final ".", C0 controls) are stored under their documented names and round-trip', async () => {
      const b = await open(`azure://${CONTAINER}/names`);
      // Each key with the blob name docs/destinations.md says it is stored under (after the prefix).
      const cases: [string, string][] = [
        ['a\\b.txt', 'a\uff3cb.txt'],
        ['a/b.txt', 'a/b.txt'], // what "a\\b.txt" used to collide with
        ['notes.', 'notes\uff0e'],
        ['v1./x.txt', 'v1\uff0e/x.txt'],
        ['Icon\r', 'Icon\u240d'],
        ['bell\u0007', 'bell\u2407'],
        ['tab\there', 'tab\there'],
        ['full\uff3cwidth', 'full\u201b\uff3cwidth'],
        ['q\u201b\\', 'q\u201b\u201b\uff3c'],
      ];
      for (const [key] of cases) {
        b.validateKey(key);
        const data = Buffer.from(`content of ${JSON.stringify(key)}`);
        await b.put(key, bufferBody(data), { size: data.length, sha256: sha256(data) });
      }
      const stored: string[] = [];
      for await (const blob of raw.getContainerClient(CONTAINER).listBlobsFlat({ prefix: 'names/' })) stored.push(blob.name.slice('names/'.length));
      assert.deepEqual(stored.sort(), cases.map(([, name]) => name).sort(), 'the blob names are the documented ones');
      const listed: string[] = [];
      for await (const o of b.list()) listed.push(o.key);
      assert.deepEqual(listed, cases.map(([key]) => key).sort(compareKeys), 'list returns the keys, in byte order');
      for (const [key] of cases) {
        const data = Buffer.from(`content of ${JSON.stringify(key)}`);
        assert.equal((await b.head(key))?.sha256, sha256(data), JSON.stringify(key));
        assert.ok(Buffer.compare(await readAll(await b.get(key)), data) === 0, JSON.stringify(key));
      }
      // A prefix ending in a character whose stored form depends on what follows.
      const under = async (prefix: string): Promise<string[]> => {
        const out: string[] = [];
        for await (const o of b.list(prefix)) out.push(o.key);
        return out;
      };
      assert.deepEqual(await under('notes.'), ['notes.']);
      assert.deepEqual(await under('v1.'), ['v1./x.txt']);
      assert.deepEqual(await under('a\\'), ['a\\b.txt']);
      await b.delete('a\\b.txt');
      assert.equal(await b.head('a\\b.txt'), undefined);
      assert.equal((await b.head('a/b.txt'))?.size, Buffer.byteLength(`content of ${JSON.stringify('a/b.txt')}`), 'deleting "a\\b.txt" left "a/b.txt" alone');
    });

    it('the listing stays in byte order of keys across pages, with startAfter, when stored names sort elsewhere', async () => {
      const b = new AzureBackend({ container: CONTAINER, prefix: 'pages/', ...resolveAccess({ azureConnectionString: server.connectionString }), timeoutMs: 60_000, listPageSize: 2 });
      // "\\" sorts before "a" as a key but after it as a stored name ("＼"); "‛＼" (a quoted literal) the other way round.
      const keys = ['\\root', 'a', 'a\\b', 'a/c', 'ab', 'b.', 'b/x', 'c\r', 'z', '\uff3cfull', '\u201bq'];
      for (const key of keys) await b.put(key, bufferBody(Buffer.from(key)), { size: Buffer.byteLength(key), sha256: sha256(Buffer.from(key)) });
      const listed: string[] = [];
      for await (const o of b.list()) listed.push(o.key);
      assert.deepEqual(listed, [...keys].sort(compareKeys));
      const after: string[] = [];
      for await (const o of b.list('', { startAfter: 'a/c' })) after.push(o.key);
      assert.deepEqual(after, [...keys].sort(compareKeys).filter((k) => compareKeys(k, 'a/c') > 0));
      const sized: number[] = [];
      for await (const o of b.list('a')) sized.push(o.size);
      assert.deepEqual(sized, ['a', 'a/c', 'a\\b', 'ab'].sort(compareKeys).map((k) => Buffer.byteLength(k)), 'objects merged from the names-only listing carry their properties');
    });

    it('rejects what Azure can neither store nor encode: U+FFFE/U+FFFF, more than 254 segments', async () => {
      const b = await open(`azure://${CONTAINER}/keys`);
      for (const k of ['a\ufffeb', 'a\uffffb', Array.from({ length: 254 }, () => 's').join('/')]) {
        assert.equal((await caught(() => b.validateKey(k))).code, 'HOLDFAST_E_KEY_INVALID', JSON.stringify(k.slice(0, 20)));
      }
      b.validateKey('tab\there');
      b.validateKey('back\\slash');
      b.validateKey('a\rb');
      b.validateKey(Array.from({ length: 253 }, () => 's').join('/'));
    });

    it('a single put above 5000 MiB is refused before sending (staged blocks are required)', async () => {
      const b = await open(`azure://${CONTAINER}/big`);
      const size = 5000 * 1024 * 1024 + 1;
      assert.equal((await caught(b.put('huge', { size, open: () => Readable.from([]) }, { size, sha256: 'a'.repeat(64) }))).code, 'HOLDFAST_E_TOO_LARGE');
    });

    it('capabilities are Azure block blob limits', async () => {
      const b = await open(`azure://${CONTAINER}/caps`);
      assert.equal(b.capabilities.maxParts, 50_000);
      assert.equal(b.capabilities.maxPartSize, 4000 * 1024 * 1024);
      assert.equal(b.capabilities.maxKeyBytes, 1024);
      assert.equal(b.capabilities.maxObjectSize, 50_000 * 4000 * 1024 * 1024);
      assert.equal(b.capabilities.sequentialParts, false);
      assert.equal(b.capabilities.multipart, true);
    });
  });

  describe('containers', () => {
    it('missing: readOnly (a dry run) creates nothing and succeeds; forReading fails; a normal ensureReady creates it', async () => {
      const name = 'holdfast-created-later';
      const b = await open(`azure://${name}/p`);
      await b.ensureReady({ readOnly: true });
      assert.equal(await raw.getContainerClient(name).exists(), false, 'a dry run created nothing');
      const reading = await caught(b.ensureReady({ forReading: true }));
      assert.equal(reading.code, 'HOLDFAST_E_DEST_NOT_FOUND');
      assert.match(reading.message, new RegExp(`container "${name}" does not exist at ${server.endpoint.replace(/[.]/g, '\\.')}`));
      assert.equal(await raw.getContainerClient(name).exists(), false);
      await b.ensureReady();
      assert.equal(await raw.getContainerClient(name).exists(), true);
      await b.ensureReady(); // and again: already there
    });

    it('missing and not creatable with these credentials: HOLDFAST_E_DEST_NOT_FOUND saying how to create it', async () => {
      const b = await open('azure://holdfast-never-made/p', { azureEndpoint: server.endpoint, azureSasToken: readListSas() });
      const err = await caught(b.ensureReady());
      assert.equal(err.code, 'HOLDFAST_E_DEST_NOT_FOUND');
      assert.match(err.message, /cannot create it/);
      assert.match(err.message, /az storage container create --name holdfast-never-made/);
      assert.equal(err.transient, false);
    });

    it('connection refused: HOLDFAST_E_DEST_UNREACHABLE from ensureReady, transient errors from other calls', async () => {
      const port = await new Promise<number>((resolve) => {
        const s = createServer();
        s.listen(0, '127.0.0.1', () => {
          const p = (s.address() as { port: number }).port;
          s.close(() => resolve(p));
        });
      });
      const endpoint = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
      const b = await open(`azure://${CONTAINER}/x`, { azureAccount: AZURITE_ACCOUNT, azureAccountKey: AZURITE_KEY, azureEndpoint: endpoint });
      const ready = await caught(b.ensureReady());
      assert.equal(ready.code, 'HOLDFAST_E_DEST_UNREACHABLE');
      assert.ok(ready.message.includes(endpoint), ready.message);
      assert.equal(ready.transient, true);
      assert.equal((await caught(b.head('k'))).transient, true);
      const data = Buffer.from('x');
      assert.equal((await caught(b.put('k', bufferBody(data), { size: 1, sha256: sha256(data) }))).transient, true);
    });
  });

  describe('metadata', () => {
    it('names map to C# identifiers and back, for any name', () => {
      assert.equal(toAzureMetadataName('holdfast-sha256'), 'holdfast_sha256');
      assert.equal(toAzureMetadataName('holdfast-mtime'), 'holdfast_mtime');
      const names = ['holdfast-sha256', 'holdfast-attempt', 'a', 'a--b-', 'X-Custom', 'snake_case', '9lives', 'hfx-looks-escaped', 'hfx_', 'ünïcode', ''];
      for (const n of names) {
        const stored = toAzureMetadataName(n);
        assert.match(stored, /^[A-Za-z_][A-Za-z0-9_]*$/, `${JSON.stringify(n)} → ${stored} is a C# identifier`);
        assert.equal(fromAzureMetadataName(stored), n, `${JSON.stringify(n)} round-trips`);
        // The server may hand names back in another case.
        assert.equal(fromAzureMetadataName(stored.toUpperCase()), n, `${JSON.stringify(n)} round-trips from upper case`);
      }
      assert.equal(new Set(names.map(toAzureMetadataName)).size, names.length, 'no two names collide');
    });

    it('a put stores holdfast_sha256, holdfast_mtime and the caller metadata under mapped names; head and list read them', async () => {
      const b = await open(`azure://${CONTAINER}/meta`);
      const data = Buffer.from('metadata');
      const mtimeMs = 1_700_000_000_123;
      await b.put('m', bufferBody(data), { size: data.length, sha256: sha256(data), mtimeMs: mtimeMs + 0.5, metadata: { 'holdfast-attempt': 'a1', 'X-Odd_Name': 'v' } });
      const props = await raw.getContainerClient(CONTAINER).getBlobClient('meta/m').getProperties();
      assert.deepEqual(props.metadata, {
        holdfast_sha256: sha256(data),
        holdfast_mtime: String(mtimeMs),
        holdfast_attempt: 'a1',
        [toAzureMetadataName('X-Odd_Name').toLowerCase()]: 'v',
      });
      assert.equal(props.contentType, 'application/octet-stream');
      const info = await b.head('m');
      assert.equal(info?.sha256, sha256(data));
      assert.equal(info?.mtimeMs, mtimeMs);
      const listed = [];
      for await (const o of b.list()) listed.push(o);
      assert.deepEqual(
        listed.map((o) => [o.key, o.size, o.sha256, o.mtimeMs]),
        [['m', data.length, sha256(data), mtimeMs]],
      );
    });
  });

  describe('staged blocks', () => {
    it('block ids are fixed-length, deterministic, at most 64 bytes, and carry the upload', async () => {
      const b = await open(`azure://${CONTAINER}/blocks`);
      const mp = b.multipart!;
      const uploadId = await mp.create('f', { sha256: 'ab'.repeat(32), size: 30, mtimeMs: 1234 });
      const ref = parseUploadId(uploadId);
      assert.ok(ref, uploadId);
      assert.deepEqual(ref, { token: ref.token, sha256: 'ab'.repeat(32), mtimeMs: 1234 });
      for (const n of [1, 2, 10, 9999, 50_000]) await mp.uploadPart('f', uploadId, n, Buffer.from(`part ${n}`));
      const list = await raw.getContainerClient(CONTAINER).getBlockBlobClient('blocks/f').getBlockList('uncommitted');
      const ids = (list.uncommittedBlocks ?? []).map((x) => x.name);
      assert.equal(ids.length, 6, 'five parts and the marker');
      assert.equal(new Set(ids.map((id) => id.length)).size, 1, `all block ids have one length: ${ids.join(' ')}`);
      for (const id of ids) assert.ok(Buffer.from(id, 'base64').length <= 64);
      assert.equal(blockIdOf(ref, 10), blockIdOf(ref, 10));
      assert.deepEqual(parseBlockId(blockIdOf(ref, 10)), { upload: ref, partNumber: 10 });
      // A second upload of the same key (e.g. after the file changed) uses ids of the same length.
      const other = await mp.create('f', { sha256: 'cd'.repeat(32), size: 30 });
      await mp.uploadPart('f', other, 1, Buffer.from('x'));
      const after = await raw.getContainerClient(CONTAINER).getBlockBlobClient('blocks/f').getBlockList('uncommitted');
      assert.equal(new Set((after.uncommittedBlocks ?? []).map((x) => x.name.length)).size, 1);
      assert.deepEqual(
        (await mp.listParts('f', uploadId))?.map((p) => p.partNumber),
        [1, 2, 10, 9999, 50_000],
      );
      assert.deepEqual(
        (await mp.listParts('f', other))?.map((p) => p.partNumber),
        [1],
      );
      // Azure can only discard all of a blob's staged blocks: an upload sharing the blob with another is left alone.
      assert.equal((await caught(mp.abort('f', uploadId))).code, 'HOLDFAST_E_DELETE_REFUSED');
      assert.deepEqual((await mp.listParts('f', other))?.map((p) => p.partNumber), [1], 'abort left the other upload’s blocks');
      assert.equal((await mp.listParts('f', uploadId))?.length, 5);
    });

    it('an upload interrupted after some parts is resumed and completed by a new backend instance', async () => {
      const url = `azure://${CONTAINER}/resume`;
      const partSize = 64 * 1024;
      const whole = randomBytes(partSize * 4 + 1000);
      const chunk = (n: number): Buffer => whole.subarray((n - 1) * partSize, Math.min(n * partSize, whole.length));
      const mtimeMs = 1_650_000_000_000;
      const first = await open(url);
      const uploadId = await first.multipart!.create('big.bin', { sha256: sha256(whole), size: whole.length, mtimeMs });
      const sent: UploadedPart[] = [];
      for (const n of [1, 3, 5]) sent.push(await first.multipart!.uploadPart('big.bin', uploadId, n, chunk(n)));
      await first.close(); // "crash": only the upload id and the sent parts survive (as in the ledger)

      const second = await open(url);
      const listed = await second.multipart!.listParts('big.bin', uploadId);
      assert.deepEqual(
        listed?.map((p) => [p.partNumber, p.size, p.etag]),
        sent.map((p) => [p.partNumber, p.size, p.etag]),
        'the new instance sees the same parts, with the etags the first one returned',
      );
      const uploads = [];
      for await (const u of second.multipart!.listUploads('')) uploads.push(u);
      assert.deepEqual(
        uploads.map((u) => [u.key, u.uploadId]),
        [['big.bin', uploadId]],
      );
      assert.ok(uploads[0]!.initiatedMs !== undefined && Math.abs(uploads[0]!.initiatedMs - Date.now()) < 600_000);
      const rest = [];
      for (const n of [2, 4]) rest.push(await second.multipart!.uploadPart('big.bin', uploadId, n, chunk(n)));
      assert.equal(await second.head('big.bin'), undefined, 'nothing visible before complete');
      await second.multipart!.complete('big.bin', uploadId, [...listed, ...rest]);
      const info = await second.head('big.bin');
      assert.equal(info?.size, whole.length);
      assert.equal(info?.sha256, sha256(whole), 'holdfast-sha256 comes from the upload id, not from memory');
      assert.equal(info?.mtimeMs, mtimeMs);
      assert.ok(Buffer.compare(await readAll(await second.get('big.bin')), whole) === 0);
      assert.equal(await second.multipart!.listParts('big.bin', uploadId), undefined, 'committing ends the upload');
      const left = [];
      for await (const u of second.multipart!.listUploads('')) left.push(u);
      assert.deepEqual(left, []);
    });

    it('abort keeps committed content: HOLDFAST_E_DELETE_REFUSED when the blob already has content', async () => {
      const b = await open(`azure://${CONTAINER}/abort-committed`);
      const mp = b.multipart!;
      const old = Buffer.from('committed content');
      await b.put('k', bufferBody(old), { size: old.length, sha256: sha256(old) });
      const uploadId = await mp.create('k', { sha256: '0'.repeat(64), size: 10 });
      await mp.uploadPart('k', uploadId, 1, Buffer.from('0123456789'));
      assert.equal((await caught(mp.abort('k', uploadId))).code, 'HOLDFAST_E_DELETE_REFUSED');
      assert.ok(Buffer.compare(await readAll(await b.get('k')), old) === 0, 'the committed content is intact');
      assert.equal((await b.head('k'))?.sha256, sha256(old));
    });

    it('a part whose Content-MD5 does not match is refused by the server', async () => {
      // Through the SDK directly: the backend always sends the right MD5.
      const blob = raw.getContainerClient(CONTAINER).getBlockBlobClient('md5/x');
      const err = await blob.stageBlock(blockIdOf({ token: 'abcdefabcdef', sha256: '0'.repeat(64), mtimeMs: undefined }, 1), Buffer.from('data'), 4, {
        transactionalContentMD5: createHash('md5').update('other').digest(),
      }).then(
        () => undefined,
        (e: unknown) => e as { statusCode?: number },
      );
      // Azure answers 400 Md5Mismatch; Azurite 400 InvalidOperation.
      assert.equal(err?.statusCode, 400);
    });

    it('upload ids of another backend are not uploads here', async () => {
      const b = await open(`azure://${CONTAINER}/foreign`);
      assert.equal(await b.multipart!.listParts('k', '2~s3-upload-id'), undefined);
      assert.equal((await caught(b.multipart!.uploadPart('k', 'not-ours', 1, Buffer.from('x')))).code, 'HOLDFAST_E_DEST_REJECTED');
    });
  });
});
