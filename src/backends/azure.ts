// The azure:// destination: Azure Blob Storage block blobs (and Azurite, the
// official emulator) on @azure/storage-blob. `azure://container/prefix` puts
// key K at blob `prefix/K` in `container`, with the characters Azure cannot
// keep in a blob name ("\\", a segment-final ".", C0 controls) replaced by a
// reversible encoding (azure-names.ts); listings decode them.
//
// Credentials follow the Azure conventions (a connection string, or an account
// name with a key or a SAS token; see `resolveAccess`). They are never put in
// `url`, in messages or in the causes of errors.
//
// Large files are staged blocks (Put Block, then Put Block List). Azure has no
// "multipart upload" object with an id of its own, so Holdfast makes one up and
// keeps everything it needs to resume in the names of the blocks themselves:
//
//   upload id  "<token>.<sha256>.<mtime|->"   (token: 12 random hex digits)
//   block id   base64( "hf1" | token | flags | mtime | sha256 | part number )
//              — 54 bytes before encoding, the same length for every block of
//              every Holdfast upload (Azure rejects a blob whose block ids differ
//              in length)
//
// so a new process (or a new backend instance) can list the uncommitted blocks
// of a blob, find the parts of one upload, and commit them with the right
// holdfast-sha256 / holdfast-mtime metadata. create() stages a one-byte marker
// block (part 0, never committed) so that an upload with no parts yet exists on
// the server: listUploads finds it and listParts tells it from a vanished one.
// Azure discards uncommitted blocks when the blob is next committed, or after a
// week; abort() deletes the blob only while it has no committed content (see
// there).

import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { AnonymousCredential, BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import type { BlobItem, BlockBlobClient, BlockBlobUploadOptions, ContainerClient, ContainerListBlobsOptions, StoragePipelineOptions } from '@azure/storage-blob';
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
import { guardBody } from './body.js';
import { withDeadline } from './deadline.js';
import { encodeBlobName, encodeBlobPrefix, isEncoded, keyOfBlobName } from './azure-names.js';
import { compareKeys, keyInvalidError, prefixFromUrl, printable, validateKeyCommon } from './keys.js';

const MiB = 1024 * 1024;
/** Put Blob's limit (service version 2019-12-12 and later); larger objects are staged blocks. */
const MAX_SINGLE_PUT = 5000 * MiB;
const MAX_BLOCK_SIZE = 4000 * MiB;
const MAX_BLOCKS = 50_000;
/** Azure: "the number of path segments comprising the blob name cannot exceed 254". */
const MAX_SEGMENTS = 254;
const CONTENT_TYPE = 'application/octet-stream';

export const CAPABILITIES: Capabilities = {
  multipart: true,
  metadata: true,
  // Every Put Blob and Put Block carries a Content-MD5 the server checks.
  serverChecksum: true,
  versioning: false,
  // Azure allows 1,024 characters; counting UTF-8 bytes instead is never more permissive.
  maxKeyBytes: 1024,
  maxObjectSize: MAX_BLOCKS * MAX_BLOCK_SIZE,
  // Any non-empty block (Azure rejects empty ones).
  minPartSize: 1,
  maxPartSize: MAX_BLOCK_SIZE,
  maxParts: MAX_BLOCKS,
  sequentialParts: false,
};

// Listings are XML 1.0, which cannot carry U+FFFE / U+FFFF at all (the C0
// controls it cannot carry are stored encoded: see azure-names.ts).
const XML_NONCHARACTER = /[\ufffe\uffff]/;
/** Blobs per List Blobs page (the service's maximum). */
const LIST_PAGE_SIZE = 5000;

// ---- metadata names ------------------------------------------------------

/**
 * Azure metadata names must be C# identifiers (letters, digits, "_"; not
 * starting with a digit) and are case-insensitive. Holdfast's names use "-"
 * (`holdfast-sha256`). The mapping is reversible for every name:
 * lowercase names of letters, digits and "-" starting with a letter become
 * "_" for "-" (`holdfast-sha256` ↔ `holdfast_sha256`); any other name (capitals,
 * "_", a leading digit, other characters, or a name starting "hfx-") is stored
 * as `hfx_` + the hex of its UTF-8 bytes.
 */
export function toAzureMetadataName(name: string): string {
  if (/^[a-z][a-z0-9-]*$/.test(name) && !name.startsWith('hfx-')) return name.replaceAll('-', '_');
  return `hfx_${Buffer.from(name, 'utf8').toString('hex')}`;
}

/** The inverse of `toAzureMetadataName`, whatever case the server returns the name in. */
export function fromAzureMetadataName(stored: string): string {
  const name = stored.toLowerCase();
  const hex = /^hfx_((?:[0-9a-f]{2})*)$/.exec(name);
  if (hex !== null) return Buffer.from(hex[1] ?? '', 'hex').toString('utf8');
  return name.replaceAll('_', '-');
}

const SHA256_NAME = toAzureMetadataName(SHA256_METADATA_KEY);
const MTIME_NAME = toAzureMetadataName(MTIME_METADATA_KEY);

/** The caller's metadata plus holdfast-sha256 and, when known, holdfast-mtime, under Azure names. */
function objectMetadata(opts: { sha256: string; mtimeMs?: number | undefined; metadata?: Readonly<Record<string, string>> | undefined }): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.metadata ?? {})) out[toAzureMetadataName(k)] = v;
  out[SHA256_NAME] = opts.sha256;
  if (opts.mtimeMs !== undefined && Number.isFinite(opts.mtimeMs)) out[MTIME_NAME] = String(Math.floor(opts.mtimeMs));
  return out;
}

/** A metadata value by Holdfast name, from a map whose names may come back in any case. */
function metadataValue(metadata: Readonly<Record<string, string>> | undefined, azureName: string): string | undefined {
  if (metadata === undefined) return undefined;
  for (const [k, v] of Object.entries(metadata)) if (k.toLowerCase() === azureName) return v;
  return undefined;
}

// ---- upload ids and block ids --------------------------------------------

const BLOCK_MAGIC = Buffer.from('hf1', 'latin1');
const TOKEN_BYTES = 6;
/** magic 3 | token 6 | flags 1 | mtime 8 | sha256 32 | part 4 */
const BLOCK_ID_BYTES = 3 + TOKEN_BYTES + 1 + 8 + 32 + 4;
const HEADER_BYTES = BLOCK_ID_BYTES - 4;
const FLAG_MTIME = 1;
const MARKER_PART = 0;
const UPLOAD_ID = /^([0-9a-f]{12})\.([0-9a-f]{64})\.(-|-?\d{1,16})$/;

