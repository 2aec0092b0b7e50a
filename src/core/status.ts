// Object statuses and the one table of allowed transitions between them.
// Every write that changes `objects.status` is checked against this table
// (the ledger asserts it; test/core/status.test.ts walks it).

export const OBJECT_STATUSES = [
  'upload_pending',
  'upload_in_progress',
  'upload_completed',
  'upload_failed',
  'delete_pending',
  'delete_in_progress',
  'delete_completed',
  'delete_failed',
] as const;

export type ObjectStatus = (typeof OBJECT_STATUSES)[number];

/** Statuses in which a side effect may be under way on the destination. */
export const IN_PROGRESS_STATUSES: readonly ObjectStatus[] = ['upload_in_progress', 'delete_in_progress'];

/**
 * from → the statuses it may move to. A status may always be rewritten to
 * itself (e.g. a pending row whose planned hash changed) only where listed.
 *
 * Why each edge exists:
 * - pending → in_progress: an intent was committed.
 * - in_progress → completed/failed: the outcome of the effect.
 * - in_progress → pending: recovery found the destination without the object.
 * - in_progress → in_progress: a recovered multipart upload resumes under a new attempt.
 * - completed → pending: the source changed (or --force) and must be sent again.
 * - failed → pending / in_progress: a retry (re-planned, or claimed directly).
 * - upload_* → delete_pending: the source file is gone and the run mirrors deletes.
 * - delete_pending → upload_pending: the file came back before the delete ran.
 * - delete_completed → upload_pending: a deleted key reappears in the source.
 * - delete_completed → delete_pending: an object reappeared on the destination (cleanup deletes the orphan).
 */
export const TRANSITIONS: Readonly<Record<ObjectStatus, readonly ObjectStatus[]>> = {
  upload_pending: ['upload_pending', 'upload_in_progress', 'delete_pending'],
  upload_in_progress: ['upload_in_progress', 'upload_completed', 'upload_failed', 'upload_pending'],
  upload_completed: ['upload_pending', 'delete_pending'],
  upload_failed: ['upload_pending', 'upload_in_progress', 'delete_pending'],
  delete_pending: ['delete_in_progress', 'upload_pending'],
  delete_in_progress: ['delete_in_progress', 'delete_completed', 'delete_failed', 'delete_pending'],
  delete_completed: ['upload_pending', 'delete_pending'],
  delete_failed: ['delete_pending', 'delete_in_progress', 'upload_pending'],
};

/**
 * What a brand-new row may be created as: pending work; an upload already
 * under way; an object found on the destination with a matching hash
 * (cleanup --adopt); an orphaned object to delete (cleanup).
 */
export const CREATION_STATUSES: readonly ObjectStatus[] = ['upload_pending', 'upload_in_progress', 'upload_completed', 'delete_pending'];

export function canTransition(from: ObjectStatus | undefined, to: ObjectStatus): boolean {
  if (from === undefined) return CREATION_STATUSES.includes(to);
  return TRANSITIONS[from].includes(to);
}

export function isObjectStatus(value: string): value is ObjectStatus {
  return (OBJECT_STATUSES as readonly string[]).includes(value);
}
