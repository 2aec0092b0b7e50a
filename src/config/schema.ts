// The configuration file's shape, and its validation: from the positioned tree
// of src/config/document.ts to a `Config`, collecting every problem with its
// place and field path. Hand-written on purpose: each field's check can say
// exactly what is wrong and what would be right. The reference is
// docs/configuration.md; keep the two in step.
//
//   version: 1
//   state: ./.holdfast-state
//   destinations: { <name>: { url, <settings for the url's scheme> } }
//   types:        { <name>: [glob, ...] }
//   jobs:         { <name>: { command, source, to | rules, exclude, settings } }
//
// Values may use ${VAR} (from the environment); `~` and relative paths are
// resolved for path fields; secrets written in plain text are warned about.

import os from 'node:os';
import path from 'node:path';
import type { BackendOptions } from '../backends/backend.js';
import { parseDestinationUrl, redactUrl } from '../backends/registry.js';
import { parseSize, parseWholeNumber } from '../core/units.js';
import { parseLedgerUrl } from '../ledger/open.js';
import { compileExcludes } from '../scan/ignore.js';
import { parseMaxDelete } from '../sync/sync.js';
import { didYouMean, type IssueList } from './diagnostics.js';
import type { ConfigNode, MapEntry, MapNode, Position, ScalarNode } from './document.js';

export const CONFIG_VERSION = 1;

/** A destination setting as it may be shown: secrets as their ${VAR} reference, or masked. */
export interface ShownSetting {
  readonly field: string;
  readonly value: string;
}

export interface DestinationConfig {
  readonly name: string;
  /** With ${VAR} expanded. */
  readonly url: string;
  readonly scheme: string;
  readonly backendOptions: BackendOptions;
  /** The settings for display (`config check`): no secret value, ever. */
  readonly shown: readonly ShownSetting[];
  readonly pos: Position;
}

export interface RuleConfig {
  /** 0-based, as in the field path `rules[i]`. */
  readonly index: number;
  /** Glob list, read like a list of --exclude patterns; the rule matches what it would exclude. */
  readonly glob?: readonly string[];
  /** Names in `types`; the rule matches a file of any of them. */
  readonly type?: readonly string[];
  /** Inclusive bounds, in bytes. */
  readonly minSize?: number;
  readonly maxSize?: number;
  /** Destination names; empty: matching files go nowhere. */
  readonly to: readonly string[];
  readonly pos: Position;
}

export type JobCommand = 'push' | 'sync';

export interface JobSettings {
  readonly transfers?: number;
  readonly mode?: 'incremental' | 'all';
  readonly force?: boolean;
  readonly followSymlinks?: boolean;
  readonly multipartThreshold?: number;
  readonly partSize?: number;
  readonly retries?: number;
}

export interface JobDeletion {
  readonly maxDelete?: string | number;
  readonly allowEmptySource?: boolean;
  readonly deleteExcluded?: boolean;
  readonly backupDir?: string;
}

export interface JobConfig {
  readonly name: string;
  readonly description?: string;
  readonly command: JobCommand;
  /** Absolute path. */
  readonly source: string;
  /** The job's destinations in order: `to`, or every destination its rules name. */
  readonly to: readonly string[];
  /** Undefined: every file goes to every destination in `to`. */
  readonly rules?: readonly RuleConfig[];
  readonly exclude: readonly string[];
  readonly settings: JobSettings;
  /** sync jobs only. */
  readonly deletion?: JobDeletion;
  readonly pos: Position;
}

export interface Config {
  /** The file as it was named (for messages). */
  readonly file: string;
  /** Absolute directory of the file: relative paths are relative to it. */
  readonly dir: string;
  readonly version: number;
  /** Absolute ledger directory, when the file sets one. */
  readonly stateDir?: string;
  /** `ledger:`: postgres://… or sqlite:<absolute state directory>; wins over `state:`. */
  readonly ledgerUrl?: string;
  readonly destinations: ReadonlyMap<string, DestinationConfig>;
  readonly types: ReadonlyMap<string, readonly string[]>;
  readonly jobs: ReadonlyMap<string, JobConfig>;
}

export interface ValidateContext {
  readonly file: string;
  readonly dir: string;
  readonly env: NodeJS.ProcessEnv;
  readonly issues: IssueList;
  /** Fields holding a secret in plain text (field paths), filled by validation. */
  readonly plainSecrets: string[];
}