interface UploadRef {
  readonly token: string;
  readonly sha256: string;
  readonly mtimeMs: number | undefined;
}

export function formatUploadId(u: UploadRef): string {
  return `${u.token}.${u.sha256}.${u.mtimeMs === undefined ? '-' : String(u.mtimeMs)}`;
}

export function parseUploadId(uploadId: string): UploadRef | undefined {
  const m = UPLOAD_ID.exec(uploadId);
  if (m === null) return undefined;
  const mtime = m[3] === '-' ? undefined : Number(m[3]);
  if (mtime !== undefined && !Number.isSafeInteger(mtime)) return undefined;
  return { token: m[1] ?? '', sha256: m[2] ?? '', mtimeMs: mtime };
}

/** The block id of one part of an upload: deterministic, and 54 bytes for every part of every upload. */
export function blockIdOf(u: UploadRef, partNumber: number): string {
  const buf = Buffer.alloc(BLOCK_ID_BYTES);
  BLOCK_MAGIC.copy(buf, 0);
  buf.write(u.token, 3, TOKEN_BYTES, 'hex');
  buf.writeUInt8(u.mtimeMs === undefined ? 0 : FLAG_MTIME, 9);
  buf.writeBigInt64BE(BigInt(u.mtimeMs ?? 0), 10);
  buf.write(u.sha256, 18, 32, 'hex');
  buf.writeUInt32BE(partNumber, HEADER_BYTES);
  return buf.toString('base64');
}

/** Upload and part number of a block id written by `blockIdOf`; undefined for anyone else's block. */
export function parseBlockId(blockId: string): { upload: UploadRef; partNumber: number } | undefined {
  const buf = Buffer.from(blockId, 'base64');
  if (buf.length !== BLOCK_ID_BYTES || !buf.subarray(0, 3).equals(BLOCK_MAGIC)) return undefined;
  const flags = buf.readUInt8(9);
  const mtime = buf.readBigInt64BE(10);
  const upload: UploadRef = {
    token: buf.subarray(3, 9).toString('hex'),
    sha256: buf.subarray(18, 50).toString('hex'),
    mtimeMs: (flags & FLAG_MTIME) !== 0 ? Number(mtime) : undefined,
  };
  return { upload, partNumber: buf.readUInt32BE(HEADER_BYTES) };
}

/** What `uploadPart` and `listParts` both call a part's etag: stable per block, the same from either. */
function partEtag(token: string, partNumber: number, size: number): string {
  return `${token}-${String(partNumber).padStart(6, '0')}:${size}`;
}

// ---- URL and credentials -------------------------------------------------

/** `azure://container/some/prefix` → container "container", prefix "some/prefix/" (always ending "/" unless empty). */
export function parseAzureUrl(url: URL): { container: string; prefix: string } {
  // Never echo user-info back: it may hold a secret.
  const shown = `azure://${url.host}${url.pathname}`;
  if (url.username !== '' || url.password !== '') {
    throw new HoldfastError('HOLDFAST_E_BAD_URL', { url: shown, detail: 'credentials do not belong in the URL; use AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY' });
  }
  if (url.search !== '' || url.hash !== '') {
    throw new HoldfastError('HOLDFAST_E_BAD_URL', { url: shown, detail: 'an azure:// URL takes no "?" or "#" part (a SAS token goes in AZURE_STORAGE_SAS_TOKEN)' });
  }
  if (url.port !== '') throw new HoldfastError('HOLDFAST_E_BAD_URL', { url: shown, detail: 'the endpoint is not part of an azure:// URL; set AZURE_STORAGE_BLOB_ENDPOINT or use a connection string' });
  const container = url.hostname;
  if (container === '') throw new HoldfastError('HOLDFAST_E_BAD_URL', { url: shown, detail: 'no container: expected azure://container/prefix' });
  if (!/^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$/.test(container)) {
    throw new HoldfastError('HOLDFAST_E_BAD_URL', {
      url: shown,
      detail: `"${container}" is not a valid container name (3-63 characters: lowercase letters, digits and single hyphens, starting and ending with a letter or digit)`,
    });
  }
  const prefix = prefixFromUrl(url, shown, (p) => validateAzureKey(p, ''));
  return { container, prefix };
}

function validateAzureKey(key: string, prefix: string): void {
  validateKeyCommon(key, { maxKeyBytes: CAPABILITIES.maxKeyBytes, prefix });
  // "\\", segment-final "." and most C0 controls are stored encoded (azure-names.ts); these two cannot be.
  if (XML_NONCHARACTER.test(key)) throw keyInvalidError(key, 'Azure listings (XML) cannot return U+FFFE or U+FFFF');
  const segments = (prefix + key).split('/').length;
  if (segments > MAX_SEGMENTS) throw keyInvalidError(key, `the blob name has ${segments} path segments; Azure allows at most ${MAX_SEGMENTS}`);
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s.trim() === '' ? undefined : s.trim();
}

/** How to reach the account, and a label for messages that holds no secret. */
interface Access {
  readonly client: BlobServiceClient;
  readonly endpointLabel: string;
}

const NO_CREDENTIALS =
  'no Azure credentials found: set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY (or AZURE_STORAGE_SAS_TOKEN); ' +
  'AZURE_STORAGE_BLOB_ENDPOINT sets a non-default endpoint (for Azurite: AZURE_STORAGE_CONNECTION_STRING="UseDevelopmentStorage=true")';

/**
 * Resolves credentials. Options win over the environment; among the
 * environment variables a connection string wins over account variables.
 *  1. `azureConnectionString`
 *  2. `azureAccount` / `azureAccountKey` / `azureSasToken` / `azureEndpoint`
 *     (missing pieces from AZURE_STORAGE_ACCOUNT, _KEY or _ACCESS_KEY,
 *     _SAS_TOKEN, _BLOB_ENDPOINT)
 *  3. AZURE_STORAGE_CONNECTION_STRING
 *  4. AZURE_STORAGE_ACCOUNT + AZURE_STORAGE_KEY (or _ACCESS_KEY) or
 *     AZURE_STORAGE_SAS_TOKEN; AZURE_STORAGE_BLOB_ENDPOINT, else
 *     https://<account>.blob.core.windows.net. An endpoint whose query already
 *     holds a SAS (`…?sv=…&sig=…`) needs nothing else.
 */
