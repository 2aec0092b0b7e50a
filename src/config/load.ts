// Finding, reading and validating the configuration file.
//
// Lookup: an explicit path (--config), else $HOLDFAST_CONFIG, else
// ./holdfast.yaml, ./holdfast.yml, ./holdfast.json in the current directory.
// Every error in the file is reported at once (a ConfigError, HOLDFAST_E_CONFIG);
// warnings come back with the configuration for the caller to print.
//
// The file is input like any other: it is read only if it is a regular file
// (opened without blocking, so a FIFO named as the config cannot hang the
// command) of at most MAX_CONFIG_BYTES; the YAML reader bounds alias expansion
// (src/config/document.ts).

import { closeSync, constants, fstatSync, openSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { HoldfastError } from '../core/errors.js';
import { ConfigError, IssueList, formatIssue, type ConfigIssue } from './diagnostics.js';
import { detectFormat, parseConfigText } from './document.js';
import { validateConfig, type Config } from './schema.js';

/** The largest configuration file read: real ones are a few KiB; anything near this is a mistake or an attack. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/** The names looked for in the current directory, in order. */
export const DEFAULT_CONFIG_NAMES = ['holdfast.yaml', 'holdfast.yml', 'holdfast.json'] as const;

export interface LoadConfigOptions {
  /** Environment for ${VAR}, $HOLDFAST_CONFIG and `~` ($HOME); default process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /** Where to look for the default names; default process.cwd(). */
  readonly cwd?: string;
}

export interface LoadedConfig {
  readonly config: Config;
  /** Secrets in plain text, unreadable-by-others advice, unreachable rules...: print them, then go on. */
  readonly warnings: readonly ConfigIssue[];
}

export interface FoundConfigFile {
  /** The name to show in messages: as given, or the default name found. */
  readonly file: string;
  readonly absolute: string;
  /** Other default names present in the same directory (ignored). */
  readonly others: readonly string[];
}

/** Which file to read: `explicit`, else $HOLDFAST_CONFIG, else the first default name that exists. */
export function findConfigFile(explicit?: string, opts: LoadConfigOptions = {}): FoundConfigFile {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const given = explicit !== undefined && explicit !== '' ? explicit : env.HOLDFAST_CONFIG;
  if (given !== undefined && given !== '') return { file: given, absolute: path.resolve(cwd, given), others: [] };
  const found = DEFAULT_CONFIG_NAMES.filter((n) => isFile(path.join(cwd, n)));
  const first = found[0];
  if (first === undefined) {
    throw new HoldfastError('HOLDFAST_E_CONFIG', {
      detail: `no configuration file: looked for ${DEFAULT_CONFIG_NAMES.join(', ')} in ${cwd}; name one with --config <file> or $HOLDFAST_CONFIG`,
    });
  }
  return { file: cwd === process.cwd() ? first : path.join(cwd, first), absolute: path.join(cwd, first), others: found.slice(1) };
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** Finds, reads and validates the configuration; throws ConfigError (HOLDFAST_E_CONFIG) listing every error. */
export function loadConfig(explicit?: string, opts: LoadConfigOptions = {}): LoadedConfig {
  const { file, absolute, others } = findConfigFile(explicit, opts);
  const { text, mode } = readConfigFile(absolute, file);
  return loadConfigText(text, { ...opts, file, absolute, mode, others });
}

/** The file's text and permission bits; HOLDFAST_E_CONFIG if it is not a regular file of at most MAX_CONFIG_BYTES. */
function readConfigFile(absolute: string, file: string): { text: string; mode: number } {
  const fail = (why: string, cause?: unknown): HoldfastError =>
    new HoldfastError('HOLDFAST_E_CONFIG', { detail: `cannot read configuration file ${file}: ${why}` }, cause === undefined ? undefined : { cause });
  let fd: number;
  try {
    fd = openSync(absolute, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw fail(code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'ENXIO' ? 'it is not a regular file' : (e as Error).message, e);
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw fail('it is a directory');
    if (!st.isFile()) throw fail('it is not a regular file');
    if (st.size > MAX_CONFIG_BYTES) throw fail(`it is ${st.size} bytes; a configuration file may be at most ${MAX_CONFIG_BYTES} bytes (1 MiB)`);
    // One byte more than the limit: a file that grew since the fstat is caught too.
    const buf = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let total = 0;
    for (;;) {
      const n = readSync(fd, buf, total, buf.length - total, null);
      if (n === 0) break;
      total += n;
      if (total > MAX_CONFIG_BYTES) throw fail(`it is more than ${MAX_CONFIG_BYTES} bytes; a configuration file may be at most ${MAX_CONFIG_BYTES} bytes (1 MiB)`);
    }
    return { text: buf.subarray(0, total).toString('utf8'), mode: st.mode };
  } catch (e) {
    if (e instanceof HoldfastError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw fail(code === 'EISDIR' ? 'it is a directory' : (e as Error).message, e);
  } finally {
    closeSync(fd);
  }
}

/**
 * Validates configuration text already read. `file` names it in messages;
 * `mode` (the file's permission bits) enables the readable-by-others warning.
 */
export function loadConfigText(
  text: string,
  opts: LoadConfigOptions & { file: string; absolute?: string; mode?: number; others?: readonly string[] },
): LoadedConfig {
  const env = opts.env ?? process.env;
  const absolute = opts.absolute ?? path.resolve(opts.cwd ?? process.cwd(), opts.file);
  const issues = new IssueList();
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_CONFIG_BYTES) {
    throw new HoldfastError('HOLDFAST_E_CONFIG', { detail: `${opts.file} is ${bytes} bytes; a configuration file may be at most ${MAX_CONFIG_BYTES} bytes (1 MiB)` });
  }
  const parsed = parseConfigText(text.replace(/^\uFEFF/, ''), detectFormat(opts.file, text));
  for (const p of parsed.problems) issues.error(p.pos, '', p.message);
  if (parsed.root === undefined || issues.errors.length > 0) throw new ConfigError(opts.file, issues.errors);

  const plainSecrets: string[] = [];
  const config = validateConfig(parsed.root, { file: opts.file, dir: path.dirname(absolute), env, issues, plainSecrets });
  if (config === undefined || issues.errors.length > 0) throw new ConfigError(opts.file, issues.errors);

  if (plainSecrets.length > 0 && opts.mode !== undefined && (opts.mode & 0o044) !== 0) {
    const perms = (opts.mode & 0o777).toString(8).padStart(3, '0');
    issues.warning(undefined, '', `the file holds ${plainSecrets.length} secret(s) in plain text and is readable by ${(opts.mode & 0o004) !== 0 ? 'everyone' : 'its group'} (mode ${perms}); run chmod 600 ${opts.file}, or better, move the secrets to environment variables`);
  }
  for (const other of opts.others ?? []) {
    issues.warning(undefined, '', `${other} is also present and is ignored (the first of ${DEFAULT_CONFIG_NAMES.join(', ')} is read)`);
  }
  return { config, warnings: issues.warnings };
}

/** The warnings as lines for stderr: `warning: file:line:col: field: message`. */
export function formatWarnings(loaded: LoadedConfig): string[] {
  return loaded.warnings.map((w) => `warning: ${formatIssue(loaded.config.file, w)}`);
}
