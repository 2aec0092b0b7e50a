// `holdfast push <source-dir> <destination-url>...`: copy new and changed files to one
// or several destinations; never delete.

import type { Command } from 'commander';
import { push } from '../../sync/push.js';
import { EXIT_CODES_HELP, pathArg } from '../common.js';
import { addTransferOptions, runTransferCommand, transferOptionsFrom, type TransferFlags } from './transfer.js';

export function registerPush(program: Command): void {
  const cmd = program
    .command('push')
    .description('Copy new and changed files from a directory to one or more destinations (never deletes).')
    .argument('<source-dir>', 'local directory to copy', pathArg)
    .argument('<destination-url...>', 'one or more of file:///absolute/path, s3://bucket/prefix, azure://container/prefix, gdrive://folder-id (several: each tracked and retried on its own)');
  addTransferOptions(cmd)
    .addHelpText(
      'after',
      `
Examples:
  holdfast push ./photos file:///mnt/backup/photos
  holdfast push ./photos s3://my-bucket/photos --s3-endpoint http://127.0.0.1:9000
  holdfast push ./photos s3://my-bucket/photos --dry-run
  holdfast push /var/backups s3://offsite/host1 azure://backups/host1   (fan-out: each destination on its own;
      one that is down fails only its own files, the run reports partial, the next run finishes it)

${EXIT_CODES_HELP.trimStart()}

Ctrl-C once stops starting new files and lets in-flight ones finish; twice aborts them
(multipart uploads stay resumable) and ends the process within seconds, even if a file
operation never returns.`,
    )
    .action(async (source: string, destination: string[], flags: TransferFlags) => {
      process.exitCode = await runTransferCommand(destination, flags, (extra) => push({ ...transferOptionsFrom(source, destination, flags), ...extra }));
    });
}
