export { KilnClient, parseServerSentEvents, type KilnClientOptions, type RequestOptions } from './kiln-client.js';
export {
  compileRemote,
  waitForCompilation,
  type CompileRemoteOptions,
  type CompileRemoteResult,
  type TargetResult,
  type WaitOptions,
} from './compile-remote.js';
export { uploadModel, type UploadModelOptions, type UploadModelResult } from './uploader.js';
export {
  downloadArtifact,
  partFileName,
  type DownloadOptions,
  type DownloadResult,
  type DownloadedPart,
} from './download.js';
export { assemblePackage, checkWeightsEntry } from './assemble.js';
export {
  isTransient,
  KilnAbortError,
  KilnApiError,
  KilnNetworkError,
  KilnSdkError,
  KilnStorageError,
  TRANSIENT_STATUSES,
} from './errors.js';
export {
  backoffDelay,
  DEFAULT_RETRY_POLICY,
  parseRetryAfter,
  withRetry,
  type RetryOptions,
  type RetryPolicy,
} from './retry.js';
export { OPERATOR_ROUTES, ROUTES, routePath, type HttpMethod, type RouteName } from './routes.js';
export {
  buildChanges,
  TERMINAL_BUILD_STATUSES,
  TERMINAL_COMPILATION_STATUSES,
  type ProgressEvent,
} from './progress.js';
export { httpPutPart, type PartPutRequest, type PartPutResponse, type PartTransport } from './part-transport.js';
export {
  canKeepStoredPart,
  KilnStorageUnreachableError,
  multipartUpload,
  nextUrlBatch,
  partRanges,
  UploadProgress,
  type HashedPart,
  type MultipartUploadEvent,
  type MultipartUploadOptions,
  type MultipartUploadResult,
  type PartRange,
  type PartSource,
  type ResumeSlot,
  type SendPart,
  type UploadApi,
} from './upload-core/index.js';
export { defaultResumeDir, ResumeStore, type ResumeRecord } from './resume-state.js';
export { hashParts, openUploadSource, type UploadInput, type UploadSource } from './upload-source.js';
export type * from './types.js';
