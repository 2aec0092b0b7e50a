// The s3:// destination (AWS S3 and S3-compatible servers: MinIO, R2, B2, Ceph,
// s3rver…) on AWS SDK v3. `s3://bucket/prefix` puts key K at `prefix/K`.
//
// Configuration follows the AWS conventions: credentials and region from the
// SDK's standard chain (environment, shared config, instance roles), endpoint
// from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL or the `s3Endpoint` option.
// Credentials are never put in messages or logs.

import { readFile } from 'node:fs/promises';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { cancelledError, classifyError, HoldfastError, throwIfAborted } from '../core/errors.js';
import type { ErrorCode } from '../core/errors.js';
import { DEFAULT_IDLE_TIMEOUT_MS, MTIME_METADATA_KEY, parseMtime, SHA256_METADATA_KEY } from './backend.js';
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
import { compareKeys, keyInvalidError, prefixFromUrl, printable, validateKeyCommon } from './keys.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** Sockets per host: enough for the engine's parallel transfers plus listing and heads. */
const MAX_SOCKETS = 64;

// eslint-disable-next-line no-control-regex
const XML_UNSAFE = /[\u0001-\u0008\u000b-\u001f\ufffe\uffff]/;
/** S3's limit for a single PutObject; larger objects need multipart. */
const MAX_SINGLE_PUT = 5 * 1024 * 1024 * 1024;

const SILENT_LOGGER = { trace: (): void => undefined, debug: (): void => undefined, info: (): void => undefined, warn: (): void => undefined, error: (): void => undefined };

const CAPABILITIES: Capabilities = {
  multipart: true,
  metadata: true,
  // Every PutObject and UploadPart carries x-amz-checksum-sha256 (and is signed with the same hash).
  serverChecksum: true,
  versioning: false,
  maxKeyBytes: 1024,
  maxObjectSize: 5 * 1024 * GiB,
  minPartSize: 5 * MiB,
  maxPartSize: 5 * GiB,
  maxParts: 10_000,
  sequentialParts: false,
};

/** Names/statuses servers use for "this operation does not exist here" (s3rver: ListParts → 405, ListMultipartUploads → 501). */
const UNSUPPORTED_NAMES = new Set(['MethodNotAllowed', 'NotImplemented']);

interface SdkErrorLike {
  name?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
}

function sdkName(e: unknown): string {
  const err = (e ?? {}) as SdkErrorLike;
  return err.name ?? err.Code ?? '';
}

function sdkStatus(e: unknown): number | undefined {
  return ((e ?? {}) as SdkErrorLike).$metadata?.httpStatusCode;
}

function isNotFound(e: unknown): boolean {
  const name = sdkName(e);
  return name === 'NotFound' || name === 'NoSuchKey' || sdkStatus(e) === 404;
}

/** A SHA-256 in hex as S3's checksum headers and XML want it (base64), or undefined if it is not one. */
function base64Sha256(hex: string | undefined): string | undefined {
  return hex !== undefined && /^[0-9a-f]{64}$/.test(hex) ? Buffer.from(hex, 'hex').toString('base64') : undefined;
}

/** A base64 SHA-256 from S3 back to hex, or undefined if it is not one. */
function hexSha256(b64: string | undefined): string | undefined {
  if (b64 === undefined) return undefined;
  const raw = Buffer.from(b64, 'base64');
  return raw.length === 32 ? raw.toString('hex') : undefined;
}

function isUnsupported(e: unknown): boolean {
  const status = sdkStatus(e);
  return UNSUPPORTED_NAMES.has(sdkName(e)) || status === 405 || status === 501;
}