export function resolveAccess(options: BackendOptions, env: NodeJS.ProcessEnv = process.env): Access {
  const pipelineOptions: StoragePipelineOptions = {
    // Holdfast retries in exactly one place, the engine, with its own backoff
    // and error classes; SDK retries underneath would multiply attempts and
    // hide failures from the ledger.
    retryOptions: { maxTries: 1 },
    keepAliveOptions: { enable: true },
    userAgentOptions: { userAgentPrefix: 'holdfast' },
  };
  const explicit = [options.azureAccount, options.azureAccountKey, options.azureSasToken, options.azureEndpoint].some((v) => nonEmpty(v) !== undefined);
  const connectionString = nonEmpty(options.azureConnectionString) ?? (explicit ? undefined : nonEmpty(env.AZURE_STORAGE_CONNECTION_STRING));
  if (connectionString !== undefined) {
    const from = nonEmpty(options.azureConnectionString) !== undefined ? 'the azureConnectionString option' : 'AZURE_STORAGE_CONNECTION_STRING';
    let client: BlobServiceClient;
    try {
      client = BlobServiceClient.fromConnectionString(connectionString, pipelineOptions);
    } catch (e) {
      // The SDK's messages name the part that is wrong, never the value.
      throw new HoldfastError('HOLDFAST_E_CONFIG', { detail: `${from} is not a usable connection string: ${(e as Error).message}` });
    }
    return { client, endpointLabel: withoutQuery(client.url) };
  }
  const account = nonEmpty(options.azureAccount) ?? nonEmpty(env.AZURE_STORAGE_ACCOUNT);
  const sasOption = nonEmpty(options.azureSasToken);
  const keyOption = nonEmpty(options.azureAccountKey);
  const key = keyOption ?? (sasOption !== undefined ? undefined : (nonEmpty(env.AZURE_STORAGE_KEY) ?? nonEmpty(env.AZURE_STORAGE_ACCESS_KEY)));
  const sas = sasOption ?? (keyOption !== undefined ? undefined : nonEmpty(env.AZURE_STORAGE_SAS_TOKEN));
  const endpointGiven = nonEmpty(options.azureEndpoint) ?? nonEmpty(env.AZURE_STORAGE_BLOB_ENDPOINT);
  let endpoint: URL | undefined;
  if (endpointGiven !== undefined) {
    try {
      endpoint = new URL(endpointGiven);
    } catch {
      throw new HoldfastError('HOLDFAST_E_CONFIG', { detail: `the Azure blob endpoint "${withoutQuery(endpointGiven)}" is not a URL (expected e.g. https://account.blob.core.windows.net)` });
    }
    if (endpoint.protocol !== 'http:' && endpoint.protocol !== 'https:') {
      throw new HoldfastError('HOLDFAST_E_CONFIG', { detail: `the Azure blob endpoint "${withoutQuery(endpointGiven)}" must be http:// or https://` });
    }
  } else if (account !== undefined) {
    if (!/^[a-z0-9]{3,24}$/.test(account)) throw new HoldfastError('HOLDFAST_E_CONFIG', { detail: `"${account}" is not a valid Azure storage account name (3-24 lowercase letters and digits)` });
    endpoint = new URL(`https://${account}.blob.core.windows.net`);
  }
  const label = endpoint === undefined ? '' : withoutQuery(endpoint.href).replace(/\/$/, '');
  if (key !== undefined) {
    if (account === undefined) throw new HoldfastError('HOLDFAST_E_AUTH', { detail: 'an Azure account key needs the account name: set AZURE_STORAGE_ACCOUNT (or the azureAccount option)' });
    const base = new URL(endpoint?.href ?? '');
    base.search = '';
    return { client: new BlobServiceClient(base.href, new StorageSharedKeyCredential(account, key), pipelineOptions), endpointLabel: label };
  }
  if (sas !== undefined) {
    if (endpoint === undefined) throw new HoldfastError('HOLDFAST_E_AUTH', { detail: 'a SAS token needs the account name or endpoint: set AZURE_STORAGE_ACCOUNT or AZURE_STORAGE_BLOB_ENDPOINT' });
    const withSas = new URL(endpoint.href);
    withSas.search = sas.replace(/^\?/, '');
    return { client: new BlobServiceClient(withSas.href, new AnonymousCredential(), pipelineOptions), endpointLabel: label };
  }
  if (endpoint !== undefined && endpoint.searchParams.has('sig')) {
    return { client: new BlobServiceClient(endpoint.href, new AnonymousCredential(), pipelineOptions), endpointLabel: label };
  }
  const why = account !== undefined ? `AZURE_STORAGE_ACCOUNT (or azureAccount) is "${account}", but neither a key nor a SAS token is set; ` : '';
  throw new HoldfastError('HOLDFAST_E_AUTH', { detail: `${why}${NO_CREDENTIALS}` });
}

