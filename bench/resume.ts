// Resuming an interrupted large upload, Holdfast vs rclone, in one run: each
// tool uploads the same 256 MiB file to s3rver through the counting proxy, is
// killed with SIGKILL once ~60% of its parts are confirmed, and is run again to
// completion. Prints the bytes each re-run sent (the figure that matters: what
// an interruption costs), with the same part size for both tools.
//
//   npm run build && node dist/bench/resume.js [--size-mib 256] [--part-mib 16]

import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startS3Server } from '../test/helpers/s3-server.js';
import { startProxy, type S3Proxy } from '../test/helpers/proxy.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const MIB = 1024 * 1024;
const size = opt('size-mib', 256) * MIB;
const partSize = opt('part-mib', 16) * MIB;
const parts = Math.ceil(size / partSize);
const killAt = Math.ceil(parts * 0.6);
const CLI = fileURLToPath(new URL('../bin/holdfast.js', import.meta.url));

interface Attempt {
  readonly exit: string;
  readonly bytes: number;
  readonly uploadParts: number;
  readonly creates: number;
}

/** Runs a command; if `killAtParts` > 0, SIGKILLs it when that many UploadParts got a 2xx. */
function runCounted(proxy: S3Proxy, cmd: string, argv: string[], env: NodeJS.ProcessEnv, killAtParts: number): Promise<Attempt> {
  proxy.reset();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { env, stdio: 'ignore' });
    let ok = 0;
    const off = proxy.on('end', (r) => {
      if (killAtParts > 0 && r.op === 'UploadPart' && r.result === 'ok' && ++ok === killAtParts) child.kill('SIGKILL');
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      off();
      resolve({
        exit: signal ?? String(code),
        bytes: proxy.contentBytes(),
        uploadParts: proxy.op('UploadPart').requests,
        creates: proxy.op('CreateMultipartUpload').requests,
      });
    });
  });
}

const work = mkdtempSync(join(tmpdir(), 'holdfast-resume-bench-'));
const server = await startS3Server();
const proxy = await startProxy({ target: server.endpoint });
try {
  await server.createBucket('resume');
  const src = join(work, 'src');
  mkdirSync(src);
  const buf = Buffer.alloc(size);
  randomFillSync(buf);
  writeFileSync(join(src, 'big.bin'), buf);

  const holdfastEnv = {
    ...process.env,
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_REGION: 'us-east-1',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
  const holdfastArgs = [CLI, 'push', src, 's3://resume/holdfast', '--s3-endpoint', proxy.endpoint, '--state', join(work, 'state'), '--quiet',
    '--multipart-threshold', `${partSize / MIB}MiB`, '--part-size', `${partSize / MIB}MiB`, '--transfers', '4'];

  // rclone fails when AWS_CA_BUNDLE (and friends) point at a bundle it cannot use for http endpoints: unset them for it.
  const rcloneEnv: NodeJS.ProcessEnv = {
    ...process.env,
    RCLONE_CONFIG_S3_TYPE: 's3',
    RCLONE_CONFIG_S3_PROVIDER: 'Other',
    RCLONE_CONFIG_S3_ENDPOINT: proxy.endpoint,
    RCLONE_CONFIG_S3_ACCESS_KEY_ID: 'S3RVER',
    RCLONE_CONFIG_S3_SECRET_ACCESS_KEY: 'S3RVER',
    RCLONE_CONFIG_S3_FORCE_PATH_STYLE: 'true',
    RCLONE_CONFIG_S3_REGION: 'us-east-1',
  };
  for (const k of Object.keys(rcloneEnv)) if (/CA_BUNDLE|SSL_CERT|CA_CERTS/.test(k)) delete rcloneEnv[k];
  const rcloneArgs = ['copy', src, 's3:resume/rclone', '--s3-chunk-size', `${partSize / MIB}M`, '--s3-upload-concurrency', '4'];

  const rows: { tool: string; killed: Attempt; rerun: Attempt }[] = [];
  for (const [tool, cmd, argv, env] of [
    ['holdfast', process.execPath, holdfastArgs, holdfastEnv],
    ['rclone', 'rclone', rcloneArgs, rcloneEnv],
  ] as const) {
    const killed = await runCounted(proxy, cmd, [...argv], env, killAt);
    const rerun = await runCounted(proxy, cmd, [...argv], env, 0);
    if (rerun.exit !== '0') throw new Error(`${tool} re-run exited ${rerun.exit}`);
    rows.push({ tool, killed, rerun });
  }

  const fmt = (n: number): string => `${(n / MIB).toFixed(1)} MiB`;
  console.log(`one ${fmt(size)} file, ${parts} parts of ${fmt(partSize)}, 4 parallel parts; killed after ${killAt} confirmed parts (${Math.round((killAt / parts) * 100)}%)`);
  console.log(`remaining after the kill: ${fmt(size - killAt * partSize)}; allowance for parts in flight: 4 × ${fmt(partSize)}`);
  console.log('tool      killed run sent   re-run sent   re-run UploadParts   new upload?');
  for (const r of rows) {
    console.log(`${r.tool.padEnd(9)} ${fmt(r.killed.bytes).padStart(14)}   ${fmt(r.rerun.bytes).padStart(11)}   ${String(r.rerun.uploadParts).padStart(18)}   ${r.rerun.creates > 0 ? 'yes' : 'no (resumed)'}`);
  }
  const [h, r] = rows;
  if (h && r) console.log(`re-run bytes, holdfast / rclone: ${(h.rerun.bytes / r.rerun.bytes).toFixed(2)}`);
} finally {
  await proxy.stop();
  await server.stop();
  rmSync(work, { recursive: true, force: true });
}