const TOP_FIELDS = ['version', 'state', 'ledger', 'destinations', 'types', 'jobs'];
const JOB_FIELDS = [
  'description',
  'command',
  'source',
  'to',
  'rules',
  'exclude',
  'transfers',
  'mode',
  'force',
  'followSymlinks',
  'multipartThreshold',
  'partSize',
  'retries',
  'maxDelete',
  'allowEmptySource',
  'deleteExcluded',
  'backupDir',
];
const SYNC_ONLY = ['maxDelete', 'allowEmptySource', 'deleteExcluded', 'backupDir'];
const RULE_FIELDS = ['glob', 'type', 'minSize', 'maxSize', 'to'];

type SettingKind = 'string' | 'boolean' | 'path' | 'http-url' | 'seconds';

interface DestinationSetting {
  readonly kind: SettingKind;
  /** Scheme → the BackendOptions field it sets. */
  readonly option: Readonly<Record<string, keyof BackendOptions>>;
  /** always: the value is a secret; connection-string: when it holds AccountKey= or SharedAccessSignature=. */
  readonly secret?: 'always' | 'connection-string';
}

// One line per setting; the scheme decides which BackendOptions field it fills.
const DESTINATION_SETTINGS: Readonly<Record<string, DestinationSetting>> = {
  endpoint: { kind: 'http-url', option: { s3: 's3Endpoint', azure: 'azureEndpoint' } },
  region: { kind: 'string', option: { s3: 's3Region' } },
  pathStyle: { kind: 'boolean', option: { s3: 's3PathStyle' } },
  fsync: { kind: 'boolean', option: { file: 'fsync' } },
  connectionString: { kind: 'string', option: { azure: 'azureConnectionString' }, secret: 'connection-string' },
  account: { kind: 'string', option: { azure: 'azureAccount' } },
  accountKey: { kind: 'string', option: { azure: 'azureAccountKey' }, secret: 'always' },
  sasToken: { kind: 'string', option: { azure: 'azureSasToken' }, secret: 'always' },
  credentialsFile: { kind: 'path', option: { gdrive: 'gdriveCredentialsFile' } },
  accessToken: { kind: 'string', option: { gdrive: 'gdriveAccessToken' }, secret: 'always' },
  apiRoot: { kind: 'http-url', option: { gdrive: 'gdriveApiRoot' } },
  // Seconds in the file, milliseconds in BackendOptions.
  requestTimeout: { kind: 'seconds', option: { s3: 'requestTimeoutMs', azure: 'requestTimeoutMs', gdrive: 'requestTimeoutMs' } },
};

/** Settings that look like S3 credentials: they have no place in the file. */
const S3_CREDENTIAL_FIELDS = new Set(['accessKeyId', 'secretAccessKey', 'sessionToken', 'profile', 'accessKey', 'secretKey']);

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

// ---------------------------------------------------------------------------
// Reading values

/** Describes a node's type for "expected X, got Y". */
function describe(node: ConfigNode): string {
  if (node.kind === 'map') return 'a mapping';
  if (node.kind === 'seq') return 'a list';
  if (node.value === null) return 'nothing';
  if (typeof node.value === 'string') {
    // Only ever called for fields that are not secrets, so the text may be shown.
    const v = node.value.length > 40 ? `${node.value.slice(0, 37)}...` : node.value;
    return JSON.stringify(v);
  }
  return typeof node.value === 'number' ? `the number ${node.value}` : String(node.value);
}

/** Where a value's problem is shown: the value itself when it is one, else the key that introduced it. */
function where(node: ConfigNode): Position {
  return node.kind === 'scalar' ? node.pos : node.at;
}

class Reader {
  constructor(private readonly ctx: ValidateContext) {}

  errorCount(): number {
    return this.ctx.issues.errors.length;
  }

  error(pos: Position | undefined, field: string, message: string): void {
    this.ctx.issues.error(pos, field, message);
  }

  warning(pos: Position | undefined, field: string, message: string): void {
    this.ctx.issues.warning(pos, field, message);
  }

  /** The node as a mapping; `null` (an empty `key:`) is an empty mapping when `emptyOk`. */
  map(node: ConfigNode, field: string, emptyOk = false): MapNode | undefined {
    if (node.kind === 'map') return node;
    if (emptyOk && node.kind === 'scalar' && node.value === null) return { kind: 'map', entries: [], pos: node.pos, at: node.at };
    this.error(node.at, field, `expected a mapping (name: value lines), got ${describe(node)}`);
    return undefined;
  }

