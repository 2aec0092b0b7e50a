// The backend conformance suite against the s3:// backend on a real S3 server
// (s3rver on loopback, started here), plus S3-specific checks: messages for a
// missing bucket, AWS_CA_BUNDLE with a plain-http endpoint, the 1024-byte key
// limit including the prefix, and an unreachable endpoint.

import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { createServer } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { Backend } from '../../src/backends/backend.js';
import { bufferBody } from '../../src/backends/body.js';
import { openBackend } from '../../src/backends/registry.js';
import { HoldfastError } from '../../src/core/errors.js';
import { caught } from '../helpers/checks.js';
import { s3TestEnv, startS3Server } from '../helpers/s3-server.js';
import type { S3TestServer } from '../helpers/s3-server.js';
import { backendConformance } from './backend-suite.js';
import { until } from '../helpers/wait.js';

// Credentials for s3rver come from the environment, as they would for users.
for (const [k, v] of Object.entries(s3TestEnv('unused'))) if (k !== 'AWS_ENDPOINT_URL') process.env[k] = v;

const BUCKET = 'holdfast-conformance';

backendConformance('s3:// on s3rver', async () => {
  const server = await startS3Server();
  await server.createBucket(BUCKET);
  // A prefix, so the suite also checks that keys are relative to it.
  const backend = await openBackend(`s3://${BUCKET}/conformance`, { s3Endpoint: server.endpoint });
  await backend.ensureReady();
  return {
    backend,
    openUnready: () => openBackend('s3://holdfast-no-such-bucket/x', { s3Endpoint: server.endpoint }),
    reopen: () => openBackend(`s3://${BUCKET}/conformance`, { s3Endpoint: server.endpoint }),
    quirks: {
      partialPutVisible:
        's3rver streams a PUT body straight into its object file, so an interrupted PUT leaves a partial object; ' +
        'S3, MinIO and R2 store an object only when the whole body arrived',
    },
    async cleanup() {
      await backend.close();
      await server.stop();
    },
  };
});

