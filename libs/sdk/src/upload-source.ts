import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { HashedPart, PartRange } from './upload-core/part-plan.js';

/** What compileRemote/uploadModel accept: a file path, the bytes, or a stream of them. */
export type UploadInput = string | Buffer | Readable;

/**
 * Random access to the bytes being uploaded, without holding them: a file is read part by part (twice:
 * once to hash, once to send, the second read usually from the page cache). A Buffer is used as is. A
 * Readable is spooled to a temporary file first, because parts are sent in parallel and may be re-sent
 * after a failure, which a stream cannot do; the spool file is deleted by `close()`.
 */
export interface UploadSource {
  readonly size: number;
  /** Absolute path for files (and spooled streams); null for Buffers. */
  readonly path: string | null;
  /** File name to record on the version. */
  readonly filename: string;
  /** Modification time of a user's file (resume state checks it); null otherwise. */
  readonly mtimeMs: number | null;
  /** A fresh stream of one part's bytes; `onBytes` sees each chunk as it is read. */
  partStream(range: PartRange, onBytes?: (n: number) => void): Readable;
  close(): Promise<void>;
}

export async function openUploadSource(
  input: UploadInput,
  opts: { filename?: string; signal?: AbortSignal } = {},
): Promise<UploadSource> {
  if (typeof input === 'string') {
    const abs = path.resolve(input);
    const info = await stat(abs);
    if (!info.isFile()) throw new TypeError(`${input} is not a file`);
    return new FileSource(abs, info.size, opts.filename ?? path.basename(abs), info.mtimeMs, null);
  }
  if (Buffer.isBuffer(input)) return new BufferSource(input, opts.filename ?? 'model.pt2');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-spool-'));
  const file = path.join(dir, `${randomUUID()}.pt2`);
  try {
    await pipeline(input, createWriteStream(file), { signal: opts.signal });
    const info = await stat(file);
    return new FileSource(file, info.size, opts.filename ?? 'model.pt2', null, dir);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

class FileSource implements UploadSource {
  constructor(
    readonly path: string,
    readonly size: number,
    readonly filename: string,
    readonly mtimeMs: number | null,
    private readonly spoolDir: string | null,
  ) {}

  partStream(range: PartRange, onBytes?: (n: number) => void): Readable {
    const stream = createReadStream(this.path, {
      start: range.offset,
      end: range.offset + range.size - 1,
      highWaterMark: 1024 * 1024,
    });
    return onBytes ? stream.pipe(meter(onBytes)) : stream;
  }

  async close(): Promise<void> {
    if (this.spoolDir) await rm(this.spoolDir, { recursive: true, force: true });
  }
}

class BufferSource implements UploadSource {
  readonly path = null;
  readonly mtimeMs = null;
  constructor(
    private readonly bytes: Buffer,
    readonly filename: string,
  ) {}

  get size(): number {
    return this.bytes.length;
  }

  partStream(range: PartRange, onBytes?: (n: number) => void): Readable {
    const slice = this.bytes.subarray(range.offset, range.offset + range.size);
    // 1 MiB chunks, so progress moves smoothly and a slow link does not hold one huge write.
    const chunks = function* (): Generator<Buffer> {
      for (let o = 0; o < slice.length; o += 1024 * 1024) yield slice.subarray(o, o + 1024 * 1024);
    };
    const stream = Readable.from(chunks(), { objectMode: false });
    return onBytes ? stream.pipe(meter(onBytes)) : stream;
  }

  async close(): Promise<void> {}
}

function meter(onBytes: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
      onBytes(chunk.length);
      done(null, chunk);
    },
  });
}

/**
 * One sequential pass over the source: yields each part with its sha256 as soon as its last byte was read,
 * and returns the sha256 (hex) of the whole file. Reads 1 MiB at a time and only as fast as the consumer
 * pulls, so memory stays flat whatever the size.
 */
export async function* hashParts(
  source: UploadSource,
  ranges: readonly PartRange[],
  signal?: AbortSignal,
): AsyncGenerator<HashedPart, string> {
  const whole = createHash('sha256');
  for (const range of ranges) {
    const part = createHash('sha256');
    for await (const chunk of source.partStream(range)) {
      signal?.throwIfAborted();
      part.update(chunk as Buffer);
      whole.update(chunk as Buffer);
    }
    yield { ...range, sha256: part.digest('base64') };
  }
  return whole.digest('hex');
}
