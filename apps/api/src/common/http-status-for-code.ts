import { HttpStatus } from '@nestjs/common';
import { ErrorCode } from '@kiln/contracts';

/** One table from error code to HTTP status. Bad input is always a 4xx; only Kiln's own faults are 5xx. */
// 429 (with Retry-After, retryAfterHeader below) where waiting helps: rate limits and quotas that free up with time.
// 413 for the storage quota: waiting does not help, the tenant must delete or get a larger quota.
export function httpStatusFor(code: ErrorCode): HttpStatus {
  switch (code) {
    case ErrorCode.VALIDATION_FAILED:
    case ErrorCode.UNKNOWN_TARGET:
      return HttpStatus.BAD_REQUEST;
    case ErrorCode.UNAUTHENTICATED:
      return HttpStatus.UNAUTHORIZED;
    case ErrorCode.FORBIDDEN:
    case ErrorCode.MODEL_NOT_ENROLLED:
      return HttpStatus.FORBIDDEN;
    case ErrorCode.RATE_LIMITED:
    case ErrorCode.QUOTA_EXCEEDED:
      return HttpStatus.TOO_MANY_REQUESTS;
    case ErrorCode.STORAGE_QUOTA_EXCEEDED:
      return HttpStatus.PAYLOAD_TOO_LARGE;
    case ErrorCode.NOT_FOUND:
    case ErrorCode.UPLOAD_NOT_FOUND:
      return HttpStatus.NOT_FOUND;
    case ErrorCode.METHOD_NOT_ALLOWED:
      return HttpStatus.METHOD_NOT_ALLOWED;
    case ErrorCode.UPLOAD_EXPIRED:
    case ErrorCode.UPLOAD_ABORTED:
      return HttpStatus.GONE;
    case ErrorCode.UPLOAD_INCOMPLETE:
    case ErrorCode.UPLOAD_COMPLETING:
      return HttpStatus.CONFLICT;
    case ErrorCode.UPLOAD_CHECKSUM_MISMATCH:
      return HttpStatus.UNPROCESSABLE_ENTITY;
    case ErrorCode.CONFLICT:
    case ErrorCode.ROLLOUT_IN_PROGRESS:
    case ErrorCode.ROLLOUT_FINISHED:
    case ErrorCode.RESOURCE_IN_USE:
      return HttpStatus.CONFLICT;
    case ErrorCode.PAYLOAD_TOO_LARGE:
      return HttpStatus.PAYLOAD_TOO_LARGE;
    case ErrorCode.UNSUPPORTED_MEDIA_TYPE:
      return HttpStatus.UNSUPPORTED_MEDIA_TYPE;
    case ErrorCode.SERVICE_UNAVAILABLE:
      return HttpStatus.SERVICE_UNAVAILABLE;
    case ErrorCode.INTERNAL:
      return HttpStatus.INTERNAL_SERVER_ERROR;
    case ErrorCode.PT2_NOT_ZIP:
    case ErrorCode.PT2_TRUNCATED:
    case ErrorCode.PT2_BAD_ENTRY_NAME:
    case ErrorCode.PT2_TOO_MANY_ENTRIES:
    case ErrorCode.PT2_ENTRY_TOO_LARGE:
    case ErrorCode.PT2_COMPRESSED_ENTRY:
    case ErrorCode.PT2_MISSING_ENTRY:
    case ErrorCode.PT2_BAD_ARCHIVE_FORMAT:
    case ErrorCode.PT2_UNSUPPORTED_ARCHIVE_VERSION:
    case ErrorCode.PT2_UNSUPPORTED_SCHEMA:
    case ErrorCode.PT2_MALFORMED_PROGRAM:
    case ErrorCode.PT2_PICKLED_DATA:
    case ErrorCode.PT2_CUSTOM_OBJECT:
    case ErrorCode.PT2_BAD_SHAPE_EXPR:
    case ErrorCode.PT2_UNKNOWN_OP_NAMESPACE:
    case ErrorCode.PT2_GUARDS_CODE:
    case ErrorCode.PT2_MULTIPLE_MODELS:
    case ErrorCode.PT2_AMBIGUOUS_ZIP:
    case ErrorCode.PT2_MALFORMED_GRAPH:
      return HttpStatus.UNPROCESSABLE_ENTITY;
    // Build outcomes are reported inside a compilation, never as the status of a request.
    case ErrorCode.UNSUPPORTED_OP:
    case ErrorCode.INVALID_MODEL:
    case ErrorCode.COMPILE_FAILED:
    case ErrorCode.ISA_CHECK_FAILED:
    case ErrorCode.NUMERIC_MISMATCH:
    case ErrorCode.LOAD_FAILED:
    case ErrorCode.COMPILE_TIMEOUT:
    case ErrorCode.COMPILE_OOM:
    case ErrorCode.DRIVER_CRASHED:
    case ErrorCode.TOOLCHAIN_MISMATCH:
    case ErrorCode.SANDBOX_UNAVAILABLE:
    case ErrorCode.PRECISION_UNSUPPORTED:
    case ErrorCode.INPUT_RANGE_NARROWED:
    case ErrorCode.NO_WORKER:
    case ErrorCode.MODEL_INTEGRITY_MISMATCH:
    case ErrorCode.ARTIFACT_REJECTED:
    case ErrorCode.BUILD_NOT_REPRODUCIBLE:
    case ErrorCode.CANCELLED:
      return HttpStatus.CONFLICT;
  }
}

/**
 * The Retry-After header value (whole seconds, at least 1) of an error that carries `details.retryAfterSeconds`
 * (rate limits, time-bound quotas), else null.
 */
export function retryAfterHeader(details: Record<string, unknown> | undefined): string | null {
  const seconds = details?.retryAfterSeconds;
  return typeof seconds === 'number' && Number.isFinite(seconds) ? String(Math.max(1, Math.ceil(seconds))) : null;
}
