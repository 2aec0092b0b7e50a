// From a validated configuration and a job name to the options of one
// `push` or `sync` call: each destination becomes a DestinationSpec with its
// own backend settings and, when the job has rules, its `select`. Settings
// given by the caller (the command line) override the file's.

import type { BackendOptions } from '../backends/backend.js';
import { HoldfastError } from '../core/errors.js';
import { DEFAULT_RETRY } from '../engine/retry.js';
import type { DestinationSpec, FileFacts } from '../sync/run.js';
import type { SyncOptions } from '../sync/sync.js';
import { didYouMean } from './diagnostics.js';
import { compileRules } from './rules.js';
import type { Config, JobCommand } from './schema.js';

/** What the caller may set on top of the file: everything but the source and the destinations. */
export type JobOverrides = Omit<Partial<SyncOptions>, 'source' | 'destination' | 'destinations'>;

export interface JobRun {
  readonly command: JobCommand;
  /** Options for `push` (command "push") or `sync` (command "sync"). */
  readonly options: SyncOptions;
  /**
   * Source files the run saw that no rule matched (so they went nowhere), in
   * the order seen: at most `UNMATCHED_KEPT` keys, and how many in all. Empty
   * for a job without rules. Files sent nowhere on purpose (`to: []`) are not
   * counted.
   */
  unmatched(): { readonly count: number; readonly keys: readonly string[] };
}

/** How many unmatched keys a run remembers (the count goes on). */
export const UNMATCHED_KEPT = 1000;

const SYNC_ONLY_OVERRIDES = ['maxDelete', 'allowEmptySource', 'deleteExcluded', 'backupDir'] as const;

/** The BackendOptions fields that belong to a scheme: s3* → s3, azure* → azure, gdrive* → gdrive, fsync → file; undefined: every scheme. */
function optionScheme(option: string): string | undefined {
  if (option === 'fsync') return 'file';
  return /^(s3|azure|gdrive)[A-Z]/.exec(option)?.[1];
}

/** `overrides` restricted to the options that concern a destination of this scheme. */
function overridesFor(scheme: string, overrides: BackendOptions | undefined): BackendOptions {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(overrides ?? {})) {
    const owner = optionScheme(k);
    // Options of no scheme (requestTimeoutMs) concern every destination.
    if (v !== undefined && (owner === scheme || owner === undefined)) out[k] = v;
  }
  return out;
}

/**
 * The options to run job `name` with. `overrides.exclude` adds patterns after
 * the file's (the last match wins, so the command line has the last word);
 * `overrides.backendOptions` apply to every destination whose scheme they
 * concern (--s3-endpoint to s3:// destinations, --no-fsync to file:// ones).
 */
export function jobOptions(config: Config, name: string, overrides: JobOverrides = {}): JobRun {
  const job = config.jobs.get(name);
  if (job === undefined) {
    const known = [...config.jobs.keys()];
    throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `no job "${name}" in ${config.file}${didYouMean(name, known)}; jobs: ${known.join(', ')}` });
  }
  if (job.command === 'push') {
    const given = SYNC_ONLY_OVERRIDES.filter((k) => overrides[k] !== undefined);
    if (given.length > 0) throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `${given.join(', ')} applies only to sync jobs; job "${name}" is a push job` });
  }
  if (overrides.backupDir !== undefined && job.to.length > 1) {
    throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `--backup-dir works with a job of one destination; job "${name}" has ${job.to.length}` });
  }

  const rules = compileRules(job, config.types);
  // Every destination is asked about every source file: count per destination, report the most.
  const unmatched = new Set<string>();
  const unmatchedBy = new Map<string, number>();
  const select = (destName: string) => (file: FileFacts) => {
    const rule = rules.ruleFor(file);
    if (rule === undefined) {
      unmatchedBy.set(destName, (unmatchedBy.get(destName) ?? 0) + 1);
      if (unmatched.size < UNMATCHED_KEPT) unmatched.add(file.key);
    }
    return rule?.to.includes(destName) ?? false;
  };
  const { exclude: extraExclude, backendOptions: extraBackend, ...rest } = overrides;
  const destinations: DestinationSpec[] = job.to.map((destName) => {
    const d = config.destinations.get(destName);
    if (d === undefined) throw new HoldfastError('HOLDFAST_E_INTERNAL', { detail: `job ${name} names destination ${destName}, which the configuration lacks` });
    return {
      url: d.url,
      name: destName,
      backendOptions: { ...d.backendOptions, ...overridesFor(d.scheme, extraBackend) },
      ...(job.rules !== undefined ? { select: select(destName) } : {}),
    };
  });

  const s = job.settings;
  const fromFile: Partial<SyncOptions> = {
    ...(config.stateDir !== undefined ? { stateDir: config.stateDir } : {}),
    // --state on the command line names the ledger as much as --ledger does: it replaces the file's `ledger:` too.
    ...(config.ledgerUrl !== undefined && overrides.stateDir === undefined ? { ledgerUrl: config.ledgerUrl } : {}),
    ...(s.transfers !== undefined ? { transfers: s.transfers } : {}),
    ...(s.mode !== undefined ? { mode: s.mode } : {}),
    ...(s.force !== undefined ? { force: s.force } : {}),
    ...(s.followSymlinks !== undefined ? { followSymlinks: s.followSymlinks } : {}),
    ...(s.multipartThreshold !== undefined ? { multipartThreshold: s.multipartThreshold } : {}),
    ...(s.partSize !== undefined ? { partSize: s.partSize } : {}),
    ...(s.retries !== undefined ? { retry: { ...DEFAULT_RETRY, attempts: s.retries } } : {}),
    ...(job.deletion ?? {}),
  };
  // An override given as undefined does not erase the file's value.
  const given = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)) as Partial<SyncOptions>;
  const options: SyncOptions = {
    ...fromFile,
    ...given,
    source: job.source,
    destinations,
    exclude: [...job.exclude, ...(extraExclude ?? [])],
  };
  return { command: job.command, options, unmatched: () => ({ count: Math.max(0, ...unmatchedBy.values()), keys: [...unmatched] }) };
}
