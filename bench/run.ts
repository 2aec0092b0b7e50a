// Benchmark: Holdfast vs rclone, measured in the same run, on an S3 server
// (s3rver in a child process) and on a local directory. Each tool runs as a
// child process under GNU time; the table shows medians (min–max) of wall time,
// CPU time and peak RSS, and the holdfast/rclone wall-time ratio against the
// targets. Results also go to bench/results/latest.json. See docs/benchmarks.md.
//
//   npm run bench -- [--reps 3] [--only s3|local] [--scenario a,b,c,d] [--keep]
//                    [--files 5000] [--large-mib 256] [--timeout 300] [--max-minutes 30]

import { S3Server } from './s3-server.js';
import { execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { checkGnuTime, killGroup, runTimed, runningChildren, stats } from './measure.js';
import type { Sample, Stats } from './measure.js';
import { countFiles, differing, makeLargeFile, makeSmallTree, mutate } from './trees.js';
import type { SmallTreeSpec } from './trees.js';

type Kind = 's3' | 'local';
type ScenarioId = 'a' | 'b' | 'c' | 'd';
type ToolId = 'holdfast' | 'holdfast-nofsync' | 'rclone';

interface Scenario {
  readonly id: ScenarioId;
  readonly title: string;
  /** Holdfast's wall time must be at most this multiple of rclone's. */
  readonly target: number;
}

const SCENARIOS: readonly Scenario[] = [
  { id: 'a', title: 'first sync, small files', target: 1.0 },
  { id: 'b', title: 'no-op re-run', target: 0.2 },
  { id: 'c', title: 're-run, 1% changed', target: 0.3 },
  { id: 'd', title: 'one large file, first sync', target: 1.2 },
];

const TOOLS: Record<Kind, readonly ToolId[]> = {
  s3: ['holdfast', 'rclone'],
  local: ['holdfast', 'holdfast-nofsync', 'rclone'],
};

const TOOL_LABEL: Record<ToolId, string> = {
  holdfast: 'holdfast',
  'holdfast-nofsync': 'holdfast --no-fsync',
  rclone: 'rclone',
};

interface MeasuredSample extends Sample {
  rep: number;
  valid: boolean;
  problems: string[];
}

interface ResultRow {
  kind: Kind;
  scenario: ScenarioId;
  tool: ToolId;
  samples: MeasuredSample[];
  wallMs: Stats;
  cpuMs: Stats;
  maxRssKiB: Stats;
  s3rverCpuMs?: Stats;
}

interface Ratio {
  kind: Kind;
  scenario: ScenarioId;
  tool: ToolId;
  ratio: number;
  target: number;
  /** Only the default holdfast (fsync on) is judged against the target. */
  judged: boolean;
  met: boolean;
}

const here = fileURLToPath(new URL('.', import.meta.url));
// The bundled CLI, as installed users run it (npm run build makes it).
const CLI = join(here, '..', 'bin', 'holdfast.js');
const RESULTS_DIR = join(here, '..', '..', 'bench', 'results');

// ---------------------------------------------------------------- options

const { values: opt } = parseArgs({
  options: {
    reps: { type: 'string', default: '3' },
    only: { type: 'string' },
    scenario: { type: 'string', default: 'a,b,c,d' },
    keep: { type: 'boolean', default: false },
    files: { type: 'string', default: '5000' },
    'large-mib': { type: 'string', default: '256' },
    timeout: { type: 'string', default: '300' },
    'max-minutes': { type: 'string', default: '30' },
  },
});
const reps = Number(opt.reps);
const kinds: Kind[] = opt.only === undefined ? ['s3', 'local'] : [opt.only as Kind];
const scenarioIds = opt.scenario.split(',').map((s) => s.trim()) as ScenarioId[];
const fileCount = Number(opt.files);
const tree: SmallTreeSpec = { files: fileCount, dirs: Math.max(1, Math.round(fileCount / 100)), fileSize: 4096 };
const changedCount = Math.max(1, Math.round(fileCount / 100));
const largeSize = Number(opt['large-mib']) * 1024 * 1024;
const timeoutMs = Number(opt.timeout) * 1000;
const deadline = Date.now() + Number(opt['max-minutes']) * 60_000;

function usage(msg: string): never {
  console.error(`bench: ${msg}`);
  console.error('usage: node dist/bench/run.js [--reps N] [--only s3|local] [--scenario a,b,c,d] [--keep] [--files N] [--large-mib N] [--timeout S] [--max-minutes M]');
  process.exit(1);
}
if (!Number.isInteger(reps) || reps < 1) usage('--reps must be a positive integer');
if (!kinds.every((k) => k === 's3' || k === 'local')) usage('--only must be s3 or local');
if (!scenarioIds.every((s) => SCENARIOS.some((x) => x.id === s))) usage('--scenario takes a comma-separated subset of a,b,c,d');
if (!Number.isInteger(fileCount) || fileCount < 100) usage('--files must be an integer ≥ 100');

const scenarioTitle = (s: Scenario): string =>
  s.id === 'd' ? `${s.title} (${largeSize / 1024 / 1024} MiB)` : s.id === 'c' ? `${s.title} (${changedCount} of ${fileCount})` : `${s.title} (${fileCount} × 4 KiB)`;


// ---------------------------------------------------------------- tools

interface Destination {
  /** What holdfast gets: file:///… or s3://bucket/prefix. */
  holdfastUrl: string;
  /** What rclone gets: a path or s3:bucket/prefix. */
  rcloneTarget: string;
  /** The file holding an object's bytes (for checks). */
  objectPath(key: string): string;
  /** Directory whose files are the objects (for counting), and the file-name suffix of an object. */
  countRoot: string;
  countSuffix: string;
  /** Removes the destination's data (local: the directory; s3: the bucket's directory in s3rver's store). */
  dispose(): Promise<void>;
}

async function makeDestination(kind: Kind, name: string, server: S3Server | undefined): Promise<Destination> {
  if (kind === 'local') {
    const dir = join(work, 'dest', name);
    return {
      holdfastUrl: `file://${dir}`,
      rcloneTarget: dir,
      objectPath: (k) => join(dir, k),
      countRoot: dir,
      countSuffix: '',
      dispose: () => rm(dir, { recursive: true, force: true }),
    };
  }
  const bucket = `bench-${name}`.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 63);
  await server!.createBucket(bucket);
  const root = join(server!.dir, bucket, 'data');
  return {
    holdfastUrl: `s3://${bucket}/data`,
    rcloneTarget: `s3:${bucket}/data`,
    objectPath: (k) => join(root, `${k}._S3rver_object`),
    countRoot: root,
    countSuffix: '._S3rver_object',
    // s3rver keeps objects as files; once no tool uses the bucket, dropping them only saves disk.
    dispose: () => rm(root, { recursive: true, force: true }),
  };
}

function holdfastEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (/^AWS_(PROFILE|ENDPOINT_URL)/.test(k) || k.startsWith('HOLDFAST_')) delete env[k];
  return { ...env, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
}

/** rclone fails when AWS_CA_BUNDLE is set: give it a clean environment, configured by variables only. */
function rcloneEnv(endpoint: string | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('AWS_') || k.startsWith('RCLONE_') || /CA_BUNDLE|^SSL_CERT_/.test(k)) delete env[k];
  // An empty config path: rclone runs with an in-memory config (no file read or written).
  env.RCLONE_CONFIG = '';
  if (endpoint !== undefined) {
    Object.assign(env, {
      RCLONE_CONFIG_S3_TYPE: 's3',
      RCLONE_CONFIG_S3_PROVIDER: 'Other',
      RCLONE_CONFIG_S3_ENDPOINT: endpoint,
      RCLONE_CONFIG_S3_ACCESS_KEY_ID: 'S3RVER',
      RCLONE_CONFIG_S3_SECRET_ACCESS_KEY: 'S3RVER',
      RCLONE_CONFIG_S3_FORCE_PATH_STYLE: 'true',
    });
  }
  return env;
}

function commandFor(tool: ToolId, src: string, dest: Destination, stateDir: string, server: S3Server | undefined): { cmd: string; args: string[]; env: NodeJS.ProcessEnv } {
  if (tool === 'rclone') return { cmd: 'rclone', args: ['copy', src, dest.rcloneTarget], env: rcloneEnv(server?.endpoint) };
  const args = [CLI, 'push', src, dest.holdfastUrl, '--state', stateDir, '--json', '--quiet'];
  if (tool === 'holdfast-nofsync') args.push('--no-fsync');
  if (server) args.push('--s3-endpoint', server.endpoint);
  return { cmd: process.execPath, args, env: holdfastEnv() };
}

