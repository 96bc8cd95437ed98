// The browser-safe upload core (`@kiln/sdk/upload-core`): the Node SDK's uploadModel and the dashboard both run
// this flow, each with its own byte source, part transport and resume slot. No `node:` imports below here.
export {
  apiErrorCode,
  assertUsable,
  multipartUpload,
  storageError,
  type MultipartUploadOptions,
  type MultipartUploadResult,
  type PartPut,
  type PartSource,
  type ResumeSlot,
  type SendPart,
  type UploadApi,
  type UploadEnvironment,
} from './multipart-upload.js';
export { canKeepStoredPart, nextUrlBatch, partRanges, type HashedPart, type PartRange } from './part-plan.js';
export { UploadProgress, type MultipartUploadEvent } from './progress.js';
export * from '../errors.js';
export { backoffDelay, DEFAULT_RETRY_POLICY, withRetry, type RetryPolicy } from '../retry.js';
