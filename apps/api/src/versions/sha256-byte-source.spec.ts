import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { BufferByteSource, type ByteSource } from '@kiln/pt2';
import { Sha256ByteSource } from './sha256-byte-source.js';

class CountingSource implements ByteSource {
  bytesRead = 0;
  constructor(private readonly inner: ByteSource) {}
  get size(): number {
    return this.inner.size;
  }
  async read(offset: number, length: number): Promise<Buffer> {
    this.bytesRead += length;
    return this.inner.read(offset, length);
  }
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

test('any read pattern yields the sha256 of the whole object, and reads return the right bytes', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: 5000 }),
      fc.array(fc.tuple(fc.nat(), fc.nat({ max: 700 })), { maxLength: 30 }),
      async (size, reads) => {
        const data = randomBytes(size);
        const source = new Sha256ByteSource(new BufferByteSource(data), { maxGapBytes: 100, chunkBytes: 64 });
        for (const [o, l] of reads) {
          if (size === 0) break;
          const offset = o % size;
          const length = Math.min(l, size - offset);
          assert.deepEqual(await source.read(offset, length), data.subarray(offset, offset + length));
        }
        assert.equal(await source.digest(), sha256(data));
      },
    ),
  );
});

test('a sequential sweep with small gaps hashes in passing: one pass over the bytes, not two', async () => {
  const data = randomBytes(1_000_000);
  const counting = new CountingSource(new BufferByteSource(data));
  const source = new Sha256ByteSource(counting, { maxGapBytes: 4096, chunkBytes: 65536 });
  await source.read(data.length - 1000, 1000); // the central directory first: a large jump, left for later
  for (let offset = 0; offset < data.length - 1000; offset += 10_000) {
    await source.read(offset + 100, Math.min(9_900, data.length - 1000 - offset - 100)); // skips 100-byte headers
  }
  assert.equal(await source.digest(), sha256(data));
  assert.ok(counting.bytesRead < data.length * 1.01, `read ${counting.bytesRead} bytes of ${data.length}`);
});
