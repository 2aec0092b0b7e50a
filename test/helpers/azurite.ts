// A real Azure Blob service for tests: Azurite (Microsoft's emulator, from
// npm) on 127.0.0.1 at a free port, storing in a fresh temp directory, in a
// child process of its own that `stop()` ends by PID.
//
//   const az = await startAzurite();
//   // in-process: openBackend('azure://container/x', { azureConnectionString: az.connectionString })
//   // child process: spawn(cli, args, { env: { ...process.env, AZURE_STORAGE_CONNECTION_STRING: az.connectionString } })
//   after(() => az.stop());
//
// Known Azurite gaps (see test/conformance/azure.test.ts): listings in UTF-16
// rather than UTF-8 byte order (the backend sorts each page), block ids of
// different lengths accepted on one blob, zero-byte blocks accepted, a wrong
// Content-MD5 answered with 400 InvalidOperation instead of Md5Mismatch.

import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { makeTempDir } from './tmp.js';

/** Azurite's fixed development account (public, documented by Microsoft; not a secret). */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface AzuriteServer {
  /** e.g. http://127.0.0.1:43121/devstoreaccount1 */
  readonly endpoint: string;
  /** A connection string with the development account's key, pointing at `endpoint`. */
  readonly connectionString: string;
  /** Azurite's storage directory. */
  readonly dir: string;
  readonly pid: number;
  /** A connection string for the same account through another endpoint (a proxy in front of Azurite). */
  connectionStringFor(endpoint: string): string;
  /** Stops Azurite (SIGTERM, then SIGKILL) and removes its directory. */
  stop(): Promise<void>;
}

export function azuriteConnectionString(endpoint: string): string {
  return `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${endpoint};`;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Any HTTP answer at all means the blob service is listening. */
function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: `/${AZURITE_ACCOUNT}?comp=list`, method: 'GET', timeout: 1000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
}

export async function startAzurite(): Promise<AzuriteServer> {
  const require = createRequire(import.meta.url);
  const main = require.resolve('azurite/dist/src/blob/main.js');
  const tmp = await makeTempDir('holdfast-azurite-');
  // The port is free a moment before Azurite binds it; a lost race is retried with another.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const child: ChildProcess = spawn(
      process.execPath,
      [
        main,
        '--blobHost',
        '127.0.0.1',
        '--blobPort',
        String(port),
        '--location',
        tmp.path,
        '--silent',
        // The SDK may speak a newer service version than this Azurite knows.
        '--skipApiVersionCheck',
        // No telemetry from tests (Azurite collects it by default).
        '--disableTelemetry',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    let exited = false;
    const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
    const deadline = Date.now() + 20_000;
    while (!exited && Date.now() < deadline && !(await answers(port))) await new Promise((r) => setTimeout(r, 100));
    if (exited || Date.now() >= deadline) {
      if (!exited) {
        child.kill('SIGKILL');
        await exit;
      }
      if (attempt < 3 && /EADDRINUSE/.test(stderr)) continue;
      await tmp.cleanup();
      throw new Error(`Azurite did not start on port ${port}: ${stderr.trim() || 'no answer within 20 s'}`);
    }
    const pid = child.pid ?? -1;
    const endpoint = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
    let stopped = false;
    return {
      endpoint,
      connectionString: azuriteConnectionString(endpoint),
      dir: tmp.path,
      pid,
      connectionStringFor: (other: string) => azuriteConnectionString(other.replace(/\/+$/, '').endsWith(`/${AZURITE_ACCOUNT}`) ? other : `${other.replace(/\/+$/, '')}/${AZURITE_ACCOUNT}`),
      async stop(): Promise<void> {
        if (stopped) return;
        stopped = true;
        if (!exited) {
          process.kill(pid, 'SIGTERM');
          const timer = setTimeout(() => {
            if (!exited) process.kill(pid, 'SIGKILL');
          }, 5000);
          await exit;
          clearTimeout(timer);
        }
        await tmp.cleanup();
      },
    };
  }
}
