/** What the upload core reports (the SDK's ProgressEvent includes these; the dashboard maps them to its phases). */
export type MultipartUploadEvent =
  | {
      type: 'upload';
      uploadId: string;
      /** Bytes S3 has acknowledged or that are on their way in parts not yet acknowledged. */
      uploadedBytes: number;
      totalBytes: number;
      partsDone: number;
      partCount: number;
      /** Bytes found already uploaded when resuming (counted in uploadedBytes). */
      resumedBytes: number;
    }
  | { type: 'upload-completing'; uploadId: string }
  | { type: 'uploaded'; versionId: string; sizeBytes: number; reused: boolean };

/**
 * Upload byte accounting across parallel parts: bytes of a part in flight count as they are sent, and are
 * taken back if that attempt fails (so progress never overshoots on retries).
 */
export class UploadProgress {
  private readonly inFlight = new Map<number, number>();
  private doneBytes = 0;
  private done = 0;
  /** Bytes found already on S3 when resuming. */
  resumedBytes = 0;

  constructor(
    readonly totalBytes: number,
    readonly partCount: number,
  ) {}

  /** A part found on S3 when resuming. */
  partAlreadyStored(size: number): void {
    this.doneBytes += size;
    this.done += 1;
    this.resumedBytes += size;
  }

  partSent(partNumber: number, bytes: number): void {
    this.inFlight.set(partNumber, (this.inFlight.get(partNumber) ?? 0) + bytes);
  }

  partFailed(partNumber: number): void {
    this.inFlight.delete(partNumber);
  }

  partDone(partNumber: number, size: number): void {
    this.inFlight.delete(partNumber);
    this.doneBytes += size;
    this.done += 1;
  }

  get uploadedBytes(): number {
    let bytes = this.doneBytes;
    for (const b of this.inFlight.values()) bytes += b;
    return Math.min(bytes, this.totalBytes);
  }

  get partsDone(): number {
    return this.done;
  }
}