/** A URL without its query (where a SAS token would be). */
function withoutQuery(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

export const createBackend: BackendFactory = async (url: URL, options: BackendOptions): Promise<Backend> => {
  const { container, prefix } = parseAzureUrl(url);
  const access = resolveAccess(options);
  return new AzureBackend({ container, prefix, ...access, timeoutMs: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS });
};

// ---- errors ----------------------------------------------------------------

interface RestErrorLike {
  name?: unknown;
  code?: unknown;
  statusCode?: unknown;
  message?: unknown;
  details?: { errorCode?: unknown };
}

/** The service's error code (BlobNotFound, ContainerNotFound…), also for HEAD answers, which have no body. */
function azureCode(e: unknown): string | undefined {
  const err = (e ?? {}) as RestErrorLike;
  const fromDetails = err.details?.errorCode;
  if (typeof fromDetails === 'string' && fromDetails !== '') return fromDetails;
  return typeof err.code === 'string' && /^[A-Z][A-Za-z0-9]+$/.test(err.code) ? err.code : undefined;
}

function azureStatus(e: unknown): number | undefined {
  const s = ((e ?? {}) as RestErrorLike).statusCode;
  return typeof s === 'number' ? s : undefined;
}

const CHECKSUM_CODES = new Set(['Md5Mismatch', 'Crc64Mismatch', 'InvalidMd5']);

/** Azurite answers a wrong Content-MD5 with 400 InvalidOperation "Provided contentMD5 doesn't match." rather than Md5Mismatch. */
function isAzuriteMd5Mismatch(e: unknown): boolean {
  const message = (e as RestErrorLike).message;
  return azureCode(e) === 'InvalidOperation' && typeof message === 'string' && /contentMD5 doesn't match/i.test(message);
}

/**
 * A copy of an SDK error with what classification needs (name, code, status,
 * the service's first message line) and nothing else: the SDK's RestError
 * holds the request, whose URL carries a SAS token when one is used.
 */
function sanitized(e: unknown): Error {
  const err = (e ?? {}) as RestErrorLike;
  const status = azureStatus(e);
  const code = azureCode(e);
  const first = typeof err.message === 'string' ? (err.message.split('\n')[0] ?? '').trim() : String(e);
  const what = code ?? (status !== undefined ? `HTTP ${status}` : '');
  const message = (first.includes(what) ? first : [what, first].filter((s) => s !== '').join(': ')) || 'unknown error';
  const out = new Error(message);
  out.name = typeof err.name === 'string' ? err.name : 'Error';
  const netCode = typeof err.code === 'string' ? err.code : undefined;
  return Object.assign(out, { code: code ?? netCode, ...(status !== undefined ? { statusCode: status } : {}) });
}

// ---- bodies ----------------------------------------------------------------

/**
 * The MD5 of a put body, read once through to its end. A body that fails
 * (unreadable, or a verifying stream finding the source changed) or that is
 * not `size` bytes fails here as it would in the upload itself.
 */
async function md5OfBody(key: string, body: BodySource, size: number, signal: AbortSignal | undefined): Promise<Buffer> {
  throwIfAborted(signal);
  const hash = createHash('md5');
  const stream = body.open();
  // A body that stalls must not outlive the caller's signal (or the deadline).
  const onAbort = (): void => {
    stream.destroy(cancelledError(signal));
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  let received = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      throwIfAborted(signal);
      received += chunk.length;
      if (received > size) break;
      hash.update(chunk);
    }
  } catch (e) {
    if (aborted(signal)) throw cancelledError(signal);
    throw classifyError(e, 'HOLDFAST_E_SOURCE_UNREADABLE', { path: key });
  } finally {
    signal?.removeEventListener('abort', onAbort);
    stream.destroy();
  }
  if (received !== size) throw new HoldfastError('HOLDFAST_E_SOURCE_CHANGED', { path: key, detail: `expected ${size} bytes, the body had ${received > size ? 'more' : received}` });
  return hash.digest();
}

/**
 * Put Blob options sending `md5` as Content-MD5. The SDK forwards
 * `transactionalContentMD5` from upload options in its "Customized" checksum
 * mode (the default), but its BlockBlobUploadOptions type does not declare it.
 */
function contentMd5(md5: Buffer): BlockBlobUploadOptions {
  const options: BlockBlobUploadOptions & { transactionalContentMD5: Uint8Array } = { contentChecksumAlgorithm: 'Customized', transactionalContentMD5: md5 };
  return options;
}

// ---- signals ---------------------------------------------------------------

/** A function, not `signal?.aborted`: TypeScript would keep a narrowing of the property across awaits. */
function aborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

// ---- the backend -------------------------------------------------------------

interface AzureBackendConfig {
  readonly container: string;
  /** "" or ending with "/". */
  readonly prefix: string;
  readonly client: BlobServiceClient;
  readonly endpointLabel: string;
  /** One request (at most one block or one small blob) may take this long; a server that hangs must not stall the run. */
  readonly timeoutMs: number;
  /** Blobs per listing page (default and maximum 5000; tests use small pages to exercise the merge across pages). */
  readonly listPageSize?: number;
}

export class AzureBackend implements Backend {
  readonly kind = 'azure';
  readonly url: string;
  readonly location: DestinationLocation;
  readonly capabilities = CAPABILITIES;
  readonly multipart: MultipartApi;
  readonly container: string;
  readonly prefix: string;
  /** Where requests go, for messages (no SAS, no key). */
  readonly endpointLabel: string;
  /** `prefix` as stored: blob names are `blobPrefix + encodeBlobName(key)`. */
  private readonly blobPrefix: string;
  private readonly listPageSize: number;
  private readonly containerClient: ContainerClient;
  /** Caller metadata given to create(), kept for complete() by this instance (after a restart only holdfast-* metadata is restored). */
  private readonly uploadMetadata = new Map<string, Readonly<Record<string, string>>>();

  private readonly timeoutMs: number;

  constructor(cfg: AzureBackendConfig) {
    this.timeoutMs = cfg.timeoutMs;
    this.container = cfg.container;
    this.prefix = cfg.prefix;
    this.blobPrefix = encodeBlobName(cfg.prefix);
    this.listPageSize = Math.max(1, Math.min(LIST_PAGE_SIZE, cfg.listPageSize ?? LIST_PAGE_SIZE));
    this.url = `azure://${cfg.container}/${cfg.prefix}`;
    // The account (its endpoint) is part of the identity: one container name in two accounts is two destinations.
    this.location = { namespace: `azure+${endpointPart(cfg.endpointLabel)}/${cfg.container}/`, prefix: cfg.prefix };
    this.endpointLabel = cfg.endpointLabel;
    this.containerClient = cfg.client.getContainerClient(cfg.container);
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
    validateAzureKey(key, this.prefix);
  }

  /** The blob name key K is stored under: the prefix and the key, encoded (azure-names.ts). */
  private blobName(key: string): string {
    this.validateKey(key);
    return this.blobPrefix + encodeBlobName(key);
  }

  private blob(key: string): BlockBlobClient {
    return this.containerClient.getBlockBlobClient(this.blobName(key));
  }

  /** The key a listed blob is stored for; undefined for names no key is stored under (outside the prefix, or not canonical: see azure-names.ts). */
  private keyOf(blobName: string): string | undefined {
    if (!blobName.startsWith(this.blobPrefix)) return undefined;
    return keyOfBlobName(blobName.slice(this.blobPrefix.length));
  }

  /** Every SDK failure leaves here as a HoldfastError with `transient` set by the one classifier. */
  private fail(e: unknown, signal: AbortSignal | undefined, fallback: ErrorCode = 'HOLDFAST_E_DEST_SERVER', key?: string): HoldfastError {
    if (aborted(signal)) return cancelledError(signal);
    if (e instanceof HoldfastError) return e;
    const clean = sanitized(e);
    const code = azureCode(e);
    if ((code !== undefined && CHECKSUM_CODES.has(code)) || isAzuriteMd5Mismatch(e)) {
      return new HoldfastError('HOLDFAST_E_CHECKSUM', { key: printable(key ?? ''), detail: clean.message }, { cause: clean });
    }
    if (code === 'ContainerNotFound') {
      return new HoldfastError('HOLDFAST_E_DEST_REJECTED', { detail: `container "${this.container}" does not exist at ${this.endpointLabel}` }, { cause: clean });
    }
    return classifyError(clean, fallback);
  }

