/**
 * Every error Kiln returns carries one of these codes. They reach the HTTP client, the SDK, the CLI
 * and the dashboard unchanged, so they are part of the public contract: add codes, never rename them.
 * docs/errors.md explains each one. The one definition of the codes and their retry policy is error-codes.json
 * (shared with the Python driver and device runtime); error-codes.spec.ts keeps this object equal to it.
 */
export const ErrorCode = {
  // request / auth
  VALIDATION_FAILED: 'VALIDATION_FAILED',
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  FORBIDDEN: 'FORBIDDEN',
  NOT_FOUND: 'NOT_FOUND',
  METHOD_NOT_ALLOWED: 'METHOD_NOT_ALLOWED',
  CONFLICT: 'CONFLICT',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  UNSUPPORTED_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  UNKNOWN_TARGET: 'UNKNOWN_TARGET',
  INTERNAL: 'INTERNAL',
  SERVICE_UNAVAILABLE: 'SERVICE_UNAVAILABLE',

  // keys and fair use (docs/security.md)
  /** This device token is not enrolled for the model it asked for. */
  MODEL_NOT_ENROLLED: 'MODEL_NOT_ENROLLED',
  /** Too many requests with this key: wait Retry-After seconds. */
  RATE_LIMITED: 'RATE_LIMITED',
  /** A quota that frees up with time (builds in flight, uploads per hour): wait Retry-After seconds. */
  QUOTA_EXCEEDED: 'QUOTA_EXCEEDED',
  /** The tenant's stored bytes would exceed its quota: delete something or ask the operator for more. */
  STORAGE_QUOTA_EXCEEDED: 'STORAGE_QUOTA_EXCEEDED',

  // presigned multipart uploads (POST /v1/models/:id/uploads ...)
  UPLOAD_NOT_FOUND: 'UPLOAD_NOT_FOUND',
  UPLOAD_EXPIRED: 'UPLOAD_EXPIRED',
  UPLOAD_ABORTED: 'UPLOAD_ABORTED',
  UPLOAD_INCOMPLETE: 'UPLOAD_INCOMPLETE',
  UPLOAD_COMPLETING: 'UPLOAD_COMPLETING',
  UPLOAD_CHECKSUM_MISMATCH: 'UPLOAD_CHECKSUM_MISMATCH',

  // staged rollouts (POST /v1/models/:id/channels/:name/rollouts, /v1/rollouts/:id/...)
  /** The channel already has a rollout running or paused: finish, roll back or wait for it first. */
  ROLLOUT_IN_PROGRESS: 'ROLLOUT_IN_PROGRESS',
  /** The rollout already completed or was rolled back: it cannot be paused, resumed or rolled back again. */
  ROLLOUT_FINISHED: 'ROLLOUT_FINISHED',

  // deletes (DELETE /v1/models/:id, /v1/versions/:id, /v1/artifacts/:id)
  /** A channel or a rollout points at what was to be deleted: move or delete it first, or delete with ?force=true. */
  RESOURCE_IN_USE: 'RESOURCE_IN_USE',

  // .pt2 validation (the TypeScript reader, before torch sees anything)
  PT2_NOT_ZIP: 'PT2_NOT_ZIP',
  PT2_TRUNCATED: 'PT2_TRUNCATED',
  PT2_BAD_ENTRY_NAME: 'PT2_BAD_ENTRY_NAME',
  PT2_TOO_MANY_ENTRIES: 'PT2_TOO_MANY_ENTRIES',
  PT2_ENTRY_TOO_LARGE: 'PT2_ENTRY_TOO_LARGE',
  PT2_COMPRESSED_ENTRY: 'PT2_COMPRESSED_ENTRY',
  PT2_MISSING_ENTRY: 'PT2_MISSING_ENTRY',
  PT2_BAD_ARCHIVE_FORMAT: 'PT2_BAD_ARCHIVE_FORMAT',
  PT2_UNSUPPORTED_ARCHIVE_VERSION: 'PT2_UNSUPPORTED_ARCHIVE_VERSION',
  PT2_UNSUPPORTED_SCHEMA: 'PT2_UNSUPPORTED_SCHEMA',
  PT2_MALFORMED_PROGRAM: 'PT2_MALFORMED_PROGRAM',
  PT2_PICKLED_DATA: 'PT2_PICKLED_DATA',
  PT2_CUSTOM_OBJECT: 'PT2_CUSTOM_OBJECT',
  PT2_BAD_SHAPE_EXPR: 'PT2_BAD_SHAPE_EXPR',
  PT2_UNKNOWN_OP_NAMESPACE: 'PT2_UNKNOWN_OP_NAMESPACE',
  PT2_GUARDS_CODE: 'PT2_GUARDS_CODE',
  PT2_MULTIPLE_MODELS: 'PT2_MULTIPLE_MODELS',
  /** Zip structures that disagree (local header vs central directory, bytes between entries, extra fields ...). */
  PT2_AMBIGUOUS_ZIP: 'PT2_AMBIGUOUS_ZIP',
  /** The program's graph is not well formed: a value read before (or without) being defined, a cycle ... */
  PT2_MALFORMED_GRAPH: 'PT2_MALFORMED_GRAPH',

  // builds (compile driver and worker)
  UNSUPPORTED_OP: 'UNSUPPORTED_OP',
  INVALID_MODEL: 'INVALID_MODEL',
  COMPILE_FAILED: 'COMPILE_FAILED',
  ISA_CHECK_FAILED: 'ISA_CHECK_FAILED',
  NUMERIC_MISMATCH: 'NUMERIC_MISMATCH',
  LOAD_FAILED: 'LOAD_FAILED',
  COMPILE_TIMEOUT: 'COMPILE_TIMEOUT',
  COMPILE_OOM: 'COMPILE_OOM',
  DRIVER_CRASHED: 'DRIVER_CRASHED',
  TOOLCHAIN_MISMATCH: 'TOOLCHAIN_MISMATCH',
  /** The worker could not put up every wall of the build sandbox for this build: nothing ran (another worker may). */
  SANDBOX_UNAVAILABLE: 'SANDBOX_UNAVAILABLE',
  /** A reduced-precision target (e.g. bf16) cannot be built for this model: converting the program failed. */
  PRECISION_UNSUPPORTED: 'PRECISION_UNSUPPORTED',
  INPUT_RANGE_NARROWED: 'INPUT_RANGE_NARROWED',
  NO_WORKER: 'NO_WORKER',
  /** The model object in S3 is not the one validated at upload (sha256 or size differ from the version's record). */
  MODEL_INTEGRITY_MISMATCH: 'MODEL_INTEGRITY_MISMATCH',
  /**
   * What a build host handed back did not hold up when the orchestrator checked it before signing: a part missing
   * from its upload or differing from the manifest, or a manifest about another build. Nothing was signed or stored.
   */
  ARTIFACT_REJECTED: 'ARTIFACT_REJECTED',
  /**
   * The compilation asked for a reproduction check (`reproduce: true`) and a second build of the same job, in a fresh
   * job folder, gave parts with other sha256s than the first: `details.parts` lists both hashes of each part.
   */
  BUILD_NOT_REPRODUCIBLE: 'BUILD_NOT_REPRODUCIBLE',
  CANCELLED: 'CANCELLED',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const ERROR_CODES = new Set<string>(Object.values(ErrorCode));

/** Whether a string from outside (a failure's type, a driver's error.json) is one of the contract's codes. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && ERROR_CODES.has(code);
}

/** Build failures that will fail the same way on every retry: Temporal must not retry them. */
export const NON_RETRYABLE_BUILD_ERRORS: readonly ErrorCode[] = [
  ErrorCode.UNSUPPORTED_OP,
  ErrorCode.INVALID_MODEL,
  ErrorCode.COMPILE_FAILED,
  ErrorCode.ISA_CHECK_FAILED,
  ErrorCode.NUMERIC_MISMATCH,
  ErrorCode.LOAD_FAILED,
  ErrorCode.COMPILE_OOM,
  ErrorCode.COMPILE_TIMEOUT,
  ErrorCode.PRECISION_UNSUPPORTED,
  ErrorCode.INPUT_RANGE_NARROWED,
  ErrorCode.MODEL_INTEGRITY_MISMATCH,
  ErrorCode.ARTIFACT_REJECTED,
  ErrorCode.BUILD_NOT_REPRODUCIBLE,
];

/** A domain error with a stable code; the API maps it to HTTP in one exception filter. */
export class KilnError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'KilnError';
  }
}