export const createBackend: BackendFactory = async (url: URL, options: BackendOptions): Promise<Backend> => {
  const { bucket, prefix } = parseS3Url(url);
  const endpoint = options.s3Endpoint ?? nonEmpty(process.env.AWS_ENDPOINT_URL_S3) ?? nonEmpty(process.env.AWS_ENDPOINT_URL);
  if (endpoint !== undefined) {
    let parsed: URL;
    try {
      parsed = new URL(endpoint);
    } catch {
      throw new HoldfastError('HOLDFAST_E_CONFIG', { detail: `S3 endpoint "${endpoint}" is not a URL (expected e.g. http://127.0.0.1:9000)` });
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new HoldfastError('HOLDFAST_E_CONFIG', { detail: `S3 endpoint "${endpoint}" must be http:// or https://` });
    }
  }
  const forcePathStyle = options.s3PathStyle ?? endpoint !== undefined;
  const useTls = endpoint === undefined || endpoint.startsWith('https:');
  const ca = useTls ? await readCaBundle() : undefined;
  const idleTimeoutMs = options.requestTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  return new S3Backend({ bucket, prefix, endpoint, forcePathStyle, region: options.s3Region, ca, idleTimeoutMs });
};

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s;
}

/**
 * AWS_CA_BUNDLE, as the AWS CLI and other SDKs honour it (the JS SDK v3 does
 * not read it itself). Only read when TLS is used, so a plain-http endpoint
 * works whatever it points at.
 */
async function readCaBundle(): Promise<Buffer | undefined> {
  const file = nonEmpty(process.env.AWS_CA_BUNDLE);
  if (file === undefined) return undefined;
  try {
    return await readFile(file);
  } catch (e) {
    throw new HoldfastError('HOLDFAST_E_CONFIG', { detail: `AWS_CA_BUNDLE="${file}" cannot be read: ${(e as Error).message}` }, { cause: e });
  }
}

/** `s3://bucket/some/prefix` → bucket "bucket", prefix "some/prefix/" (always ending "/" unless empty). */
export function parseS3Url(url: URL): { bucket: string; prefix: string } {
  // Never echo user-info back: it may hold a secret.
  const shown = `s3://${url.host}${url.pathname}`;
  if (url.username !== '' || url.password !== '') {
    throw new HoldfastError('HOLDFAST_E_BAD_URL', { url: shown, detail: 'credentials do not belong in the URL; use AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or a profile' });
  }
  if (url.search !== '' || url.hash !== '') {
    throw new HoldfastError('HOLDFAST_E_BAD_URL', { url: shown, detail: 'an s3:// URL takes no "?" or "#" part' });
  }
  const bucket = url.hostname;
  if (url.port !== '') throw new HoldfastError('HOLDFAST_E_BAD_URL', { url: shown, detail: 'the endpoint is not part of an s3:// URL; set AWS_ENDPOINT_URL' });
  if (!/^[a-z0-9][a-z0-9.\-_]{1,254}$/i.test(bucket)) {
    throw new HoldfastError('HOLDFAST_E_BAD_URL', { url: shown, detail: `"${bucket}" is not a valid bucket name` });
  }
  // The prefix is part of every key: the same rules (a control character in it would make every object unlistable).
  const prefix = prefixFromUrl(url, shown, (p) => validateS3Key(p, ''));
  return { bucket, prefix };
}

/**
 * The common rules, and S3's own: listings are XML 1.0, which cannot carry
 * most C0 controls (nor U+FFFE/U+FFFF), and whose parsers turn "\r" into
 * "\n": such keys could be written but never listed back as themselves. (Tab
 * and newline are fine.)
 */
function validateS3Key(key: string, prefix: string): void {
  validateKeyCommon(key, { maxKeyBytes: CAPABILITIES.maxKeyBytes, prefix });
  if (XML_UNSAFE.test(key)) throw keyInvalidError(key, 'S3 listings (XML) cannot return control characters other than tab and newline');
}

interface S3BackendConfig {
  readonly bucket: string;
  /** "" or ending with "/". */
  readonly prefix: string;
  readonly endpoint: string | undefined;
  readonly forcePathStyle: boolean;
  readonly region: string | undefined;
  readonly ca: Buffer | undefined;
  /** A request with no bytes moving for this long is abandoned (HOLDFAST_E_TIMEOUT, retried by the engine). */
  readonly idleTimeoutMs: number;
}

