// `holdfast sync <source-dir> <destination-url>`: push, then mirror deletions
// under safety rules (two-phase, capped, never under a scan error, never from
// an empty source without asking).

import type { Command } from 'commander';
import { sync } from '../../sync/sync.js';
import { EXIT_CODES_HELP, maxDeleteArg, pathArg, textArg } from '../common.js';
import { addTransferOptions, runTransferCommand, transferOptionsFrom, type TransferFlags } from './transfer.js';

interface SyncFlags extends TransferFlags {
  maxDelete?: string;
  allowEmptySource?: boolean;
  deleteExcluded?: boolean;
  backupDir?: string;
}

export function registerSync(program: Command): void {
  const cmd = program
    .command('sync')
    .description('Make each destination a mirror of a directory: push, then delete objects whose files are gone (safely).')
    .argument('<source-dir>', 'local directory to mirror', pathArg)
    .argument('<destination-url...>', 'one or more of file:///absolute/path, s3://bucket/prefix, azure://container/prefix, gdrive://folder-id (several: each tracked and retried on its own)');
  addTransferOptions(cmd)
    .option('--max-delete <n|n%>', 'most deletions per run, a count or a percentage of tracked objects; above it nothing is deleted', maxDeleteArg, '50%')
    .option('--allow-empty-source', 'allow deleting everything when the source directory is empty')
    .option('--delete-excluded', 'also delete objects whose files still exist but are now excluded')
    .option('--backup-dir <url>', 'move deleted objects to this destination instead of deleting them', textArg)
    .addHelpText(
      'after',
      `
Deletes are two-phase: the plan records them, and they run only after every upload of the run
has finished, each recorded in the ledger before the destination is touched. Nothing is deleted
when the deletions exceed --max-delete, when the source is empty (unless --allow-empty-source),
or under a directory that could not be read completely. --dry-run lists what would be deleted.

Examples:
  holdfast sync ./site s3://my-bucket/site --dry-run
  holdfast sync ./site s3://my-bucket/site --max-delete 100
  holdfast sync ./site s3://my-bucket/site --backup-dir s3://my-bucket/attic

${EXIT_CODES_HELP.trimStart()}`,
    )
    .action(async (source: string, destination: string[], flags: SyncFlags) => {
      process.exitCode = await runTransferCommand(destination, flags, (extra) =>
        sync({
          ...transferOptionsFrom(source, destination, flags),
          ...extra,
          ...(flags.maxDelete !== undefined ? { maxDelete: flags.maxDelete } : {}),
          allowEmptySource: flags.allowEmptySource === true,
          deleteExcluded: flags.deleteExcluded === true,
          ...(flags.backupDir !== undefined ? { backupDir: flags.backupDir } : {}),
        }),
      );
    });
}