  /**
   * The entries of `map` by name; reports unknown fields (with a suggestion)
   * unless `explain` has something better to say about one.
   */
  fields(map: MapNode, field: string, known: readonly string[], explain?: (key: string) => string | undefined, listed: readonly string[] = known): Map<string, MapEntry> {
    const out = new Map<string, MapEntry>();
    for (const e of map.entries) {
      if (known.includes(e.key)) {
        out.set(e.key, e);
        continue;
      }
      const special = explain?.(e.key);
      const at = join(field, e.key);
      if (special !== undefined) this.error(e.keyPos, at, special);
      else if (e.key === '<<') this.error(e.keyPos, at, 'YAML merge keys (<<) are not supported; repeat the fields, or use an alias (*name) for a whole value');
      else this.error(e.keyPos, at, `unknown field${didYouMean(e.key, listed)}; known fields here: ${listed.join(', ')}`);
    }
    return out;
  }

  /** A string value with ${VAR} expanded; undefined (and an issue) if it is not a string or a variable is missing. */
  string(node: ConfigNode, field: string, opts: { secret?: boolean } = {}): string | undefined {
    if (node.kind !== 'scalar' || typeof node.value !== 'string') {
      const got = opts.secret === true && node.kind === 'scalar' && node.value !== null ? 'a number or boolean (not shown: it is a secret)' : describe(node);
      this.error(where(node), field, `expected a string, got ${got}${node.kind === 'scalar' && node.value !== null ? ' (put it in quotes)' : ''}`);
      return undefined;
    }
    return this.expand(node.value, node, field);
  }

  /** Like `string`, but a number is taken as its text (glob lists like [2024, "*.log"]). */
  text(node: ConfigNode, field: string): string | undefined {
    if (node.kind === 'scalar' && typeof node.value === 'number') return String(node.value);
    return this.string(node, field);
  }

  /** A non-empty string; a path is expanded (~, relative to the file's directory). */
  path(node: ConfigNode, field: string): string | undefined {
    const s = this.string(node, field);
    if (s === undefined) return undefined;
    if (s.trim() === '') {
      this.error(where(node), field, 'the path is empty');
      return undefined;
    }
    let p = s;
    if (p === '~' || p.startsWith('~/')) {
      const home = this.ctx.env.HOME !== undefined && this.ctx.env.HOME !== '' ? this.ctx.env.HOME : os.homedir();
      p = path.join(home, p.slice(1));
    } else if (p.startsWith('~')) {
      this.error(node.pos, field, 'only "~" and "~/..." are expanded (not "~user"); write the full path');
      return undefined;
    }
    return path.resolve(this.ctx.dir, p);
  }

  boolean(node: ConfigNode, field: string): boolean | undefined {
    if (node.kind === 'scalar') {
      if (typeof node.value === 'boolean') return node.value;
      if (typeof node.value === 'string') {
        const s = this.expand(node.value, node, field);
        if (s === undefined) return undefined;
        if (s === 'true' || s === 'false') return s === 'true';
      }
    }
    const yaml11 = node.kind === 'scalar' && typeof node.value === 'string' && /^(yes|no|on|off|y|n)$/i.test(node.value);
    this.error(where(node), field, `expected true or false, got ${describe(node)}${yaml11 ? ' (YAML 1.2 reads yes/no/on/off as text)' : ''}`);
    return undefined;
  }

  integer(node: ConfigNode, field: string, min: number, max: number): number | undefined {
    let n: number | undefined;
    if (node.kind === 'scalar' && typeof node.value === 'number') n = node.value;
    else if (node.kind === 'scalar' && typeof node.value === 'string') {
      const s = this.expand(node.value, node, field);
      if (s === undefined) return undefined;
      n = parseWholeNumber(s) ?? NaN;
    }
    if (n === undefined || !Number.isInteger(n) || n < min || n > max) {
      this.error(where(node), field, `expected a whole number from ${min} to ${max}, got ${describe(node)}`);
      return undefined;
    }
    return n;
  }

  /** A size: a number of bytes, or text like 100MiB, 64M, 1.5GiB (binary units). */
  size(node: ConfigNode, field: string, min: number): number | undefined {
    let n: number | undefined;
    if (node.kind === 'scalar' && typeof node.value === 'number') n = Number.isSafeInteger(node.value) ? node.value : undefined;
    else if (node.kind === 'scalar' && typeof node.value === 'string') {
      const s = this.expand(node.value, node, field);
      if (s === undefined) return undefined;
      n = parseSize(s);
    }
    if (n === undefined || n < min) {
      this.error(where(node), field, `expected a size such as 100MiB, 64M or 1048576${min > 0 ? ` (at least ${min})` : ''}, got ${describe(node)}`);
      return undefined;
    }
    return n;
  }

