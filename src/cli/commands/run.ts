// `holdfast run <job>`: runs a job of the configuration file (docs/configuration.md):
// its source, its destinations and its rules, as `push` or `sync`. The
// transfer flags are the same as push's and sync's; a flag given on the
// command line overrides the file.

import type { Command } from 'commander';
import { formatWarnings, jobOptions, loadConfig, type JobOverrides } from '../../config/index.js';
import { DEFAULT_RETRY } from '../../engine/retry.js';
import { push } from '../../sync/push.js';
import { sync } from '../../sync/sync.js';
import { redactUrl } from '../../backends/registry.js';
import { EXIT_CODES_HELP, err, failCommand, maxDeleteArg, pathArg, textArg } from '../common.js';
import { displayKey } from '../format.js';
import { addTransferOptions, backendOptionsFrom, runTransferCommand, type TransferFlags } from './transfer.js';

interface RunFlags extends TransferFlags {
  config?: string;
  maxDelete?: string;
  allowEmptySource?: boolean;
  deleteExcluded?: boolean;
  backupDir?: string;
}

export const CONFIG_OPTION_HELP = 'configuration file (default: $HOLDFAST_CONFIG, else ./holdfast.yaml, ./holdfast.yml, ./holdfast.json)';

/** The flags the user actually typed (not commander's defaults): only those override the file. */
export function givenFlags<F extends object>(cmd: Command, flags: F): Partial<F> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(flags)) if (cmd.getOptionValueSource(k) === 'cli') out[k] = v;
  return out as Partial<F>;
}

/** Command-line flags as overrides of the job's settings. */
export function overridesFrom(given: Partial<RunFlags>): JobOverrides {
  return {
    ...(given.state !== undefined ? { stateDir: given.state } : {}),
    ...(given.ledger !== undefined ? { ledgerUrl: given.ledger } : {}),
    ...(given.dryRun !== undefined ? { dryRun: given.dryRun } : {}),
    ...(given.mode !== undefined ? { mode: given.mode } : {}),
    ...(given.force !== undefined ? { force: given.force } : {}),
    ...(given.transfers !== undefined ? { transfers: given.transfers } : {}),
    ...(given.exclude !== undefined ? { exclude: given.exclude } : {}),
    ...(given.followSymlinks !== undefined ? { followSymlinks: given.followSymlinks } : {}),
    ...(given.multipartThreshold !== undefined ? { multipartThreshold: given.multipartThreshold } : {}),
    ...(given.partSize !== undefined ? { partSize: given.partSize } : {}),
    ...(given.retries !== undefined ? { retry: { ...DEFAULT_RETRY, attempts: given.retries } } : {}),
    backendOptions: backendOptionsFrom(given),
    ...(given.maxDelete !== undefined ? { maxDelete: given.maxDelete } : {}),
    ...(given.allowEmptySource !== undefined ? { allowEmptySource: given.allowEmptySource } : {}),
    ...(given.deleteExcluded !== undefined ? { deleteExcluded: given.deleteExcluded } : {}),
    ...(given.backupDir !== undefined ? { backupDir: given.backupDir } : {}),
  };
}

/** Says on stderr which files no rule matched: they went nowhere, which is easy to miss. */
function noteUnmatched(job: string, unmatched: { count: number; keys: readonly string[] }, verbose: boolean): void {
  if (unmatched.count === 0) return;
  const shown = unmatched.keys.slice(0, verbose ? unmatched.keys.length : 5).map(displayKey);
  const more = unmatched.count - shown.length;
  err(
    `note: ${unmatched.count} file(s) matched no rule of job "${job}" and went nowhere: ${shown.join(', ')}${more > 0 ? `, and ${more} more${verbose ? '' : ' (--verbose lists more)'}` : ''}. A last rule \`{ to: [...] }\` sends the rest.\n`,
  );
}

export function registerRun(program: Command): void {
  const cmd = program
    .command('run')
    .description('Run a job of the configuration file: its source, destinations and rules (push or sync).')
    .argument('<job>', 'the job\'s name under "jobs:" in the configuration file', textArg)
    .option('-c, --config <file>', CONFIG_OPTION_HELP, pathArg);
  addTransferOptions(cmd)
    .option('--max-delete <n|n%>', 'sync jobs: most deletions per run, a count or a percentage of tracked objects (overrides maxDelete)', maxDeleteArg)
    .option('--allow-empty-source', 'sync jobs: allow deleting everything when the source directory is empty')
    .option('--delete-excluded', 'sync jobs: also delete objects whose files still exist but are now excluded')
    .option('--backup-dir <url>', 'sync jobs of one destination: move deleted objects there instead of deleting them', textArg)
    .addHelpText(
      'after',
      `
A flag given here overrides the job's setting in the file; --exclude adds patterns after the
file's. --s3-* flags apply to the job's s3:// destinations, --no-fsync to its file:// ones.

Example holdfast.yaml:
  version: 1
  destinations:
    offsite: { url: s3://backups/host1, region: eu-west-1 }
    nas:     { url: file:///mnt/nas/backups }
  types:
    db: ["*.sql.gz", "*.dump"]
  jobs:
    nightly:
      source: /var/backups
      rules:                               # first match wins; unmatched files go nowhere
        - { type: db, to: [offsite, nas] }
        - { glob: "logs/**", to: [nas] }
        - { to: [offsite] }                # everything else

Examples:
  holdfast run nightly
  holdfast run nightly --dry-run
  holdfast run nightly --config /etc/holdfast/holdfast.yaml --transfers 4
  holdfast config check                   validate the file and show what each job does

The file's reference: docs/configuration.md.
${EXIT_CODES_HELP}`,
    )
    .action(async (jobName: string, flags: RunFlags, command: Command) => {
      let run: ReturnType<typeof jobOptions>;
      try {
        const loaded = loadConfig(flags.config);
        for (const line of formatWarnings(loaded)) err(`${line}\n`);
        run = jobOptions(loaded.config, jobName, overridesFrom(givenFlags(command, flags)));
      } catch (e) {
        process.exitCode = failCommand(e, flags.json === true);
        return;
      }
      const { command: kind, options } = run;
      const urls = (options.destinations ?? []).map((d) => redactUrl(typeof d === 'string' ? d : d.url));
      const all = { ...options, drainMs: flags.drainTimeout * 1000 };
      process.exitCode = await runTransferCommand(urls, flags, (extra) => (kind === 'sync' ? sync({ ...all, ...extra }) : push({ ...all, ...extra })));
      if (flags.quiet !== true) noteUnmatched(jobName, run.unmatched(), flags.verbose === true);
    });
}
