// The gdrive:// destination: Google Drive, through Google's own client
// libraries (@googleapis/drive for the Drive v3 API, google-auth-library for
// credentials and authorised requests). `gdrive://<folder-id>` puts key
// "a/b/c.txt" at folders a → b → file c.txt under that folder.
//
// Drive is not an object store, and three of its traits shape this module:
// - Names are not unique: a folder may hold two files called c.txt. Holdfast
//   therefore finds its own files by an app property, never by name: every
//   file it writes carries `holdfast-key-sha256` = SHA-256 of
//   "<root folder id>/<key>" (a hash, because Drive allows 124 bytes per
//   property, key and value together), beside `holdfast-sha256` and
//   `holdfast-mtime`. A file without it (anyone else's) is never read,
//   listed, overwritten or deleted. App properties are private to the Google
//   Cloud project whose credentials wrote them.
// - Overwriting updates the existing file (files.update), never creates a
//   second one; after every write the key is looked up again and any
//   duplicate is removed, keeping the file written last. A duplicate comes
//   from two writers racing, or from a write that could not see the key's
//   file because Drive's listing lags behind writes (files.list is served
//   from an index: a new file may be missing from it for a while). Nothing
//   here assumes the listing is current: the file just written counts whether
//   or not the listing shows it, every read takes the file written last (so a
//   stale copy that shows up later never wins), and every later write or
//   delete of the key removes the copies it sees.
// - Large files go through resumable upload sessions, which take bytes only
//   in order: `capabilities.sequentialParts`. The session URI is the upload
//   id the engine keeps in the ledger, so a later run (a new process) resumes
//   the same session; the part geometry rides along in the URI's fragment,
//   which is never sent.
//
// Credentials (never logged, never in messages): a service-account JSON key
// (`gdriveCredentialsFile`, else GOOGLE_APPLICATION_CREDENTIALS) or an OAuth
// access token (`gdriveAccessToken`, else HOLDFAST_GDRIVE_ACCESS_TOKEN).
// `gdriveApiRoot` (else HOLDFAST_GDRIVE_API_ROOT) sends every request, API and
// upload, elsewhere (the tests' local fake of the Drive API).

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Readable } from 'node:stream';
import { drive as openDriveApi } from '@googleapis/drive';
import type { drive_v3, MethodOptions } from '@googleapis/drive';
import { GoogleAuth, OAuth2Client } from 'google-auth-library';
import { cancelledError, classifyError, HoldfastError, isHoldfastError, throwIfAborted } from '../core/errors.js';
import type { ErrorCode } from '../core/errors.js';
import { DEFAULT_REQUEST_TIMEOUT_MS, MTIME_METADATA_KEY, parseMtime, SHA256_METADATA_KEY } from './backend.js';
import { endpointPart, type DestinationLocation } from './location.js';
import type {
  Backend,
  BackendFactory,
  BackendOptions,
  BodySource,
  Capabilities,
  GetOptions,
  ListOptions,
  MultipartApi,
  MultipartUploadInfo,
  ObjectInfo,
  OpOptions,
  PutOptions,
  PutResult,
  UploadedPart,
} from './backend.js';
import { bufferStream, guardBody, limitBytes } from './body.js';
import { printable, validateKeyCommon } from './keys.js';

const KiB = 1024;
const GiB = 1024 * 1024 * KiB;
/** Drive's resumable sessions take chunks in multiples of 256 KiB, except the last. */
export const CHUNK_UNIT = 256 * KiB;
const FOLDER_MIME = 'application/vnd.google-apps.folder';
const DRIVE_SCOPE = 'https://www.googleapis.com/auth/drive';
const DEFAULT_API_ROOT = 'https://www.googleapis.com/';
/** The app property that says "this file is Holdfast's object for key K": SHA-256 of `<root folder id>/<K>`. */
export const KEY_PROPERTY = 'holdfast-key-sha256';
/** Drive: at most 124 bytes (UTF-8) per property, key and value together. */
const PROPERTY_MAX_BYTES = 124;
/** Drive: at most 30 private (app) properties per file and app. */
const MAX_APP_PROPERTIES = 30;
const FILE_FIELDS = 'id,name,mimeType,size,md5Checksum,createdTime,modifiedTime,appProperties,trashed';
const LIST_FIELDS = `nextPageToken,files(${FILE_FIELDS})`;
const PAGE_SIZE = 1000;
/** Sockets per host: the engine's parallel transfers plus listing and lookups. */
const MAX_SOCKETS = 64;

const CAPABILITIES: Capabilities = {
  multipart: true,
  metadata: true,
  serverChecksum: false,
  versioning: false,
  // Drive itself sets no limit on a path; this keeps keys portable to S3.
  maxKeyBytes: 1024,
  // Drive's limit for one file: 5 TB.
  maxObjectSize: 5 * 1000 ** 4,
  minPartSize: CHUNK_UNIT,
  maxPartSize: GiB,
  partSizeMultiple: CHUNK_UNIT,
  maxParts: 10_000,
  sequentialParts: true,
};

const ENV_CREDENTIALS = 'GOOGLE_APPLICATION_CREDENTIALS';
const ENV_TOKEN = 'HOLDFAST_GDRIVE_ACCESS_TOKEN';
/** Another API root (a local fake of the Drive API, a proxy); the `gdriveApiRoot` option wins. */
const ENV_API_ROOT = 'HOLDFAST_GDRIVE_API_ROOT';

/** Whether `e` or one of its causes is an AbortError. */
function abortedInChain(e: unknown): boolean {
  for (let c: unknown = e, depth = 0; c !== undefined && c !== null && depth < 5; c = (c as { cause?: unknown }).cause, depth++) {
    if ((c as { name?: unknown }).name === 'AbortError') return true;
  }
  return false;
}

// ---- configuration -------------------------------------------------------

/** What signs our requests: google-auth-library's GoogleAuth (service account) or OAuth2Client (access token). */
type DriveAuth = GoogleAuth | OAuth2Client;

interface Credentials {
  readonly auth: DriveAuth;
  /** Who we are, for messages ("share the folder with …"); never a secret. */
  readonly principal: string;
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s.trim() === '' ? undefined : s;
}

export const createBackend: BackendFactory = async (url: URL, options: BackendOptions): Promise<Backend> => {
  const rootId = parseDriveUrl(url);
  const apiRoot = parseApiRoot(nonEmpty(options.gdriveApiRoot) ?? nonEmpty(process.env[ENV_API_ROOT]) ?? DEFAULT_API_ROOT);
  const credentials = await loadCredentials(options, rootId);
  return new DriveBackend({ rootId, apiRoot, credentials, timeoutMs: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS });
};

