/** Base class of every error the SDK throws. */
export class KilnSdkError extends Error {
  override name = 'KilnSdkError';
}

/**
 * The API answered with an error: `code` is Kiln's stable error code (docs/errors.md), unchanged from the
 * server (`UPLOAD_EXPIRED`, `PT2_TRUNCATED`, `UNAUTHENTICATED`, ...), `status` the HTTP status.
 */
export class KilnApiError extends KilnSdkError {
  override name = 'KilnApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
    /** Milliseconds the server asked to wait (Retry-After), if it did. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** The request never got an HTTP answer (connection refused or reset, DNS, timeout). Always transient. */
export class KilnNetworkError extends KilnSdkError {
  override name = 'KilnNetworkError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * S3 refused a part upload. `s3Code` is S3's error code: `BadDigest` means the bytes sent do not match the
 * checksum the URL was signed for (the file changed while uploading, or the bytes were damaged on the way).
 */
export class KilnStorageError extends KilnSdkError {
  override name = 'KilnStorageError';
  constructor(
    readonly status: number,
    readonly s3Code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * No part reached storage and the first PUT got no answer at all (unreachable host, or CORS refusing this
 * origin, which a browser does not tell apart). Thrown only where the caller asked to give up then
 * (`unreachableStorage: 'give-up'`): the dashboard sends the file through the API instead.
 */
export class KilnStorageUnreachableError extends KilnSdkError {
  override name = 'KilnStorageUnreachableError';
}

/** The caller's AbortSignal fired; what was started on the server has been cancelled. */
export class KilnAbortError extends KilnSdkError {
  override name = 'AbortError';
  constructor(message = 'The operation was aborted.', options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** HTTP statuses worth retrying: rate limiting and the gateway/unavailable family. */
export const TRANSIENT_STATUSES: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);

/**
 * Whether repeating the same request may succeed. Kiln's own 500 (INTERNAL) is a bug and is not retried;
 * a 500 from S3 (or a proxy) is. Everything the SDK retries is idempotent: GETs, part PUTs (same part
 * number overwrites), and POSTs made safe by an Idempotency-Key or by design (complete, part URLs).
 */
/** Longest Retry-After of a QUOTA_EXCEEDED the SDK waits out (longer ones reach the caller at once). */
export const MAX_QUOTA_WAIT_MS = 60_000;

export function isTransient(err: unknown): boolean {
  if (err instanceof KilnNetworkError) return true;
  if (err instanceof KilnApiError) {
    if (err.code === 'INTERNAL') return false;
    // A quota that frees up only in an hour (uploads per hour) is not worth holding a pipeline for.
    if (err.code === 'QUOTA_EXCEEDED' && (err.retryAfterMs ?? 0) > MAX_QUOTA_WAIT_MS) return false;
    return TRANSIENT_STATUSES.has(err.status) || err.code === 'SERVICE_UNAVAILABLE';
  }
  if (err instanceof KilnStorageError) {
    return TRANSIENT_STATUSES.has(err.status) || err.s3Code === 'SlowDown' || err.s3Code === 'RequestTimeout';
  }
  return false;
}