  /** One of `choices`. */
  choice<T extends string>(node: ConfigNode, field: string, choices: readonly T[]): T | undefined {
    const s = this.string(node, field);
    if (s === undefined) return undefined;
    if ((choices as readonly string[]).includes(s)) return s as T;
    this.error(node.pos, field, `expected ${choices.map((c) => `"${c}"`).join(' or ')}, got "${s}"${didYouMean(s, choices)}`);
    return undefined;
  }

  /** A list of items (a single item is taken as a list of one when `single`), each read by `item`. */
  list<T>(node: ConfigNode, field: string, item: (n: ConfigNode, f: string) => T | undefined, opts: { single?: boolean } = {}): T[] | undefined {
    if (node.kind === 'seq') {
      const out: T[] = [];
      let ok = true;
      node.items.forEach((n, i) => {
        const v = item(n, `${field}[${i}]`);
        if (v === undefined) ok = false;
        else out.push(v);
      });
      return ok ? out : undefined;
    }
    if (opts.single === true && node.kind === 'scalar' && node.value !== null) {
      const v = item(node, field);
      return v === undefined ? undefined : [v];
    }
    this.error(node.at, field, `expected a list${opts.single === true ? ' (or a single value)' : ''}, got ${describe(node)}`);
    return undefined;
  }

  /**
   * Expands ${NAME} from the environment; `$${` writes a literal `${`.
   * A variable that is not set is an error naming it (an empty one is fine).
   */
  expand(raw: string, node: ScalarNode, field: string): string | undefined {
    let out = '';
    let ok = true;
    for (let i = 0; i < raw.length; ) {
      if (raw.startsWith('$${', i)) {
        out += '${';
        i += 3;
        continue;
      }
      if (!raw.startsWith('${', i)) {
        out += raw[i];
        i++;
        continue;
      }
      const end = raw.indexOf('}', i + 2);
      if (end < 0) {
        this.error(node.pos, field, '"${" without a closing "}" (write "$${" for a literal "${")');
        return undefined;
      }
      const name = raw.slice(i + 2, end);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
        this.error(node.pos, field, `"\${${name}}" is not a variable reference: a name is letters, digits and "_", not starting with a digit`);
        ok = false;
      } else {
        const v = this.ctx.env[name];
        if (v === undefined) {
          this.error(node.pos, field, `environment variable ${name} is not set`);
          ok = false;
        } else out += v;
      }
      i = end + 1;
    }
    return ok ? out : undefined;
  }

  plainSecret(field: string): void {
    this.ctx.plainSecrets.push(field);
  }
}

function join(parent: string, key: string): string {
  const k = /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key) ? key : JSON.stringify(key);
  return parent === '' ? k : `${parent}.${k}`;
}

/** Whether a raw value has text besides ${VAR} references (so a secret in it is written in the file). */
function hasPlainText(raw: string): boolean {
  return raw.replace(/\$\{[^}]*\}/g, '').trim() !== '';
}