/** `gdrive://<folder-id>` → the folder id. */
export function parseDriveUrl(url: URL): string {
  const shown = `gdrive://${url.host}${url.pathname}`;
  if (url.username !== '' || url.password !== '') {
    throw new HoldfastError('HOLDFAST_E_BAD_URL', { url: shown, detail: `credentials do not belong in the URL; use ${ENV_CREDENTIALS} or ${ENV_TOKEN}` });
  }
  if (url.search !== '' || url.hash !== '') throw new HoldfastError('HOLDFAST_E_BAD_URL', { url: shown, detail: 'a gdrive:// URL takes no "?" or "#" part' });
  if (url.pathname !== '' && url.pathname !== '/') {
    throw new HoldfastError('HOLDFAST_E_BAD_URL', {
      url: shown,
      detail: 'a gdrive:// URL names one folder by its id (gdrive://<folder-id>); for a sub-folder, use that folder\'s own id',
    });
  }
  const id = url.host;
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(id)) {
    throw new HoldfastError('HOLDFAST_E_BAD_URL', {
      url: shown,
      detail: 'expected gdrive://<folder-id>, the id from the folder\'s address (https://drive.google.com/drive/folders/<folder-id>)',
    });
  }
  return id;
}

function parseApiRoot(root: string): string {
  let u: URL;
  try {
    u = new URL(root);
  } catch {
    throw new HoldfastError('HOLDFAST_E_CONFIG', { detail: `Drive API root "${root}" is not a URL (expected e.g. https://www.googleapis.com/)` });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new HoldfastError('HOLDFAST_E_CONFIG', { detail: `Drive API root "${root}" must be http:// or https://` });
  return u.href.endsWith('/') ? u.href : `${u.href}/`;
}

/**
 * Options first (a key file, then a token), then the environment: the
 * Holdfast-specific token variable before the general Google one, so a
 * machine that has GOOGLE_APPLICATION_CREDENTIALS for other tools can still be
 * pointed at Drive with a token.
 */
async function loadCredentials(options: BackendOptions, rootId: string): Promise<Credentials> {
  const file = nonEmpty(options.gdriveCredentialsFile);
  if (file !== undefined) return serviceAccount(file, 'gdriveCredentialsFile');
  const token = nonEmpty(options.gdriveAccessToken) ?? nonEmpty(process.env[ENV_TOKEN]);
  if (token !== undefined) return accessToken(token.trim());
  const envFile = nonEmpty(process.env[ENV_CREDENTIALS]);
  if (envFile !== undefined) return serviceAccount(envFile, ENV_CREDENTIALS);
  throw new HoldfastError('HOLDFAST_E_USAGE', {
    detail:
      `gdrive://${rootId}: no Google credentials. Set ${ENV_CREDENTIALS} to a service-account JSON key file ` +
      `(share the Drive folder with the account's e-mail address), or ${ENV_TOKEN} to an OAuth access token ` +
      'with the Drive scope (library: the gdriveCredentialsFile / gdriveAccessToken options)',
  });
}

function accessToken(token: string): Credentials {
  const auth = new OAuth2Client();
  auth.setCredentials({ access_token: token });
  return { auth, principal: 'the account of the access token' };
}

interface ServiceAccountKey {
  readonly type?: unknown;
  readonly client_email?: unknown;
  readonly private_key?: unknown;
}

async function serviceAccount(file: string, from: string): Promise<Credentials> {
  const bad = (detail: string, cause?: unknown): HoldfastError =>
    new HoldfastError('HOLDFAST_E_CONFIG', { detail: `${from}="${file}": ${detail}` }, cause === undefined ? undefined : { cause });
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw bad(`cannot be read (${(e as { code?: string }).code ?? (e as Error).message})`, e);
  }
  let key: ServiceAccountKey;
  try {
    key = JSON.parse(text) as ServiceAccountKey;
  } catch {
    // Never echo the content: it holds a private key.
    throw bad('is not JSON; expected a service-account key file downloaded from the Google Cloud console');
  }
  if (typeof key !== 'object' || key === null || key.type !== 'service_account') {
    throw bad(`is not a service-account key (its "type" is ${JSON.stringify(key?.type ?? null)}, expected "service_account")`);
  }
  if (typeof key.client_email !== 'string' || typeof key.private_key !== 'string' || key.private_key === '') {
    throw bad('lacks "client_email" or "private_key"');
  }
  const auth = new GoogleAuth({ credentials: { client_email: key.client_email, private_key: key.private_key }, scopes: [DRIVE_SCOPE] });
  return { auth, principal: key.client_email };
}

// ---- helpers -------------------------------------------------------------

/** The subset of a Drive file resource Holdfast reads. */
interface DriveFile {
  readonly id: string;
  readonly name: string;
  readonly mimeType: string;
  readonly size: number;
  readonly md5Checksum?: string;
  readonly createdMs: number;
  readonly modifiedMs?: number;
  readonly appProperties: Readonly<Record<string, string>>;
}

function toDriveFile(f: drive_v3.Schema$File): DriveFile {
  if (typeof f.id !== 'string' || f.id === '') throw new HoldfastError('HOLDFAST_E_DEST_REJECTED', { detail: 'Drive returned a file without an id' });
  const created = f.createdTime ? Date.parse(f.createdTime) : NaN;
  const modified = f.modifiedTime ? Date.parse(f.modifiedTime) : NaN;
  const props: Record<string, string> = {};
  for (const [k, v] of Object.entries(f.appProperties ?? {})) if (typeof v === 'string') props[k] = v;
  return {
    id: f.id,
    name: f.name ?? '',
    mimeType: f.mimeType ?? '',
    size: f.size === undefined || f.size === null ? 0 : Number(f.size),
    ...(f.md5Checksum ? { md5Checksum: f.md5Checksum } : {}),
    createdMs: Number.isFinite(created) ? created : 0,
    ...(Number.isFinite(modified) ? { modifiedMs: modified } : {}),
    appProperties: props,
  };
}

