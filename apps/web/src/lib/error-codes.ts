import type { ErrorCode } from '@kiln/contracts';

/**
 * What each error code means, for people (docs/errors.md says the same at more length). The API's own
 * message is always shown too, so a code added later without an entry here still reads well.
 */
export const ERROR_EXPLANATIONS: Partial<Record<ErrorCode, string>> = {
  VALIDATION_FAILED: 'The request was not valid.',
  UNAUTHENTICATED: 'The API key is missing, unknown or revoked.',
  FORBIDDEN: 'This key’s role may not do that (viewers read; keys, deletes and retention are for owners).',
  RESOURCE_IN_USE: 'A channel or a rollout points at it: move or delete them first, or delete with them.',
  NOT_FOUND: 'Not found for this tenant.',
  CONFLICT: 'That conflicts with the current state (a duplicate name, or it already ended).',
  PAYLOAD_TOO_LARGE: 'The file is larger than this Kiln accepts.',
  UNSUPPORTED_MEDIA_TYPE: 'Uploads are the raw .pt2 bytes.',
  UNKNOWN_TARGET: 'A target id is not in the catalog.',
  INTERNAL: 'A bug in Kiln; it has been logged.',
  SERVICE_UNAVAILABLE: 'A backing service did not answer. Try again shortly.',
  MODEL_NOT_ENROLLED: 'This device token is not enrolled for that model.',
  RATE_LIMITED: 'Too many requests with this key; wait a moment.',
  QUOTA_EXCEEDED: 'A quota of this account is used up for now (builds in flight, uploads per hour); try again later.',
  STORAGE_QUOTA_EXCEEDED: 'This account stores as much as its quota allows; delete something or ask for more.',
  UPLOAD_NOT_FOUND: 'No such upload.',
  UPLOAD_EXPIRED: 'The upload took too long and expired; start again.',
  UPLOAD_ABORTED: 'The upload was cancelled.',
  UPLOAD_INCOMPLETE: 'Some parts of the file did not reach storage.',
  UPLOAD_COMPLETING: 'The upload is being completed by another request.',
  UPLOAD_CHECKSUM_MISMATCH: 'The stored file differs from the one sent.',
  PT2_NOT_ZIP: 'Not a zip archive (or empty): a .pt2 is what torch.export.save writes.',
  PT2_TRUNCATED: 'The archive ends early or its sizes do not add up (an interrupted copy, usually).',
  PT2_BAD_ENTRY_NAME: 'An entry name is absolute, contains "..", or lies outside the archive’s top folder.',
  PT2_TOO_MANY_ENTRIES: 'More entries than a model archive needs.',
  PT2_ENTRY_TOO_LARGE: 'An entry, or all of them together, is over the size limit.',
  PT2_COMPRESSED_ENTRY: 'torch.export.save stores entries uncompressed; compressed ones are refused (zip bombs).',
  PT2_MISSING_ENTRY: 'A required entry (archive_format, archive_version, the model JSON or a weight file) is missing.',
  PT2_BAD_ARCHIVE_FORMAT: 'archive_format is not "pt2".',
  PT2_UNSUPPORTED_ARCHIVE_VERSION: 'archive_version is not 0.',
  PT2_UNSUPPORTED_SCHEMA: 'The program’s schema version is not one this Kiln reads (torch 2.13 writes 8.x).',
  PT2_MALFORMED_PROGRAM: 'The program JSON does not have the structure torch writes.',
  PT2_PICKLED_DATA: 'Weights stored as pickles: pickles run code when loaded, so they are refused.',
  PT2_CUSTOM_OBJECT: 'Custom or opaque script objects (also pickles) are refused.',
  PT2_BAD_SHAPE_EXPR: 'A symbolic shape expression is outside the strict grammar Kiln accepts.',
  PT2_UNKNOWN_OP_NAMESPACE: 'An operator outside the allowed namespaces (aten, prims, …).',
  PT2_GUARDS_CODE: 'The program carries guards_code (Python source torch would compile at load time).',
  PT2_MULTIPLE_MODELS: 'The archive holds more than one program; upload one model per file.',
  PT2_AMBIGUOUS_ZIP: 'The zip has structures torch never writes, which zip readers could read differently.',
  PT2_MALFORMED_GRAPH: 'The graph reads values before they are defined, has a cycle, or disagrees with its signature.',
  UNSUPPORTED_OP: 'Inductor cannot lower an operator of this model for this target.',
  INVALID_MODEL: 'torch could not load the program.',
  COMPILE_FAILED: 'The generated C++ did not compile; the log has the compiler’s error.',
  ISA_CHECK_FAILED: 'The code uses instructions the target’s devices lack.',
  NUMERIC_MISMATCH:
    'The compiled outputs differ from the portable graph: values beyond the tolerance, or outputs of another type, dtype or shape.',
  LOAD_FAILED: 'The artifact did not load or run in a fresh process.',
  COMPILE_TIMEOUT: 'The compile ran past the time limit.',
  COMPILE_OOM: 'The compile went over the memory limit.',
  DRIVER_CRASHED: 'The compile driver or worker died; Kiln retried it.',
  TOOLCHAIN_MISMATCH: 'The worker’s torch or compiler is not the recipe’s.',
  SANDBOX_UNAVAILABLE:
    'The worker could not isolate the build (its sandbox is incomplete), so nothing ran; Kiln retried it.',
  NO_WORKER: 'No worker serving this target picked the build up in time.',
  MODEL_INTEGRITY_MISMATCH: 'The stored model is not the one validated at upload; nothing was compiled.',
  BUILD_NOT_REPRODUCIBLE: 'A second build of the same job gave other bytes than the first (reproduce was asked).',
  CANCELLED: 'The compilation was cancelled.',
};

export function explainError(code: string): string | null {
  return (ERROR_EXPLANATIONS as Record<string, string>)[code] ?? null;
}