interface Expect {
  /** Files holdfast must report as completed (uploaded) in this run. */
  uploaded: number;
  /** Files holdfast must report as skipped, if checked. */
  skipped?: number;
}

/** Runs one tool once (timed or not) and checks that it did what it should. */
async function runTool(tool: ToolId, src: string, dest: Destination, stateDir: string, server: S3Server | undefined, expect: Expect, rep: number): Promise<MeasuredSample> {
  const { cmd, args, env } = commandFor(tool, src, dest, stateDir, server);
  const cpuBefore = server?.cpuMs();
  const r = await runTimed(cmd, args, { env, timeoutMs, timeFile: join(work, 'time.out') });
  const s3rverCpuMs = server && cpuBefore !== undefined ? server.cpuMs() - cpuBefore : undefined;
  const problems: string[] = [];
  if (r.timedOut) problems.push(`timed out after ${timeoutMs / 1000} s`);
  if (r.exitCode !== 0) problems.push(`exit code ${r.exitCode}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  if (tool !== 'rclone' && r.exitCode === 0) {
    try {
      const report = JSON.parse(r.stdout) as { status: string; uploads: { completed: number; skipped: number } };
      if (report.status !== 'completed') problems.push(`status ${report.status}`);
      if (report.uploads.completed !== expect.uploaded) problems.push(`uploaded ${report.uploads.completed}, expected ${expect.uploaded}`);
      if (expect.skipped !== undefined && report.uploads.skipped !== expect.skipped) problems.push(`skipped ${report.uploads.skipped}, expected ${expect.skipped}`);
    } catch {
      problems.push(`unreadable JSON report: ${r.stdout.slice(0, 200)}`);
    }
  }
  const sample: MeasuredSample = {
    rep,
    wallMs: r.wallMs,
    userMs: r.userMs,
    sysMs: r.sysMs,
    cpuMs: r.cpuMs,
    maxRssKiB: r.maxRssKiB,
    exitCode: r.exitCode,
    valid: problems.length === 0,
    problems,
    ...(s3rverCpuMs !== undefined ? { s3rverCpuMs } : {}),
  };
  return sample;
}

// ---------------------------------------------------------------- scenarios

let work = '';
const rows = new Map<string, ResultRow>();
let skippedForTime = 0;

function record(kind: Kind, scenario: ScenarioId, tool: ToolId, sample: MeasuredSample): void {
  const id = `${kind}/${scenario}/${tool}`;
  let row = rows.get(id);
  if (!row) {
    row = { kind, scenario, tool, samples: [], wallMs: stats([]), cpuMs: stats([]), maxRssKiB: stats([]) };
    rows.set(id, row);
  }
  row.samples.push(sample);
  const ok = row.samples.filter((s) => s.valid);
  row.wallMs = stats(ok.map((s) => s.wallMs));
  row.cpuMs = stats(ok.map((s) => s.cpuMs));
  row.maxRssKiB = stats(ok.map((s) => s.maxRssKiB));
  if (kind === 's3') row.s3rverCpuMs = stats(ok.map((s) => s.s3rverCpuMs ?? NaN));
  const extra = sample.s3rverCpuMs !== undefined ? `, s3rver CPU ${(sample.s3rverCpuMs / 1000).toFixed(2)} s` : '';
  const bad = sample.valid ? '' : `  INVALID: ${sample.problems.join('; ')}`;
  log(
    `  ${kind} (${scenario}) rep ${sample.rep} ${TOOL_LABEL[tool].padEnd(20)} wall ${(sample.wallMs / 1000).toFixed(2)} s, CPU ${(sample.cpuMs / 1000).toFixed(2)} s, RSS ${(sample.maxRssKiB / 1024).toFixed(0)} MiB${extra}${bad}`,
  );
}

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

/** Tools in a different order each repetition, so neither always runs first (warm caches, background flushes). */
function order(tools: readonly ToolId[], rep: number): ToolId[] {
  const k = (rep - 1) % tools.length;
  return [...tools.slice(k), ...tools.slice(0, k)];
}

function outOfTime(): boolean {
  if (Date.now() < deadline) return false;
  skippedForTime++;
  return true;
}

let smallTree: { root: string; keys: string[] } | undefined;
async function sharedSmallTree(): Promise<{ root: string; keys: string[] }> {
  if (!smallTree) {
    const root = join(work, 'src', 'small');
    log(`generating ${tree.files} files of ${tree.fileSize} B in ${tree.dirs} directories…`);
    smallTree = { root, keys: await makeSmallTree(root, tree) };
  }
  return smallTree;
}

let largeTree: string | undefined;
async function sharedLargeTree(): Promise<string> {
  if (!largeTree) {
    largeTree = join(work, 'src', 'large');
    await mkdir(largeTree, { recursive: true });
    log(`generating one file of ${largeSize / 1024 / 1024} MiB…`);
    await makeLargeFile(join(largeTree, 'large.bin'), largeSize);
  }
  return largeTree;
}

async function checkCount(dest: Destination, expected: number, sample: MeasuredSample): Promise<void> {
  const n = await countFiles(dest.countRoot, dest.countSuffix).catch(() => 0);
  if (n !== expected) {
    sample.valid = false;
    sample.problems.push(`destination holds ${n} objects, expected ${expected}`);
  }
}

async function runScenario(kind: Kind, scenario: Scenario, server: S3Server | undefined): Promise<void> {
  const tools = TOOLS[kind];
  const sid = scenario.id;
  const state = (tool: ToolId, tag: string): string => join(work, 'state', `${kind}-${sid}-${tool}-${tag}`);

  if (sid === 'a' || sid === 'd') {
    const src = sid === 'a' ? (await sharedSmallTree()).root : await sharedLargeTree();
    const expected = sid === 'a' ? tree.files : 1;
    for (let rep = 1; rep <= reps; rep++) {
      for (const tool of order(tools, rep)) {
        if (outOfTime()) return;
        const dest = await makeDestination(kind, `${tool}-${sid}${rep}`, server);
        const sample = await runTool(tool, src, dest, state(tool, String(rep)), server, { uploaded: expected }, rep);
        await checkCount(dest, expected, sample);
        if (sid === 'd' && sample.valid) {
          const size = (await stat(dest.objectPath('large.bin'))).size;
          if (size !== largeSize) {
            sample.valid = false;
            sample.problems.push(`object has ${size} bytes, expected ${largeSize}`);
          }
        }
        record(kind, sid, tool, sample);
        await dest.dispose();
        await rm(state(tool, String(rep)), { recursive: true, force: true });
      }
    }
    return;
  }

  // (b) and (c): each tool's first sync is done beforehand, untimed, into its own destination.
  const src = sid === 'b' ? (await sharedSmallTree()).root : join(work, 'src', `changing-${kind}`);
  const keys = sid === 'b' ? (await sharedSmallTree()).keys : await makeSmallTree(src, tree);
  const dests = new Map<ToolId, Destination>();
  for (const tool of tools) {
    if (outOfTime()) return;
    const dest = await makeDestination(kind, `${tool}-${sid}`, server);
    dests.set(tool, dest);
    log(`  ${kind} (${sid}) first sync (untimed) with ${TOOL_LABEL[tool]}…`);
    const first = await runTool(tool, src, dest, state(tool, 'base'), server, { uploaded: tree.files }, 0);
    await checkCount(dest, tree.files, first);
    if (!first.valid) throw new Error(`first sync by ${tool} failed: ${first.problems.join('; ')}`);
  }
  for (let rep = 1; rep <= reps; rep++) {
    const changed = sid === 'c' ? await mutate(src, keys, changedCount, tree.fileSize) : [];
    for (const tool of order(tools, rep)) {
      if (outOfTime()) return;
      const dest = dests.get(tool)!;
      const expect: Expect = sid === 'b' ? { uploaded: 0, skipped: tree.files } : { uploaded: changed.length };
      const sample = await runTool(tool, src, dest, state(tool, 'base'), server, expect, rep);
      if (sid === 'c') {
        const bad = await differing(src, changed, (k) => dest.objectPath(k));
        if (bad.length > 0) {
          sample.valid = false;
          sample.problems.push(`${bad.length} changed file(s) not updated on the destination, e.g. ${bad[0]}`);
        }
      }
      record(kind, sid, tool, sample);
    }
  }
  for (const dest of dests.values()) await dest.dispose();
}

// ---------------------------------------------------------------- report

const fmtS = (ms: number): string => (Number.isFinite(ms) ? (ms / 1000).toFixed(2) : '—');

function ratios(): Ratio[] {
  const out: Ratio[] = [];
  for (const kind of kinds) {
    for (const s of SCENARIOS) {
      const rc = rows.get(`${kind}/${s.id}/rclone`);
      for (const tool of TOOLS[kind]) {
        if (tool === 'rclone') continue;
        const hf = rows.get(`${kind}/${s.id}/${tool}`);
        if (!hf || !rc) continue;
        const ratio = hf.wallMs.median / rc.wallMs.median;
        const judged = tool === 'holdfast';
        out.push({ kind, scenario: s.id, tool, ratio, target: s.target, judged, met: ratio <= s.target });
      }
    }
  }
  return out;
}

function table(rs: readonly Ratio[]): string {
  const lines: string[] = [];
  const header = ['scenario', 'tool', 'wall s: median (min–max)', 'CPU s', 'peak RSS MiB', 's3rver CPU s (busy)'];
  const widths = [44, 20, 26, 7, 13, 20];
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join(' ')
      .trimEnd();
  for (const kind of kinds) {
    lines.push('', kind === 's3' ? '== destination: S3 (s3rver on 127.0.0.1, separate process) ==' : '== destination: local directory ==', line(header));
    for (const s of SCENARIOS) {
      let first = true;
      for (const tool of TOOLS[kind]) {
        const r = rows.get(`${kind}/${s.id}/${tool}`);
        if (!r) continue;
        const busy =
          r.s3rverCpuMs !== undefined && Number.isFinite(r.s3rverCpuMs.median) ? `${fmtS(r.s3rverCpuMs.median)} (${((100 * r.s3rverCpuMs.median) / r.wallMs.median).toFixed(0)}%)` : '';
        const n = r.samples.filter((x) => x.valid).length;
        const invalid = n < r.samples.length ? ` [${r.samples.length - n} invalid]` : '';
        lines.push(
          line([
            first ? `(${s.id}) ${scenarioTitle(s)}` : '',
            TOOL_LABEL[tool],
            `${fmtS(r.wallMs.median)} (${fmtS(r.wallMs.min)}–${fmtS(r.wallMs.max)})${invalid}`,
            fmtS(r.cpuMs.median),
            Number.isFinite(r.maxRssKiB.median) ? (r.maxRssKiB.median / 1024).toFixed(0) : '—',
            busy,
          ]),
        );
        first = false;
      }
      for (const q of rs.filter((x) => x.kind === kind && x.scenario === s.id)) {
        const verdict = q.judged ? (q.met ? 'met' : 'MISSED') : 'info only';
        lines.push(line(['', q.tool === 'holdfast' ? 'ratio holdfast/rclone' : 'ratio --no-fsync/rc', `${q.ratio.toFixed(2)}×   target ≤ ${q.target.toFixed(1)}×: ${verdict}`]));
      }
    }
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------- main

function toolVersion(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', env: rcloneEnv(undefined) }).trim();
  } catch {
    return 'unknown';
  }
}

function cleanupChildren(): void {
  for (const pid of runningChildren) killGroup(pid);
  for (const pid of S3Server.pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

async function main(): Promise<void> {
  checkGnuTime();
  const rcloneVersion = toolVersion('rclone', ['version']);
  if (rcloneVersion === 'unknown') throw new Error('rclone not found on PATH');
  work = await mkdtemp(join(tmpdir(), 'holdfast-bench-'));
  const startedAt = new Date();
  const loadAtStart = loadavg()[0];
  if ((loadAtStart ?? 0) > 0.5) log(`bench: warning: load average ${loadAtStart?.toFixed(2)} before starting; other work on the machine skews the figures`);
  log(`bench: work dir ${work}; ${reps} repetition(s); ${kinds.join(', ')}; scenarios ${scenarioIds.join(',')}`);
  log(`       ${rcloneVersion.split('\n')[0]}, node ${process.version}, ${availableParallelism()} CPU(s)`);
  try {
    for (const kind of kinds) {
      for (const s of SCENARIOS.filter((x) => scenarioIds.includes(x.id))) {
        log(`${kind}: (${s.id}) ${scenarioTitle(s)}`);
        const server = kind === 's3' ? await S3Server.start(join(work, 's3rver', s.id)) : undefined;
        try {
          await runScenario(kind, s, server);
        } finally {
          await server?.stop();
          if (server) await rm(server.dir, { recursive: true, force: true });
        }
      }
    }
  } finally {
    cleanupChildren();
    if (!opt.keep) await rm(work, { recursive: true, force: true });
  }

  const rs = ratios();
  const out = table(rs);
  const nproc = toolVersion('nproc', []);
  console.log(`\nHoldfast vs rclone — ${startedAt.toISOString()} — ${nproc} CPU(s), ${cpus()[0]?.model ?? '?'}, node ${process.version}, ${rcloneVersion.split('\n')[0]}`);
  console.log(`medians of ${reps} run(s); wall time by the orchestrator, CPU (user+sys) and peak RSS by GNU time; s3rver CPU from /proc (busy = its CPU / tool wall time)`);
  console.log(out);
  if (skippedForTime > 0) console.log(`\nWARNING: ${skippedForTime} run(s) skipped: --max-minutes reached`);

  let commit = 'unknown';
  let srcDirty: boolean | null = null;
  try {
    commit = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8', cwd: here }).trim();
    srcDirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { encoding: 'utf8', cwd: join(here, '..', '..') }).trim() !== '';
  } catch {
    // not a checkout
  }
  const result = {
    date: startedAt.toISOString(),
    durationS: Math.round((Date.now() - startedAt.getTime()) / 1000),
    machine: { nproc: Number(nproc), cpuModel: cpus()[0]?.model ?? null, memoryMiB: Math.round(totalmem() / 2 ** 20), kernel: release() },
    node: process.version,
    rclone: rcloneVersion.split('\n')[0],
    rcloneDetails: rcloneVersion,
    holdfast: { commit, srcDirty },
    // Other processes on the machine disturb the figures: 1-minute load average before and after.
    loadAverage: { start: loadAtStart, end: loadavg()[0] },
    config: { reps, kinds, scenarios: scenarioIds, files: tree.files, dirs: tree.dirs, fileSize: tree.fileSize, changed: changedCount, largeBytes: largeSize, timeoutS: timeoutMs / 1000 },
    targets: Object.fromEntries(SCENARIOS.map((s) => [s.id, s.target])),
    results: [...rows.values()],
    ratios: rs,
    skippedForTime,
  };
  await mkdir(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, 'latest.json');
  await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
  log(`\nresults written to ${file}`);
  const invalid = [...rows.values()].some((r) => r.samples.some((s) => !s.valid));
  if (invalid) {
    log('some runs were invalid (see above): their figures are left out of the medians');
    process.exitCode = 2;
  }
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    log(`\nbench: ${sig}: stopping children`);
    cleanupChildren();
    if (work && !opt.keep) void rm(work, { recursive: true, force: true }).finally(() => process.exit(130));
    else process.exit(130);
  });
}

main().catch((e: unknown) => {
  console.error(e);
  cleanupChildren();
  process.exit(1);
});
