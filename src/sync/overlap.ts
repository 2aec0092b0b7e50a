// Places that must not overlap (docs/reliability.md "Hostile input"): the
// source, the destinations of a run, a backup destination, the ledger's own
// directory, and the destinations the ledger already tracks. Checked before
// anything is done; every refusal is HOLDFAST_E_USAGE (exit 1) saying what to
// change.

import type { Backend } from '../backends/backend.js';
import { locationIdentity, locationsOverlap, prefixWithin, realLocation } from '../backends/location.js';
import { HoldfastError } from '../core/errors.js';
import type { Ledger } from '../ledger/ledger.js';
import type { Matcher } from '../scan/ignore.js';

function refuse(detail: string): never {
  throw new HoldfastError('HOLDFAST_E_USAGE', { detail });
}

/**
 * Places that overlap are refused before anything is done, as rclone does
 * (docs/reliability.md "Hostile input"):
 * - a file:// destination inside the source: every run would copy the last
 *   run's copy again, one level deeper (and `watch` would never settle) —
 *   unless that directory is excluded from the source;
 * - the source inside a file:// destination: objects would be written among
 *   the source files, and a sync's deletes could remove them;
 * - two destinations of one run that overlap: each would hold the other's objects;
 * - a backup destination (--backup-dir) that overlaps the destination: the
 *   sync would delete its own backups, or back up into what it deletes; or
 *   that overlaps the source: moved objects would land among (and over) the
 *   source files;
 * - the SQLite ledger's directory inside a file:// destination: its files
 *   would be listed as objects, and a cleanup would delete the ledger itself.
 * Paths are compared after resolving symbolic links.
 */
export async function refuseOverlaps(places: {
  readonly sourceRoot: string;
  readonly exclude: Matcher;
  readonly destinations: readonly Backend[];
  readonly backup: Backend | undefined;
  /** The SQLite ledger's directory, when the run uses one. */
  readonly ledgerDir: string | undefined;
}): Promise<void> {
  const { sourceRoot, exclude, destinations, backup } = places;
  const source = await realLocation({ namespace: 'file://', prefix: `${sourceRoot}/` });
  const located = await Promise.all(destinations.map(async (b) => ({ b, at: await realLocation(b.location) })));
  const ledgerAt = places.ledgerDir === undefined ? undefined : await realLocation({ namespace: 'file://', prefix: `${places.ledgerDir}/` });
  for (const [i, { b, at }] of located.entries()) {
    const inside = prefixWithin(source, at);
    if (inside !== undefined && !excludedDirectory(exclude, inside)) {
      refuse(
        inside === ''
          ? `the destination ${b.url} is the source directory itself`
          : `the destination ${b.url} is inside the source directory ${sourceRoot}: every run would copy the previous copy again; exclude it (--exclude "${inside}") or choose a destination outside the source`,
      );
    }
    if (inside === undefined && prefixWithin(at, source) !== undefined) refuse(`the source directory ${sourceRoot} is inside the destination ${b.url}: its objects would be written among the source files; choose a destination outside the source`);
    for (const other of located.slice(0, i)) {
      if (locationIdentity(other.at) === locationIdentity(at)) refuse(`destination ${b.url} is given twice`);
      if (locationsOverlap(other.at, at)) refuse(`the destinations ${other.b.url} and ${b.url} overlap (one is inside the other): each would hold the other's objects`);
    }
    if (backup !== undefined) {
      const backupAt = await realLocation(backup.location);
      if (locationsOverlap(backupAt, at)) refuse(`--backup-dir ${backup.url} overlaps the destination ${b.url}: the sync would delete its own backups, or back up into what it deletes; choose a place outside the destination`);
    }
    if (ledgerAt !== undefined && prefixWithin(at, ledgerAt) !== undefined) {
      refuse(`the ledger's directory ${places.ledgerDir ?? ''} is inside the destination ${b.url}: its files would be listed as objects (and a cleanup would delete the ledger); keep the state directory (--state) outside the destination`);
    }
  }
  if (backup !== undefined && locationsOverlap(await realLocation(backup.location), source)) {
    refuse(`--backup-dir ${backup.url} overlaps the source directory ${sourceRoot}: moved objects would be written among (and over) the source files; choose a place outside the source`);
  }
}

/**
 * A backup destination must not be a place this ledger tracks as a
 * destination of its own (DESIGN §2 promise 6): a moved object would
 * overwrite that destination's copy of the same key.
 */
export async function refuseBackupOverTracked(ledger: Ledger, backup: Backend): Promise<void> {
  const at = await realLocation(backup.location);
  for (const d of await ledger.listDestinations()) {
    if (d.namespace === null || d.identity === null) continue;
    const there = await realLocation({ namespace: d.namespace, prefix: d.identity.slice(d.namespace.length) });
    if (locationsOverlap(at, there)) {
      throw new HoldfastError('HOLDFAST_E_USAGE', {
        detail: `--backup-dir ${backup.url} overlaps ${d.url}, a destination this ledger tracks: moved objects would overwrite its copies; choose a place no destination uses`,
      });
    }
  }
}

/** True when the directory with this key prefix ("a/b/"), or one of its parents, is excluded: the scan never enters it. */
function excludedDirectory(exclude: Matcher, prefix: string): boolean {
  if (prefix === '') return false;
  const parts = prefix.replace(/\/$/, '').split('/');
  return parts.some((_, i) => exclude.excludes(parts.slice(0, i + 1).join('/'), true));
}


