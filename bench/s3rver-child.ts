// Benchmark S3 server: runs s3rver in its own process (so its CPU counts against
// neither tool and it does not share the orchestrator's event loop).
//
// Started by bench/run.ts with `fork(dist/bench/s3rver-child.js, [storageDir])`.
// Protocol over the IPC channel:
//   child → parent  { type: 'ready', port }                  once listening on 127.0.0.1
//   parent → child  { type: 'createBucket', id, name }       → { type: 'done', id } or { type: 'error', id, message }
// The child exits when the IPC channel closes (parent gone) or on SIGTERM.

import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';

// s3rver ships no types: type it by the subset we use.
interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  readonly httpServer?: Server;
  readonly store: { putBucket(name: string): Promise<unknown> };
}
type S3rverCtor = new (options: { address: string; port: number; silent: boolean; directory: string }) => S3rverInstance;

interface CreateBucketMessage {
  type: 'createBucket';
  id: number;
  name: string;
}

const require = createRequire(import.meta.url);

async function main(): Promise<void> {
  const directory = process.argv[2];
  if (!directory || !process.send) {
    console.error('usage: fork(s3rver-child.js, [storageDir]) with an IPC channel');
    process.exit(1);
  }
  const S3rver = require('s3rver') as S3rverCtor;
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory });
  const address = await server.run();

  let closing = false;
  const shutdown = (): void => {
    if (closing) return;
    closing = true;
    const done = server.close();
    server.httpServer?.closeAllConnections();
    done.then(
      () => process.exit(0),
      () => process.exit(0),
    );
    // Never hang on shutdown.
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', shutdown);
  process.on('disconnect', shutdown);

  process.on('message', (msg: CreateBucketMessage) => {
    if (msg.type !== 'createBucket') return;
    server.store.putBucket(msg.name).then(
      () => process.send?.({ type: 'done', id: msg.id }),
      (err: unknown) => process.send?.({ type: 'error', id: msg.id, message: String(err) }),
    );
  });
  process.send({ type: 'ready', port: address.port });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
