// A real S3 server for tests: s3rver on 127.0.0.1 (a free port), storing in a
// fresh temp directory. Use it from any test that needs an s3:// destination:
//
//   const s3 = await startS3Server();
//   await s3.createBucket('holdfast-test');
//   // in-process: openBackend('s3://holdfast-test/x', { s3Endpoint: s3.endpoint })
//   //   (credentials: set process.env from s3TestEnv(), or rely on the child env)
//   // child process: spawn(cli, args, { env: { ...process.env, ...s3TestEnv(s3.endpoint) } })
//   after(() => s3.stop());
//
// Known s3rver gaps (the backend maps them): no ListParts (405), no
// ListMultipartUploads (501), no AbortMultipartUpload (405); listings in
// directory order (the backend sorts each page).

import { S3Client } from '@aws-sdk/client-s3';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { makeTempDir } from './tmp.js';

// s3rver ships no types: type it by the subset we use.
interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  readonly httpServer?: Server;
  readonly store: { putBucket(name: string): Promise<unknown> };
}
type S3rverCtor = new (options: { address: string; port: number; silent: boolean; directory: string; resetOnClose?: boolean }) => S3rverInstance;

const require = createRequire(import.meta.url);

export interface S3TestServer {
  /** e.g. http://127.0.0.1:43121 */
  readonly endpoint: string;
  /** s3rver's storage directory (one sub-directory per bucket). */
  readonly dir: string;
  /** Creates a bucket (idempotent). */
  createBucket(name: string): Promise<void>;
  /** Stops the server, drops open connections and removes its directory. */
  stop(): Promise<void>;
}

export async function startS3Server(): Promise<S3TestServer> {
  const S3rver = require('s3rver') as S3rverCtor;
  const tmp = await makeTempDir('holdfast-s3rver-');
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: tmp.path });
  const address = await server.run();
  let stopped = false;
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    dir: tmp.path,
    async createBucket(name: string): Promise<void> {
      // s3rver's own provisioning path (what its `configureBuckets` option uses).
      await server.store.putBucket(name);
    },
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      const closing = server.close();
      // Keep-alive sockets from clients would otherwise hold close() open.
      server.httpServer?.closeAllConnections();
      await closing;
      await tmp.cleanup();
    },
  };
}

/** Environment for a child process (or process.env) talking to the test server with s3rver's fixed credentials. */
export function s3TestEnv(endpoint: string): Record<string, string> {
  return {
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL: endpoint,
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
}

/** An SDK client straight to a test server (bypassing Holdfast and any proxy): to look at what really is stored. */
export function testS3Client(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}
