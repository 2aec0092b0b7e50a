// Choosing and opening a ledger from options: the state directory for the
// embedded SQLite ledger, or (later) a PostgreSQL URL.

import { statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HoldfastError } from '../core/errors.js';
import type { Ledger, OpenLedgerOptions } from './ledger.js';
import { MEMORY, openSqliteLedger } from './sqlite.js';

/** postgres:// or postgresql:// (the PostgreSQL dialect); checked without loading the driver. */
export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//i.test(url);
}

/** The SQLite ledger's file name inside the state directory. */
export const LEDGER_FILE_NAME = 'holdfast.db';

/**
 * Where Holdfast keeps its state: $HOLDFAST_STATE, else $XDG_STATE_HOME/holdfast,
 * else ~/.local/state/holdfast. Per the XDG spec a relative XDG_STATE_HOME is
 * invalid and ignored.
 */
export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env.HOLDFAST_STATE;
  if (explicit !== undefined && explicit !== '') return path.resolve(explicit);
  const xdg = env.XDG_STATE_HOME;
  if (xdg !== undefined && xdg !== '' && path.isAbsolute(xdg)) return path.join(xdg, 'holdfast');
  const home = env.HOME !== undefined && env.HOME !== '' ? env.HOME : os.homedir();
  return path.join(home, '.local', 'state', 'holdfast');
}

/** The SQLite ledger file for a state directory. */
export function ledgerPath(stateDir: string): string {
  return path.join(stateDir, LEDGER_FILE_NAME);
}

export async function openLedger(options: OpenLedgerOptions = {}): Promise<Ledger> {
  if (options.url !== undefined && options.url !== '') {
    if (isPostgresUrl(options.url)) {
      // Loaded only when used: a SQLite user never pays for the PostgreSQL driver.
      const { openPostgresLedger } = await import('./postgres.js');
      return openPostgresLedger(options.url, {
        ...(options.poolSize !== undefined ? { poolSize: options.poolSize } : {}),
        ...(options.readOnly === true ? { readOnly: true } : {}),
      });
    }
    throw new HoldfastError('HOLDFAST_E_CONFIG', { detail: `unsupported ledger URL (expected postgres://...): ${redact(options.url)}` });
  }
  if (options.inMemory === true) return openSqliteLedger(MEMORY);
  if (options.stateDir === '') {
    // path.join('', 'holdfast.db') would quietly put the ledger in the current directory.
    throw new HoldfastError('HOLDFAST_E_USAGE', { detail: 'the state directory is empty; give a path (or leave it out for the default)' });
  }
  const stateDir = options.stateDir ?? defaultStateDir();
  return openSqliteLedger(ledgerPath(stateDir), {
    ...(options.busyTimeoutMs === undefined ? {} : { busyTimeoutMs: options.busyTimeoutMs }),
    ...(options.readOnly === true ? { readOnly: true } : {}),
  });
}

/**
 * Whether the state directory holds a ledger file. False only when it (or the
 * directory) does not exist; any other failure (EACCES, EIO...) is thrown as
 * HOLDFAST_E_LEDGER_OPEN, never taken for "no ledger" (which would read as empty).
 */
export function ledgerExists(stateDir: string): boolean {
  const file = ledgerPath(stateDir);
  try {
    statSync(file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new HoldfastError('HOLDFAST_E_LEDGER_OPEN', { path: file, detail: (e as Error).message }, { cause: e });
  }
}

/** A URL as it may be shown: without its password. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable)';
  }
}
