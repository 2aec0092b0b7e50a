// Fan-out: one source to two destinations. What one `holdfast push <src> <a> <b>`
// costs against the ways a user gets the same result today: two separate
// Holdfast pushes, and two `rclone copy` runs (rclone has no fan-out). Both
// destinations are prefixes of one bucket on s3rver (started here, in a child
// process), so the figures compare the tools, not two servers.
//
// Scenarios, each measured --runs times (fresh ledger and bucket prefixes per run):
//   first   — the first copy of a tree of small files (--files × --file-kib)
//   no-op   — the same again, nothing changed
//
//   npm run build && node dist/bench/fan-out.js [--files 2000] [--file-kib 16] [--runs 3]
//
// Prints medians (wall seconds, CPU seconds, peak RSS) and the ratios
// fan-out / two Holdfast pushes and fan-out / two rclone runs.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkGnuTime, runTimed, stats, type Sample } from './measure.js';
import { S3Server } from './s3-server.js';
import { makeSmallTree } from './trees.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const FILES = opt('files', 2000);
const FILE_KIB = opt('file-kib', 16);
const RUNS = opt('runs', 3);
const CLI = fileURLToPath(new URL('../bin/holdfast.js', import.meta.url));
const BUCKET = 'fanout-bench';

function haveRclone(): boolean {
  return spawnSync('rclone', ['version'], { stdio: 'ignore' }).status === 0;
}

/** Runs the commands one after the other; the sample is their sum (wall, CPU) and the largest RSS. */
async function sequence(cmds: { cmd: string; args: string[]; env: NodeJS.ProcessEnv }[], tmp: string): Promise<Sample> {
  const total: Sample = { wallMs: 0, userMs: 0, sysMs: 0, cpuMs: 0, maxRssKiB: 0, exitCode: 0 };
  for (const c of cmds) {
    const r = await runTimed(c.cmd, c.args, { env: c.env, timeoutMs: 600_000, timeFile: join(tmp, 'time.txt') });
    if (r.exitCode !== 0) throw new Error(`${c.cmd} ${c.args.join(' ')} exited ${r.exitCode}:\n${r.stderr.slice(-2000)}`);
    total.wallMs += r.wallMs;
    total.userMs += r.userMs;
    total.sysMs += r.sysMs;
    total.cpuMs += r.cpuMs;
    total.maxRssKiB = Math.max(total.maxRssKiB, r.maxRssKiB);
  }
  return total;
}

async function main(): Promise<void> {
  checkGnuTime();
  const tmp = mkdtempSync(join(tmpdir(), 'holdfast-fanout-bench-'));
  const s3 = await S3Server.start(join(tmp, 's3'));
  try {
    await s3.createBucket(BUCKET);
    const src = join(tmp, 'src');
    await makeSmallTree(src, { files: FILES, dirs: 20, fileSize: FILE_KIB * 1024 });
    const env: NodeJS.ProcessEnv = { ...process.env, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };
    const rcloneConf = join(tmp, 'rclone.conf');
    writeFileSync(rcloneConf, `[s3rver]\ntype = s3\nprovider = Other\naccess_key_id = S3RVER\nsecret_access_key = S3RVER\nendpoint = ${s3.endpoint}\nregion = us-east-1\n`);
    // rclone refuses this machine's AWS_CA_BUNDLE; it is unset for rclone only.
    const rcloneEnv: NodeJS.ProcessEnv = { ...env, RCLONE_CONFIG: rcloneConf };
    delete rcloneEnv.AWS_CA_BUNDLE;
    const rclone = haveRclone();

    const variants: Record<string, (run: number) => { first: Parameters<typeof sequence>[0] }> = {
      'holdfast fan-out': (run) => ({
        first: [{ cmd: process.execPath, args: [CLI, 'push', src, `s3://${BUCKET}/f${run}a`, `s3://${BUCKET}/f${run}b`, '--s3-endpoint', s3.endpoint, '--state', join(tmp, `state-f${run}`), '--quiet'], env }],
      }),
      'holdfast x2': (run) => ({
        first: ['a', 'b'].map((d) => ({ cmd: process.execPath, args: [CLI, 'push', src, `s3://${BUCKET}/h${run}${d}`, '--s3-endpoint', s3.endpoint, '--state', join(tmp, `state-h${run}`), '--quiet'], env })),
      }),
      ...(rclone
        ? {
            'rclone x2': (run: number) => ({
              first: ['a', 'b'].map((d) => ({ cmd: 'rclone', args: ['copy', src, `s3rver:${BUCKET}/r${run}${d}`, '--transfers', '16', '--checkers', '16'], env: rcloneEnv })),
            }),
          }
        : {}),
    };

    const results: Record<string, { first: Sample[]; noop: Sample[] }> = {};
    for (const name of Object.keys(variants)) results[name] = { first: [], noop: [] };
    for (let run = 0; run < RUNS; run++) {
      // Interleaved, so drift of the machine's speed hits every variant alike.
      for (const [name, make] of Object.entries(variants)) {
        const { first } = make(run);
        results[name]!.first.push(await sequence(first, tmp));
        results[name]!.noop.push(await sequence(first, tmp));
        process.stderr.write(`run ${run + 1}/${RUNS} ${name}: first ${(results[name]!.first.at(-1)!.wallMs / 1000).toFixed(2)} s, no-op ${(results[name]!.noop.at(-1)!.wallMs / 1000).toFixed(2)} s\n`);
      }
    }

    const med = (xs: Sample[], f: (s: Sample) => number): number => stats(xs.map(f)).median;
    console.log(`fan-out to 2 destinations (prefixes of one s3rver bucket): ${FILES} files × ${FILE_KIB} KiB, medians of ${RUNS} runs${rclone ? '' : ' (rclone not installed: its rows are missing)'}`);
    console.log('variant            scenario   wall s   cpu s   peak RSS MiB');
    for (const [name, r] of Object.entries(results)) {
      for (const [scenario, xs] of [
        ['first', r.first],
        ['no-op', r.noop],
      ] as const) {
        console.log(
          `${name.padEnd(18)} ${scenario.padEnd(9)} ${(med(xs, (s) => s.wallMs) / 1000).toFixed(2).padStart(7)} ${(med(xs, (s) => s.cpuMs) / 1000).toFixed(2).padStart(7)} ${(med(xs, (s) => s.maxRssKiB) / 1024).toFixed(0).padStart(14)}`,
        );
      }
    }
    const fan = results['holdfast fan-out']!;
    for (const other of ['holdfast x2', 'rclone x2']) {
      const o = results[other];
      if (!o) continue;
      for (const [scenario, a, b] of [
        ['first', fan.first, o.first],
        ['no-op', fan.noop, o.noop],
      ] as const) {
        const ratios = a.map((s, i) => s.wallMs / b[i]!.wallMs);
        const r = stats(ratios);
        console.log(`ratio fan-out / ${other}, ${scenario}: wall ${r.median.toFixed(2)} (min ${r.min.toFixed(2)}, max ${r.max.toFixed(2)})`);
      }
    }
  } finally {
    await s3.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