/** Which of several same-named folders wins: the oldest, then the smallest id, so every writer picks the same one. */
function oldestFirst(a: DriveFile, b: DriveFile): number {
  return a.createdMs - b.createdMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/**
 * Which of several files of one key is the object: the one whose content was
 * written last (Drive's modifiedTime, on Drive's clock), then the newer, then
 * the smallest id, so every reader and writer picks the same one. The last
 * write wins, as on S3: a stale copy that a lagging listing showed late (an
 * earlier version, or a write whose answer was lost and was sent again) never
 * replaces what was written after it.
 */
function latestFirst(a: DriveFile, b: DriveFile): number {
  return (b.modifiedMs ?? b.createdMs) - (a.modifiedMs ?? a.createdMs) || b.createdMs - a.createdMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** A string literal for a Drive query: quotes and backslashes escaped, as the query language requires. */
function quote(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function sha256Hex(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex');
}

interface DriveErrorBody {
  error?: { code?: number; message?: string; errors?: { reason?: string; message?: string }[] };
}

/** Drive's error reason ("rateLimitExceeded", "notFound"…) and message from a response body, JSON or text. */
function apiError(data: unknown): { reason?: string; message?: string } {
  let body = data;
  if (typeof data === 'string') {
    try {
      body = JSON.parse(data);
    } catch {
      return data.trim() === '' ? {} : { message: data.trim().slice(0, 200) };
    }
  }
  const err = (body as DriveErrorBody | null)?.error;
  if (err === undefined || err === null) return {};
  return { reason: err.errors?.[0]?.reason, message: err.message ?? err.errors?.[0]?.message };
}

const THROTTLE_REASONS = new Set(['rateLimitExceeded', 'userRateLimitExceeded', 'sharingRateLimitExceeded', 'backendError']);

/** Status + Drive's own reason → a HoldfastError with the right code and transient verdict. */
function httpError(status: number, data: unknown, what: string, cause?: unknown): HoldfastError {
  const { reason, message } = apiError(data);
  const detail = `${what}: HTTP ${status}${reason ? ` ${reason}` : ''}${message ? `: ${message}` : ''}`;
  const opts = cause === undefined ? undefined : { cause };
  if (status === 401) return new HoldfastError('HOLDFAST_E_AUTH', { detail: `${detail} (the access token expired or was revoked, or the key is not valid)` }, opts);
  if (status === 429 || (status === 403 && reason !== undefined && THROTTLE_REASONS.has(reason))) return new HoldfastError('HOLDFAST_E_THROTTLED', { detail }, opts);
  if (status === 403 && (reason === 'storageQuotaExceeded' || reason === 'teamDriveFileLimitExceeded' || reason === 'numChildrenInNonRootLimitExceeded')) {
    return new HoldfastError('HOLDFAST_E_DEST_REJECTED', { detail }, opts);
  }
  if (status === 403) return new HoldfastError('HOLDFAST_E_AUTH', { detail }, opts);
  if (status === 408) return new HoldfastError('HOLDFAST_E_TIMEOUT', { detail }, opts);
  if (status === 503) return new HoldfastError('HOLDFAST_E_THROTTLED', { detail }, opts);
  if (status >= 500) return new HoldfastError('HOLDFAST_E_DEST_SERVER', { detail }, opts);
  return new HoldfastError('HOLDFAST_E_DEST_REJECTED', { detail }, opts);
}

function statusOf(e: unknown): number | undefined {
  const err = e as { status?: unknown; response?: { status?: unknown } } | null;
  const s = err?.status ?? err?.response?.status;
  return typeof s === 'number' ? s : undefined;
}

/** A resumable session as the ledger keeps it: the session URI plus the geometry the engine chose. */
interface Session {
  /** The session URI, without our fragment. */
  readonly uri: string;
  readonly size: number;
  readonly partSize: number;
}

/** What the session says it holds. */
type SessionStatus = { readonly state: 'open'; readonly received: number } | { readonly state: 'done'; readonly file: DriveFile } | { readonly state: 'gone' };

function uploadGone(key: string, detail: string): HoldfastError {
  // details.gone tells the engine to forget the upload id and start a new upload next time.
  return new HoldfastError('HOLDFAST_E_DEST_REJECTED', { detail: `the upload session of "${printable(key)}" ${detail}`, gone: 'upload' });
}

// ---- the backend ---------------------------------------------------------

interface DriveBackendConfig {
  readonly rootId: string;
  /** Ends with "/". */
  readonly apiRoot: string;
  readonly credentials: Credentials;
  /** One request (at most one chunk or one small file) may take this long; a server that hangs must not stall the run. */
  readonly timeoutMs: number;
}

interface RootInfo {
  /** Set when the folder is in a shared drive: lists must then name it. */
  readonly driveId?: string;
  /** We may add files to it. */
  readonly canWrite: boolean;
}

/** One directory level while listing: files (ours) and folders (anyone's, same-named ones merged). */
interface Entry {
  readonly key: Buffer;
  readonly folderIds?: string[];
  readonly file?: DriveFile;
}

export class DriveBackend implements Backend {
  readonly kind = 'gdrive';
  readonly url: string;
  readonly location: DestinationLocation;
  readonly capabilities = CAPABILITIES;
  readonly multipart: MultipartApi;
  readonly rootId: string;
  private readonly apiRoot: string;
  private readonly auth: DriveAuth;
  private readonly timeoutMs: number;
  private readonly principal: string;
  private readonly api: drive_v3.Drive;
  private readonly httpAgent = new HttpAgent({ keepAlive: true, maxSockets: MAX_SOCKETS });
  private readonly httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: MAX_SOCKETS });
  private rootInfo: Promise<RootInfo> | undefined;
  /** "<parent id>/<name>" → the folder's id: looked up (or created) once per backend. */
  private readonly folders = new Map<string, Promise<string>>();
  /** Bytes each session is known to hold, learnt from its last answer: saves a status query per part. */
  private readonly received = new Map<string, number>();
  /** Sessions whose last chunk completed the upload in this process: the file Drive answered with. */
  private readonly finished = new Map<string, DriveFile>();

  constructor(cfg: DriveBackendConfig) {
    this.rootId = cfg.rootId;
    this.apiRoot = cfg.apiRoot;
    this.url = `gdrive://${cfg.rootId}`;
    // Folder ids are unique across Google Drive; another API root (a test server) is another namespace.
    this.location = { namespace: cfg.apiRoot === DEFAULT_API_ROOT ? `gdrive://${cfg.rootId}/` : `gdrive+${endpointPart(cfg.apiRoot)}/${cfg.rootId}/`, prefix: '' };
    this.auth = cfg.credentials.auth;
    this.principal = cfg.credentials.principal;
    const agent = (u: URL): HttpAgent => (u.protocol === 'http:' ? this.httpAgent : this.httpsAgent);
    // Holdfast retries in one place, the engine: the client's own retries would multiply attempts and hide failures.
    this.timeoutMs = cfg.timeoutMs;
    this.api = openDriveApi({ version: 'v3', auth: this.auth, rootUrl: this.apiRoot, retry: false, agent, timeout: cfg.timeoutMs });
    this.multipart = {
      create: (key, opts) => this.mpCreate(key, opts),
      uploadPart: (key, uploadId, partNumber, body, opts) => this.mpUploadPart(key, uploadId, partNumber, body, opts),
      complete: (key, uploadId, parts, opts) => this.mpComplete(key, uploadId, parts, opts),
      abort: (key, uploadId, opts) => this.mpAbort(key, uploadId, opts),
      listParts: (key, uploadId, opts) => this.mpListParts(key, uploadId, opts),
      listUploads: (prefix, opts) => this.mpListUploads(prefix, opts),
    };
  }

  validateKey(key: string): void {
    validateKeyCommon(key, { maxKeyBytes: CAPABILITIES.maxKeyBytes });
  }

  /** The key's identity on Drive (the value of KEY_PROPERTY). */
  keyHash(key: string): string {
    return sha256Hex(`${this.rootId}/${key}`);
  }

  /** Every failure leaves here as a HoldfastError: cancellation first, then Drive's status and reason. */
  private fail(e: unknown, signal: AbortSignal | undefined, what: string, fallback: ErrorCode = 'HOLDFAST_E_NETWORK'): HoldfastError {
    if (signal?.aborted === true) return cancelledError(signal);
    if (isHoldfastError(e)) return e;
    // An abort nobody asked for is the client's own request timeout: the server did not answer in time.
    if (abortedInChain(e)) return new HoldfastError('HOLDFAST_E_TIMEOUT', { detail: `${what}: no answer within ${this.timeoutMs} ms` }, { cause: e });
    const status = statusOf(e);
    if (status !== undefined) return httpError(status, (e as { response?: { data?: unknown } }).response?.data, what, e);
    const err = classifyError(e, fallback);
    return new HoldfastError(err.code, { ...err.details, detail: `${what}: ${redact(String(err.details.detail ?? err.message))}` }, { cause: e });
  }

  /**
   * Options for every call of the generated client: the API root once more
   * (the client builds upload URLs from the per-call root only, not from the
   * one it was made with), and the caller's signal.
   */
  private call(signal: AbortSignal | undefined): MethodOptions {
    return { rootUrl: this.apiRoot, ...(signal !== undefined ? { signal } : {}) };
  }

  private agentFor(url: string): HttpAgent {
    return url.startsWith('http:') ? this.httpAgent : this.httpsAgent;
  }

  /** An authorised request outside the generated API (the resumable protocol). Never throws for an HTTP status. */
  private async raw(opts: {
    readonly url: string;
    readonly method: string;
    readonly headers?: Record<string, string>;
    readonly data?: Buffer | Readable | string;
    readonly signal?: AbortSignal;
  }): Promise<{ status: number; headers: Headers; data: string }> {
    const res = await this.auth.request<string>({
      url: opts.url,
      method: opts.method,
      headers: opts.headers,
      ...(opts.data !== undefined ? { data: opts.data } : {}),
      ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
      responseType: 'text',
      validateStatus: () => true,
      retry: false,
      timeout: this.timeoutMs,
      // 308 here means "resume incomplete", not a redirect.
      redirect: 'manual',
      agent: this.agentFor(opts.url),
    });
    return { status: res.status, headers: res.headers, data: typeof res.data === 'string' ? res.data : '' };
  }

  /** Lists pass the shared drive when the root folder is in one. */
  private async listScope(signal?: AbortSignal): Promise<Partial<drive_v3.Params$Resource$Files$List>> {
    const info = await this.root(signal);
    return info.driveId !== undefined
      ? { corpora: 'drive', driveId: info.driveId, includeItemsFromAllDrives: true, supportsAllDrives: true }
      : { supportsAllDrives: true, includeItemsFromAllDrives: true };
  }

  private root(signal?: AbortSignal): Promise<RootInfo> {
    const p = (this.rootInfo ??= this.fetchRoot(signal));
    p.catch(() => {
      if (this.rootInfo === p) this.rootInfo = undefined;
    });
    return p;
  }

  private async fetchRoot(signal?: AbortSignal): Promise<RootInfo> {
    let f: drive_v3.Schema$File;
    try {
      ({ data: f } = await this.api.files.get({ fileId: this.rootId, fields: 'id,mimeType,trashed,driveId,capabilities(canAddChildren)', supportsAllDrives: true }, this.call(signal)));
    } catch (e) {
      if (statusOf(e) === 404 && signal?.aborted !== true) {
        throw new HoldfastError(
          'HOLDFAST_E_DEST_NOT_FOUND',
          { detail: `Drive folder ${this.rootId} does not exist or is not shared with ${this.principal}; check the id, or share the folder with that account` },
          { cause: e },
        );
      }
      throw this.fail(e, signal, `reading Drive folder ${this.rootId}`);
    }
    if (f.mimeType !== FOLDER_MIME) throw new HoldfastError('HOLDFAST_E_DEST_NOT_FOUND', { detail: `${this.rootId} on Drive is a file, not a folder` });
    if (f.trashed === true) throw new HoldfastError('HOLDFAST_E_DEST_NOT_FOUND', { detail: `Drive folder ${this.rootId} is in the trash; restore it or choose another folder` });
    return { canWrite: f.capabilities?.canAddChildren !== false, ...(f.driveId ? { driveId: f.driveId } : {}) };
  }

  async ensureReady(opts: OpOptions & { readonly readOnly?: boolean; readonly forReading?: boolean } = {}): Promise<void> {
    throwIfAborted(opts.signal);
    let info: RootInfo;
    try {
      info = await this.root(opts.signal);
    } catch (e) {
      const err = this.fail(e, opts.signal, `reading Drive folder ${this.rootId}`);
      if (err.code === 'HOLDFAST_E_NETWORK' || err.code === 'HOLDFAST_E_TIMEOUT' || err.code === 'HOLDFAST_E_DEST_SERVER') {
        throw new HoldfastError('HOLDFAST_E_DEST_UNREACHABLE', { detail: `cannot reach the Drive API at ${this.apiRoot}: ${err.details.detail ?? err.message}` }, { cause: e });
      }
      throw err;
    }
    if (opts.readOnly !== true && opts.forReading !== true && !info.canWrite) {
      throw new HoldfastError('HOLDFAST_E_AUTH', { detail: `${this.principal} may not add files to Drive folder ${this.rootId}; give it "Editor" (or "Content manager") access` });
    }
  }

  // ---- finding things ----------------------------------------------------

  /** Every page of a files.list query. */
  private async listAll(q: string, signal: AbortSignal | undefined, what: string): Promise<DriveFile[]> {
    const scope = await this.listScope(signal);
    const out: DriveFile[] = [];
    let pageToken: string | undefined;
    do {
      let page: drive_v3.Schema$FileList;
      try {
        ({ data: page } = await this.api.files.list({ ...scope, q, fields: LIST_FIELDS, pageSize: PAGE_SIZE, ...(pageToken !== undefined ? { pageToken } : {}) }, this.call(signal)));
      } catch (e) {
        throw this.fail(e, signal, what);
      }
      for (const f of page.files ?? []) out.push(toDriveFile(f));
      pageToken = page.nextPageToken ?? undefined;
    } while (pageToken !== undefined);
    return out;
  }

  /** All of Holdfast's files for `key` (normally one) that the listing shows, the object first (`latestFirst`). */
  private async findAll(key: string, signal?: AbortSignal): Promise<DriveFile[]> {
    const hash = this.keyHash(key);
    const files = await this.listAll(
      `appProperties has { key=${quote(KEY_PROPERTY)} and value=${quote(hash)} } and trashed = false and mimeType != ${quote(FOLDER_MIME)}`,
      signal,
      `looking up "${printable(key)}"`,
    );
    return files.filter((f) => f.appProperties[KEY_PROPERTY] === hash).sort(latestFirst);
  }

  private async findOwn(key: string, signal?: AbortSignal): Promise<DriveFile | undefined> {
    return (await this.findAll(key, signal))[0];
  }

  /** Folders named `name` in any of `parents`, oldest first. */
  private async childFolders(parents: readonly string[], name: string | undefined, signal?: AbortSignal): Promise<DriveFile[]> {
    const inParents = parents.map((p) => `${quote(p)} in parents`).join(' or ');
    const q = `(${inParents}) and mimeType = ${quote(FOLDER_MIME)} and trashed = false${name !== undefined ? ` and name = ${quote(name)}` : ''}`;
    const found = await this.listAll(q, signal, `looking up folder "${printable(name ?? '')}"`);
    // The query language's idea of "=" is not ours to trust for every script: compare exactly.
    return found.filter((f) => f.mimeType === FOLDER_MIME && (name === undefined || f.name === name)).sort(oldestFirst);
  }

  /** The folder for `dirs` (key segments), creating what is missing. */
  private async ensureFolders(dirs: readonly string[], signal?: AbortSignal): Promise<string> {
    let parent = this.rootId;
    for (const name of dirs) parent = await this.ensureFolder(parent, name, signal);
    return parent;
  }

  private ensureFolder(parent: string, name: string, signal?: AbortSignal): Promise<string> {
    const cacheKey = `${parent}/${name}`;
    let p = this.folders.get(cacheKey);
    if (p === undefined) {
      p = this.lookupOrCreateFolder(parent, name, signal);
      this.folders.set(cacheKey, p);
      p.catch(() => this.folders.delete(cacheKey));
    }
    return p;
  }

  private async lookupOrCreateFolder(parent: string, name: string, signal?: AbortSignal): Promise<string> {
    const existing = await this.childFolders([parent], name, signal);
    if (existing[0] !== undefined) return existing[0].id;
    try {
      await this.api.files.create({ requestBody: { name, mimeType: FOLDER_MIME, parents: [parent] }, fields: 'id', supportsAllDrives: true }, this.call(signal));
    } catch (e) {
      throw this.fail(e, signal, `creating folder "${printable(name)}"`);
    }
    // Another writer may have created the same folder meanwhile: everyone settles on the oldest.
    // (The loser stays, empty: deleting a folder someone may just be writing into would delete their file.)
    const now = await this.childFolders([parent], name, signal);
    if (now[0] === undefined) throw new HoldfastError('HOLDFAST_E_DEST_SERVER', { detail: `folder "${printable(name)}" was created but cannot be found` });
    return now[0].id;
  }

  /** The folders holding keys under `dirs`: all same-named folders at each level (duplicates merged), or none. */
  private async findFolders(dirs: readonly string[], signal?: AbortSignal): Promise<string[]> {
    let ids = [this.rootId];
    for (const name of dirs) {
      ids = (await this.childFolders(ids, name, signal)).map((f) => f.id);
      if (ids.length === 0) return [];
    }
    return ids;
  }

  // ---- objects -------------------------------------------------------------

  private toInfo(key: string, f: DriveFile): ObjectInfo {
    const mtimeMs = parseMtime(f.appProperties[MTIME_METADATA_KEY]);
    return {
      key,
      size: f.size,
      ...(f.md5Checksum !== undefined ? { etag: f.md5Checksum } : {}),
      ...(f.appProperties[SHA256_METADATA_KEY] !== undefined ? { sha256: f.appProperties[SHA256_METADATA_KEY] } : {}),
      ...(f.modifiedMs !== undefined ? { modifiedMs: f.modifiedMs } : {}),
      ...(mtimeMs !== undefined ? { mtimeMs } : {}),
    };
  }

  /** The app properties of a written object, each within Drive's limits. */
  private appProperties(key: string, opts: { sha256: string; mtimeMs?: number; metadata?: Readonly<Record<string, string>> }): Record<string, string> {
    const props: Record<string, string> = { ...opts.metadata, [KEY_PROPERTY]: this.keyHash(key), [SHA256_METADATA_KEY]: opts.sha256 };
    if (opts.mtimeMs !== undefined && Number.isFinite(opts.mtimeMs)) props[MTIME_METADATA_KEY] = String(Math.floor(opts.mtimeMs));
    const names = Object.keys(props);
    if (names.length > MAX_APP_PROPERTIES) {
      throw new HoldfastError('HOLDFAST_E_DEST_REJECTED', { detail: `"${printable(key)}": Drive keeps at most ${MAX_APP_PROPERTIES} properties per file, ${names.length} given` });
    }
    for (const [k, v] of Object.entries(props)) {
      const bytes = Buffer.byteLength(k, 'utf8') + Buffer.byteLength(v, 'utf8');
      if (bytes > PROPERTY_MAX_BYTES) {
        throw new HoldfastError('HOLDFAST_E_DEST_REJECTED', {
          detail: `"${printable(key)}": metadata "${printable(k)}" is ${bytes} bytes with its value; Drive allows ${PROPERTY_MAX_BYTES} per property`,
        });
      }
    }
    return props;
  }

  async put(key: string, body: BodySource, opts: PutOptions): Promise<PutResult> {
    throwIfAborted(opts.signal);
    this.validateKey(key);
    if (opts.size > CAPABILITIES.maxObjectSize) throw new HoldfastError('HOLDFAST_E_TOO_LARGE', { key: printable(key), size: opts.size, max: CAPABILITIES.maxObjectSize });
    const appProperties = this.appProperties(key, opts);
    const segments = key.split('/');
    const name = segments.pop() ?? key;
    const existing = await this.findOwn(key, opts.signal);
    const parent = existing === undefined ? await this.ensureFolders(segments, opts.signal) : undefined;

    // The client pipes the body into its multipart/related request with pipe(),
    // which does not forward errors: guardBody aborts the request when the body
    // fails. Nothing needs holding back: the closing boundary is written only
    // after the body ended cleanly, so Drive never stores a short or unverified body.
    const guarded = guardBody(key, body, { ...opts, holdBackLast: false });
    const media = { mimeType: 'application/octet-stream', body: guarded.stream };
    try {
      let written: drive_v3.Schema$File;
      if (existing !== undefined) {
        ({ data: written } = await this.api.files.update(
          { fileId: existing.id, requestBody: { appProperties }, media, fields: FILE_FIELDS, supportsAllDrives: true },
          this.call(guarded.signal),
        ));
      } else {
        ({ data: written } = await this.api.files.create(
          { requestBody: { name, parents: [parent ?? this.rootId], appProperties }, media, fields: FILE_FIELDS, supportsAllDrives: true },
          this.call(guarded.signal),
        ));
      }
      const bodyError = guarded.bodyError();
      if (bodyError !== undefined) throw bodyError;
      const file = await this.settle(key, toDriveFile(written), opts.sha256, opts.signal);
      return file.md5Checksum !== undefined ? { etag: file.md5Checksum } : {};
    } catch (e) {
      const failure = guarded.failure();
      if (failure !== undefined) throw failure;
      if (statusOf(e) === 404 && opts.signal?.aborted !== true) throw this.folderGone(key, e);
      throw this.fail(e, opts.signal, `uploading "${printable(key)}"`);
    } finally {
      await guarded.dispose();
    }
  }

  /**
   * A write answered 404: someone deleted the file, or a folder this backend
   * had cached, while we used it. Forget every cached folder; the engine's
   * retry looks the key up again and creates what is missing.
   */
  private folderGone(key: string, cause?: unknown): HoldfastError {
    this.folders.clear();
    return new HoldfastError(
      'HOLDFAST_E_DEST_SERVER',
      { detail: `"${printable(key)}" or one of its folders was deleted while in use; it will be created again` },
      cause === undefined ? undefined : { cause },
    );
  }

  /**
   * After a write: makes sure `key` has exactly one file. The file just
   * written counts even if the listing does not show it yet; the one written
   * last is kept (`latestFirst`) and every other copy the listing shows is
   * deleted. A copy the listing does not show yet is older than this write
   * (unless another writer raced us), so it can never win a later read, and
   * the next write or delete of the key removes it. If the survivor is not
   * the file just written (another writer wrote after us) and holds other
   * content, the write did not stick: a transient error makes the engine try
   * again, and the retry updates the survivor in place.
   */
  private async settle(key: string, written: DriveFile, sha256: string, signal?: AbortSignal): Promise<DriveFile> {
    const listed = await this.findAll(key, signal);
    // The write's own answer is fresher than the listing's copy of the same file.
    const [keep, ...rest] = [written, ...listed.filter((f) => f.id !== written.id)].sort(latestFirst) as [DriveFile, ...DriveFile[]];
    for (const f of rest) await this.deleteFile(f.id, signal);
    if (keep.id !== written.id && keep.appProperties[SHA256_METADATA_KEY] !== sha256) {
      throw new HoldfastError('HOLDFAST_E_DEST_SERVER', { detail: `another writer wrote "${printable(key)}" at the same time; its copy was kept and this write will be repeated on it` });
    }
    return keep;
  }

  private async deleteFile(id: string, signal?: AbortSignal): Promise<void> {
    try {
      await this.api.files.delete({ fileId: id, supportsAllDrives: true }, this.call(signal));
    } catch (e) {
      // Already gone: the goal holds.
      if (statusOf(e) === 404 && signal?.aborted !== true) return;
      throw this.fail(e, signal, 'deleting a file');
    }
  }

  async head(key: string, opts: OpOptions = {}): Promise<ObjectInfo | undefined> {
    throwIfAborted(opts.signal);
    this.validateKey(key);
    const f = await this.findOwn(key, opts.signal);
    return f === undefined ? undefined : this.toInfo(key, f);
  }

  async get(key: string, opts: GetOptions = {}): Promise<Readable> {
    throwIfAborted(opts.signal);
    this.validateKey(key);
    const r = opts.range;
    if (r !== undefined && (!Number.isSafeInteger(r.start) || !Number.isSafeInteger(r.end) || r.start < 0 || r.end < r.start)) {
      throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `invalid byte range ${r.start}-${r.end}` });
    }
    const f = await this.findOwn(key, opts.signal);
    if (f === undefined) throw new HoldfastError('HOLDFAST_E_DEST_REJECTED', { detail: `no object "${printable(key)}" on ${this.url}` });
    // Drive answers a range past the end with 416; an empty object has no bytes to ask for.
    if (f.size === 0 || (r !== undefined && r.start >= f.size)) return Readable.from([], { objectMode: false });
    const end = r === undefined ? f.size - 1 : Math.min(r.end, f.size - 1);
    const start = r?.start ?? 0;
    try {
      const res = await this.api.files.get(
        { fileId: f.id, alt: 'media', supportsAllDrives: true },
        { ...this.call(opts.signal), responseType: 'stream', headers: r === undefined ? {} : { Range: `bytes=${start}-${end}` } },
      );
      const stream = res.data;
      if (r === undefined) return stream;
      const contentRange = headerOf(res.headers, 'content-range');
      return this.checkRange(key, stream, start, end, res.status, contentRange);
    } catch (e) {
      if (statusOf(e) === 404 && opts.signal?.aborted !== true) {
        throw new HoldfastError('HOLDFAST_E_DEST_REJECTED', { detail: `no object "${printable(key)}" on ${this.url}` }, { cause: e });
      }
      throw this.fail(e, opts.signal, `reading "${printable(key)}"`);
    }
  }

  /** Never hands out more than the requested range, and never bytes from elsewhere. */
  private checkRange(key: string, body: Readable, start: number, end: number, status: number, contentRange: string | undefined): Readable {
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(contentRange ?? '');
    const from = status === 206 && m !== null ? Number(m[1]) : 0;
    if (from !== start) {
      body.destroy();
      throw new HoldfastError('HOLDFAST_E_DEST_REJECTED', { detail: `Drive answered the range ${start}-${end} of "${printable(key)}" with ${contentRange ?? 'the whole file'}` });
    }
    return limitBytes(body, end - start + 1);
  }

  async delete(key: string, opts: OpOptions = {}): Promise<void> {
    throwIfAborted(opts.signal);
    this.validateKey(key);
    // Every copy, duplicates included; folders are left in place (another writer may be filling them).
    for (const f of await this.findAll(key, opts.signal)) await this.deleteFile(f.id, opts.signal);
  }

  async *list(prefix = '', opts: ListOptions = {}): AsyncIterable<ObjectInfo> {
    throwIfAborted(opts.signal);
    const cut = prefix.lastIndexOf('/');
    const dirs = cut < 0 ? [] : prefix.slice(0, cut).split('/');
    // A prefix whose folder part cannot be a key's folders ("a//b") matches nothing.
    if (dirs.some((d) => d === '')) return;
    const folderIds = await this.findFolders(dirs, opts.signal);
    if (folderIds.length === 0) return;
    const base = Buffer.from(cut < 0 ? '' : prefix.slice(0, cut + 1), 'utf8');
    const startAfter = opts.startAfter === undefined ? undefined : Buffer.from(opts.startAfter, 'utf8');
    yield* this.walk(folderIds, base, Buffer.from(prefix, 'utf8'), startAfter, opts.signal);
  }

  /**
   * One level of the tree, in byte order of key: a folder "a" sorts as "a/"
   * among its siblings, so recursing in that order yields every key in order
   * with only one level's entries held per depth.
   */
  private async *walk(folderIds: readonly string[], base: Buffer, prefix: Buffer, startAfter: Buffer | undefined, signal?: AbortSignal): AsyncGenerator<ObjectInfo> {
    throwIfAborted(signal);
    const inParents = folderIds.map((p) => `${quote(p)} in parents`).join(' or ');
    const children = await this.listAll(`(${inParents}) and trashed = false`, signal, `listing ${this.url}`);
    const folders = new Map<string, string[]>();
    const files = new Map<string, DriveFile>();
    for (const f of children) {
      const key = Buffer.concat([base, Buffer.from(f.name, 'utf8')]);
      if (f.mimeType === FOLDER_MIME) {
        const dirKey = Buffer.concat([key, Buffer.from('/')]).toString('utf8');
        folders.set(dirKey, [...(folders.get(dirKey) ?? []), f.id]);
        continue;
      }
      const keyStr = key.toString('utf8');
      // Only Holdfast's own files, and only where they belong (not moved here from elsewhere).
      if (f.name === '' || f.name.includes('/') || f.appProperties[KEY_PROPERTY] !== this.keyHash(keyStr)) continue;
      const seen = files.get(keyStr);
      if (seen === undefined || latestFirst(f, seen) < 0) files.set(keyStr, f);
    }
    const entries: Entry[] = [];
    for (const [dirKey, ids] of folders) {
      const key = Buffer.from(dirKey, 'utf8');
      if (!startsWith(key, prefix) && !startsWith(prefix, key)) continue;
      // Every key under "a/" sorts before startAfter unless startAfter itself is under "a/".
      if (startAfter !== undefined && Buffer.compare(key, startAfter) < 0 && !startsWith(startAfter, key)) continue;
      entries.push({ key, folderIds: ids });
    }
    for (const [keyStr, file] of files) {
      const key = Buffer.from(keyStr, 'utf8');
      if (!startsWith(key, prefix)) continue;
      if (startAfter !== undefined && Buffer.compare(key, startAfter) <= 0) continue;
      entries.push({ key, file });
    }
    entries.sort((a, b) => Buffer.compare(a.key, b.key));
    for (const e of entries) {
      if (e.folderIds !== undefined) yield* this.walk(e.folderIds, e.key, prefix, startAfter, signal);
      else if (e.file !== undefined) yield this.toInfo(e.key.toString('utf8'), e.file);
    }
  }

  async close(): Promise<void> {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  // ---- resumable sessions (multipart) ------------------------------------

  /** The upload id: the session URI, with the geometry in a fragment (never sent). */
  private sessionId(uri: string, size: number, partSize: number): string {
    const u = new URL(uri);
    u.hash = `size=${size}&part=${partSize}`;
    return u.href;
  }

  private parseSession(key: string, uploadId: string): Session {
    let u: URL;
    try {
      u = new URL(uploadId);
    } catch {
      throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `"${printable(key)}": the upload id is not a Drive session URI` });
    }
    const geometry = new URLSearchParams(u.hash.slice(1));
    const size = Number(geometry.get('size'));
    const partSize = Number(geometry.get('part'));
    u.hash = '';
    // The session URI goes out with our credentials: only ever to the API we were configured with.
    if (u.origin !== new URL(this.apiRoot).origin) {
      throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `"${printable(key)}": the upload session is not on ${new URL(this.apiRoot).origin}; it will not be sent credentials` });
    }
    if (!Number.isSafeInteger(size) || size < 0 || !Number.isSafeInteger(partSize) || partSize <= 0) {
      throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `"${printable(key)}": the upload id lacks the upload's size and part size` });
    }
    return { uri: u.href, size, partSize };
  }

  private async mpCreate(
    key: string,
    opts: { sha256: string; size: number; partSize?: number; mtimeMs?: number; metadata?: Readonly<Record<string, string>>; signal?: AbortSignal },
  ): Promise<string> {
    throwIfAborted(opts.signal);
    this.validateKey(key);
    // Drive must be told the total size when the session starts (X-Upload-Content-Length).
    if (!Number.isSafeInteger(opts.size) || opts.size < 0) throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `"${printable(key)}": a Drive upload session needs the total size, got ${String(opts.size)}` });
    if (opts.size > CAPABILITIES.maxObjectSize) throw new HoldfastError('HOLDFAST_E_TOO_LARGE', { key: printable(key), size: opts.size, max: CAPABILITIES.maxObjectSize });
    const partSize = opts.partSize;
    if (partSize === undefined || !Number.isSafeInteger(partSize) || partSize <= 0 || (partSize % CHUNK_UNIT !== 0 && partSize < opts.size)) {
      throw new HoldfastError('HOLDFAST_E_USAGE', {
        detail: `"${printable(key)}": a Drive upload session needs a part size that is a multiple of ${CHUNK_UNIT} bytes (256 KiB), got ${String(partSize)}`,
      });
    }
    const appProperties = this.appProperties(key, opts);
    const segments = key.split('/');
    const name = segments.pop() ?? key;
    const existing = await this.findOwn(key, opts.signal);
    let url: string;
    let method: string;
    let metadata: drive_v3.Schema$File;
    const params = `uploadType=resumable&supportsAllDrives=true&fields=${encodeURIComponent(FILE_FIELDS)}`;
    if (existing !== undefined) {
      url = `${this.apiRoot}upload/drive/v3/files/${encodeURIComponent(existing.id)}?${params}`;
      method = 'PATCH';
      metadata = { appProperties };
    } else {
      const parent = await this.ensureFolders(segments, opts.signal);
      url = `${this.apiRoot}upload/drive/v3/files?${params}`;
      method = 'POST';
      metadata = { name, parents: [parent], appProperties };
    }
    let res;
    try {
      res = await this.raw({
        url,
        method,
        headers: {
          'Content-Type': 'application/json; charset=UTF-8',
          'X-Upload-Content-Type': 'application/octet-stream',
          'X-Upload-Content-Length': String(opts.size),
        },
        data: JSON.stringify(metadata),
        ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
      });
    } catch (e) {
      throw this.fail(e, opts.signal, `starting an upload session for "${printable(key)}"`);
    }
    if (res.status === 404) throw this.folderGone(key);
    if (res.status !== 200 && res.status !== 201) throw httpError(res.status, res.data, `starting an upload session for "${printable(key)}"`);
    const location = res.headers.get('location');
    if (location === null || location === '') throw new HoldfastError('HOLDFAST_E_DEST_REJECTED', { detail: `Drive started an upload session for "${printable(key)}" without a session URI` });
    const uri = new URL(location, url).href;
    this.received.set(uri, 0);
    return this.sessionId(uri, opts.size, partSize);
  }

  /**
   * Asks the session what it holds: `PUT` with `Content-Range: bytes *\/<size>`
   * and no body. 308 + Range: open, with that many bytes; 200/201: finished
   * (the body is the file); 404: gone (expired after a week, or cancelled).
   */
  private async sessionStatus(key: string, s: Session, signal?: AbortSignal): Promise<SessionStatus> {
    let res;
    try {
      res = await this.raw({ url: s.uri, method: 'PUT', headers: { 'Content-Range': `bytes */${s.size}`, 'Content-Length': '0' }, ...(signal !== undefined ? { signal } : {}) });
    } catch (e) {
      throw this.fail(e, signal, `asking the upload session of "${printable(key)}" for its state`);
    }
    return this.sessionAnswer(key, s, res, 'asking the upload session for its state');
  }

  private sessionAnswer(key: string, s: Session, res: { status: number; headers: Headers; data: string }, what: string): SessionStatus {
    if (res.status === 308) {
      const received = receivedFrom(res.headers.get('range'));
      this.received.set(s.uri, received);
      return { state: 'open', received };
    }
    if (res.status === 200 || res.status === 201) {
      let file: DriveFile;
      try {
        file = toDriveFile(JSON.parse(res.data) as drive_v3.Schema$File);
      } catch (e) {
        throw new HoldfastError('HOLDFAST_E_DEST_REJECTED', { detail: `${what} for "${printable(key)}": Drive finished the upload but its answer is not a file` }, { cause: e });
      }
      this.finished.set(s.uri, file);
      this.received.set(s.uri, s.size);
      return { state: 'done', file };
    }
    if (res.status === 404 || res.status === 410) {
      this.received.delete(s.uri);
      return { state: 'gone' };
    }
    this.received.delete(s.uri);
    throw httpError(res.status, res.data, `${what} for "${printable(key)}"`);
  }

  private async mpUploadPart(
    key: string,
    uploadId: string,
    partNumber: number,
    body: Buffer,
    opts: { signal?: AbortSignal; onProgress?: (sentBytes: number) => void } = {},
  ): Promise<UploadedPart> {
    throwIfAborted(opts.signal);
    this.validateKey(key);
    const s = this.parseSession(key, uploadId);
    const start = (partNumber - 1) * s.partSize;
    const end = Math.min(start + s.partSize, s.size);
    if (!Number.isInteger(partNumber) || partNumber < 1 || (start >= s.size && !(s.size === 0 && partNumber === 1))) {
      throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `part ${partNumber} is outside this ${s.size}-byte upload` });
    }
    if (body.length !== end - start) {
      // A part size other than the session's (the setting changed since it started): this session cannot take it.
      throw uploadGone(key, `was started with ${s.partSize}-byte parts; part ${partNumber} should be ${end - start} bytes, not ${body.length}`);
    }
    const part: UploadedPart = { partNumber, size: body.length, etag: partEtag(start, end) };
    const what = `uploading part ${partNumber} of "${printable(key)}"`;
    // A few rounds at most: Drive may keep fewer bytes than were sent, and says so.
    for (let round = 0; round < 4; round++) {
      let have = this.received.get(s.uri);
      if (have === undefined || have !== start) {
        // Not known, or not where this part begins: ask (a restart, a retry, or a crash after bytes arrived).
        const st = await this.sessionStatus(key, s, opts.signal);
        if (st.state === 'gone') throw uploadGone(key, 'no longer exists (it expired or was cancelled)');
        if (st.state === 'done') return part;
        have = st.received;
      }
      if (have >= end) return part;
      if (have < start) {
        throw uploadGone(key, `holds ${have} bytes, but part ${partNumber} starts at byte ${start}: earlier parts are missing`);
      }
      const chunk = body.subarray(have - start);
      const range = s.size === 0 ? 'bytes */0' : `bytes ${have}-${end - 1}/${s.size}`;
      const already = have - start;
      let res;
      try {
        res = await this.raw({
          url: s.uri,
          method: 'PUT',
          headers: { 'Content-Range': range, 'Content-Length': String(chunk.length), 'Content-Type': 'application/octet-stream' },
          data: opts.onProgress === undefined || chunk.length === 0 ? chunk : bufferStream(chunk, (n) => opts.onProgress?.(already + n)),
          ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
        });
      } catch (e) {
        // What arrived is unknown now: the next try asks first.
        this.received.delete(s.uri);
        throw this.fail(e, opts.signal, what);
      }
      const st = this.sessionAnswer(key, s, res, what);
      if (st.state === 'gone') throw uploadGone(key, 'no longer exists (it expired or was cancelled)');
      if (st.state === 'done') {
        if (end !== s.size) throw new HoldfastError('HOLDFAST_E_DEST_REJECTED', { detail: `${what}: Drive finished the upload before its last part` });
        return part;
      }
      if (st.received >= end) return part;
      if (st.received <= have) {
        // Nothing kept of a complete request: not progress, a refusal.
        throw new HoldfastError('HOLDFAST_E_DEST_SERVER', { detail: `${what}: Drive kept none of the ${chunk.length} bytes sent` });
      }
    }
    throw new HoldfastError('HOLDFAST_E_DEST_SERVER', { detail: `${what}: Drive keeps taking only part of the chunk` });
  }

  private async mpListParts(key: string, uploadId: string, opts: OpOptions = {}): Promise<UploadedPart[] | undefined> {
    throwIfAborted(opts.signal);
    this.validateKey(key);
    const s = this.parseSession(key, uploadId);
    const st = await this.sessionStatus(key, s, opts.signal);
    if (st.state === 'gone') return undefined;
    const have = st.state === 'done' ? s.size : st.received;
    const parts: UploadedPart[] = [];
    // Only whole parts: a part Drive holds half of is sent again (from where Drive stopped).
    for (let n = 1; (n - 1) * s.partSize < s.size; n++) {
      const start = (n - 1) * s.partSize;
      const end = Math.min(start + s.partSize, s.size);
      if (end > have) break;
      parts.push({ partNumber: n, size: end - start, etag: partEtag(start, end) });
    }
    if (s.size === 0 && st.state === 'done') parts.push({ partNumber: 1, size: 0, etag: partEtag(0, 0) });
    return parts;
  }

  private async mpComplete(key: string, uploadId: string, parts: readonly UploadedPart[], opts: OpOptions = {}): Promise<PutResult> {
    throwIfAborted(opts.signal);
    this.validateKey(key);
    const s = this.parseSession(key, uploadId);
    const total = parts.reduce((n, p) => n + p.size, 0);
    if (total !== s.size) throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `"${printable(key)}": the parts add up to ${total} bytes, the upload is ${s.size}` });
    // The last part's answer already finished the upload in Drive; a new process asks the session.
    let file = this.finished.get(s.uri);
    if (file === undefined) {
      const st = await this.sessionStatus(key, s, opts.signal);
      if (st.state === 'gone') throw uploadGone(key, 'no longer exists (it expired or was cancelled)');
      if (st.state === 'open') {
        throw new HoldfastError('HOLDFAST_E_DEST_REJECTED', { detail: `"${printable(key)}": the upload session holds ${st.received} of ${s.size} bytes; it is not finished` });
      }
      file = st.file;
    }
    this.finished.delete(s.uri);
    this.received.delete(s.uri);
    const sha256 = file.appProperties[SHA256_METADATA_KEY] ?? '';
    const kept = await this.settle(key, file, sha256, opts.signal);
    return kept.md5Checksum !== undefined ? { etag: kept.md5Checksum } : {};
  }

  private async mpAbort(key: string, uploadId: string, opts: OpOptions = {}): Promise<void> {
    throwIfAborted(opts.signal);
    const s = this.parseSession(key, uploadId);
    this.received.delete(s.uri);
    this.finished.delete(s.uri);
    let res;
    try {
      res = await this.raw({ url: s.uri, method: 'DELETE', ...(opts.signal !== undefined ? { signal: opts.signal } : {}) });
    } catch (e) {
      throw this.fail(e, opts.signal, `cancelling the upload session of "${printable(key)}"`);
    }
    // 499 "client closed request" is how Google's upload servers confirm a cancelled session; 404: already gone.
    if ((res.status >= 200 && res.status < 300) || res.status === 499 || res.status === 404 || res.status === 410) return;
    if (res.status === 405 || res.status === 501) {
      throw new HoldfastError('HOLDFAST_E_NOT_SUPPORTED', { detail: 'Drive did not cancel the upload session; it expires by itself after a week' });
    }
    throw httpError(res.status, res.data, `cancelling the upload session of "${printable(key)}"`);
  }

  // eslint-disable-next-line require-yield
  private async *mpListUploads(_prefix?: string, _opts?: OpOptions): AsyncIterable<MultipartUploadInfo> {
    throw new HoldfastError('HOLDFAST_E_NOT_SUPPORTED', {
      detail: 'Drive cannot list open upload sessions; Holdfast knows its own from the ledger, and Drive drops unfinished sessions after a week',
    });
  }
}

/**
 * Session URIs are capabilities (anyone holding one can upload into it), and
 * network errors quote the URL they failed on: never let one into a message.
 */
function redact(message: string): string {
  return message.replace(/upload_id=[^&\s"']+/g, 'upload_id=***');
}

/** A response header, whether the client hands out a fetch `Headers` or a plain object. */
function headerOf(headers: unknown, name: string): string | undefined {
  if (headers === null || typeof headers !== 'object') return undefined;
  if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name) ?? undefined;
  const v = (headers as Record<string, unknown>)[name];
  return typeof v === 'string' ? v : Array.isArray(v) && typeof v[0] === 'string' ? v[0] : undefined;
}

/** `Range: bytes=0-524287` → 524288 bytes held; no header → none. */
function receivedFrom(range: string | null): number {
  const m = /^bytes=0-(\d+)$/.exec(range ?? '');
  return m === null ? 0 : Number(m[1]) + 1;
}

/** A part's etag: its byte range, which both uploadPart and listParts can name without asking Drive. */
function partEtag(start: number, end: number): string {
  return `bytes=${start}-${end - 1}`;
}

function startsWith(buf: Buffer, prefix: Buffer): boolean {
  return buf.length >= prefix.length && buf.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}
