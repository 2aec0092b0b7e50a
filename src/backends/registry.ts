// Opens a destination by URL: parses it, picks the backend by scheme and loads
// that backend's module only then (`await import()`), so a command writing to
// file:// never pays for loading the AWS SDK.

import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { HoldfastError } from '../core/errors.js';
import { timerProblem } from '../core/units.js';
import type { Backend, BackendFactory, BackendOptions } from './backend.js';

interface BackendModule {
  readonly createBackend: BackendFactory;
}

// Scheme (without ":") → loader. Adding a backend is one line here plus its module.
const LOADERS: Readonly<Record<string, () => Promise<BackendModule>>> = {
  file: () => import('./local.js'),
  s3: () => import('./s3.js'),
  gdrive: () => import('./gdrive.js'),
  azure: () => import('./azure.js'),
};

/** Schemes `openBackend` accepts, e.g. `["file", "s3"]`. */
export function supportedSchemes(): string[] {
  return Object.keys(LOADERS);
}

const SECRET_PARAM = /secret|token|password|passwd|signature|credential|sig$|key$/i;

/**
 * `url` with credentials removed: user-info (`user:pass@`) and query parameters
 * whose names look secret. Safe to log, store in the ledger and show. Strings
 * that do not parse as URLs are still stripped of anything that looks like
 * user-info.
 */
export function redactUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return url.replace(/\/\/[^/@\s]*@/, '//***@');
  }
  if (u.username !== '' || u.password !== '') {
    u.username = '';
    u.password = '';
  }
  for (const name of [...u.searchParams.keys()]) {
    if (SECRET_PARAM.test(name)) u.searchParams.set(name, '***');
  }
  return u.href;
}

/** Parses `url` into a URL or throws HOLDFAST_E_BAD_URL / HOLDFAST_E_UNKNOWN_SCHEME. */
export function parseDestinationUrl(url: string): URL {
  if (typeof url !== 'string' || url.trim() === '') {
    throw new HoldfastError('HOLDFAST_E_BAD_URL', { url: String(url), detail: 'the URL is empty' });
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    const hint = url.startsWith('/') ? `; for a directory write ${pathToFileURL(url).href}` : `; expected one of ${supportedSchemes().map((s) => `${s}://…`).join(', ')}`;
    throw new HoldfastError('HOLDFAST_E_BAD_URL', { url: redactUrl(url), detail: `not a URL${hint}` });
  }
  const scheme = parsed.protocol.replace(/:$/, '').toLowerCase();
  if (!Object.hasOwn(LOADERS, scheme)) {
    throw new HoldfastError('HOLDFAST_E_UNKNOWN_SCHEME', { scheme, url: redactUrl(url), supported: supportedSchemes().join(', ') });
  }
  refuseRewrittenUrl(url, scheme);
  return parsed;
}

/**
 * WHATWG URL parsing quietly rewrites what it does not like: it drops tabs and
 * newlines anywhere, resolves "." and ".." (also spelt %2e), reads
 * `file:relative` as `file:///relative` and `file:` as `file:///`. A
 * destination must be exactly what was typed, so anything the parser would
 * rewrite is refused here, on the text as given, with the spelling to use.
 */
function refuseRewrittenUrl(url: string, scheme: string): void {
  // Shown as typed (the parsed form is what is wrong with it), without secrets or raw control characters.
  // eslint-disable-next-line no-control-regex
  const shown = (/[@?#]/.test(url) ? redactUrl(url) : url).replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  const bad = (detail: string): HoldfastError => new HoldfastError('HOLDFAST_E_BAD_URL', { url: shown, detail });
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(url) || url !== url.trim()) throw bad('the URL contains a control character or surrounding spaces (write a space inside a path as %20)');
  const rest = url.slice(scheme.length + 1);
  if (scheme === 'file') {
    if (!rest.startsWith('//')) {
      const path = rest.replace(/^\/+/, '/');
      const absolute = resolve(path === '' ? '.' : safeDecode(path));
      throw bad(
        path === ''
          ? `it names no directory; expected file:///absolute/path (for the current directory: ${pathToFileURL(absolute).href})`
          : path.startsWith('/')
            ? `write it with three slashes: ${pathToFileURL(absolute).href}`
            : `a file: URL must name an absolute path: file:///absolute/path (for "${path}" here: ${pathToFileURL(absolute).href})`,
      );
    }
    const host = /^\/\/([^/\\?#]*)/.exec(rest)?.[1] ?? '';
    if (host !== '' && host.toLowerCase() !== 'localhost') {
      throw bad(`"${host}" is not this machine: a file:// URL names a local directory, file:///absolute/path (mount a network share first); for a path below the current directory write ${pathToFileURL(resolve(safeDecode(rest.slice(2).replace(/[?#].*$/, '')))).href}`);
    }
  }
  // The path as typed: after the authority, before "?" or "#".
  const afterAuthority = rest.startsWith('//') ? rest.slice(2).replace(scheme === 'file' ? /^[^/\\?#]*/ : /^[^/?#]*/, '') : rest;
  const path = afterAuthority.replace(/[?#].*$/, '');
  const segments = path.split(scheme === 'file' ? /[/\\]/ : '/').slice(1);
  for (const segment of segments) {
    const decoded = segment.replace(/%2e/gi, '.');
    if (decoded === '.' || decoded === '..') {
      throw bad(
        scheme === 'file'
          ? `the path has a "${segment}" segment; write the directory itself: ${new URL(url).href}`
          : `the prefix has a "${segment}" segment, which a URL parser would silently resolve away; a prefix is taken literally: write it without "." and ".." segments`,
      );
    }
  }
  if ((scheme === 's3' || scheme === 'azure') && segments.slice(0, -1).includes('')) {
    throw bad('the prefix has an empty segment ("//"): objects would be stored under keys with an empty path segment; write single slashes');
  }
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * Opens the destination at `url` (file:///abs/path, s3://bucket/prefix).
 * Does not contact the destination: call `backend.ensureReady()` for that.
 */
export async function openBackend(url: string, options: BackendOptions = {}): Promise<Backend> {
  const problem = options.requestTimeoutMs === undefined ? undefined : timerProblem(options.requestTimeoutMs);
  if (problem !== undefined) throw new HoldfastError('HOLDFAST_E_USAGE', { detail: `requestTimeoutMs: ${problem}` });
  const parsed = parseDestinationUrl(url);
  const scheme = parsed.protocol.replace(/:$/, '').toLowerCase();
  const load = LOADERS[scheme];
  if (load === undefined) throw new HoldfastError('HOLDFAST_E_INTERNAL', { detail: `no loader for ${scheme}` });
  const mod = await load();
  return mod.createBackend(parsed, options);
}
