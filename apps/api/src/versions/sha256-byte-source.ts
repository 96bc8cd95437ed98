import { createHash } from 'node:crypto';
import type { ByteSource } from '@kiln/pt2';

const MiB = 1024 * 1024;

/**
 * A ByteSource that also computes the sha256 of the whole object, from the reads the .pt2 reader makes
 * anyway. The reader sweeps the weights in archive order, so almost every byte is hashed as it passes;
 * small gaps (zip headers, alignment padding, entries the reader skips) are read here to keep the hash
 * sequential, large jumps (the central directory at the end, read first) are left for `digest()`, which
 * reads whatever was never seen. A multipart upload thus gets its file sha256 without a second pass.
 */
export class Sha256ByteSource implements ByteSource {
  private readonly hash = createHash('sha256');
  /** Bytes [0, hashed) are in the hash. */
  private hashed = 0;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly inner: ByteSource,
    private readonly opts: { maxGapBytes: number; chunkBytes: number } = { maxGapBytes: 16 * MiB, chunkBytes: 8 * MiB },
  ) {}

  get size(): number {
    return this.inner.size;
  }

  /** Bytes hashed so far (for tests and logs). */
  get hashedBytes(): number {
    return this.hashed;
  }

  read(offset: number, length: number): Promise<Buffer> {
    return this.exclusive(async () => {
      if (offset > this.hashed && offset - this.hashed <= this.opts.maxGapBytes) await this.fill(offset);
      const bytes = await this.inner.read(offset, length);
      if (offset <= this.hashed && offset + bytes.length > this.hashed) {
        this.hash.update(bytes.subarray(this.hashed - offset));
        this.hashed = offset + bytes.length;
      }
      return bytes;
    });
  }

  /** The sha256 (hex) of the whole object; reads the parts no read covered. Call once, after the last read. */
  digest(): Promise<string> {
    return this.exclusive(async () => {
      await this.fill(this.size);
      return this.hash.digest('hex');
    });
  }

  private async fill(until: number): Promise<void> {
    while (this.hashed < until) {
      const n = Math.min(this.opts.chunkBytes, until - this.hashed);
      this.hash.update(await this.inner.read(this.hashed, n));
      this.hashed += n;
    }
  }

  /** Reads run one at a time (the reader awaits each anyway), so `hashed` never moves under a read. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => undefined);
    return run;
  }
}
