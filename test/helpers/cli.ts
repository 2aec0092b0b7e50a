// Runs the built `holdfast` binary as a child process, the way a user does.

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { RunReport } from '../../src/core/report.js';

/** What `--json` prints: the run report, the destination, and the plan of a dry run. */
export interface JsonReport extends RunReport {
  /** The destination URL, when the run had one (several: see `destinations`). */
  readonly destination: string;
  readonly dryRun: boolean;
  readonly plan?: { key: string; action: string; reason: string; size: number }[];
}

// The bundled CLI (dist/bin/holdfast.js), exactly what the package's bin runs.
export const CLI_PATH = fileURLToPath(new URL('../../bin/holdfast.js', import.meta.url));

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Starts the CLI and returns the child (to signal it) and a promise of its result. */
export function startCli(
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; uid?: number; gid?: number; timeoutMs?: number; cwd?: string } = {},
): { child: ChildProcess; done: Promise<CliResult> } {
  let child!: ChildProcess;
  const done = runCliWith(args, opts, (c) => (child = c));
  return { child, done };
}

export function runCli(args: readonly string[], opts: { env?: NodeJS.ProcessEnv; uid?: number; gid?: number; timeoutMs?: number; cwd?: string } = {}): Promise<CliResult> {
  return runCliWith(args, opts, () => undefined);
}

function runCliWith(
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; uid?: number; gid?: number; timeoutMs?: number; cwd?: string },
  onSpawn: (child: ChildProcess) => void,
): Promise<CliResult> {
  const spawnOpts: SpawnOptions = {
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
    ...(opts.gid !== undefined ? { gid: opts.gid } : {}),
    ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
  };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_PATH, ...args], spawnOpts);
    onSpawn(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Parses the single JSON object `--json` prints on stdout. */
export function parseJsonReport(r: CliResult): JsonReport {
  try {
    return JSON.parse(r.stdout.trim()) as JsonReport;
  } catch {
    throw new Error(`stdout is not one JSON object (exit ${r.code}):\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
}
