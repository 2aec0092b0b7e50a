// Worker identity for leases, and the judgement "is this lease's owner gone?".
// An owner is "host:pid:nonce". On the same host a dead pid means the lease is
// stale at once (the usual case: a CLI run killed with kill -9); on another
// host only the lease expiry tells.

import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { ObjectRow } from '../core/types.js';

/** Owners of runs still going in this process (a library user may run several, one after another or at once). */
const activeOwners = new Set<string>();

export function makeOwner(): string {
  return `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
}

/** Marks an owner as running in this process until the returned function is called. */
export function registerOwner(owner: string): () => void {
  activeOwners.add(owner);
  return () => activeOwners.delete(owner);
}

export function parseOwner(owner: string): { host: string; pid: number; nonce: string } | undefined {
  const m = /^(.*):(\d+):([0-9a-f]+)$/.exec(owner);
  if (!m) return undefined;
  return { host: m[1] ?? '', pid: Number(m[2]), nonce: m[3] ?? '' };
}

export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True when the owner is known to be gone: a process of this host that no longer runs (or a finished run of this process). */
export function isOwnerGone(owner: string): boolean {
  const who = parseOwner(owner);
  if (!who || who.host !== hostname()) return false;
  if (who.pid === process.pid) return !activeOwners.has(owner);
  return !isProcessAlive(who.pid);
}

/** True when recovery may resolve this in-progress row now. */
export function isLeaseStale(row: Pick<ObjectRow, 'leaseOwner' | 'leaseUntil'>, now: number, self: string): boolean {
  if (row.leaseOwner === self) return false;
  if (row.leaseUntil === null || row.leaseUntil <= now || row.leaseOwner === null) return true;
  const who = parseOwner(row.leaseOwner);
  if (!who || who.host !== hostname()) return false;
  if (who.pid === process.pid) return !activeOwners.has(row.leaseOwner); // a run of this very process
  return !isProcessAlive(who.pid);
}
