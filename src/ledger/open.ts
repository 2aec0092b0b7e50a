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

/**
 * Which ledger a command uses: the SQLite file in a state directory (the
 * embedded default), or a PostgreSQL database (many workers on many hosts).
 */
export type LedgerTarget = { readonly kind: 'sqlite'; readonly stateDir: string } | { readonly kind: 'postgres'; readonly url: string };

/** Where a command may be told which ledger to use. */
export interface LedgerChoice {
  /** `--ledger`, `ledger:` in holdfast.yaml: postgres://…, or sqlite:<state directory> (a plain path means the same). */
  readonly ledgerUrl?: string;
  /** `--state`, `state:`: the SQLite ledger's directory. */
  readonly stateDir?: string;
}

/**
 * The ledger to use, in this order: an explicit ledger URL, an explicit
 * state directory, $HOLDFAST_LEDGER, then the default state directory
 * ($HOLDFAST_STATE, $XDG_STATE_HOME/holdfast, ~/.local/state/holdfast).
 */
export function resolveLedger(choice: LedgerChoice = {}, env: NodeJS.ProcessEnv = process.env): LedgerTarget {
  if (choice.ledgerUrl !== undefined) return parseLedgerUrl(choice.ledgerUrl, '--ledger');
  if (choice.stateDir !== undefined) {
    if (choice.stateDir === '') throw new HoldfastError('HOLDFAST_E_USAGE', { detail: 'the state directory is empty; give a path (or leave it out for the default)' });
    return { kind: 'sqlite', stateDir: path.resolve(choice.stateDir) };
  }
  const fromEnv = env.HOLDFAST_LEDGER;
  if (fromEnv !== undefined && fromEnv !== '') return parseLedgerUrl(fromEnv, 'HOLDFAST_LEDGER');
  return { kind: 'sqlite', stateDir: defaultStateDir(env) };
}

/** postgres://… → PostgreSQL; sqlite:<dir>, sqlite:///abs/dir or a plain path → the SQLite ledger in that state directory. */
export function parseLedgerUrl(value: string, from: string): LedgerTarget {
  const v = value.trim();
  if (v === '') throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `${from} is empty; give postgres://user@host/db or sqlite:<state directory>` });
  if (isPostgresUrl(v)) {
    try {
      new URL(v);
    } catch {
      throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `${from}: "${redact(v)}" is not a URL (expected postgres://user[:password]@host[:port]/database)` });
    }
    return { kind: 'postgres', url: v };
  }
  let dir = v;
  if (/^sqlite:/i.test(v)) dir = v.replace(/^sqlite:(\/\/(?=\/))?/i, '');
  else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(v)) {
    throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `${from}: unsupported ledger "${redact(v)}"; expected postgres://… or sqlite:<state directory>` });
  }
  if (dir === '') throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `${from}: "${v}" names no directory; write sqlite:/path/to/state-directory` });
  // A SQLite ledger is holdfast.db in its state directory: the file's own name is accepted too.
  if (path.basename(dir) === LEDGER_FILE_NAME) dir = path.dirname(dir);
  return { kind: 'sqlite', stateDir: path.resolve(dir) };
}

/** The ledger as it may be shown: the state directory's database file, or the URL without its password. */
export function describeLedger(target: LedgerTarget): string {
  return target.kind === 'sqlite' ? ledgerPath(target.stateDir) : redact(target.url);
}

/** Opens the chosen ledger (creating and migrating it, unless `readOnly`). */
export function openLedgerAt(target: LedgerTarget, options: Omit<OpenLedgerOptions, 'url' | 'stateDir'> = {}): Promise<Ledger> {
  return openLedger(target.kind === 'sqlite' ? { ...options, stateDir: target.stateDir } : { ...options, url: target.url });
}

/**
 * Whether the chosen ledger may hold anything: for SQLite, whether its file
 * exists (reading must not create one); a PostgreSQL database is asked when it
 * is opened (a read-only open of an empty one says so).
 */
export function ledgerMayExist(target: LedgerTarget): boolean {
  return target.kind === 'postgres' || ledgerExists(target.stateDir);
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
