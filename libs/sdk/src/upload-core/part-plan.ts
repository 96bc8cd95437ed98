import type { StoredPart } from '../types.js';

export interface PartRange {
  partNumber: number;
  offset: number;
  size: number;
}

/** The byte ranges of an upload's parts (the server decides partSize and partCount; the client follows). */
export function partRanges(sizeBytes: number, partSize: number, partCount: number): PartRange[] {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0) throw new RangeError(`bad file size ${sizeBytes}`);
  if (!Number.isSafeInteger(partSize) || partSize < 1) throw new RangeError(`bad part size ${partSize}`);
  if (partCount !== Math.max(1, Math.ceil(sizeBytes / partSize))) {
    throw new RangeError(`${partCount} parts of ${partSize} bytes do not tile ${sizeBytes} bytes`);
  }
  const ranges: PartRange[] = [];
  for (let n = 1; n <= partCount; n++) {
    const offset = (n - 1) * partSize;
    ranges.push({ partNumber: n, offset, size: Math.min(partSize, sizeBytes - offset) });
  }
  return ranges;
}

export interface HashedPart extends PartRange {
  /** base64 sha256 of the part (what the part URL is signed with, S3's x-amz-checksum-sha256). */
  sha256: string;
}

/**
 * Whether a part S3 already holds can be kept when resuming: same size, and the same sha256 as the local
 * bytes (the server reports the checksum each part's URL was signed with, which S3 verified on upload).
 * Without a checksum to compare, the part is sent again.
 */
export function canKeepStoredPart(stored: StoredPart | undefined, local: { size: number; sha256: string }): boolean {
  return (
    stored !== undefined && stored.size === local.size && stored.sha256 !== undefined && stored.sha256 === local.sha256
  );
}

/** Parts to ask URLs for in one request: `first` and then up to `max - 1` more that are waiting, in order. */
export function nextUrlBatch(first: number, waiting: Iterable<number>, max: number): number[] {
  const batch = [first];
  for (const n of waiting) {
    if (batch.length >= max) break;
    if (n !== first) batch.push(n);
  }
  return batch;
}
