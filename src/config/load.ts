// Finding, reading and validating the configuration file.
//
// Lookup: an explicit path (--config), else $HOLDFAST_CONFIG, else
// ./holdfast.yaml, ./holdfast.yml, ./holdfast.json in the current directory.
// Every error in the file is reported at once (a ConfigError, HOLDFAST_E_CONFIG);
// warnings come back with the configuration for the caller to print.

import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { HoldfastError } from '../core/errors.js';
import { ConfigError, IssueList, formatIssue, type ConfigIssue } from './diagnostics.js';
import { detectFormat, parseConfigText } from './document.js';
import { validateConfig, type Config } from './schema.js';

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
  let text: string;
  let mode: number;
  try {
    text = readFileSync(absolute, 'utf8');
    mode = statSync(absolute).mode;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : (e as Error).message;
    throw new HoldfastError('HOLDFAST_E_CONFIG', { detail: `cannot read configuration file ${file}: ${why}` }, { cause: e });
  }
  return loadConfigText(text, { ...opts, file, absolute, mode, others });
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
