import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ErrorCode, KilnError } from '@kiln/contracts';

/** What the version's record says its stored object is (sha256 hex, bytes), fixed when the upload was validated. */
export interface ExpectedObject {
  sha256: string;
  size: number;
}

/**
 * Writes a downloaded model to `destPath` and proves it is the object validated at upload: same size, same
 * sha256. Whatever sits in S3 under the version's key could have been replaced since (by anyone with write access
 * to the bucket, or by a bug); the compile driver must never see bytes the validator did not. A body longer than
 * expected is cut off at once (no disk filled by a swapped object). On any mismatch the file is removed and
 * KilnError(MODEL_INTEGRITY_MISMATCH) is thrown: not retryable, the same bytes would come back.
 *
 * `body` is any byte stream: an S3 GetObject body, or the response of a presigned URL.
 */
export async function writeVerifiedModel(
  body: NodeJS.ReadableStream | AsyncIterable<Uint8Array>,
  destPath: string,
  expected: ExpectedObject,
): Promise<void> {
  const hash = createHash('sha256');
  let size = 0;
  const verify = new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback) {
      size += chunk.length;
      if (size > expected.size) {
        done(mismatch(`the stored model is larger than the ${expected.size} bytes validated at upload`, expected));
        return;
      }
      hash.update(chunk);
      done(null, chunk);
    },
  });
  try {
    await pipeline(body, verify, createWriteStream(destPath, { mode: 0o600 }));
    if (size !== expected.size) {
      throw mismatch(`the stored model is ${size} bytes, not the ${expected.size} validated at upload`, expected, {
        size,
      });
    }
    const sha256 = hash.digest('hex');
    if (sha256 !== expected.sha256.toLowerCase()) {
      throw mismatch(
        `the stored model's sha256 is ${sha256}, not the ${expected.sha256} validated at upload`,
        expected,
        { sha256 },
      );
    }
  } catch (err) {
    await rm(destPath, { force: true });
    throw err;
  }
}

function mismatch(message: string, expected: ExpectedObject, actual: Record<string, unknown> = {}): KilnError {
  return new KilnError(
    ErrorCode.MODEL_INTEGRITY_MISMATCH,
    `${message}: the object in storage is not the model that was validated; refusing to compile it`,
    { expected, actual },
  );
}