describe('s3:// specifics', () => {
  let server: S3TestServer;
  const opened: Backend[] = [];
  const open = async (url: string, endpoint = server.endpoint): Promise<Backend> => {
    const b = await openBackend(url, { s3Endpoint: endpoint });
    opened.push(b);
    return b;
  };
  before(async () => {
    server = await startS3Server();
    await server.createBucket(BUCKET);
  });
  after(async () => {
    for (const b of opened) await b.close();
    await server.stop();
  });

  it('a missing bucket: HOLDFAST_E_DEST_NOT_FOUND naming the bucket, the endpoint and how to create it', async () => {
    const b = await open('s3://no-such-bucket-here/prefix');
    const err = await caught(b.ensureReady());
    assert.equal(err.code, 'HOLDFAST_E_DEST_NOT_FOUND');
    assert.match(err.message, /no-such-bucket-here/);
    assert.ok(err.message.includes(server.endpoint), err.message);
    assert.match(err.message, /aws s3 mb s3:\/\/no-such-bucket-here/);
    assert.equal(err.transient, false);
  });

  it('works with AWS_CA_BUNDLE set (system bundle, or a missing file) and a plain-http endpoint', async () => {
    const saved = process.env.AWS_CA_BUNDLE;
    try {
      for (const bundle of ['/etc/ssl/certs/ca-certificates.crt', '/nonexistent/ca.pem']) {
        process.env.AWS_CA_BUNDLE = bundle;
        const b = await open(`s3://${BUCKET}/ca-bundle`);
        await b.ensureReady();
        const data = Buffer.from(`through ${bundle}`);
        await b.put('x', bufferBody(data), { size: data.length, sha256: 'f'.repeat(64) });
        assert.equal((await b.head('x'))?.size, data.length);
      }
    } finally {
      if (saved === undefined) delete process.env.AWS_CA_BUNDLE;
      else process.env.AWS_CA_BUNDLE = saved;
    }
  });

  it('an https endpoint with an unreadable AWS_CA_BUNDLE is a configuration error, said up front', async () => {
    const saved = process.env.AWS_CA_BUNDLE;
    try {
      process.env.AWS_CA_BUNDLE = '/nonexistent/ca.pem';
      const err = await caught(openBackend(`s3://${BUCKET}/x`, { s3Endpoint: 'https://127.0.0.1:1' }));
      assert.equal(err.code, 'HOLDFAST_E_CONFIG');
      assert.match(err.message, /AWS_CA_BUNDLE/);
    } finally {
      if (saved === undefined) delete process.env.AWS_CA_BUNDLE;
      else process.env.AWS_CA_BUNDLE = saved;
    }
  });

  it('the 1024-byte limit counts the prefix: 1024 passes, 1025 fails with HOLDFAST_E_KEY_TOO_LONG', async () => {
    // Segments of at most 200 bytes: s3rver stores keys as file paths (NAME_MAX 255).
    const keyOf = (bytes: number): string => {
      let k = '';
      while (k.length + 201 < bytes) k += `${'k'.repeat(200)}/`;
      return k + 'k'.repeat(bytes - k.length);
    };
    const b = await open(`s3://${BUCKET}/pre`); // prefix "pre/": 4 bytes
    b.validateKey(keyOf(1020));
    const err = await caught(Promise.resolve().then(() => b.validateKey(keyOf(1021))));
    assert.equal(err.code, 'HOLDFAST_E_KEY_TOO_LONG');
    assert.equal(err.details.bytes, 1025);
    assert.equal(err.details.max, 1024);
    const bare = await open(`s3://${BUCKET}`);
    bare.validateKey(keyOf(1024));
    assert.equal((await caught(Promise.resolve().then(() => bare.validateKey(keyOf(1025))))).code, 'HOLDFAST_E_KEY_TOO_LONG');
    // A 1024-byte full key really is accepted by the server.
    const data = Buffer.from('long');
    await b.put(keyOf(1020), bufferBody(data), { size: 4, sha256: 'a'.repeat(64) });
    assert.equal((await b.head(keyOf(1020)))?.size, 4);
    assert.equal(Buffer.byteLength(`pre/${keyOf(1020)}`), 1024);
  });

  it('connection refused: HOLDFAST_E_DEST_UNREACHABLE from ensureReady, a transient error from other calls', async () => {
    // A port that was free a moment ago: nothing listens there.
    const port = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const endpoint = `http://127.0.0.1:${port}`;
    const b = await open(`s3://${BUCKET}/x`, endpoint);
    const ready = await caught(b.ensureReady());
    assert.equal(ready.code, 'HOLDFAST_E_DEST_UNREACHABLE');
    assert.ok(ready.message.includes(endpoint), ready.message);
    assert.equal(ready.transient, true);
    const head = await caught(b.head('k'));
    assert.equal(head.transient, true, `${head.code} is transient`);
    const data = Buffer.from('x');
    const put = await caught(b.put('k', bufferBody(data), { size: 1, sha256: 'a'.repeat(64) }));
    assert.equal(put.transient, true, `${put.code} is transient`);
  });

  it('bad credentials: HOLDFAST_E_AUTH, and the secret appears nowhere in the error', async () => {
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
    try {
      process.env.AWS_ACCESS_KEY_ID = 'WRONGKEY';
      process.env.AWS_SECRET_ACCESS_KEY = 'very-secret-value-123';
      const b = await open(`s3://${BUCKET}/x`);
      const err = await caught(b.ensureReady());
      assert.equal(err.code, 'HOLDFAST_E_AUTH');
      assert.ok(!JSON.stringify({ m: err.message, d: err.details }).includes('very-secret-value-123'));
    } finally {
      process.env.AWS_ACCESS_KEY_ID = saved.id;
      process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
    }
  });

  it('rejects keys XML listings cannot return (control characters, CR), accepts tab and newline', async () => {
    const b = await open(`s3://${BUCKET}/xml`);
    for (const k of ['a\rb', 'a\u0001b', 'x\u001f']) {
      assert.equal((await caught(Promise.resolve().then(() => b.validateKey(k)))).code, 'HOLDFAST_E_KEY_INVALID');
    }
    b.validateKey('tab\there');
    b.validateKey('new\nline');
  });

  it('a single put above 5 GiB is refused before sending (multipart is required)', async () => {
    const b = await open(`s3://${BUCKET}/big`);
    const size = 5 * 1024 ** 3 + 1;
    const e = await caught(b.put('huge', { size, open: () => Readable.from([]) }, { size, sha256: 'a'.repeat(64) }));
    assert.equal(e.code, 'HOLDFAST_E_TOO_LARGE');
  });

  it('keys are stored under the URL prefix and listed relative to it', async () => {
    const b = await open(`s3://${BUCKET}/nested/prefix`);
    const whole = await open(`s3://${BUCKET}`);
    const data = Buffer.from('p');
    await b.put('a/b.txt', bufferBody(data), { size: 1, sha256: 'a'.repeat(64) });
    assert.equal((await whole.head('nested/prefix/a/b.txt'))?.size, 1);
    const keys: string[] = [];
    for await (const o of b.list()) keys.push(o.key);
    assert.deepEqual(keys, ['a/b.txt']);
    assert.equal(b.url, `s3://${BUCKET}/nested/prefix/`);
  });

  it('honours AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL when no endpoint option is given', async () => {
    const saved = process.env.AWS_ENDPOINT_URL;
    try {
      process.env.AWS_ENDPOINT_URL = server.endpoint;
      const b = await openBackend(`s3://${BUCKET}/env`);
      opened.push(b);
      await b.ensureReady();
    } finally {
      if (saved === undefined) delete process.env.AWS_ENDPOINT_URL;
      else process.env.AWS_ENDPOINT_URL = saved;
    }
  });
});

