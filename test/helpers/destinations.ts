// Destinations in tests: a ledger row looked up by the URL a test pushed to,
// and a destination reference for ledger tests that open no backend.

import assert from 'node:assert/strict';
import type { DestinationRow } from '../../src/core/types.js';
import type { DestinationRef, Ledger } from '../../src/ledger/ledger.js';

/** The one row with this display URL (undefined: none); fails the test if the URL names several destinations. */
export async function destinationByUrl(ledger: Ledger, url: string): Promise<DestinationRow | undefined> {
  const rows = await ledger.findDestinations(url);
  assert.ok(rows.length <= 1, `${url} names ${rows.length} destinations: ${rows.map((r) => r.identity).join(', ')}`);
  return rows[0];
}

/**
 * A destination as a backend would describe it, for ledger tests: `file:///x`
 * → namespace "file://", prefix "/x/"; `s3://b/p` → "s3://b/", "p/" (AWS, no
 * endpoint); `<scheme>://<host>/<path>` likewise.
 */
export function destinationRef(url: string, kind?: string): DestinationRef {
  const u = new URL(url);
  const scheme = u.protocol.replace(/:$/, '');
  if (scheme === 'file') {
    const path = decodeURIComponent(u.pathname);
    return { url, kind: kind ?? 'file', location: { namespace: 'file://', prefix: path.endsWith('/') ? path : `${path}/` } };
  }
  const path = decodeURIComponent(u.pathname.replace(/^\/+/, ''));
  return { url, kind: kind ?? scheme, location: { namespace: `${scheme}://${u.host}/`, prefix: path === '' || path.endsWith('/') ? path : `${path}/` } };
}
