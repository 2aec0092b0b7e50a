// The one interface every destination implements (DESIGN §6). The engine and
// the sync steps talk only to this; nothing outside src/backends knows which
// backend it is using. Optional features are declared in `capabilities` and,
// for multipart, by the presence of `multipart`.

import type { Readable } from 'node:stream';
import type { DestinationLocation } from './location.js';
import type { KeyFolding } from './keys.js';

/** Metadata key carrying the full-content SHA-256 (lowercase hex) on every object. */
export const SHA256_METADATA_KEY = 'holdfast-sha256';
/** Metadata key carrying the source file's modification time (epoch ms, an integer) where the backend has no file times of its own. */
export const MTIME_METADATA_KEY = 'holdfast-mtime';

/** A `holdfast-mtime` value back to epoch ms; anything that is not an integer (a foreign tool's value) is ignored. */
export function parseMtime(value: string | undefined): number | undefined {
  if (value === undefined || !/^-?\d{1,16}$/.test(value)) return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : undefined;
}

export interface Capabilities {
  /** Large objects can be sent in parts and resumed (`multipart` is present). */
  readonly multipart: boolean;
  /** The backend keeps `holdfast-sha256` as object metadata; if false, `head` computes it from content. */
  readonly metadata: boolean;
  /**
   * Every body (a whole object and each part) is sent with a checksum the
   * server verifies, so a body corrupted on its way is refused, never stored
   * (S3: x-amz-checksum-sha256; Azure: Content-MD5).
   */
  readonly serverChecksum: boolean;
  readonly versioning: boolean;
  /** Maximum key length in UTF-8 bytes, including the destination's prefix. */
  readonly maxKeyBytes: number;
  readonly maxObjectSize: number;
  /** Smallest allowed part except the last (multipart only). */
  readonly minPartSize: number;
  readonly maxPartSize: number;
  readonly maxParts: number;
  /**
   * Parts must be sent one after another, in order, each starting where the
   * previous ended (Google Drive's resumable sessions); false: any order, in
   * parallel (S3 parts, Azure blocks).
   */
  readonly sequentialParts: boolean;
  /**
   * Every part but the last must be a multiple of this many bytes (Drive: 256 KiB);
   * absent: any size from `minPartSize` up. The engine rounds its part size up to it.
   */
  readonly partSizeMultiple?: number;
}

/** A body that can be (re)opened, so a retried request reads the bytes again. */
export interface BodySource {
  readonly size: number;
  /** Opens a stream of the whole body. Each call returns a fresh stream. */
  open(): Readable;
}

export interface PutOptions {
  readonly size: number;
  /** Full-content SHA-256, lowercase hex; stored as `holdfast-sha256`. */
  readonly sha256: string;
  /** Source modification time, kept where the backend can (file mtime). */
  readonly mtimeMs?: number;
  readonly metadata?: Readonly<Record<string, string>>;
  readonly signal?: AbortSignal;
  /** Called with the cumulative number of body bytes sent. */
  readonly onProgress?: (sentBytes: number) => void;
}

export interface PutResult {
  readonly etag?: string;
  readonly versionId?: string;
}

export interface ObjectInfo {
  readonly key: string;
  readonly size: number;
  readonly etag?: string;
  /** From `holdfast-sha256` metadata (or computed, where `capabilities.metadata` is false); absent on foreign objects. */
  readonly sha256?: string;
  /** When the object was last written on the destination (S3 LastModified, the file's mtime on file://). */
  readonly modifiedMs?: number;
  /**
   * The source file's modification time recorded at upload (S3 `holdfast-mtime`
   * metadata; on file:// the file's own mtime, which put sets). Absent when
   * unknown: foreign objects, and `list()` on backends that keep it as metadata.
   */
  readonly mtimeMs?: number;
  readonly versionId?: string;
}

export interface OpOptions {
  readonly signal?: AbortSignal;
}

export interface GetOptions extends OpOptions {
  /** Inclusive byte range. */
  readonly range?: { readonly start: number; readonly end: number };
}

export interface ListOptions extends OpOptions {
  /** Start listing after this key (exclusive), in byte order. */
  readonly startAfter?: string;
}

export interface UploadedPart {
  readonly partNumber: number;
  readonly size: number;
  readonly etag: string;
  /** A backend's own checksum of the part, as it reports it (opaque). */
  readonly checksum?: string;
  /**
   * SHA-256 of the part's bytes, lowercase hex: what the caller gave
   * `uploadPart`, or what the server lists (S3 ListParts of an upload created
   * with SHA-256 checksums). `complete` passes it back where the server wants it.
   */
  readonly sha256?: string;
}

export interface MultipartUploadInfo {
  readonly key: string;
  readonly uploadId: string;
  readonly initiatedMs?: number;
}

/**
 * Multipart uploads: create once, send parts (any order, in parallel, unless
 * `capabilities.sequentialParts`: then in order, each after the previous one
 * was confirmed), then complete with the full list. `listParts` and `listUploads` may be missing on
 * some servers: they then throw HOLDFAST_E_NOT_SUPPORTED, and callers fall back
 * to the ledger's own record of confirmed parts.
 */
