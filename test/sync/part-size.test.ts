// choosePartSize: the configured part size, fitted to a destination's limits
// (minimum, maximum, part count) and, where it has one, its part-size multiple
// (Drive: 256 KiB).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Capabilities } from '../../src/backends/backend.js';
import { choosePartSize } from '../../src/sync/multipart.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

const base: Capabilities = {
  multipart: true,
  metadata: true,
  serverChecksum: false,
  versioning: false,
  maxKeyBytes: 1024,
  maxObjectSize: 5 * 1024 * GiB,
  minPartSize: 5 * MiB,
  maxPartSize: 5 * GiB,
  maxParts: 10_000,
  sequentialParts: false,
};
const drive: Capabilities = { ...base, minPartSize: 256 * KiB, maxPartSize: GiB, partSizeMultiple: 256 * KiB, sequentialParts: true };

describe('choosePartSize', () => {
  it('keeps the configured size when it fits', () => {
    assert.equal(choosePartSize(100 * MiB, 16 * MiB, base), 16 * MiB);
    assert.equal(choosePartSize(100 * MiB, 16 * MiB, drive), 16 * MiB);
  });

  it('raises it to the minimum, and to fit the part count', () => {
    assert.equal(choosePartSize(100 * MiB, MiB, base), 5 * MiB);
    assert.equal(choosePartSize(100_000 * MiB, 5 * MiB, base), 10 * MiB);
  });

  it('rounds up to the part-size multiple, and never above the largest multiple under the maximum', () => {
    assert.equal(choosePartSize(100 * MiB, 10_000_000, drive), 10_223_616, '10 000 000 → 39 × 256 KiB');
    assert.equal(choosePartSize(100 * MiB, 1000, drive), 256 * KiB);
    // ceil(size / maxParts) is not a multiple: rounded up.
    assert.equal(choosePartSize(3_000_000_000_000, 16 * MiB, drive) % (256 * KiB), 0);
    assert.ok(choosePartSize(3_000_000_000_000, 16 * MiB, drive) * drive.maxParts >= 3_000_000_000_000);
    assert.equal(choosePartSize(100 * MiB, 2 * GiB, drive), GiB);
    assert.equal(choosePartSize(100 * MiB, GiB + 1, { ...drive, maxPartSize: GiB + 1000 }), GiB);
  });
});
