// Walks the one table of allowed status transitions (src/core/status.ts):
// every listed edge is allowed, everything else is refused, every status can
// be reached from a new row, and nothing is a dead end.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IN_PROGRESS_STATUSES, OBJECT_STATUSES, TRANSITIONS, canTransition, isObjectStatus } from '../../src/core/status.js';
import type { ObjectStatus } from '../../src/core/status.js';

/** Statuses a brand-new row may start in. */
const CREATION = OBJECT_STATUSES.filter((s) => canTransition(undefined, s));

function reachableFrom(start: readonly ObjectStatus[]): Set<ObjectStatus> {
  const seen = new Set<ObjectStatus>(start);
  const queue = [...start];
  for (let s = queue.shift(); s !== undefined; s = queue.shift()) {
    for (const next of TRANSITIONS[s]) {
      if (!seen.has(next)) {
        seen.add(next);
        queue.push(next);
      }
    }
  }
  return seen;
}

void describe('status transitions', () => {
  void it('the table covers every status and names only known ones', () => {
    assert.deepEqual(Object.keys(TRANSITIONS).sort(), [...OBJECT_STATUSES].sort());
    for (const [from, tos] of Object.entries(TRANSITIONS)) {
      for (const to of tos) assert.ok(isObjectStatus(to), `${from} → ${to}`);
      assert.equal(new Set(tos).size, tos.length, `duplicate edge from ${from}`);
    }
  });

  void it('allows every listed edge and refuses every unlisted one', () => {
    let allowed = 0;
    for (const from of OBJECT_STATUSES) {
      for (const to of OBJECT_STATUSES) {
        const listed = TRANSITIONS[from].includes(to);
        assert.equal(canTransition(from, to), listed, `${from} → ${to}`);
        if (listed) allowed++;
      }
    }
    assert.ok(allowed > 0 && allowed < OBJECT_STATUSES.length ** 2);
  });

  void it('refuses the edges that would break a promise', () => {
    const refused: [ObjectStatus, ObjectStatus][] = [
      // Promise 3: completed only after the destination confirmed it, i.e. from in_progress.
      ['upload_pending', 'upload_completed'],
      ['upload_failed', 'upload_completed'],
      ['delete_pending', 'delete_completed'],
      // No side effect without a fresh intent.
      ['upload_completed', 'upload_in_progress'],
      ['upload_completed', 'upload_completed'],
      ['delete_completed', 'delete_in_progress'],
      // Families do not cross mid-effect.
      ['upload_in_progress', 'delete_completed'],
      ['upload_in_progress', 'delete_pending'],
      ['delete_in_progress', 'upload_completed'],
      ['delete_in_progress', 'upload_pending'],
      // A finished delete is final until the key reappears (in the source: upload; on the destination: cleanup deletes it again).
      ['delete_completed', 'upload_completed'],
      ['delete_completed', 'delete_in_progress'],
    ];
    for (const [from, to] of refused) assert.equal(canTransition(from, to), false, `${from} → ${to}`);
  });

  void it('a new row starts as pending work, an immediate intent, an adopted object or an orphan to delete — nothing else', () => {
    // upload_completed only for cleanup --adopt, which first confirmed the object on the destination by its SHA-256 (promise 3 holds);
    // delete_pending only for cleanup's orphaned objects, which then go through the delete protocol.
    assert.deepEqual([...CREATION].sort(), ['delete_pending', 'upload_completed', 'upload_in_progress', 'upload_pending']);
    for (const s of OBJECT_STATUSES) {
      if (!CREATION.includes(s)) assert.equal(canTransition(undefined, s), false, `(new) → ${s}`);
    }
  });

  void it('every status is reachable from creation', () => {
    assert.deepEqual([...reachableFrom(CREATION)].sort(), [...OBJECT_STATUSES].sort());
  });

  void it('no status is a dead end: each can move to another, and each can reach a completed status', () => {
    for (const s of OBJECT_STATUSES) {
      assert.ok(
        TRANSITIONS[s].some((to) => to !== s),
        `${s} has no way out`,
      );
      const reach = reachableFrom([s]);
      assert.ok(reach.has('upload_completed') || reach.has('delete_completed'), `${s} can never settle`);
    }
  });

  void it('in-progress rows can always be resolved by recovery (back to pending) or by an outcome', () => {
    for (const s of IN_PROGRESS_STATUSES) {
      const family = s.startsWith('upload') ? 'upload' : 'delete';
      assert.ok(canTransition(s, `${family}_pending`), `${s} → pending`);
      assert.ok(canTransition(s, `${family}_completed`), `${s} → completed`);
      assert.ok(canTransition(s, `${family}_failed`), `${s} → failed`);
      assert.ok(canTransition(s, s), `${s} → ${s} (takeover)`);
    }
  });

  void it('every claimable status leads into its in-progress status', () => {
    assert.ok(canTransition('upload_pending', 'upload_in_progress'));
    assert.ok(canTransition('upload_failed', 'upload_in_progress'));
    assert.ok(canTransition('delete_pending', 'delete_in_progress'));
    assert.ok(canTransition('delete_failed', 'delete_in_progress'));
  });

  void it('planning can move every settled status to upload_pending', () => {
    for (const s of OBJECT_STATUSES) {
      if (IN_PROGRESS_STATUSES.includes(s)) continue;
      assert.ok(canTransition(s, 'upload_pending'), `${s} → upload_pending`);
    }
  });

  void it('isObjectStatus recognises exactly the statuses', () => {
    for (const s of OBJECT_STATUSES) assert.ok(isObjectStatus(s));
    for (const s of ['', 'UPLOAD_PENDING', 'pending', 'upload_done']) assert.equal(isObjectStatus(s), false);
  });
});