export class S3Backend implements Backend {
  readonly kind = 's3';
  readonly url: string;
  readonly location: DestinationLocation;
  readonly capabilities = CAPABILITIES;
  readonly multipart: MultipartApi;
  readonly bucket: string;
  readonly prefix: string;
  /** Where requests go, for messages ("AWS S3" when the SDK picks the endpoint). */
  readonly endpointLabel: string;
  private readonly client: S3Client;

  constructor(cfg: S3BackendConfig) {
    this.bucket = cfg.bucket;
    this.prefix = cfg.prefix;
    this.url = `s3://${cfg.bucket}/${cfg.prefix}`;
    // The endpoint is part of the identity: one bucket name on two servers is two destinations.
    this.location = { namespace: cfg.endpoint === undefined ? `s3://${cfg.bucket}/` : `s3+${endpointPart(cfg.endpoint)}/${cfg.bucket}/`, prefix: cfg.prefix };
    this.endpointLabel = cfg.endpoint ?? 'AWS S3';
    const agentOptions = { keepAlive: true, maxSockets: MAX_SOCKETS, maxFreeSockets: MAX_SOCKETS };
    this.client = new S3Client({
      ...(cfg.endpoint !== undefined ? { endpoint: cfg.endpoint } : {}),
      region: cfg.region ?? regionFromChain(),
      forcePathStyle: cfg.forcePathStyle,
      followRegionRedirects: true,
      // Holdfast retries in exactly one place, the engine, with its own backoff
      // and error classes; SDK retries underneath would multiply attempts and
      // hide failures from the ledger.
      maxAttempts: 1,
      // The SDK logs nothing of ours (no request details, no credentials); it
      // would otherwise print some warnings straight to the console.
      logger: SILENT_LOGGER,
      // s3rver and many S3-compatible servers reject the CRC32 trailers the SDK
      // adds by default since 3.729. Every body carries Holdfast's own SHA-256
      // instead (x-amz-checksum-sha256), which the SDK then leaves alone: one
      // checksum per body, not two.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: {
        httpAgent: new HttpAgent(agentOptions),
        httpsAgent: new HttpsAgent(cfg.ca === undefined ? agentOptions : { ...agentOptions, ca: cfg.ca }),
        connectionTimeout: 10_000,
        // A server that accepted the request and then hangs must not stall the run:
        // no bytes moving on the socket for this long fails the request (TimeoutError).
        // (The handler's requestTimeout bounds the whole request and only warns by default.)
        socketTimeout: cfg.idleTimeoutMs,
      },
    });
    // A body whose SHA-256 is known (ChecksumSHA256: every put and part) is signed
    // with it as its payload hash, which the server checks as well. Otherwise the
    // signer hashes a Buffer body itself (every part), a second SHA-256 of the
    // same bytes, and sends a stream UNSIGNED-PAYLOAD. This runs at the build
    // step: after the checksum header is serialised, before signing.
    this.client.middlewareStack.add(
      (next) => async (args) => {
        const checksum = (args.input as { ChecksumSHA256?: unknown }).ChecksumSHA256;
        const headers = (args.request as { headers?: Record<string, string> } | undefined)?.headers;
        const hex = typeof checksum === 'string' ? hexSha256(checksum) : undefined;
        if (hex !== undefined && headers !== undefined) headers['x-amz-content-sha256'] = hex;
        return next(args);
      },
      { step: 'build', name: 'holdfastPayloadSha256' },
    );
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
    validateS3Key(key, this.prefix);
  }

  private fullKey(key: string): string {
    this.validateKey(key);
    return this.prefix + key;
  }

  /** Every SDK failure leaves here as a HoldfastError with `transient` set by the one classifier. */
  private fail(e: unknown, signal: AbortSignal | undefined, fallback: ErrorCode = 'HOLDFAST_E_DEST_SERVER'): HoldfastError {
    if (signal?.aborted === true) return cancelledError(signal);
    return classifyError(e, fallback);
  }

  async ensureReady(opts: OpOptions = {}): Promise<void> {
    throwIfAborted(opts.signal);
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal: opts.signal });
    } catch (e) {
      if (opts.signal?.aborted === true) throw cancelledError(opts.signal);
      const status = sdkStatus(e);
      if (status === 404 || sdkName(e) === 'NotFound' || sdkName(e) === 'NoSuchBucket') {
        const how =
          this.endpointLabel === 'AWS S3'
            ? `create it with \`aws s3 mb s3://${this.bucket}\` or in the AWS console`
            : `create it with \`aws s3 mb s3://${this.bucket} --endpoint-url ${this.endpointLabel}\` or in the server's console`;
        throw new HoldfastError('HOLDFAST_E_DEST_NOT_FOUND', { detail: `bucket "${this.bucket}" does not exist at ${this.endpointLabel}; ${how}` }, { cause: e });
      }
      const err = classifyError(e, 'HOLDFAST_E_DEST_UNREACHABLE');
      if (err.code === 'HOLDFAST_E_AUTH') {
        throw new HoldfastError('HOLDFAST_E_AUTH', { detail: `bucket "${this.bucket}" at ${this.endpointLabel}: ${await this.refusal(e, err)}` }, { cause: e });
      }
      if (err.code === 'HOLDFAST_E_NETWORK' || err.code === 'HOLDFAST_E_TIMEOUT' || err.code === 'HOLDFAST_E_DEST_UNREACHABLE') {
        throw new HoldfastError('HOLDFAST_E_DEST_UNREACHABLE', { detail: `cannot reach ${this.endpointLabel} for bucket "${this.bucket}": ${err.details.detail ?? err.message}` }, { cause: e });
      }
      throw err;
    }
  }

  /**
   * Which credential was refused, and how: HeadBucket answers carry no body,
   * so the SDK's own message is often just "UnknownError" or "Forbidden".
   * Names the access key id and where it came from, never the secret.
   */
  private async refusal(e: unknown, err: HoldfastError): Promise<string> {
    const name = sdkName(e);
    if (name === 'CredentialsProviderError') {
      return `no AWS credentials found (${String(err.details.detail ?? err.message)}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE`;
    }
    const id = await this.client.config
      .credentials()
      .then((c) => c.accessKeyId)
      .catch(() => undefined);
    const from =
      id === undefined
        ? ''
        : id === process.env.AWS_ACCESS_KEY_ID
          ? ' (from AWS_ACCESS_KEY_ID)'
          : nonEmpty(process.env.AWS_PROFILE) !== undefined
            ? ` (from profile "${process.env.AWS_PROFILE}")`
            : ' (from the AWS credential chain)';
    const key = id === undefined ? 'the credentials' : `access key id "${id}"${from}`;
    const status = sdkStatus(e);
    switch (name) {
      case 'InvalidAccessKeyId':
        return `${key} is not known to the server`;
      case 'SignatureDoesNotMatch':
        return `the secret access key does not belong to ${key}`;
      case 'ExpiredToken':
        return `the session token of ${key} has expired`;
      default:
        return `${key} was refused${status !== undefined ? ` (HTTP ${status}${/^[A-Za-z]+$/.test(name) && !name.startsWith('Unknown') ? ` ${name}` : ''})` : ''}: the key is unknown, its secret is wrong, or it may not access this bucket`;
    }
  }

  async put(key: string, body: BodySource, opts: PutOptions): Promise<PutResult> {
    throwIfAborted(opts.signal);
    const Key = this.fullKey(key);
    if (opts.size > MAX_SINGLE_PUT) {
      // Said before sending a byte; the engine should have chosen multipart (size > maxPartSize).
      throw new HoldfastError('HOLDFAST_E_TOO_LARGE', { key: printable(key), size: opts.size, max: MAX_SINGLE_PUT });
    }
    // The SDK streams the body with pipe(): guardBody aborts the request when
    // the body fails, and holds back its last chunk until it ended cleanly.
    const guarded = guardBody(key, body, opts);
    try {
      const out = await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key,
          Body: guarded.stream,
          ContentLength: opts.size,
          // The server refuses a body that does not hash to it (BadDigest), so a body corrupted on its way is never stored.
          ChecksumSHA256: base64Sha256(opts.sha256),
          Metadata: objectMetadata(opts),
        }),
        { abortSignal: guarded.signal },
      );
      guarded.assertAllSent();
      return { etag: out.ETag, versionId: out.VersionId };
    } catch (e) {
      throw guarded.failure() ?? this.fail(e, opts.signal);
    } finally {
      await guarded.dispose();
    }
  }

  async head(key: string, opts: OpOptions = {}): Promise<ObjectInfo | undefined> {
    throwIfAborted(opts.signal);
    const Key = this.fullKey(key);
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }), { abortSignal: opts.signal });
      return {
        key,
        size: out.ContentLength ?? 0,
        etag: out.ETag,
        sha256: out.Metadata?.[SHA256_METADATA_KEY],
        modifiedMs: out.LastModified?.getTime(),
        mtimeMs: parseMtime(out.Metadata?.[MTIME_METADATA_KEY]),
        versionId: out.VersionId,
      };
    } catch (e) {
      if (isNotFound(e) && opts.signal?.aborted !== true) return undefined;
      throw this.fail(e, opts.signal);
    }
  }

  async get(key: string, opts: GetOptions = {}): Promise<Readable> {
    throwIfAborted(opts.signal);
    const Key = this.fullKey(key);
    let Range: string | undefined;
    if (opts.range !== undefined) {
      const r = opts.range;
      if (!Number.isSafeInteger(r.start) || !Number.isSafeInteger(r.end) || r.start < 0 || r.end < r.start) {
        throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `invalid byte range ${r.start}-${r.end}` });
      }
      Range = `bytes=${r.start}-${r.end}`;
    }
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key, Range }), { abortSignal: opts.signal });
      if (out.Body === undefined) return Readable.from([], { objectMode: false });
      const body = out.Body as Readable;
      return opts.range === undefined ? body : this.checkRange(key, body, opts.range, out.ContentRange);
    } catch (e) {
      if (isNotFound(e) && opts.signal?.aborted !== true) {
        throw new HoldfastError('HOLDFAST_E_DEST_REJECTED', { detail: `no object "${printable(key)}" on ${this.url}` }, { cause: e });
      }
      throw this.fail(e, opts.signal);
    }
  }

  /**
   * Never hands out more than the requested range. Some servers get ranges
   * wrong (s3rver sends the whole object for "bytes=0-0"); a response that
   * starts elsewhere is refused, one that runs long is cut.
   */
  private checkRange(key: string, body: Readable, range: { readonly start: number; readonly end: number }, contentRange: string | undefined): Readable {
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(contentRange ?? '');
    const start = m === null ? 0 : Number(m[1]);
    if (start !== range.start) {
      body.destroy();
      throw new HoldfastError('HOLDFAST_E_DEST_REJECTED', {
        detail: `${this.endpointLabel} answered the range ${range.start}-${range.end} of "${printable(key)}" with ${contentRange ?? 'the whole object'}`,
      });
    }
    const served = m === null ? Infinity : Number(m[2]) - start + 1;
    const wanted = range.end - range.start + 1;
    if (served <= wanted) return body;
    return limitBytes(body, wanted);
  }

  async delete(key: string, opts: OpOptions = {}): Promise<void> {
    throwIfAborted(opts.signal);
    const Key = this.fullKey(key);
    try {
      // S3 answers 204 for a missing key too: idempotent by protocol.
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }), { abortSignal: opts.signal });
    } catch (e) {
      if (isNotFound(e) && sdkName(e) !== 'NoSuchBucket' && opts.signal?.aborted !== true) return;
      throw this.fail(e, opts.signal);
    }
  }

  async *list(prefix = '', opts: ListOptions = {}): AsyncIterable<ObjectInfo> {
    throwIfAborted(opts.signal);
    const fullPrefix = this.prefix + prefix;
    const startAfter = opts.startAfter;
    let token: string | undefined;
    let last: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: fullPrefix === '' ? undefined : fullPrefix,
            StartAfter: token === undefined ? serverStartAfter(this.prefix, startAfter) : undefined,
            ContinuationToken: token,
          }),
          { abortSignal: opts.signal },
        );
      } catch (e) {
        throw this.fail(e, opts.signal);
      }
      const items: ObjectInfo[] = [];
      for (const o of page.Contents ?? []) {
        if (o.Key === undefined || !o.Key.startsWith(fullPrefix)) continue;
        const key = o.Key.slice(this.prefix.length);
        // Servers compare StartAfter in different ways (s3rver: UTF-16); the contract is UTF-8 bytes.
        if (startAfter !== undefined && compareKeys(key, startAfter) <= 0) continue;
        items.push({ key, size: o.Size ?? 0, etag: o.ETag, modifiedMs: o.LastModified?.getTime() });
      }
      // S3 returns UTF-8 byte order already; some compatibles (s3rver) return
      // directory order. Sorting a page is free for the former and fixes the latter.
      items.sort((a, b) => compareKeys(a.key, b.key));
      for (const item of items) {
        if (last !== undefined && compareKeys(item.key, last) <= 0) {
          // A merge-join over this listing would silently miss keys: refuse loudly.
          throw new HoldfastError('HOLDFAST_E_DEST_REJECTED', {
            detail: `${this.endpointLabel} listed "${printable(item.key)}" after "${printable(last)}": its listings are not in key order`,
          });
        }
        last = item.key;
        yield item;
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  // ---- multipart -------------------------------------------------------

  private unsupported(operation: string, e: unknown): HoldfastError {
    return new HoldfastError(
      'HOLDFAST_E_NOT_SUPPORTED',
      { detail: `${this.endpointLabel} does not implement ${operation}; Holdfast falls back to the ledger's record of the upload` },
      { cause: e },
    );
  }

  private async mpCreate(
    key: string,
    opts: { sha256: string; size: number; mtimeMs?: number; metadata?: Readonly<Record<string, string>>; signal?: AbortSignal },
  ): Promise<string> {
    throwIfAborted(opts.signal);
    const Key = this.fullKey(key);
    if (opts.size > CAPABILITIES.maxObjectSize) {
      throw new HoldfastError('HOLDFAST_E_TOO_LARGE', { key: printable(key), size: opts.size, max: CAPABILITIES.maxObjectSize });
    }
    try {
      const out = await this.client.send(
        // Parts carry SHA-256 checksums, which S3 accepts only in an upload created for them.
        new CreateMultipartUploadCommand({ Bucket: this.bucket, Key, Metadata: objectMetadata(opts), ChecksumAlgorithm: 'SHA256' }),
        { abortSignal: opts.signal },
      );
      if (out.UploadId === undefined || out.UploadId === '') {
        throw new HoldfastError('HOLDFAST_E_DEST_REJECTED', { detail: `${this.endpointLabel} returned no upload id for "${printable(key)}"` });
      }
      return out.UploadId;
    } catch (e) {
      throw this.fail(e, opts.signal);
    }
  }

  private async mpUploadPart(
    key: string,
    uploadId: string,
    partNumber: number,
    body: Buffer,
    opts: { signal?: AbortSignal; onProgress?: (sentBytes: number) => void; sha256?: string } = {},
  ): Promise<UploadedPart> {
    throwIfAborted(opts.signal);
    const Key = this.fullKey(key);
    const checksum = base64Sha256(opts.sha256);
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > CAPABILITIES.maxParts) {
      throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `part number ${partNumber} is outside 1..${CAPABILITIES.maxParts}` });
    }
    const onProgress = opts.onProgress;
    try {
      const out = await this.client.send(
        new UploadPartCommand({
          Bucket: this.bucket,
          Key,
          UploadId: uploadId,
          PartNumber: partNumber,
          ContentLength: body.length,
          ChecksumSHA256: checksum,
          Body: onProgress === undefined || body.length === 0 ? body : bufferStream(body, onProgress),
        }),
        { abortSignal: opts.signal },
      );
      if (out.ETag === undefined) throw new HoldfastError('HOLDFAST_E_DEST_REJECTED', { detail: `${this.endpointLabel} returned no ETag for part ${partNumber}` });
      return { partNumber, size: body.length, etag: out.ETag, ...(checksum !== undefined ? { sha256: opts.sha256 } : {}) };
    } catch (e) {
      if (sdkName(e) === 'NoSuchUpload') {
        throw new HoldfastError('HOLDFAST_E_DEST_REJECTED', { detail: `upload ${uploadId} of "${printable(key)}" no longer exists` }, { cause: e });
      }
      // An upload created without checksums (by an earlier version) takes no part with one: it cannot be continued.
      if (sdkName(e) === 'InvalidRequest' && /checksum type mismatch/i.test((e as Error).message)) {
        throw new HoldfastError(
          'HOLDFAST_E_DEST_REJECTED',
          { detail: `upload ${uploadId} of "${printable(key)}" was not created for SHA-256 part checksums; a new upload is needed`, gone: 'upload' },
          { cause: e },
        );
      }
      throw this.fail(e, opts.signal);
    }
  }

  private async mpComplete(key: string, uploadId: string, parts: readonly UploadedPart[], opts: OpOptions = {}): Promise<PutResult> {
    throwIfAborted(opts.signal);
    const Key = this.fullKey(key);
    const sorted = [...parts].sort((a, b) => a.partNumber - b.partNumber);
    try {
      const out = await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key,
          UploadId: uploadId,
          // An upload created with ChecksumAlgorithm SHA256 must list each part's checksum.
          MultipartUpload: { Parts: sorted.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag, ChecksumSHA256: base64Sha256(p.sha256) })) },
        }),
        { abortSignal: opts.signal },
      );
      return { etag: out.ETag, versionId: out.VersionId };
    } catch (e) {
      throw this.fail(e, opts.signal);
    }
  }

  private async mpAbort(key: string, uploadId: string, opts: OpOptions = {}): Promise<void> {
    throwIfAborted(opts.signal);
    const Key = this.fullKey(key);
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId: uploadId }), { abortSignal: opts.signal });
    } catch (e) {
      if (opts.signal?.aborted === true) throw cancelledError(opts.signal);
      // Already completed or aborted: the goal (no open upload) holds.
      if (sdkName(e) === 'NoSuchUpload' || sdkStatus(e) === 404) return;
      // s3rver answers AbortMultipartUpload with 405 MethodNotAllowed.
      if (isUnsupported(e)) throw this.unsupported('AbortMultipartUpload', e);
      throw this.fail(e, opts.signal);
    }
  }

  private async mpListParts(key: string, uploadId: string, opts: OpOptions = {}): Promise<UploadedPart[] | undefined> {
    throwIfAborted(opts.signal);
    const Key = this.fullKey(key);
    const parts: UploadedPart[] = [];
    let marker: string | undefined;
    for (;;) {
      let page;
      try {
        page = await this.client.send(
          new ListPartsCommand({ Bucket: this.bucket, Key, UploadId: uploadId, PartNumberMarker: marker }),
          { abortSignal: opts.signal },
        );
      } catch (e) {
        if (opts.signal?.aborted === true) throw cancelledError(opts.signal);
        if (sdkName(e) === 'NoSuchUpload' || sdkStatus(e) === 404) return undefined;
        // s3rver has no ListParts: it answers 405 MethodNotAllowed.
        if (isUnsupported(e)) throw this.unsupported('ListParts', e);
        throw this.fail(e, opts.signal);
      }
      for (const p of page.Parts ?? []) {
        if (p.PartNumber === undefined || p.ETag === undefined) continue;
        const sha256 = hexSha256(p.ChecksumSHA256);
        parts.push({ partNumber: p.PartNumber, size: p.Size ?? 0, etag: p.ETag, ...(sha256 !== undefined ? { sha256 } : {}) });
      }
      if (page.IsTruncated !== true || page.NextPartNumberMarker === undefined || page.NextPartNumberMarker === marker) break;
      marker = page.NextPartNumberMarker;
    }
    return parts.sort((a, b) => a.partNumber - b.partNumber);
  }

  private async *mpListUploads(prefix = '', opts: OpOptions = {}): AsyncIterable<MultipartUploadInfo> {
    throwIfAborted(opts.signal);
    const fullPrefix = this.prefix + prefix;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      let page;
      try {
        page = await this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: fullPrefix === '' ? undefined : fullPrefix,
            KeyMarker: keyMarker,
            UploadIdMarker: uploadIdMarker,
          }),
          { abortSignal: opts.signal },
        );
      } catch (e) {
        if (opts.signal?.aborted === true) throw cancelledError(opts.signal);
        // s3rver answers ListMultipartUploads with 501 NotImplemented.
        if (isUnsupported(e)) throw this.unsupported('ListMultipartUploads', e);
        throw this.fail(e, opts.signal);
      }
      for (const u of page.Uploads ?? []) {
        if (u.Key === undefined || u.UploadId === undefined || !u.Key.startsWith(fullPrefix)) continue;
        yield { key: u.Key.slice(this.prefix.length), uploadId: u.UploadId, initiatedMs: u.Initiated?.getTime() };
      }
      if (page.IsTruncated !== true) break;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
      if (keyMarker === undefined && uploadIdMarker === undefined) break;
    }
  }
}

