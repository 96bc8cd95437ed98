import { ErrorCode, KilnError } from '@kiln/contracts';

/** S3's multipart limits (AWS; SeaweedFS accepts the same): parts of 5 MiB..5 GiB, the last may be smaller. */
export const MIN_PART_BYTES = 5 * 1024 ** 2;
export const MAX_PART_BYTES = 5 * 1024 ** 3;
export const MAX_PARTS = 10_000;
const MiB = 1024 ** 2;

export interface UploadPlan {
  partSize: number;
  partCount: number;
}

/**
 * How a file of `sizeBytes` is cut into parts: the client's part size when it asks for one (refused if it
 * would need more than 10 000 parts), else the configured default, grown in whole MiB until 10 000 parts
 * are enough.
 */
export function planUpload(
  sizeBytes: number,
  requestedPartSize: number | undefined,
  defaultPartSize: number,
): UploadPlan {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 1) {
    throw new KilnError(ErrorCode.VALIDATION_FAILED, 'sizeBytes must be a positive integer.');
  }
  let partSize: number;
  if (requestedPartSize !== undefined) {
    if (requestedPartSize < MIN_PART_BYTES || requestedPartSize > MAX_PART_BYTES) {
      throw new KilnError(
        ErrorCode.VALIDATION_FAILED,
        `partSizeBytes must be between ${MIN_PART_BYTES} and ${MAX_PART_BYTES}.`,
      );
    }
    partSize = requestedPartSize;
    if (Math.ceil(sizeBytes / partSize) > MAX_PARTS) {
      throw new KilnError(
        ErrorCode.VALIDATION_FAILED,
        `A part size of ${partSize} bytes needs more than ${MAX_PARTS} parts for ${sizeBytes} bytes; ` +
          `use at least ${minimumPartSize(sizeBytes)}.`,
        { minimumPartSize: minimumPartSize(sizeBytes) },
      );
    }
  } else {
    partSize = Math.max(defaultPartSize, minimumPartSize(sizeBytes));
  }
  return { partSize, partCount: Math.max(1, Math.ceil(sizeBytes / partSize)) };
}

/** The smallest whole-MiB part size (at least 5 MiB) that fits `sizeBytes` in 10 000 parts. */
export function minimumPartSize(sizeBytes: number): number {
  return Math.max(MIN_PART_BYTES, Math.ceil(sizeBytes / MAX_PARTS / MiB) * MiB);
}

/** Byte range of part `partNumber` (1-based). */
export function partRange(
  plan: UploadPlan & { sizeBytes: number },
  partNumber: number,
): { offset: number; size: number } {
  if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > plan.partCount) {
    throw new RangeError(`part ${partNumber} is outside 1..${plan.partCount}`);
  }
  const offset = (partNumber - 1) * plan.partSize;
  return { offset, size: Math.min(plan.partSize, plan.sizeBytes - offset) };
}

/** What is wrong with the parts S3 holds, compared with the plan: parts missing and parts of the wrong size. */
export function checkStoredParts(
  plan: UploadPlan & { sizeBytes: number },
  stored: readonly { partNumber: number; size: number }[],
): { missing: number[]; wrongSize: { partNumber: number; size: number; expected: number }[] } {
  const byNumber = new Map(stored.map((p) => [p.partNumber, p]));
  const missing: number[] = [];
  const wrongSize: { partNumber: number; size: number; expected: number }[] = [];
  for (let n = 1; n <= plan.partCount; n++) {
    const part = byNumber.get(n);
    const expected = partRange(plan, n).size;
    if (!part) missing.push(n);
    else if (part.size !== expected) wrongSize.push({ partNumber: n, size: part.size, expected });
  }
  return { missing, wrongSize };
}
