// `holdfast push <source-dir> <destination-url>`: copy new and changed files; never delete.

import type { Command } from 'commander';
import { push } from '../../sync/push.js';
import { EXIT_CODES_HELP } from '../common.js';
import { addTransferOptions, runTransferCommand, transferOptionsFrom, type TransferFlags } from './transfer.js';

export function registerPush(program: Command): void {
  const cmd = program
    .command('push')
    .description('Copy new and changed files from a directory to a destination (never deletes).')
    .argument('<source-dir>', 'local directory to copy')
    .argument('<destination-url>', 'file:///absolute/path or s3://bucket/prefix');
  addTransferOptions(cmd)
    .addHelpText(
      'after',
      `
Examples:
  holdfast push ./photos file:///mnt/backup/photos
  holdfast push ./photos s3://my-bucket/photos --s3-endpoint http://127.0.0.1:9000
  holdfast push ./photos s3://my-bucket/photos --dry-run

${EXIT_CODES_HELP.trimStart()}

Ctrl-C once stops starting new files and lets in-flight ones finish; twice aborts them
(multipart uploads stay resumable).`,
    )
    .action(async (source: string, destination: string, flags: TransferFlags) => {
      process.exitCode = await runTransferCommand(destination, flags, (extra) => push({ ...transferOptionsFrom(source, destination, flags), ...extra }));
    });
}
