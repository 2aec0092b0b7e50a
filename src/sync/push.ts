// `push`: copy new and changed files from a source directory to a destination
// and record everything in the ledger. Never deletes anything.

import type { RunReport } from '../core/report.js';
import { runTransfer, type TransferOptions } from './run.js';

export type PushOptions = TransferOptions;

export function push(options: PushOptions): Promise<RunReport> {
  return runTransfer(options, { command: 'push' });
}
