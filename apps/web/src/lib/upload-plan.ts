// Pure planning for the browser's presigned multipart upload (see ../upload/uploader.ts):
// which byte ranges make the parts, in which batches their URLs are asked for, and how far along the
// upload is. The server decides partSize and partCount; the client follows.

export interface PartRange {
  partNumber: number;
  offset: number;
  size: number;
}

/** The byte ranges of an upload's parts; throws when the server's plan does not tile the file. */
export function partRanges(sizeBytes: number, partSize: number, partCount: number): PartRange[] {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 1) throw new RangeError(`bad file size ${sizeBytes}`);
  if (!Number.isSafeInteger(partSize) || partSize < 1) throw new RangeError(`bad part size ${partSize}`);
  if (partCount !== Math.ceil(sizeBytes / partSize)) {
    throw new RangeError(`${partCount} parts of ${partSize} bytes do not tile ${sizeBytes} bytes`);
  }
  const ranges: PartRange[] = [];
  for (let n = 1; n <= partCount; n++) {
    const offset = (n - 1) * partSize;
    ranges.push({ partNumber: n, offset, size: Math.min(partSize, sizeBytes - offset) });
  }
  return ranges;
}

/** Consecutive groups of at most `size` parts: one URL request (and one hashing round) per group. */
export function batches<T>(items: readonly T[], size: number): T[][] {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`batch size must be ≥ 1, got ${size}`);
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Bytes sent so far, from the progress events of parts in flight. A part that is retried starts again
 * from 0, so the total can go back a little; it never exceeds the file size and counts a finished part
 * exactly once.
 */
export class UploadProgress {
  private readonly loaded = new Map<number, number>();
  private readonly sizes: Map<number, number>;

  constructor(readonly parts: readonly PartRange[]) {
    this.sizes = new Map(parts.map((p) => [p.partNumber, p.size]));
  }

  get total(): number {
    return this.parts.reduce((sum, p) => sum + p.size, 0);
  }

  /** A progress event of one part's PUT (bytes of that part sent so far). */
  update(partNumber: number, bytes: number): void {
    const size = this.sizes.get(partNumber);
    if (size === undefined) throw new RangeError(`unknown part ${partNumber}`);
    this.loaded.set(partNumber, Math.max(0, Math.min(size, bytes)));
  }

  done(partNumber: number): void {
    this.update(partNumber, this.sizes.get(partNumber) ?? 0);
  }

  /** The part is sent again: what it had sent does not count any more. */
  reset(partNumber: number): void {
    this.loaded.delete(partNumber);
  }

  get sent(): number {
    let sum = 0;
    for (const v of this.loaded.values()) sum += v;
    return sum;
  }

  /** 0..1 */
  get fraction(): number {
    const total = this.total;
    return total === 0 ? 0 : this.sent / total;
  }
}

/** Whether a dropped or picked file looks like a torch.export archive (the server validates it fully). */
export function isPt2Filename(name: string): boolean {
  return /\.pt2$/i.test(name.trim());
}

/**
 * A model name the API accepts (letters, digits, ".", "_", "-"; starting with a letter or digit; at most
 * 100 characters), derived from a file name: "ResNet 50 (final).pt2" → "ResNet-50-final".
 */
export function modelNameFromFilename(filename: string): string {
  const base = filename
    .trim()
    .replace(/^.*[\\/]/, '')
    .replace(/\.pt2$/i, '');
  const name = base
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .replace(/[-.]+$/, '')
    .slice(0, 100);
  return name || 'model';
}

export const MODEL_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Why a model name would be refused, or null when the API will take it. */
export function modelNameProblem(name: string): string | null {
  if (name.length === 0) return 'Give the model a name.';
  if (name.length > 100) return 'At most 100 characters.';
  if (!MODEL_NAME_PATTERN.test(name)) return 'Letters, digits, ".", "_" and "-" only, starting with a letter or digit.';
  return null;
}

/** The Code and Message of an S3 XML error body ("BadDigest: The sha256 you specified did not match"). */
export function s3ErrorText(status: number, body: string): string {
  const code = /<Code>([^<]*)<\/Code>/.exec(body)?.[1];
  const message = /<Message>([^<]*)<\/Message>/.exec(body)?.[1];
  return code ? `${code}${message ? `: ${message}` : ''}` : `HTTP ${status}`;
}
