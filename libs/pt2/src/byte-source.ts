import { open, type FileHandle } from 'node:fs/promises';

/**
 * Random access to the bytes of an upload, wherever they are (local file, Buffer, S3 ranged GETs).
 *
 * Contract for implementers: `read` resolves with exactly `length` bytes starting at `offset`, or
 * rejects. readPt2 never asks for bytes outside `[0, size)`, reads mostly sequentially, and asks for
 * large ranges (megabytes) when streaming, so each call may be a network round trip.
 */
export interface ByteSource {
  readonly size: number;
  read(offset: number, length: number): Promise<Buffer>;
}

function assertRange(source: ByteSource, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new RangeError(`invalid read range: offset ${offset}, length ${length}`);
  }
  if (offset + length > source.size) {
    throw new RangeError(`read past end: ${offset} + ${length} > ${source.size}`);
  }
}

/** A source over bytes already in memory (tests, small uploads). Returned buffers share memory with it. */
export class BufferByteSource implements ByteSource {
  constructor(private readonly bytes: Buffer) {}

  get size(): number {
    return this.bytes.length;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    assertRange(this, offset, length);
    return this.bytes.subarray(offset, offset + length);
  }
}

/** A source over a local file. The caller owns it: close it when done. */
export class FileByteSource implements ByteSource {
  private constructor(
    private readonly handle: FileHandle,
    readonly size: number,
    readonly path: string,
  ) {}

  static async open(path: string): Promise<FileByteSource> {
    const handle = await open(path, 'r');
    try {
      const stats = await handle.stat();
      if (!stats.isFile()) throw new Error(`${path} is not a regular file`);
      return new FileByteSource(handle, stats.size, path);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async read(offset: number, length: number): Promise<Buffer> {
    assertRange(this, offset, length);
    const buffer = Buffer.allocUnsafe(length);
    let filled = 0;
    while (filled < length) {
      const { bytesRead } = await this.handle.read(buffer, filled, length - filled, offset + filled);
      // The size was taken at open time; a shorter file now means someone truncated it under us.
      if (bytesRead === 0) throw new Error(`${this.path}: unexpected end of file at byte ${offset + filled}`);
      filled += bytesRead;
    }
    return buffer;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}