/**
 * User metadata of a new object: the caller's, then `holdfast-sha256` and, when
 * known, `holdfast-mtime` (S3 keeps no file times of its own; pull restores them).
 */
function objectMetadata(opts: { sha256: string; mtimeMs?: number; metadata?: Readonly<Record<string, string>> }): Record<string, string> {
  const out: Record<string, string> = { ...opts.metadata, [SHA256_METADATA_KEY]: opts.sha256 };
  if (opts.mtimeMs !== undefined && Number.isFinite(opts.mtimeMs)) out[MTIME_METADATA_KEY] = String(Math.floor(opts.mtimeMs));
  return out;
}

/**
 * The StartAfter to send. S3 compares keys as UTF-8 bytes; some compatibles
 * (s3rver, anything written in JS) compare UTF-16 units, and the two orders
 * disagree only from U+D800 up. Cutting the key before its first such
 * character gives a bound that is ≤ the real one in both orders, so the server
 * never skips a key we want; the exact byte comparison is then done here.
 */
function serverStartAfter(prefix: string, startAfter: string | undefined): string | undefined {
  if (startAfter === undefined) return undefined;
  const cut = startAfter.search(/[\uD800-\uFFFF]/);
  const bound = prefix + (cut < 0 ? startAfter : startAfter.slice(0, cut));
  return bound === '' ? undefined : bound;
}

/**
 * The SDK's own region chain (AWS_REGION, AWS_DEFAULT_REGION via profile,
 * shared config…), falling back to us-east-1, which S3-compatible servers
 * accept and AWS redirects from (followRegionRedirects). Resolved lazily so
 * opening a backend reads no files.
 */
function regionFromChain(): () => Promise<string> {
  let resolved: Promise<string> | undefined;
  return () => {
    resolved ??= (async () => {
      const probe = new S3Client({});
      try {
        return await probe.config.region();
      } catch {
        return 'us-east-1';
      } finally {
        probe.destroy();
      }
    })();
    return resolved;
  };
}