describe('s3:// put with a failing body, seen from the wire', () => {
  // s3rver cannot show this (it keeps partial bodies), so a bare HTTP server
  // records what arrives: the body must never reach its Content-Length, or a
  // real S3 would store the object.
  interface Seen {
    received: number;
    completed: boolean;
    /** The request is over for the server: ended, or its connection cut. */
    closed: boolean;
  }
  const seen: Seen[] = [];
  const http = createHttpServer((req: IncomingMessage, res) => {
    const s: Seen = { received: 0, completed: false, closed: false };
    seen.push(s);
    req.on('data', (c: Buffer) => (s.received += c.length));
    req.on('end', () => {
      s.completed = true;
      res.writeHead(200, { ETag: '"x"' }).end();
    });
    req.on('close', () => (s.closed = true));
  });
  let endpoint = '';
  before(async () => {
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(http.address() as { port: number }).port}`;
  });
  after(async () => {
    http.closeAllConnections();
    await new Promise((resolve) => http.close(resolve));
  });

  const failing = (size: number, good: number, error: Error): { size: number; open(): Readable } => ({
    size,
    open: () => {
      let done = false;
      return new Readable({
        read(): void {
          // Fail only once the request is under way: the server has bytes of it.
          if (done) return void until('the server receiving the body', () => (seen.at(-1)?.received ?? 0) > 0).then(() => this.destroy(error));
          done = true;
          this.push(Buffer.alloc(good / 2, 1));
          this.push(Buffer.alloc(good / 2, 2));
        },
      });
    },
  });

  for (const [what, good] of [
    ['mid-way', 40_000],
    ['after its last byte', 100_000],
  ] as const) {
    it(`a body failing ${what} is cut off before Content-Length and the put rejects`, async () => {
      const b = await openBackend(`s3://bucket/x`, { s3Endpoint: endpoint });
      seen.length = 0;
      try {
        const err = new HoldfastError('HOLDFAST_E_SOURCE_CHANGED', { path: 'p' });
        const e = await caught(b.put('k', failing(100_000, good, err), { size: 100_000, sha256: 'a'.repeat(64) }));
        assert.equal(e, err);
        assert.equal(seen.length, 1, 'the request was sent');
        await until('the server done with the request', () => seen[0]!.closed);
        assert.ok(seen[0]!.received > 0 && seen[0]!.received < 100_000, `server received ${seen[0]!.received} of 100000 bytes`);
        assert.equal(seen[0]!.completed, false);
      } finally {
        await b.close();
      }
    });
  }
});