  async ensureReady(opts: OpOptions & { readonly readOnly?: boolean; readonly forReading?: boolean } = {}): Promise<void> {
    const signal = opts.signal;
    throwIfAborted(signal);
    let missing: unknown;
    try {
      await withDeadline(signal, this.timeoutMs, 'reading the container', (s) => this.containerClient.getProperties({ abortSignal: s }));
      return;
    } catch (e) {
      if (aborted(signal)) throw cancelledError(signal);
      if (azureStatus(e) === 404) missing = e;
      else if (azureStatus(e) === 403) {
        // A container-scoped SAS may not read container properties but may list: that is all Holdfast needs.
        missing = await this.probeByListing(signal);
        if (missing === undefined) return;
      } else throw this.unready(e);
    }
    if (opts.forReading === true) {
      throw new HoldfastError('HOLDFAST_E_DEST_NOT_FOUND', { detail: `container "${this.container}" does not exist at ${this.endpointLabel}: there is nothing to read` }, { cause: sanitized(missing) });
    }
    // A dry run creates nothing: the container would be created by the real run.
    if (opts.readOnly === true) return;
    try {
      await withDeadline(signal, this.timeoutMs, 'creating the container', (s) => this.containerClient.create({ abortSignal: s }));
    } catch (e) {
      if (aborted(signal)) throw cancelledError(signal);
      if (azureCode(e) === 'ContainerAlreadyExists') return; // created concurrently: fine
      if (azureStatus(e) === 403) {
        throw new HoldfastError(
          'HOLDFAST_E_DEST_NOT_FOUND',
          {
            detail:
              `container "${this.container}" does not exist at ${this.endpointLabel} and these credentials cannot create it (${sanitized(e).message}); ` +
              `create it with \`az storage container create --name ${this.container}\` or in the Azure portal`,
          },
          { cause: sanitized(e) },
        );
      }
      throw this.unready(e);
    }
  }

  /** Lists at most one blob: undefined if the container is there, the 404 error if it is not; anything else is thrown. */
  private async probeByListing(signal: AbortSignal | undefined): Promise<unknown> {
    try {
      await withDeadline(signal, this.timeoutMs, 'listing the container', (s) => this.containerClient.listBlobsFlat({ abortSignal: s }).byPage({ maxPageSize: 1 }).next());
      return undefined;
    } catch (e) {
      if (aborted(signal)) throw cancelledError(signal);
      if (azureStatus(e) === 404) return e;
      throw this.unready(e);
    }
  }

  /** AUTH / DEST_UNREACHABLE / other, worded for "can this destination be used at all". */
  private unready(e: unknown): HoldfastError {
    const err = this.fail(e, undefined, 'HOLDFAST_E_DEST_UNREACHABLE');
    if (err.code === 'HOLDFAST_E_AUTH') {
      return new HoldfastError('HOLDFAST_E_AUTH', { detail: `container "${this.container}" at ${this.endpointLabel}: ${err.details.detail ?? err.message}` }, { cause: err.cause });
    }
    if (err.code === 'HOLDFAST_E_NETWORK' || err.code === 'HOLDFAST_E_TIMEOUT' || err.code === 'HOLDFAST_E_DEST_UNREACHABLE') {
      return new HoldfastError(
        'HOLDFAST_E_DEST_UNREACHABLE',
        { detail: `cannot reach ${this.endpointLabel} for container "${this.container}": ${err.details.detail ?? err.message}` },
        { cause: err.cause },
      );
    }
    return err;
  }

  async put(key: string, body: BodySource, opts: PutOptions): Promise<PutResult> {
    throwIfAborted(opts.signal);
    const blob = this.blob(key);
    if (opts.size > MAX_SINGLE_PUT) {
      // Said before sending a byte; the engine should have chosen staged blocks.
      throw new HoldfastError('HOLDFAST_E_TOO_LARGE', { key: printable(key), size: opts.size, max: MAX_SINGLE_PUT });
    }
    // Put Blob verifies a Content-MD5 sent before the body, so the body is read
    // once for it first (from memory for the small files the engine buffers; a
    // second read of the file otherwise: see docs/benchmarks.md for the cost).
    const md5 = await withDeadline(opts.signal, this.timeoutMs, 'reading the body for its MD5', (s) => md5OfBody(key, body, opts.size, s));
    // The SDK streams the body with pipe(): guardBody aborts the request when
    // the body fails, and holds back its last chunk until it ended cleanly.
    const guarded = guardBody(key, body, opts);
    try {
      const out = await withDeadline(guarded.signal, this.timeoutMs, 'uploading a blob', (s) =>
        blob.upload(() => guarded.stream, opts.size, {
          abortSignal: s,
          // The server refuses a body that does not hash to it, so a body corrupted on its way is never stored.
          ...contentMd5(md5),
          metadata: objectMetadata(opts),
          blobHTTPHeaders: { blobContentType: CONTENT_TYPE },
        }),
      );
      guarded.assertAllSent();
      return { etag: out.etag, versionId: out.versionId };
    } catch (e) {
      // Our own deadline first: the request it aborted may also have broken the body stream.
      if (isHoldfastError(e) && e.code === 'HOLDFAST_E_TIMEOUT') throw e;
      throw guarded.failure() ?? this.fail(e, opts.signal, 'HOLDFAST_E_DEST_SERVER', key);
    } finally {
      await guarded.dispose();
    }
  }

  async head(key: string, opts: OpOptions = {}): Promise<ObjectInfo | undefined> {
    throwIfAborted(opts.signal);
    const blob = this.blob(key);
    try {
      const out = await withDeadline(opts.signal, this.timeoutMs, 'reading blob properties', (s) => blob.getProperties({ abortSignal: s }));
      return {
        key,
        size: out.contentLength ?? 0,
        etag: out.etag,
        sha256: metadataValue(out.metadata, SHA256_NAME),
        modifiedMs: out.lastModified?.getTime(),
        mtimeMs: parseMtime(metadataValue(out.metadata, MTIME_NAME)),
        versionId: out.versionId,
      };
    } catch (e) {
      // A blob with only uncommitted blocks answers 404 too: it is not an object yet.
      if (azureStatus(e) === 404 && azureCode(e) !== 'ContainerNotFound' && !aborted(opts.signal)) return undefined;
      throw this.fail(e, opts.signal);
    }
  }