export interface MultipartApi {
  /**
   * Starts an upload of `size` bytes. `partSize` is the size of every part but
   * the last: backends whose parts are offsets into one stream
   * (`sequentialParts`, Drive) need it to place part N and to report parts
   * after a restart; others may ignore it.
   */
  create(
    key: string,
    opts: { sha256: string; size: number; partSize?: number; mtimeMs?: number; metadata?: Readonly<Record<string, string>>; signal?: AbortSignal },
  ): Promise<string>;
  /**
   * Sends one part. `sha256` (lowercase hex, of `body`) is sent along where the
   * server verifies it, and is returned in the part; a backend that needs
   * another checksum computes it (Azure: MD5).
   */
  uploadPart(
    key: string,
    uploadId: string,
    partNumber: number,
    body: Buffer,
    opts?: { signal?: AbortSignal; onProgress?: (sentBytes: number) => void; sha256?: string },
  ): Promise<UploadedPart>;
  complete(key: string, uploadId: string, parts: readonly UploadedPart[], opts?: OpOptions): Promise<PutResult>;
  abort(key: string, uploadId: string, opts?: OpOptions): Promise<void>;
  /** Parts the destination holds for this upload; `undefined` if the upload no longer exists. */
  listParts(key: string, uploadId: string, opts?: OpOptions): Promise<UploadedPart[] | undefined>;
  listUploads(prefix?: string, opts?: OpOptions): AsyncIterable<MultipartUploadInfo>;
}

export interface Backend {
  /** Normalised destination URL (no credentials): what reports show. */
  readonly url: string;
  /** Where its objects live (endpoint or account included): its identity in the ledger, and what overlap checks compare. */
  readonly location: DestinationLocation;
  readonly kind: string;
  readonly capabilities: Capabilities;
  readonly multipart?: MultipartApi;
  /**
   * Present where two different keys can be one name on the destination (a
   * file:// directory on a case-insensitive or Unicode-normalising file
   * system): callers that store many keys check them with `KeyCollisions`
   * and refuse all but the first spelling. Known only after `ensureReady`
   * (which probes the destination); absent where every key is its own name.
   */
  readonly keyFolding?: KeyFolding;

  /**
   * Checks the destination exists and is reachable; throws HOLDFAST_E_DEST_NOT_FOUND
   * (saying what is missing and how to create it), HOLDFAST_E_AUTH or
   * HOLDFAST_E_DEST_UNREACHABLE. With `readOnly` (a dry run) it creates
   * nothing: a destination that would be created on first write is fine.
   * With `forReading` (pull) only reads follow: the destination must already
   * exist (HOLDFAST_E_DEST_NOT_FOUND otherwise) and be readable; write
   * permission is not needed, and nothing is created.
   */
  ensureReady(opts?: OpOptions & { readonly readOnly?: boolean; readonly forReading?: boolean }): Promise<void>;
  put(key: string, body: BodySource, opts: PutOptions): Promise<PutResult>;
  head(key: string, opts?: OpOptions): Promise<ObjectInfo | undefined>;
  get(key: string, opts?: GetOptions): Promise<Readable>;
  /** Idempotent: deleting a missing object succeeds. */
  delete(key: string, opts?: OpOptions): Promise<void>;
  /** All objects whose key starts with `prefix` (relative to the destination), in byte order of key. */
  list(prefix?: string, opts?: ListOptions): AsyncIterable<ObjectInfo>;
  /** Throws HOLDFAST_E_KEY_INVALID / HOLDFAST_E_KEY_TOO_LONG if `key` cannot exist on this destination. */
  validateKey(key: string): void;
  close(): Promise<void>;
}

export interface BackendOptions {
  /** S3: endpoint URL (else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL). */
  readonly s3Endpoint?: string;
  /** S3: path-style addressing (needed by most local servers). */
  readonly s3PathStyle?: boolean;
  readonly s3Region?: string;
  /**
   * A request that makes no progress for this long is abandoned (and retried by
   * the engine as HOLDFAST_E_TIMEOUT), so a server that accepts a connection and
   * then hangs never stalls a run. s3://: no bytes sent or received for this
   * long (default 120 s); azure:// and gdrive://: the whole request, which is
   * at most one block/chunk or one small file (default 15 min; a download is
   * timed until its response starts).
   */
  readonly requestTimeoutMs?: number;
  /** file://: fsync files and directories before reporting success (default true). */
  readonly fsync?: boolean;
  /** azure://: a connection string (else AZURE_STORAGE_CONNECTION_STRING). */
  readonly azureConnectionString?: string;
  /** azure://: account name, with `azureAccountKey` or `azureSasToken` (else AZURE_STORAGE_ACCOUNT / _KEY / _SAS_TOKEN). */
  readonly azureAccount?: string;
  readonly azureAccountKey?: string;
  readonly azureSasToken?: string;
  /** azure://: blob service endpoint (else https://<account>.blob.core.windows.net, or AZURE_STORAGE_BLOB_ENDPOINT). */
  readonly azureEndpoint?: string;
  /** gdrive://: service-account JSON key file (else GOOGLE_APPLICATION_CREDENTIALS). */
  readonly gdriveCredentialsFile?: string;
  /** gdrive://: an OAuth access token (else HOLDFAST_GDRIVE_ACCESS_TOKEN). */
  readonly gdriveAccessToken?: string;
  /** gdrive://: API root URL (else HOLDFAST_GDRIVE_API_ROOT, else https://www.googleapis.com/; tests point it at the local fake). */
  readonly gdriveApiRoot?: string;
}

/** Default for BackendOptions.requestTimeoutMs where it bounds inactivity (s3://). */
export const DEFAULT_IDLE_TIMEOUT_MS = 120_000;
/** Default for BackendOptions.requestTimeoutMs where it bounds a whole request (azure://, gdrive://). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 15 * 60_000;

export type BackendFactory = (url: URL, options: BackendOptions) => Promise<Backend>;