/** Whether a connection string's AccountKey= or SharedAccessSignature= part is written in plain text. */
function connectionStringHasPlainSecret(raw: string): boolean {
  for (const part of raw.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim().toLowerCase();
    if ((name === 'accountkey' || name === 'sharedaccesssignature') && hasPlainText(part.slice(eq + 1))) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------
// The file

/** Validates the whole document; returns the Config when there was no error. */
export function validateConfig(root: ConfigNode, ctx: ValidateContext): Config | undefined {
  const r = new Reader(ctx);
  const top = r.map(root, '');
  if (top === undefined) return undefined;
  const f = r.fields(top, '', TOP_FIELDS);

  let version = CONFIG_VERSION;
  const v = f.get('version');
  if (v !== undefined) {
    const n = r.integer(v.value, 'version', 1, Number.MAX_SAFE_INTEGER);
    if (n !== undefined && n !== CONFIG_VERSION) r.error(v.value.pos, 'version', `this Holdfast reads version ${CONFIG_VERSION}, not ${n}`);
    else if (n !== undefined) version = n;
  }
  const stateEntry = f.get('state');
  const stateDir = stateEntry === undefined ? undefined : r.path(stateEntry.value, 'state');
  const ledgerEntry = f.get('ledger');
  let ledgerUrl: string | undefined;
  if (ledgerEntry !== undefined) {
    const given = r.string(ledgerEntry.value, 'ledger');
    if (given !== undefined) {
      try {
        const target = parseLedgerUrl(given, 'ledger');
        // A relative SQLite directory is relative to the file, like every path in it.
        ledgerUrl = target.kind === 'postgres' ? target.url : `sqlite:${path.resolve(ctx.dir, given.replace(/^sqlite:(\/\/(?=\/))?/i, ''))}`;
      } catch (e) {
        r.error(ledgerEntry.value.pos, 'ledger', (e as Error).message.replace(/^ledger: /, ''));
      }
    }
  }

  const destinations = new Map<string, DestinationConfig>();
  const destEntry = f.get('destinations');
  if (destEntry === undefined) r.error({ line: 1, col: 1 }, 'destinations', 'missing: name at least one destination (e.g. `local: { url: file:///mnt/backups }`)');
  else {
    const m = r.map(destEntry.value, 'destinations', true);
    if (m !== undefined) {
      if (m.entries.length === 0) r.error(destEntry.keyPos, 'destinations', 'no destination is defined');
      for (const e of m.entries) {
        const field = join('destinations', e.key);
        if (!checkName(r, e, field, 'a destination')) continue;
        const d = readDestination(r, e, field);
        if (d !== undefined) destinations.set(e.key, d);
      }
    }
  }
  // Names known even when their own settings had errors: a job that refers to them is not wrong too.
  const destinationNames = destEntry?.value.kind === 'map' ? destEntry.value.entries.map((e) => e.key) : [];

  const types = new Map<string, readonly string[]>();
  const typesEntry = f.get('types');
  const typeNames = typesEntry?.value.kind === 'map' ? typesEntry.value.entries.map((e) => e.key) : [];
  if (typesEntry !== undefined) {
    const m = r.map(typesEntry.value, 'types', true);
    for (const e of m?.entries ?? []) {
      const field = join('types', e.key);
      if (!checkName(r, e, field, 'a type')) continue;
      const globs = readGlobs(r, e.value, field);
      if (globs !== undefined) types.set(e.key, globs);
    }
  }

  const jobs = new Map<string, JobConfig>();
  const jobsEntry = f.get('jobs');
  if (jobsEntry === undefined) r.error({ line: 1, col: 1 }, 'jobs', 'missing: define at least one job (what to copy, and where)');
  else {
    const m = r.map(jobsEntry.value, 'jobs', true);
    if (m !== undefined) {
      if (m.entries.length === 0) r.error(jobsEntry.keyPos, 'jobs', 'no job is defined');
      for (const e of m.entries) {
        const field = join('jobs', e.key);
        if (!checkName(r, e, field, 'a job')) continue;
        const job = readJob(r, e, field, destinationNames, typeNames);
        if (job !== undefined) jobs.set(e.key, job);
      }
    }
  }

  if (ctx.issues.errors.length > 0) return undefined;
  return { file: ctx.file, dir: ctx.dir, version, ...(stateDir !== undefined ? { stateDir } : {}), ...(ledgerUrl !== undefined ? { ledgerUrl } : {}), destinations, types, jobs };
}

function checkName(r: Reader, e: MapEntry, field: string, what: string): boolean {
  if (NAME_RE.test(e.key)) return true;
  r.error(e.keyPos, field, `"${e.key}" cannot name ${what}: use letters, digits, ".", "_" and "-", starting with a letter or digit`);
  return false;
}

function readDestination(r: Reader, entry: MapEntry, field: string): DestinationConfig | undefined {
  const m = r.map(entry.value, field);
  if (m === undefined) return undefined;
  const urlEntry = m.entries.find((e) => e.key === 'url');
  let url: string | undefined;
  let scheme: string | undefined;
  if (urlEntry === undefined) r.error(entry.keyPos, field, 'missing field "url" (file:///path, s3://bucket/prefix, azure://container/prefix, gdrive://folder-id)');
  else {
    url = r.string(urlEntry.value, `${field}.url`);
    if (url !== undefined) {
      // The scheme decides which settings apply, even for a scheme this build cannot open.
      scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url)?.[1]?.toLowerCase();
      try {
        parseDestinationUrl(url);
      } catch (e) {
        r.error(urlEntry.value.pos, `${field}.url`, (e as Error).message);
        url = undefined;
      }
    }
  }
  const known = ['url', ...Object.keys(DESTINATION_SETTINGS)];
  // Messages list the settings of this destination's scheme; the others get "applies only to" below.
  const listed = scheme === undefined ? known : known.filter((k) => k === 'url' || DESTINATION_SETTINGS[k]?.option[scheme] !== undefined);
  const fields = r.fields(
    m,
    field,
    known,
    (key) =>
      S3_CREDENTIAL_FIELDS.has(key) && (scheme === undefined || scheme === 's3')
        ? 'S3 credentials do not go in the configuration file: Holdfast uses the AWS SDK chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, shared credentials files)'
        : undefined,
    listed,
  );
  const options: Record<string, string | boolean | number> = {};
  const shown: ShownSetting[] = [];
  let ok = url !== undefined;
  for (const [key, e] of fields) {
    if (key === 'url') continue;
    const setting = DESTINATION_SETTINGS[key];
    if (setting === undefined) continue;
    const at = `${field}.${key}`;
    const schemes = Object.keys(setting.option);
    if (scheme !== undefined && !schemes.includes(scheme)) {
      r.error(e.keyPos, at, `applies only to ${schemes.map((s) => `${s}://`).join(' and ')} destinations, and this one is ${scheme}://`);
      ok = false;
      continue;
    }
    const raw = e.value.kind === 'scalar' && typeof e.value.value === 'string' ? e.value.value : undefined;
    if (setting.secret !== undefined && raw !== undefined) {
      const plain = setting.secret === 'always' ? hasPlainText(raw) : connectionStringHasPlainSecret(raw);
      if (plain) {
        r.warning(e.value.pos, at, 'a secret is written in plain text in this file; write ${VARIABLE} instead and set the variable in the environment');
        r.plainSecret(at);
      }
      // Not plain: the secret parts are ${VAR} references, which may be shown.
      shown.push({ field: key, value: plain ? '*** (plain text in the file)' : raw });
    }
    let value: string | boolean | number | undefined;
    switch (setting.kind) {
      case 'boolean':
        value = r.boolean(e.value, at);
        break;
      case 'seconds': {
        const seconds = r.integer(e.value, at, 1, 86_400);
        value = seconds === undefined ? undefined : seconds * 1000;
        break;
      }
      case 'path':
        value = r.path(e.value, at);
        break;
      case 'http-url': {
        const s = r.string(e.value, at);
        if (s !== undefined && !/^https?:\/\/[^/]/i.test(s)) r.error(e.value.pos, at, `expected an http:// or https:// URL, got "${redactUrl(s)}"`);
        else value = s;
        break;
      }
      default:
        value = r.string(e.value, at, { secret: setting.secret !== undefined });
    }
    if (value === undefined) {
      ok = false;
      continue;
    }
    if (setting.secret === undefined) {
      const text = setting.kind === 'seconds' ? `${Number(value) / 1000}s` : typeof value === 'string' && setting.kind === 'http-url' ? redactUrl(value) : String(value);
      shown.push({ field: key, value: text });
    }
    const option = scheme === undefined ? undefined : setting.option[scheme];
    if (option !== undefined) options[option] = value;
  }
  if (!ok || url === undefined || scheme === undefined) return undefined;
  return { name: entry.key, url, scheme, backendOptions: options, shown, pos: entry.keyPos };
}

/** A glob or a list of globs (same rules as --exclude), each checked by compiling it. */
function readGlobs(r: Reader, node: ConfigNode, field: string): string[] | undefined {
  const globs = r.list(
    node,
    field,
    (n, f) => {
      const g = r.text(n, f);
      if (g === undefined) return undefined;
      if (g.trim() === '') {
        r.error(n.pos, f, 'the pattern is empty');
        return undefined;
      }
      try {
        compileExcludes([g]);
      } catch (e) {
        r.error(n.pos, f, (e as Error).message.replace(/^configuration error: /, ''));
        return undefined;
      }
      return g;
    },
    { single: true },
  );
  if (globs !== undefined && globs.length === 0) {
    r.error(node.at, field, 'the list is empty');
    return undefined;
  }
  return globs;
}

/** A list of destination names, each known and given once. */
function readTargets(r: Reader, node: ConfigNode, field: string, known: readonly string[], allowEmpty: boolean): string[] | undefined {
  const seen = new Set<string>();
  const names = r.list(
    node,
    field,
    (n, f) => {
      const name = r.string(n, f);
      if (name === undefined) return undefined;
      if (!known.includes(name)) {
        r.error(n.pos, f, `unknown destination "${name}"${didYouMean(name, known)} (known: ${known.join(', ') || 'none'})`);
        return undefined;
      }
      if (seen.has(name)) {
        r.error(n.pos, f, `destination "${name}" is listed twice`);
        return undefined;
      }
      seen.add(name);
      return name;
    },
    { single: true },
  );
  if (names !== undefined && names.length === 0 && !allowEmpty) {
    r.error(node.at, field, 'the list is empty: name at least one destination');
    return undefined;
  }
  return names;
}

function readJob(r: Reader, entry: MapEntry, field: string, destinationNames: readonly string[], typeNames: readonly string[]): JobConfig | undefined {
  const m = r.map(entry.value, field);
  if (m === undefined) return undefined;
  const f = r.fields(m, field, JOB_FIELDS);
  const errorsBefore = r.errorCount();
  const get = (k: string): ConfigNode | undefined => f.get(k)?.value;
  const at = (k: string): string => `${field}.${k}`;

  const description = get('description') !== undefined ? r.string(get('description')!, at('description')) : undefined;
  const command = get('command') !== undefined ? r.choice(get('command')!, at('command'), ['push', 'sync'] as const) : 'push';
  let source: string | undefined;
  if (get('source') === undefined) r.error(entry.keyPos, field, 'missing field "source" (the directory to copy)');
  else source = r.path(get('source')!, at('source'));

  const exclude = get('exclude') !== undefined ? readGlobs(r, get('exclude')!, at('exclude')) : [];

  const settings: { -readonly [K in keyof JobSettings]: JobSettings[K] } = {};
  if (get('transfers') !== undefined) settings.transfers = r.integer(get('transfers')!, at('transfers'), 1, 1024);
  if (get('mode') !== undefined) settings.mode = r.choice(get('mode')!, at('mode'), ['incremental', 'all'] as const);
  if (get('force') !== undefined) settings.force = r.boolean(get('force')!, at('force'));
  if (get('followSymlinks') !== undefined) settings.followSymlinks = r.boolean(get('followSymlinks')!, at('followSymlinks'));
  if (get('multipartThreshold') !== undefined) settings.multipartThreshold = r.size(get('multipartThreshold')!, at('multipartThreshold'), 1);
  if (get('partSize') !== undefined) settings.partSize = r.size(get('partSize')!, at('partSize'), 1);
  if (get('retries') !== undefined) settings.retries = r.integer(get('retries')!, at('retries'), 1, 100);

  // Where files go: `to` (everything everywhere) or `rules` (first match wins).
  let to: string[] | undefined;
  let rules: RuleConfig[] | undefined;
  const toEntry = f.get('to');
  const rulesEntry = f.get('rules');
  if (toEntry !== undefined && rulesEntry !== undefined) {
    r.error(toEntry.keyPos, at('to'), 'give either "to" (every file to these destinations) or "rules", not both; a last rule `{ to: [...] }` sends the files no other rule matched');
  } else if (toEntry !== undefined) {
    to = readTargets(r, toEntry.value, at('to'), destinationNames, false);
  } else if (rulesEntry !== undefined) {
    rules = readRules(r, rulesEntry.value, at('rules'), destinationNames, typeNames);
    if (rules !== undefined) {
      to = [...new Set(rules.flatMap((x) => x.to))];
      if (to.length === 0) r.error(rulesEntry.keyPos, at('rules'), 'no rule sends files anywhere (every "to" is empty)');
    }
  } else {
    r.error(entry.keyPos, field, 'missing "to" (the destinations every file goes to) or "rules" (which files go where)');
  }

  let deletion: JobDeletion | undefined;
  if (command === 'sync') {
    const d: { -readonly [K in keyof JobDeletion]: JobDeletion[K] } = {};
    const md = get('maxDelete');
    if (md !== undefined) {
      const raw = md.kind === 'scalar' && typeof md.value === 'number' ? md.value : r.string(md, at('maxDelete'));
      if (raw !== undefined) {
        try {
          parseMaxDelete(raw);
          d.maxDelete = raw;
        } catch (e) {
          r.error(md.pos, at('maxDelete'), (e as Error).message);
        }
      }
    }
    if (get('allowEmptySource') !== undefined) d.allowEmptySource = r.boolean(get('allowEmptySource')!, at('allowEmptySource'));
    if (get('deleteExcluded') !== undefined) d.deleteExcluded = r.boolean(get('deleteExcluded')!, at('deleteExcluded'));
    const bd = get('backupDir');
    if (bd !== undefined) {
      const url = r.string(bd, at('backupDir'));
      if (url !== undefined) {
        try {
          parseDestinationUrl(url);
          d.backupDir = url;
        } catch (e) {
          r.error(bd.pos, at('backupDir'), (e as Error).message);
        }
        if (to !== undefined && to.length > 1) r.error(f.get('backupDir')!.keyPos, at('backupDir'), 'works with a job of one destination; this job has several (make one sync job per destination to keep a backup of each)');
      }
    }
    deletion = d;
  } else if (command === 'push') {
    for (const k of SYNC_ONLY) {
      const e = f.get(k);
      if (e !== undefined) r.error(e.keyPos, at(k), 'applies only to jobs with "command: sync" (push never deletes)');
    }
  }

  if (r.errorCount() > errorsBefore || command === undefined || source === undefined || to === undefined || exclude === undefined) return undefined;
  return {
    name: entry.key,
    ...(description !== undefined ? { description } : {}),
    command,
    source,
    to,
    ...(rules !== undefined ? { rules } : {}),
    exclude,
    settings,
    ...(deletion !== undefined ? { deletion } : {}),
    pos: entry.keyPos,
  };
}

function readRules(r: Reader, node: ConfigNode, field: string, destinationNames: readonly string[], typeNames: readonly string[]): RuleConfig[] | undefined {
  if (node.kind !== 'seq') {
    r.error(node.at, field, `expected a list of rules, got ${describe(node)}`);
    return undefined;
  }
  if (node.items.length === 0) {
    r.error(node.at, field, 'the list is empty: leave "rules" out and give "to" to send every file to the same destinations');
    return undefined;
  }
  const rules: RuleConfig[] = [];
  let ok = true;
  let catchAll: number | undefined;
  node.items.forEach((item, index) => {
    const rf = `${field}[${index}]`;
    const m = r.map(item, rf);
    if (m === undefined) {
      ok = false;
      return;
    }
    const f = r.fields(m, rf, RULE_FIELDS);
    const rule: { -readonly [K in keyof RuleConfig]: RuleConfig[K] } = { index, to: [], pos: item.pos };
    let good = true;
    const g = f.get('glob');
    if (g !== undefined) {
      const globs = readGlobs(r, g.value, `${rf}.glob`);
      if (globs === undefined) good = false;
      else rule.glob = globs;
    }
    const t = f.get('type');
    if (t !== undefined) {
      const names = r.list(
        t.value,
        `${rf}.type`,
        (n, tf) => {
          const name = r.string(n, tf);
          if (name !== undefined && !typeNames.includes(name)) {
            r.error(n.pos, tf, `unknown type "${name}"${didYouMean(name, typeNames)} (${typeNames.length ? `known: ${typeNames.join(', ')}` : 'no "types" are defined'})`);
            return undefined;
          }
          return name;
        },
        { single: true },
      );
      if (names === undefined) good = false;
      else if (names.length === 0) {
        r.error(t.value.at, `${rf}.type`, 'the list is empty');
        good = false;
      } else rule.type = names;
    }
    for (const k of ['minSize', 'maxSize'] as const) {
      const e = f.get(k);
      if (e === undefined) continue;
      const n = r.size(e.value, `${rf}.${k}`, 0);
      if (n === undefined) good = false;
      else rule[k] = n;
    }
    if (rule.minSize !== undefined && rule.maxSize !== undefined && rule.minSize > rule.maxSize) {
      r.error(f.get('maxSize')!.value.pos, `${rf}.maxSize`, `is smaller than minSize (${rule.maxSize} < ${rule.minSize} bytes): no file can match`);
      good = false;
    }
    const toE = f.get('to');
    if (toE === undefined) {
      r.error(item.pos, rf, 'missing field "to" (the destinations of the files this rule matches; [] for none)');
      good = false;
    } else {
      const to = readTargets(r, toE.value, `${rf}.to`, destinationNames, true);
      if (to === undefined) good = false;
      else rule.to = to;
    }
    if (catchAll !== undefined) r.warning(item.pos, rf, `can never match: rules[${catchAll}] before it matches every file`);
    else if (rule.glob === undefined && rule.type === undefined && rule.minSize === undefined && rule.maxSize === undefined && good) catchAll = index;
    if (good) rules.push(rule);
    else ok = false;
  });
  return ok ? rules : undefined;
}
