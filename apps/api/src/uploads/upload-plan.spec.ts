import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { KilnError } from '@kiln/contracts';
import { checkStoredParts, MAX_PARTS, MIN_PART_BYTES, partRange, planUpload } from './upload-plan.js';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

test('the default part size is used, and grown in whole MiB when 10 000 parts would not be enough', () => {
  assert.deepEqual(planUpload(5 * GiB, undefined, 32 * MiB), { partSize: 32 * MiB, partCount: 160 });
  assert.deepEqual(planUpload(1, undefined, 32 * MiB), { partSize: 32 * MiB, partCount: 1 });
  const huge = planUpload(1000 * GiB, undefined, 32 * MiB);
  assert.equal(huge.partSize % MiB, 0);
  assert.ok(huge.partCount <= MAX_PARTS);
});

test('a requested part size is honoured or refused with VALIDATION_FAILED', () => {
  assert.deepEqual(planUpload(20 * MiB, 5 * MiB, 32 * MiB), { partSize: 5 * MiB, partCount: 4 });
  for (const bad of [MIN_PART_BYTES - 1, 6 * GiB]) {
    assert.throws(
      () => planUpload(20 * MiB, bad, 32 * MiB),
      (e: KilnError) => e.code === 'VALIDATION_FAILED',
    );
  }
  assert.throws(
    () => planUpload(100 * GiB, 5 * MiB, 32 * MiB),
    (e: KilnError) => e.code === 'VALIDATION_FAILED' && typeof e.details?.minimumPartSize === 'number',
  );
  assert.throws(
    () => planUpload(0, undefined, 32 * MiB),
    (e: KilnError) => e.code === 'VALIDATION_FAILED',
  );
});

test('part ranges tile the file exactly, every part but the last is full size', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 2 ** 40 }), fc.integer({ min: 5, max: 64 }), (size, partMiB) => {
      const plan = { sizeBytes: size, ...planUpload(size, undefined, partMiB * MiB) };
      let next = 0;
      for (let n = 1; n <= plan.partCount; n++) {
        const r = partRange(plan, n);
        assert.equal(r.offset, next);
        assert.ok(r.size > 0);
        if (n < plan.partCount) assert.equal(r.size, plan.partSize);
        next += r.size;
      }
      assert.equal(next, size);
    }),
  );
  assert.throws(() => partRange({ sizeBytes: 10, partSize: 5 * MiB, partCount: 1 }, 2), RangeError);
});

test('stored parts are checked against the plan', () => {
  const plan = { sizeBytes: 12 * MiB, partSize: 5 * MiB, partCount: 3 };
  assert.deepEqual(
    checkStoredParts(plan, [
      { partNumber: 1, size: 5 * MiB },
      { partNumber: 3, size: 1 },
    ]),
    { missing: [2], wrongSize: [{ partNumber: 3, size: 1, expected: 2 * MiB }] },
  );
  assert.deepEqual(
    checkStoredParts(plan, [
      { partNumber: 1, size: 5 * MiB },
      { partNumber: 2, size: 5 * MiB },
      { partNumber: 3, size: 2 * MiB },
    ]),
    { missing: [], wrongSize: [] },
  );
});
