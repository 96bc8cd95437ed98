import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { canKeepStoredPart, nextUrlBatch, partRanges } from './upload-core/part-plan.js';
import { routePath, ROUTES } from './routes.js';

test('part ranges tile the file in order; a plan that does not tile it is refused', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 2 ** 42 }),
      fc.integer({ min: 5 * 2 ** 20, max: 2 ** 32 }),
      (size, partSize) => {
        const count = Math.max(1, Math.ceil(size / partSize));
        const ranges = partRanges(size, partSize, count);
        assert.equal(ranges.length, count);
        let next = 0;
        for (const [i, r] of ranges.entries()) {
          assert.equal(r.partNumber, i + 1);
          assert.equal(r.offset, next);
          assert.ok(r.size > 0 && r.size <= partSize);
          next += r.size;
        }
        assert.equal(next, size);
      },
    ),
  );
  assert.throws(() => partRanges(100, 10, 3), RangeError);
});

test('a stored part is kept only when its size and sha256 match the local bytes', () => {
  const local = { size: 10, sha256: 'abc=' };
  assert.ok(canKeepStoredPart({ partNumber: 1, size: 10, etag: 'e', sha256: 'abc=' }, local));
  assert.ok(!canKeepStoredPart({ partNumber: 1, size: 10, etag: 'e', sha256: 'abd=' }, local));
  assert.ok(!canKeepStoredPart({ partNumber: 1, size: 9, etag: 'e', sha256: 'abc=' }, local));
  assert.ok(!canKeepStoredPart({ partNumber: 1, size: 10, etag: 'e' }, local));
  assert.ok(!canKeepStoredPart(undefined, local));
});

test('URL batches start with the part that needs one and add waiting parts up to the limit', () => {
  assert.deepEqual(nextUrlBatch(3, [1, 2, 3, 4, 5], 3), [3, 1, 2]);
  assert.deepEqual(nextUrlBatch(7, [], 32), [7]);
});

test('route paths fill and encode their parameters', () => {
  assert.equal(
    routePath('getBuildLog', { compilationId: 'c1', targetId: 'linux x' }),
    '/v1/compilations/c1/builds/linux%20x/log',
  );
  assert.throws(() => routePath('getModel'), TypeError);
  for (const route of Object.values(ROUTES)) assert.match(route.path, /^\/v1\//);
});
