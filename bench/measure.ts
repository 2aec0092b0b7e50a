// Benchmark measurement helpers: run one child process under GNU time (wall,
// user+sys CPU, peak RSS), read another process's CPU time from /proc, and
// summarise repeated samples (median, min, max).

import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';

export const GNU_TIME = '/usr/bin/time';

/** One measured process. */
export interface Sample {
  /** Wall time, measured by the orchestrator around spawn → exit (ms). */
  wallMs: number;
  /** User and system CPU of the child and its waited-for children (ms, from GNU time). */
  userMs: number;
  sysMs: number;
  cpuMs: number;
  /** Peak resident set size (KiB, GNU time %M). */
  maxRssKiB: number;
  exitCode: number;
  /** CPU the s3rver process used during this run (ms), S3 scenarios only. */
  s3rverCpuMs?: number;
}

export interface TimedResult extends Sample {
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Children running right now (process-group leaders), so an interrupted benchmark can stop them. */
export const runningChildren = new Set<number>();

const OUTPUT_CAP = 1 << 20;

/** Fails with a hint when GNU time is missing. */
export function checkGnuTime(): void {
  if (!existsSync(GNU_TIME)) {
    throw new Error(`${GNU_TIME} not found: install GNU time (Debian/Ubuntu: apt-get install -y time)`);
  }
}

/**
 * Runs `cmd args` under `/usr/bin/time -f "%e %U %S %M"` in its own process
 * group (so a timeout can stop it and anything it started), with `env`.
 */
export async function runTimed(cmd: string, args: readonly string[], opts: { env: NodeJS.ProcessEnv; timeoutMs: number; timeFile: string; cwd?: string }): Promise<TimedResult> {
  await rm(opts.timeFile, { force: true });
  const started = process.hrtime.bigint();
  const child = spawn(GNU_TIME, ['-f', '%e %U %S %M', '-o', opts.timeFile, cmd, ...args], {
    env: opts.env,
    cwd: opts.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const pid = child.pid;
  if (pid !== undefined) runningChildren.add(pid);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    if (stdout.length < OUTPUT_CAP) stdout += s;
  });
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    if (stderr.length < OUTPUT_CAP) stderr += s;
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    if (pid !== undefined) killGroup(pid);
  }, opts.timeoutMs);
  const exitCode = await new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  }).finally(() => {
    clearTimeout(timer);
    if (pid !== undefined) runningChildren.delete(pid);
  });
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  let userMs = NaN;
  let sysMs = NaN;
  let maxRssKiB = NaN;
  try {
    // GNU time prefixes "Command exited with non-zero status N" on failure: the figures are on the last line.
    const lines = (await readFile(opts.timeFile, 'utf8')).trim().split('\n');
    const f = (lines[lines.length - 1] ?? '').trim().split(/\s+/).map(Number);
    userMs = (f[1] ?? NaN) * 1000;
    sysMs = (f[2] ?? NaN) * 1000;
    maxRssKiB = f[3] ?? NaN;
  } catch {
    // killed before GNU time could write: leave NaN
  }
  return { wallMs, userMs, sysMs, cpuMs: userMs + sysMs, maxRssKiB, exitCode, stdout, stderr, timedOut };
}

/** SIGKILLs a process group this benchmark started (by its leader's pid). */
export function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

let clockTicks: number | undefined;

/** CPU time (user+sys, ms) a live process has used so far, from /proc/<pid>/stat. */
export function procCpuMs(pid: number): number {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start at field 3.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return ((utime + stime) * 1000) / clockTicks;
}

export interface Stats {
  median: number;
  min: number;
  max: number;
}

export function stats(values: readonly number[]): Stats {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return { median: NaN, min: NaN, max: NaN };
  const mid = Math.floor(v.length / 2);
  const median = v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { median, min: v[0]!, max: v[v.length - 1]! };
}