  async get(key: string, opts: GetOptions = {}): Promise<Readable> {
    throwIfAborted(opts.signal);
    const blob = this.blob(key);
    let offset = 0;
    let count: number | undefined;
    if (opts.range !== undefined) {
      const r = opts.range;
      if (!Number.isSafeInteger(r.start) || !Number.isSafeInteger(r.end) || r.start < 0 || r.end < r.start) {
        throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `invalid byte range ${r.start}-${r.end}` });
      }
      offset = r.start;
      count = r.end - r.start + 1;
    }
    try {
      // No SDK re-reads of a broken body: a short read fails, and the caller retries.
      const out = await withDeadline(opts.signal, this.timeoutMs, 'starting a download', (s) => blob.download(offset, count, { abortSignal: s, maxRetryRequests: 0 }));
      return (out.readableStreamBody as Readable | undefined) ?? Readable.from([], { objectMode: false });
    } catch (e) {
      if (!aborted(opts.signal)) {
        const code = azureCode(e);
        if (azureStatus(e) === 404 && code !== 'ContainerNotFound') {
          throw new HoldfastError('HOLDFAST_E_DEST_REJECTED', { detail: `no object "${printable(key)}" on ${this.url}` }, { cause: sanitized(e) });
        }
        if (azureStatus(e) === 416) {
          throw new HoldfastError('HOLDFAST_E_DEST_REJECTED', { detail: `range ${offset}-${offset + (count ?? 0) - 1} of "${printable(key)}" is not satisfiable` }, { cause: sanitized(e) });
        }
      }
      throw this.fail(e, opts.signal);
    }
  }

  async delete(key: string, opts: OpOptions = {}): Promise<void> {
    throwIfAborted(opts.signal);
    const blob = this.blob(key);
    try {
      await withDeadline(opts.signal, this.timeoutMs, 'deleting a blob', (s) => blob.delete({ abortSignal: s }));
    } catch (e) {
      // Missing (or only a "folder" of other keys): the goal holds. A missing container is not "deleted".
      if (azureStatus(e) === 404 && azureCode(e) !== 'ContainerNotFound' && !aborted(opts.signal)) return;
      throw this.fail(e, opts.signal);
    }
  }

  /**
   * Keys in byte order. A key whose blob name differs from it (azure-names.ts)
   * sorts elsewhere in the service's listing: within one page the sort fixes
   * that; when the listing has more pages, such keys are collected first by a
   * names-only listing and merged in at their place (each read with a HEAD),
   * so the order holds across pages at the cost of one more listing.
   */
  async *list(prefix = '', opts: ListOptions = {}): AsyncIterable<ObjectInfo> {
    throwIfAborted(opts.signal);
    const namePrefix = this.blobPrefix + encodeBlobPrefix(prefix);
    const startAfter = opts.startAfter;
    // List Blobs has no "start after": keys up to startAfter are skipped here
    // (names only; their content is never read).
    const wanted = (key: string | undefined): key is string => key !== undefined && key.startsWith(prefix) && (startAfter === undefined || compareKeys(key, startAfter) > 0);
    let last: string | undefined;
    const inOrder = (item: ObjectInfo): ObjectInfo => {
      if (last !== undefined && compareKeys(item.key, last) <= 0) {
        // A merge-join over this listing would silently miss keys: refuse loudly.
        throw new HoldfastError('HOLDFAST_E_DEST_REJECTED', {
          detail: `${this.endpointLabel} listed "${printable(item.key)}" after "${printable(last)}": its listings are not in byte order`,
        });
      }
      last = item.key;
      return item;
    };
    let displaced: string[] | undefined;
    let next = 0;
    for await (const { blobs, more } of this.blobPages(namePrefix, { includeMetadata: true }, opts.signal)) {
      if (more && displaced === undefined) displaced = await this.encodedKeys(namePrefix, wanted, opts.signal);
      const items: ObjectInfo[] = [];
      for (const b of blobs) {
        const key = this.keyOf(b.name);
        if (!wanted(key) || (displaced !== undefined && isEncoded(key))) continue;
        items.push({
          key,
          size: b.properties.contentLength ?? 0,
          etag: b.properties.etag,
          sha256: metadataValue(b.metadata, SHA256_NAME),
          modifiedMs: b.properties.lastModified?.getTime(),
          mtimeMs: parseMtime(metadataValue(b.metadata, MTIME_NAME)),
          versionId: b.versionId,
        });
      }
      // Azure lists in byte order of blob names; Azurite in UTF-16 order (the two
      // differ from U+E000 up); decoded keys sort differently again. Sorting a page
      // fixes a page; across pages a disagreement is refused.
      items.sort((a, b) => compareKeys(a.key, b.key));
      for (const item of items) {
        while (displaced !== undefined && next < displaced.length && compareKeys(displaced[next] ?? '', item.key) < 0) {
          const info = await this.head(displaced[next++] ?? '', opts);
          if (info !== undefined) yield inOrder(info);
        }
        yield inOrder(item);
      }
      throwIfAborted(opts.signal);
    }
    while (displaced !== undefined && next < displaced.length) {
      // Gone since the names were listed: not listed, as if the listing had come later.
      const info = await this.head(displaced[next++] ?? '', opts);
      if (info !== undefined) yield inOrder(info);
    }
  }

  /** The wanted keys under `namePrefix` whose blob names differ from them, in byte order (a names-only listing). */
  private async encodedKeys(namePrefix: string, wanted: (key: string | undefined) => key is string, signal: AbortSignal | undefined): Promise<string[]> {
    const keys: string[] = [];
    for await (const { blobs } of this.blobPages(namePrefix, {}, signal)) {
      for (const b of blobs) {
        const key = this.keyOf(b.name);
        if (wanted(key) && isEncoded(key)) keys.push(key);
      }
    }
    return keys.sort(compareKeys);
  }

  /** List Blobs under `namePrefix` (a whole blob-name prefix), a page of blobs at a time; a failed page leaves through `fail`. */
  private async *blobPages(
    namePrefix: string,
    include: Pick<ContainerListBlobsOptions, 'includeMetadata' | 'includeUncommitedBlobs'>,
    signal: AbortSignal | undefined,
  ): AsyncIterable<{ readonly blobs: BlobItem[]; readonly more: boolean }> {
    const pages = this.containerClient.listBlobsFlat({ prefix: namePrefix === '' ? undefined : namePrefix, ...include, abortSignal: signal }).byPage({ maxPageSize: this.listPageSize });
    for (;;) {
      let page;
      try {
        page = await pages.next();
      } catch (e) {
        throw this.fail(e, signal);
      }
      if (page.done === true) return;
      yield { blobs: page.value.segment.blobItems, more: (page.value.continuationToken ?? '') !== '' };
    }
  }

  async close(): Promise<void> {
    // The SDK holds no resources beyond keep-alive sockets, which do not keep the process alive.
  }

  // ---- staged blocks (MultipartApi) -----------------------------------------

  private uploadRef(key: string, uploadId: string): UploadRef {
    const ref = parseUploadId(uploadId);
    if (ref === undefined) {
      throw new HoldfastError('HOLDFAST_E_DEST_REJECTED', { detail: `"${printable(uploadId)}" is not an upload id of azure:// (upload of "${printable(key)}")` });
    }
    return ref;
  }

  /**
   * Parts of `ref` among the blob's uncommitted blocks, whether its marker is
   * there, the other Holdfast uploads that have blocks there, and how many
   * blocks are not Holdfast's at all; undefined if the blob has no uncommitted blocks.
   */
  private async stagedParts(
    blob: BlockBlobClient,
    ref: UploadRef,
    signal: AbortSignal | undefined,
  ): Promise<{ parts: UploadedPart[]; marker: boolean; others: string[]; foreign: number } | undefined> {
    let list;
    try {
      list = await withDeadline(signal, this.timeoutMs, 'reading the block list', (s) => blob.getBlockList('uncommitted', { abortSignal: s }));
    } catch (e) {
      if (azureStatus(e) === 404 && !aborted(signal)) return undefined;
      throw this.fail(e, signal);
    }
    const parts: UploadedPart[] = [];
    const others = new Set<string>();
    let marker = false;
    let foreign = 0;
    for (const b of list.uncommittedBlocks ?? []) {
      const parsed = parseBlockId(b.name);
      if (parsed === undefined) {
        foreign++;
        continue;
      }
      if (parsed.upload.token !== ref.token || parsed.upload.sha256 !== ref.sha256 || parsed.upload.mtimeMs !== ref.mtimeMs) {
        others.add(formatUploadId(parsed.upload));
        continue;
      }
      if (parsed.partNumber === MARKER_PART) marker = true;
      else parts.push({ partNumber: parsed.partNumber, size: b.size, etag: partEtag(ref.token, parsed.partNumber, b.size) });
    }
    return { parts: parts.sort((a, b) => a.partNumber - b.partNumber), marker, others: [...others].sort(), foreign };
  }

  private async mpCreate(
    key: string,
    opts: { sha256: string; size: number; mtimeMs?: number; metadata?: Readonly<Record<string, string>>; signal?: AbortSignal },
  ): Promise<string> {
    throwIfAborted(opts.signal);
    const blob = this.blob(key);
    if (opts.size > CAPABILITIES.maxObjectSize) {
      throw new HoldfastError('HOLDFAST_E_TOO_LARGE', { key: printable(key), size: opts.size, max: CAPABILITIES.maxObjectSize });
    }
    if (!/^[0-9a-f]{64}$/.test(opts.sha256)) throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `sha256 "${printable(opts.sha256)}" is not 64 lowercase hex digits` });
    const mtimeMs = opts.mtimeMs !== undefined && Number.isFinite(opts.mtimeMs) ? Math.floor(opts.mtimeMs) : undefined;
    const ref: UploadRef = { token: randomBytes(TOKEN_BYTES).toString('hex'), sha256: opts.sha256, mtimeMs };
    // The marker makes the upload exist on the server before its first part:
    // listUploads sees it, listParts tells "no parts yet" from "gone".
    try {
      await withDeadline(opts.signal, this.timeoutMs, 'staging a block', (s) => blob.stageBlock(blockIdOf(ref, MARKER_PART), Buffer.alloc(1), 1, { abortSignal: s }));
    } catch (e) {
      throw this.fail(e, opts.signal);
    }
    const uploadId = formatUploadId(ref);
    if (opts.metadata !== undefined && Object.keys(opts.metadata).length > 0) this.uploadMetadata.set(uploadId, opts.metadata);
    return uploadId;
  }

  private async mpUploadPart(
    key: string,
    uploadId: string,
    partNumber: number,
    body: Buffer,
    opts: { signal?: AbortSignal; onProgress?: (sentBytes: number) => void; sha256?: string } = {},
  ): Promise<UploadedPart> {
    throwIfAborted(opts.signal);
    const blob = this.blob(key);
    const ref = this.uploadRef(key, uploadId);
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > CAPABILITIES.maxParts) {
      throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `part number ${partNumber} is outside 1..${CAPABILITIES.maxParts}` });
    }
    if (body.length === 0 || body.length > CAPABILITIES.maxPartSize) {
      throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `part ${partNumber} is ${body.length} bytes; Azure blocks are 1 byte to ${CAPABILITIES.maxPartSize}` });
    }
    // The server checks the block against its MD5 and refuses a corrupted one.
    const md5 = createHash('md5').update(body).digest();
    const onProgress = opts.onProgress;
    try {
      await withDeadline(opts.signal, this.timeoutMs, 'staging a block', (s) =>
        blob.stageBlock(blockIdOf(ref, partNumber), body, body.length, {
          abortSignal: s,
          transactionalContentMD5: md5,
          ...(onProgress !== undefined ? { onProgress: (p: { loadedBytes: number }) => onProgress(p.loadedBytes) } : {}),
        }),
      );
    } catch (e) {
      throw this.fail(e, opts.signal, 'HOLDFAST_E_DEST_SERVER', key);
    }
    return { partNumber, size: body.length, etag: partEtag(ref.token, partNumber, body.length), checksum: md5.toString('base64'), ...(opts.sha256 !== undefined ? { sha256: opts.sha256 } : {}) };
  }

  private async mpComplete(key: string, uploadId: string, parts: readonly UploadedPart[], opts: OpOptions = {}): Promise<PutResult> {
    throwIfAborted(opts.signal);
    const blob = this.blob(key);
    const ref = this.uploadRef(key, uploadId);
    const sorted = [...parts].sort((a, b) => a.partNumber - b.partNumber);
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i]!.partNumber === sorted[i - 1]!.partNumber) throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `part ${sorted[i]!.partNumber} is listed twice` });
    }
    try {
      // Committing discards every other uncommitted block of the blob (the marker, stale uploads).
      const out = await withDeadline(opts.signal, this.timeoutMs, 'committing the block list', (s) =>
        blob.commitBlockList(
          sorted.map((p) => blockIdOf(ref, p.partNumber)),
          {
            abortSignal: s,
            metadata: objectMetadata({ sha256: ref.sha256, mtimeMs: ref.mtimeMs, metadata: this.uploadMetadata.get(uploadId) }),
            blobHTTPHeaders: { blobContentType: CONTENT_TYPE },
          },
        ),
      );
      this.uploadMetadata.delete(uploadId);
      return { etag: out.etag, versionId: out.versionId };
    } catch (e) {
      throw this.fail(e, opts.signal);
    }
  }

  /**
   * Azure cannot delete chosen uncommitted blocks: only deleting the blob or
   * committing it discards them (and Azure itself does after a week). So the
   * blob is deleted only when all of these hold, and otherwise
   * HOLDFAST_E_DELETE_REFUSED says which does not (the blocks then go at the
   * next commit of that blob, or after 7 days):
   * - the blob has no committed content;
   * - its uncommitted blocks are this upload's alone: none of another Holdfast
   *   upload (which may be live: another run, another host, another ledger) and
   *   none another tool staged;
   * - nothing was committed to it since it was listed: the delete is
   *   conditional on the Last-Modified the listing showed (If-Unmodified-Since),
   *   so a commit between these checks and the delete makes it fail with 412.
   *   (Not If-Match on the listed etag: Azurite answers 412 to that for every
   *   blob that has only uncommitted blocks, whatever the etag.)
   * Nothing staged for this upload (never staged, aborted, or committed): nothing to do.
   */
  private async mpAbort(key: string, uploadId: string, opts: OpOptions = {}): Promise<void> {
    throwIfAborted(opts.signal);
    const name = this.blobName(key);
    const blob = this.containerClient.getBlockBlobClient(name);
    const ref = this.uploadRef(key, uploadId);
    try {
      // First the listing: a commit after it changes the Last-Modified the delete is conditional on.
      const listed = await this.listedBlob(name, opts.signal);
      if (listed === undefined) return;
      const staged = await this.stagedParts(blob, ref, opts.signal);
      if (staged === undefined || (!staged.marker && staged.parts.length === 0)) return;
      const refuse = (why: string): HoldfastError =>
        new HoldfastError('HOLDFAST_E_DELETE_REFUSED', {
          detail: `upload ${uploadId} of "${printable(key)}" was not aborted: the blob ${why}; Azure cannot discard one upload's staged blocks alone (they go at the next commit of that blob, or after 7 days)`,
        });
      if (staged.others.length > 0) throw refuse(`also holds the staged blocks of upload${staged.others.length > 1 ? 's' : ''} ${staged.others.join(', ')}, which may still be in progress`);
      if (staged.foreign > 0) throw refuse('also holds blocks staged by another tool');
      if ((await this.head(key, opts)) !== undefined) throw refuse('has committed content');
      const since = listed.properties.lastModified;
      if (since === undefined) throw refuse('was listed without a Last-Modified time, so it cannot be deleted on condition');
      try {
        await withDeadline(opts.signal, this.timeoutMs, 'deleting a blob', (s) => blob.delete({ abortSignal: s, conditions: { ifUnmodifiedSince: since } }));
      } catch (e) {
        if (azureStatus(e) === 404 && !aborted(opts.signal)) return;
        if (azureStatus(e) === 412 && !aborted(opts.signal)) throw refuse('was written to since it was listed');
        throw this.fail(e, opts.signal);
      }
    } finally {
      this.uploadMetadata.delete(uploadId);
    }
  }

  /** The listing entry of exactly this blob name, uncommitted blobs included; undefined if there is none. */
  private async listedBlob(name: string, signal: AbortSignal | undefined): Promise<BlobItem | undefined> {
    // The name itself sorts first among the names it is a prefix of: one entry is enough.
    let page;
    try {
      page = await withDeadline(signal, this.timeoutMs, 'listing a blob', (s) =>
        this.containerClient.listBlobsFlat({ prefix: name, includeUncommitedBlobs: true, abortSignal: s }).byPage({ maxPageSize: 1 }).next(),
      );
    } catch (e) {
      throw this.fail(e, signal);
    }
    if (page.done === true) return undefined;
    return page.value.segment.blobItems.find((b) => b.name === name);
  }

  private async mpListParts(key: string, uploadId: string, opts: OpOptions = {}): Promise<UploadedPart[] | undefined> {
    throwIfAborted(opts.signal);
    const blob = this.blob(key);
    const ref = parseUploadId(uploadId);
    // Not one of ours (e.g. recorded by another backend): it does not exist here.
    if (ref === undefined) return undefined;
    const staged = await this.stagedParts(blob, ref, opts.signal);
    if (staged === undefined || (!staged.marker && staged.parts.length === 0)) return undefined;
    return staged.parts;
  }

  /**
   * Unfinished uploads: blobs that have only uncommitted blocks (List Blobs
   * with include=uncommittedblobs shows them with length 0), grouped by upload.
   * An upload staged onto a blob that already has committed content is not
   * found here; Azure discards its blocks at the next commit or after a week.
   */
  private async *mpListUploads(prefix = '', opts: OpOptions = {}): AsyncIterable<MultipartUploadInfo> {
    throwIfAborted(opts.signal);
    const namePrefix = this.blobPrefix + encodeBlobPrefix(prefix);
    for await (const { blobs } of this.blobPages(namePrefix, { includeUncommitedBlobs: true }, opts.signal)) {
      const candidates: { key: string; b: BlobItem }[] = [];
      for (const b of blobs) {
        const key = this.keyOf(b.name);
        if (key !== undefined && key.startsWith(prefix) && (b.properties.contentLength ?? 0) === 0) candidates.push({ key, b });
      }
      candidates.sort((x, y) => compareKeys(x.key, y.key));
      for (const { key, b } of candidates) {
        let list;
        try {
          list = await withDeadline(opts.signal, this.timeoutMs, 'reading a block list', (s) => this.containerClient.getBlockBlobClient(b.name).getBlockList('uncommitted', { abortSignal: s }));
        } catch (e) {
          if (azureStatus(e) === 404 && !aborted(opts.signal)) continue; // gone since the listing
          throw this.fail(e, opts.signal);
        }
        const uploads = new Map<string, MultipartUploadInfo>();
        for (const block of list.uncommittedBlocks ?? []) {
          const parsed = parseBlockId(block.name);
          if (parsed === undefined) continue;
          const uploadId = formatUploadId(parsed.upload);
          if (!uploads.has(uploadId)) {
            uploads.set(uploadId, { key, uploadId, initiatedMs: (b.properties.createdOn ?? b.properties.lastModified)?.getTime() });
          }
        }
        yield* [...uploads.values()].sort((x, y) => (x.uploadId < y.uploadId ? -1 : 1));
      }
    }
  }
}
