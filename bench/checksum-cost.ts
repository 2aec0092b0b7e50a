// What the body checksums cost in CPU (issue 9 #6): every S3 body carries
// x-amz-checksum-sha256, every Azure body a Content-MD5, and each multipart part
// is hashed once more for the ledger. Three measurements, medians of --reps:
//
//  1. hash throughput of one core, in this process: SHA-256, MD5, CRC32 (zlib)
//     over 16 MiB buffers;
//  2. the AWS SDK's own hashing of a part, in this process, against s3rver in a
//     child process (so the server's CPU is not counted): UploadPart of 16 MiB
//     buffers, CPU per GiB, with the SDK configured four ways — to choose how a
//     part's SHA-256 reaches the server without the SDK hashing the bytes twice;
//  3. end to end: `holdfast push` as a child process under GNU time, CPU of the
//     holdfast process, this build against an earlier one (--old, a built
//     checkout of the commit before the change), alternating, on s3rver and
//     Azurite (each in its own process): one large file (multipart), one
//     medium file (a single streamed put), many small files.
//
//   npm run build && node dist/bench/checksum-cost.js [--reps 5] [--old /path/to/old/checkout] [--large-mib 256] [--only micro,sdk,e2e]

import { createHash, randomFillSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { crc32 } from 'node:zlib';
import { CreateMultipartUploadCommand, S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import { startAzurite } from '../test/helpers/azurite.js';
import { checkGnuTime, runTimed, stats } from './measure.js';
import { S3Server } from './s3-server.js';

const MiB = 1024 * 1024;
const { values: args } = parseArgs({
  options: {
    reps: { type: 'string', default: '5' },
    old: { type: 'string' },
    'large-mib': { type: 'string', default: '256' },
    only: { type: 'string', default: 'micro,sdk,e2e' },
  },
});
const reps = Number(args.reps);
// The SDK's notice about future Node versions is not a benchmark figure.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const only = new Set((args.only ?? '').split(','));
const NEW_CLI = fileURLToPath(new URL('../bin/holdfast.js', import.meta.url));
const fmt = (n: number, d = 0): string => n.toFixed(d);
const med = (xs: number[]): number => stats(xs).median;
const range = (xs: number[], d = 0): string => {
  const s = stats(xs);
  return `${fmt(s.median, d)} (${fmt(s.min, d)}–${fmt(s.max, d)})`;
};

console.log(`checksum cost: node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${reps} repetitions, medians (min–max)`);

// ---- 1. hash throughput -----------------------------------------------------

if (only.has('micro')) {
  const buf = Buffer.alloc(16 * MiB);
  randomFillSync(buf);
  const rounds = 8; // 128 MiB per sample
  const algos: [string, () => void][] = [
    ['SHA-256', () => createHash('sha256').update(buf).digest()],
    ['MD5', () => createHash('md5').update(buf).digest()],
    ['CRC32 (zlib)', () => crc32(buf)],
  ];
  console.log('\n1. hash throughput, one core (MiB/s)');
  for (const [name, fn] of algos) {
    fn();
    const rates: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t0 = process.cpuUsage();
      for (let i = 0; i < rounds; i++) fn();
      const d = process.cpuUsage(t0);
      rates.push((rounds * 16) / ((d.user + d.system) / 1e6));
    }
    console.log(`   ${name.padEnd(14)} ${range(rates)} MiB/s  = ${fmt(1024 / med(rates) * 1000)} ms of CPU per GiB`);
  }
}

// ---- 2. the SDK's hashing of a part ------------------------------------------

if (only.has('sdk')) {
  const work = mkdtempSync(join(tmpdir(), 'holdfast-checksum-sdk-'));
  const server = await S3Server.start(join(work, 's3'));
  try {
    await server.createBucket('sdk');
    const part = Buffer.alloc(16 * MiB);
    randomFillSync(part);
    const partsPerSample = 8;
    const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
    const client = (calc: 'WHEN_REQUIRED' | 'WHEN_SUPPORTED', payloadHash: boolean): S3Client => {
      const c = new S3Client({ endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true, credentials, maxAttempts: 1, requestChecksumCalculation: calc, responseChecksumValidation: 'WHEN_REQUIRED' });
      if (payloadHash) {
        // As src/backends/s3.ts: the part's SHA-256 is also the signed payload hash.
        c.middlewareStack.add(
          (next) => async (a) => {
            const sum = (a.input as { ChecksumSHA256?: string }).ChecksumSHA256;
            const headers = (a.request as { headers?: Record<string, string> }).headers;
            if (sum !== undefined && headers !== undefined) headers['x-amz-content-sha256'] = Buffer.from(sum, 'base64').toString('hex');
            return next(a);
          },
          { step: 'build', name: 'benchPayloadSha256' },
        );
      }
      return c;
    };
    const variants: { name: string; client: S3Client; ours: boolean }[] = [
      { name: 'no checksum: the SDK hashes the part to sign it (before)', client: client('WHEN_REQUIRED', false), ours: false },
      { name: 'ChecksumSHA256, and the SDK hashes again to sign', client: client('WHEN_REQUIRED', false), ours: true },
      { name: 'ChecksumSHA256, also the signed payload hash (chosen)', client: client('WHEN_REQUIRED', true), ours: true },
      { name: 'SDK default since 3.729: CRC32 header + signing hash', client: client('WHEN_SUPPORTED', false), ours: false },
    ];
    const cpuPerGiB = new Map<string, number[]>(variants.map((v) => [v.name, []]));
    for (let r = 0; r < reps; r++) {
      for (const v of variants) {
        const { UploadId } = await v.client.send(new CreateMultipartUploadCommand({ Bucket: 'sdk', Key: `k${r}`, ...(v.ours ? { ChecksumAlgorithm: 'SHA256' as const } : {}) }));
        const t0 = process.cpuUsage();
        for (let i = 1; i <= partsPerSample; i++) {
          const ChecksumSHA256 = v.ours ? createHash('sha256').update(part).digest('base64') : undefined;
          await v.client.send(new UploadPartCommand({ Bucket: 'sdk', Key: `k${r}`, UploadId, PartNumber: i, Body: part, ContentLength: part.length, ChecksumSHA256 }));
        }
        const d = process.cpuUsage(t0);
        cpuPerGiB.get(v.name)!.push(((d.user + d.system) / 1000) * (1024 / (partsPerSample * 16)));
      }
    }
    const base = med(cpuPerGiB.get(variants[0]!.name)!);
    console.log(`\n2. UploadPart of ${partsPerSample} × 16 MiB to s3rver (child process), this process's CPU per GiB sent (ms) and ratio to "before"`);
    for (const v of variants) {
      const xs = cpuPerGiB.get(v.name)!;
      console.log(`   ${v.name.padEnd(58)} ${range(xs).padStart(20)}   × ${fmt(med(xs) / base, 2)}`);
      v.client.destroy();
    }
  } finally {
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

// ---- 3. end to end, before and after ------------------------------------------

if (only.has('e2e')) {
  if (args.old === undefined) {
    console.log('\n3. end to end: skipped (give --old /path/to/a/built/checkout of the commit before the change)');
  } else {
    checkGnuTime();
    const OLD_CLI = join(args.old, 'dist', 'bin', 'holdfast.js');
    const work = mkdtempSync(join(tmpdir(), 'holdfast-checksum-e2e-'));
    const s3 = await S3Server.start(join(work, 's3'));
    const azurite = await startAzurite();
    try {
      const largeMiB = Number(args['large-mib']);
      const trees: { name: string; dir: string; bytes: number; extra: string[] }[] = [];
      const mk = (name: string, files: [string, number][], extra: string[]): void => {
        const dir = join(work, 'src', name);
        mkdirSync(dir, { recursive: true });
        let bytes = 0;
        for (const [f, size] of files) {
          const b = Buffer.alloc(size);
          randomFillSync(b);
          writeFileSync(join(dir, f), b);
          bytes += size;
        }
        trees.push({ name, dir, bytes, extra });
      };
      mk(`one ${largeMiB} MiB file, 16 MiB parts`, [['large.bin', largeMiB * MiB]], []);
      mk('one 48 MiB file, a single put', [['medium.bin', 48 * MiB]], []);
      mk('500 files of 64 KiB', Array.from({ length: 500 }, (_, i): [string, number] => [`f${i}.bin`, 64 * 1024]), []);
      const dests = [
        { name: 's3', url: (tag: string) => `s3://cost/${tag}`, env: { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL: s3.endpoint } },
        { name: 'azure', url: (tag: string) => `azure://cost/${tag}`, env: { AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString } },
      ];
      await s3.createBucket('cost');
      console.log(`\n3. holdfast push, CPU of the holdfast process (ms, GNU time user+sys); before = ${args.old}`);
      console.log(`   ${'destination / tree'.padEnd(44)} ${'before'.padStart(22)} ${'after'.padStart(22)}   after/before   extra CPU per GiB`);
      let n = 0;
      for (const d of dests) {
        for (const t of trees) {
          const cpu = { before: [] as number[], after: [] as number[] };
          for (let r = 0; r < reps; r++) {
            const order: ('before' | 'after')[] = r % 2 === 0 ? ['before', 'after'] : ['after', 'before'];
            for (const which of order) {
              const tag = `r${n++}`;
              const res = await runTimed(process.execPath, [which === 'before' ? OLD_CLI : NEW_CLI, 'push', t.dir, d.url(tag), '--state', join(work, 'state', tag), '--quiet', ...t.extra], {
                env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...d.env },
                timeoutMs: 600_000,
                timeFile: join(work, 'time.txt'),
              });
              if (res.exitCode !== 0) throw new Error(`${which} ${d.name} ${t.name}: exit ${res.exitCode}\n${res.stderr}`);
              cpu[which].push(res.cpuMs);
            }
          }
          const extraPerGiB = ((med(cpu.after) - med(cpu.before)) / t.bytes) * 1024 * MiB;
          console.log(
            `   ${`${d.name}: ${t.name}`.padEnd(44)} ${range(cpu.before).padStart(22)} ${range(cpu.after).padStart(22)}   × ${fmt(med(cpu.after) / med(cpu.before), 2).padEnd(10)}   ${fmt(extraPerGiB)} ms`,
          );
        }
      }
    } finally {
      await azurite.stop();
      await s3.stop();
      rmSync(work, { recursive: true, force: true });
    }
  }
}
