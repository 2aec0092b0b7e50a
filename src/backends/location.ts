// Where a destination's objects live: its identity in the ledger, and how to
// tell when two destinations overlap (DESIGN §4 "Identity", §2 promise 6).
//
// A destination URL alone is not an identity: `s3://docs/p` on AWS and on a
// MinIO at 127.0.0.1:9000 are two different places, and two ledger rows. So
// every backend describes its place as a namespace (scheme, endpoint or
// account, bucket or container: everything that must be equal for two keys
// to name the same object) and a prefix inside it. Two destinations overlap
// when their namespaces are equal and one prefix starts with the other.

import { realpath } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface DestinationLocation {
  /**
   * The space keys are stored in, ending with "/": `file://` (this host's
   * file system), `s3://bucket/` (AWS), `s3+http://127.0.0.1:9000/bucket/`
   * (another endpoint), `azure+https://acct.blob.core.windows.net/container/`,
   * `gdrive://folder-id/`.
   */
  readonly namespace: string;
  /** Where this destination's keys start in the namespace: "" or ending with "/" (file://: the absolute directory, e.g. "/srv/backup/"). Not %-encoded. */
  readonly prefix: string;
}

/** The identity a ledger row is keyed by: namespace + prefix, e.g. `s3+http://127.0.0.1:9000/docs/store/`. */
export function locationIdentity(l: DestinationLocation): string {
  return l.namespace + l.prefix;
}

/**
 * How `inner` sits inside `outer`: the key prefix of `inner`'s objects among
 * `outer`'s keys ("" when they are the same place, "nested/" when inner is
 * outer's "nested" folder), or undefined when inner is not inside outer.
 */
export function prefixWithin(outer: DestinationLocation, inner: DestinationLocation): string | undefined {
  if (outer.namespace !== inner.namespace || !inner.prefix.startsWith(outer.prefix)) return undefined;
  return inner.prefix.slice(outer.prefix.length);
}

/** True when the two share any object: the same place, or one inside the other. */
export function locationsOverlap(a: DestinationLocation, b: DestinationLocation): boolean {
  return prefixWithin(a, b) !== undefined || prefixWithin(b, a) !== undefined;
}

/** An endpoint URL as part of a namespace: scheme, lower-case host, port (default ports dropped), path without a final "/". */
export function endpointPart(endpoint: string): string {
  const u = new URL(endpoint);
  return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
}

/**
 * `l` with its directory's symbolic links resolved (file:// only; other
 * namespaces are returned as they are): two spellings of one directory
 * (`/mnt/backup` → `/srv/disk`) must be seen to overlap. The identity kept
 * in the ledger stays the path as written.
 */
export async function realLocation(l: DestinationLocation): Promise<DestinationLocation> {
  if (l.namespace !== 'file://') return l;
  return { namespace: l.namespace, prefix: `${await realPath(l.prefix)}/` };
}

/** The path with symbolic links resolved; for a path that does not exist yet, its nearest existing parent resolved and the rest appended. */
export async function realPath(path: string): Promise<string> {
  const clean = path.length > 1 ? path.replace(/\/+$/, '') : path;
  try {
    return await realpath(clean);
  } catch {
    const parent = dirname(clean);
    return parent === clean ? clean : join(await realPath(parent), basename(clean));
  }
}
