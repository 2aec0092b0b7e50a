// The one registry of Holdfast's error codes, and the one classifier that maps
// any thrown thing (SDK errors, Node system errors, SQLite/PostgreSQL errors)
// to a HoldfastError with a stable code and a transient/permanent verdict.
//
// Rules: codes are never reused or renamed once released; every code is listed
// in docs/errors.md (a test checks both directions); retries look only at
// `transient`, never at messages.

export interface ErrorSpec {
  /** Message template; `{name}` placeholders are filled from `details`. */
  readonly message: string;
  /** Exit code when this error ends a CLI command. */
  readonly exit: number;
  /** HTTP status when this error ends an API request. */
  readonly http: number;
  /** Whether retrying the same operation can succeed without anyone changing anything. */
  readonly transient: boolean;
}

export const EXIT = {
  ok: 0,
  usage: 1,
  partial: 2,
  cannotRun: 3,
  cancelled: 130,
} as const;

export const ERROR_CODES = {
  // Usage and configuration: nothing was done.
  HOLDFAST_E_USAGE: { message: '{detail}', exit: EXIT.usage, http: 400, transient: false },
  HOLDFAST_E_BAD_URL: { message: 'invalid destination URL "{url}": {detail}', exit: EXIT.usage, http: 400, transient: false },
  HOLDFAST_E_UNKNOWN_SCHEME: {
    message: 'unknown destination scheme "{scheme}" in "{url}"; supported: {supported}',
    exit: EXIT.usage,
    http: 400,
    transient: false,
  },
  HOLDFAST_E_CONFIG: { message: 'configuration error: {detail}', exit: EXIT.usage, http: 400, transient: false },
  HOLDFAST_E_UNKNOWN_DESTINATION: { message: 'the ledger knows no destination "{url}"; known destinations: {known}', exit: EXIT.usage, http: 404, transient: false },

  // The run could not start.
  HOLDFAST_E_SOURCE_MISSING: { message: 'source directory "{path}" does not exist or is not a directory', exit: EXIT.cannotRun, http: 404, transient: false },
  HOLDFAST_E_DEST_NOT_FOUND: { message: '{detail}', exit: EXIT.cannotRun, http: 404, transient: false },
  HOLDFAST_E_DEST_UNREACHABLE: { message: 'destination unreachable: {detail}', exit: EXIT.cannotRun, http: 503, transient: true },
  HOLDFAST_E_AUTH: { message: 'destination refused the credentials or permission: {detail}', exit: EXIT.cannotRun, http: 403, transient: false },
  HOLDFAST_E_LEDGER_OPEN: { message: 'cannot open the ledger at "{path}": {detail}', exit: EXIT.cannotRun, http: 500, transient: false },
  HOLDFAST_E_LEDGER_BUSY: { message: 'the ledger is locked by another process: {detail}', exit: EXIT.cannotRun, http: 503, transient: true },
  HOLDFAST_E_LEDGER_WRITE: { message: 'ledger write failed: {detail}', exit: EXIT.cannotRun, http: 500, transient: true },
  HOLDFAST_E_LEDGER_UNREACHABLE: { message: 'cannot reach the ledger at {url}: {detail}', exit: EXIT.cannotRun, http: 503, transient: true },
  HOLDFAST_E_DEST_LOCKED: { message: 'another run holds this destination: {detail}', exit: EXIT.cannotRun, http: 409, transient: true },
  HOLDFAST_E_TARGET_UNUSABLE: { message: 'cannot restore into "{path}": {detail}', exit: EXIT.cannotRun, http: 422, transient: false },

  // Per-file failures: the run goes on, the file is reported.
  HOLDFAST_E_SOURCE_UNREADABLE: { message: 'cannot read "{path}": {detail}', exit: EXIT.partial, http: 422, transient: false },
  HOLDFAST_E_SOURCE_CHANGED: { message: '"{path}" changed while it was being uploaded; it will be sent again on the next run', exit: EXIT.partial, http: 409, transient: false },
  HOLDFAST_E_SOURCE_VANISHED: { message: '"{path}" disappeared before it could be uploaded', exit: EXIT.partial, http: 410, transient: false },
  HOLDFAST_E_KEY_INVALID: { message: 'key "{key}" is not allowed on this destination: {detail}', exit: EXIT.partial, http: 400, transient: false },
  HOLDFAST_E_KEY_TOO_LONG: { message: 'key "{key}" is {bytes} bytes; this destination allows at most {max}', exit: EXIT.partial, http: 400, transient: false },
  HOLDFAST_E_KEY_COLLISION: { message: 'keys "{key}" and "{other}" are one name on this destination: {detail}', exit: EXIT.partial, http: 409, transient: false },
  HOLDFAST_E_TOO_LARGE: { message: 'object "{key}" is {size} bytes; this destination allows at most {max}', exit: EXIT.partial, http: 413, transient: false },
  HOLDFAST_E_NETWORK: { message: 'network error: {detail}', exit: EXIT.partial, http: 502, transient: true },
  HOLDFAST_E_TIMEOUT: { message: 'timed out: {detail}', exit: EXIT.partial, http: 504, transient: true },
  HOLDFAST_E_THROTTLED: { message: 'destination asked to slow down: {detail}', exit: EXIT.partial, http: 429, transient: true },
  HOLDFAST_E_DEST_SERVER: { message: 'destination server error: {detail}', exit: EXIT.partial, http: 502, transient: true },
  HOLDFAST_E_DEST_REJECTED: { message: 'destination rejected the request: {detail}', exit: EXIT.partial, http: 502, transient: false },
  HOLDFAST_E_CHECKSUM: { message: 'content of "{key}" does not match its SHA-256: {detail}', exit: EXIT.partial, http: 502, transient: true },
  HOLDFAST_E_LEDGER_OUTCOME: {
    message: 'uploaded, but the ledger could not record it ({detail}); the next run resolves it without sending it again',
    exit: EXIT.partial,
    http: 500,
    transient: true,
  },
  HOLDFAST_E_FENCED: {
    message: 'another run took "{key}" over ({detail}); what happened to it is that run\'s to record',
    exit: EXIT.partial,
    http: 409,
    transient: true,
  },
  HOLDFAST_E_TARGET_WRITE: { message: 'cannot write "{path}": {detail}', exit: EXIT.partial, http: 500, transient: false },
  HOLDFAST_E_DELETE_REFUSED: { message: '{detail}', exit: EXIT.partial, http: 409, transient: false },
  HOLDFAST_E_NOT_SUPPORTED: { message: '{detail}', exit: EXIT.usage, http: 501, transient: false },

  HOLDFAST_E_CANCELLED: { message: 'cancelled', exit: EXIT.cancelled, http: 499, transient: false },
  HOLDFAST_E_INTERNAL: { message: 'internal error: {detail}', exit: EXIT.cannotRun, http: 500, transient: false },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

export type ErrorDetails = Readonly<Record<string, string | number | undefined>>;

function render(template: string, details: ErrorDetails): string {
  return template.replace(/\{(\w+)\}/g, (_m, name: string) => {
    const v = details[name];
    return v === undefined ? `{${name}}` : String(v);
  });
}

export class HoldfastError extends Error {
  readonly code: ErrorCode;
  readonly transient: boolean;
  readonly exitCode: number;
  readonly httpStatus: number;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, details: ErrorDetails = {}, options?: { cause?: unknown; transient?: boolean }) {
    const spec: ErrorSpec = ERROR_CODES[code];
    super(render(spec.message, details), options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HoldfastError';
    this.code = code;
    this.transient = options?.transient ?? spec.transient;
    this.exitCode = spec.exit;
    this.httpStatus = spec.http;
    this.details = details;
  }
}

export function isHoldfastError(e: unknown): e is HoldfastError {
  return e instanceof HoldfastError;
}

const NET_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'ERR_STREAM_PREMATURE_CLOSE',
]);
const TIMEOUT_CODES = new Set(['ETIMEDOUT', 'ESOCKETTIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);
const THROTTLE_NAMES = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'TooManyRequestsException', 'RequestLimitExceeded', 'ServerBusy']);
const AUTH_NAMES = new Set(['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'CredentialsProviderError', 'AuthorizationFailure', 'AuthenticationFailed']);
// PostgreSQL: serialization failure, deadlock, lock not available, admin shutdown / cannot connect now.
const PG_TRANSIENT = new Set(['40001', '40P01', '55P03', '57P01', '57P03', '08000', '08003', '08006']);

interface ErrorLike {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  $metadata?: { httpStatusCode?: number };
  statusCode?: unknown;
  cause?: unknown;
}

function messageOf(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

/**
 * Maps anything thrown to a HoldfastError. `fallback` names the code to use
 * when nothing more specific is known (the caller knows the context: a ledger
 * write, a source read...). Cancellation is recognised first, always.
 */
export function classifyError(e: unknown, fallback: ErrorCode = 'HOLDFAST_E_INTERNAL', details: ErrorDetails = {}): HoldfastError {
  if (e instanceof HoldfastError) return e;
  const err = (typeof e === 'object' && e !== null ? e : {}) as ErrorLike;
  const name = typeof err.name === 'string' ? err.name : '';
  const code = typeof err.code === 'string' ? err.code : '';
  const detail = messageOf(e);
  const d = { ...details, detail };

  if (name === 'AbortError' || code === 'ABORT_ERR') return new HoldfastError('HOLDFAST_E_CANCELLED', d, { cause: e });
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return new HoldfastError('HOLDFAST_E_LEDGER_BUSY', d, { cause: e });
  if (code.startsWith('SQLITE_')) return new HoldfastError('HOLDFAST_E_LEDGER_WRITE', d, { cause: e, transient: code.startsWith('SQLITE_IOERR') });
  if (/^[0-9A-Z]{5}$/.test(code) && PG_TRANSIENT.has(code)) return new HoldfastError('HOLDFAST_E_LEDGER_BUSY', d, { cause: e });
  if (NET_CODES.has(code) || name === 'NetworkingError') return new HoldfastError('HOLDFAST_E_NETWORK', d, { cause: e });
  if (TIMEOUT_CODES.has(code) || name === 'TimeoutError' || name === 'RequestTimeout') return new HoldfastError('HOLDFAST_E_TIMEOUT', d, { cause: e });
  if (THROTTLE_NAMES.has(name)) return new HoldfastError('HOLDFAST_E_THROTTLED', d, { cause: e });
  if (AUTH_NAMES.has(name)) return new HoldfastError('HOLDFAST_E_AUTH', d, { cause: e });
  if (name === 'BadDigest' || name === 'InvalidDigest' || name === 'XAmzContentSHA256Mismatch') {
    return new HoldfastError('HOLDFAST_E_CHECKSUM', d, { cause: e });
  }

  const status = err.$metadata?.httpStatusCode ?? (typeof err.statusCode === 'number' ? err.statusCode : undefined);
  if (status !== undefined) {
    if (status === 429 || status === 503) return new HoldfastError('HOLDFAST_E_THROTTLED', d, { cause: e });
    if (status >= 500) return new HoldfastError('HOLDFAST_E_DEST_SERVER', d, { cause: e });
    if (status === 408) return new HoldfastError('HOLDFAST_E_TIMEOUT', d, { cause: e });
    if (status === 401 || status === 403) return new HoldfastError('HOLDFAST_E_AUTH', d, { cause: e });
    if (status >= 400) return new HoldfastError('HOLDFAST_E_DEST_REJECTED', d, { cause: e });
  }
  if (code === 'ENOENT' && fallback === 'HOLDFAST_E_SOURCE_UNREADABLE') return new HoldfastError('HOLDFAST_E_SOURCE_VANISHED', d, { cause: e });
  if (err.cause !== undefined && err.cause !== e) {
    const inner = classifyError(err.cause, fallback, details);
    if (inner.code !== fallback) return inner;
  }
  return new HoldfastError(fallback, d, { cause: e });
}

/**
 * The exit code of a command that `e` stopped before there was a run to
 * report. A per-file kind of error (exit 2) raised there concerned the whole
 * run — the source root cannot be read, say — so the run could not start: 3.
 * (Once a run has started, its report decides: docs/cli.md#exit-codes.)
 */
export function exitCodeOf(e: HoldfastError): number {
  if (e.code === 'HOLDFAST_E_CANCELLED') return EXIT.cancelled;
  return e.exitCode === EXIT.partial ? EXIT.cannotRun : e.exitCode;
}

/** The reason an AbortSignal was aborted, as a HoldfastError (for `throw`). */
export function cancelledError(signal?: AbortSignal): HoldfastError {
  return new HoldfastError('HOLDFAST_E_CANCELLED', {}, { cause: signal?.reason });
}

export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw cancelledError(signal);
}
