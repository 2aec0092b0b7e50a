// Opens a destination by URL: parses it, picks the backend by scheme and loads
// that backend's module only then (`await import()`), so a command writing to
// file:// never pays for loading the AWS SDK.

import { HoldfastError } from '../core/errors.js';
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
    const hint = url.startsWith('/') ? `; for a directory write file://${url}` : `; expected one of ${supportedSchemes().map((s) => `${s}://…`).join(', ')}`;
    throw new HoldfastError('HOLDFAST_E_BAD_URL', { url: redactUrl(url), detail: `not a URL${hint}` });
  }
  const scheme = parsed.protocol.replace(/:$/, '').toLowerCase();
  if (!Object.hasOwn(LOADERS, scheme)) {
    throw new HoldfastError('HOLDFAST_E_UNKNOWN_SCHEME', { scheme, url: redactUrl(url), supported: supportedSchemes().join(', ') });
  }
  return parsed;
}

/**
 * Opens the destination at `url` (file:///abs/path, s3://bucket/prefix).
 * Does not contact the destination: call `backend.ensureReady()` for that.
 */
export async function openBackend(url: string, options: BackendOptions = {}): Promise<Backend> {
  const parsed = parseDestinationUrl(url);
  const scheme = parsed.protocol.replace(/:$/, '').toLowerCase();
  const load = LOADERS[scheme];
  if (load === undefined) throw new HoldfastError('HOLDFAST_E_INTERNAL', { detail: `no loader for ${scheme}` });
  const mod = await load();
  return mod.createBackend(parsed, options);
}
