import {
  KilnApiError,
  KilnNetworkError,
  KilnStorageError,
  KilnStorageUnreachableError,
  multipartUpload,
  type PartSource,
  type SendPart,
  type UploadApi,
} from '@kiln/sdk/upload-core';
import { ApiError, type ApiClient, errorFromBody } from '../api/client.js';
import type { ModelVersion, PartUrls, Upload, UploadState } from '../api/types.js';
import { randomId, sha256Base64 } from './sha256.js';
import { NetworkError, xhr } from './xhr.js';

export type UploadPhase = 'preparing' | 'uploading' | 'validating';
/** `storage`: straight to S3 through presigned part URLs; `api`: the file's bytes go through the API. */
export type UploadRoute = 'storage' | 'api';

export interface UploadProgressEvent {
  phase: UploadPhase;
  route: UploadRoute;
  sent: number;
  total: number;
  /** For people: why the route changed, which part is being checksummed, ... */
  note?: string;
}

export interface UploadOptions {
  onProgress: (e: UploadProgressEvent) => void;
  signal?: AbortSignal;
}

/** Sends a .pt2 and answers with the validated version (or rejects with the API's PT2_* error). */
export interface ModelUploader {
  readonly route: UploadRoute;
  upload(file: File, modelId: string, opts: UploadOptions): Promise<ModelVersion>;
}

/**
 * The presigned multipart upload through the SDK's upload core (`@kiln/sdk/upload-core`, the flow the Node SDK
 * runs too): parts are checksummed in the page (sha256, which each URL is signed with and S3 verifies), PUT
 * straight to S3 with XHR for real progress, then completed: the API assembles and validates the archive and
 * answers with the version. No resume state: a page that is closed has lost its File anyway.
 */
export class MultipartUploader implements ModelUploader {
  readonly route = 'storage' as const;

  constructor(private readonly api: ApiClient) {}

  async upload(file: File, modelId: string, opts: UploadOptions): Promise<ModelVersion> {
    const total = file.size;
    let sent = 0;
    let anyPartStored = false;
    const emit = (phase: UploadPhase, note?: string): void =>
      opts.onProgress({ phase, route: 'storage', sent, total, note });
    emit('preparing', 'Starting the upload');
    try {
      const result = await multipartUpload(
        { api: uploadApi(this.api), source: blobPartSource(file), sendPart: xhrSendPart(file) },
        {
          modelId,
          idempotencyKey: `web-${randomId()}`,
          signal: opts.signal,
          // Storage the browser cannot reach at all: the caller sends the file through the API instead.
          unreachableStorage: 'give-up',
          onHashing: (partNumber, partCount) => {
            if (partCount > 1)
              emit(anyPartStored ? 'uploading' : 'preparing', `Checksumming part ${partNumber} of ${partCount}`);
          },
          onProgress: (event) => {
            if (event.type === 'upload') {
              sent = event.uploadedBytes;
              anyPartStored ||= event.partsDone > 0;
              emit('uploading');
            } else if (event.type === 'upload-completing') {
              sent = total;
              emit('validating', 'Checking the archive');
            }
          },
        },
      );
      return result.version;
    } catch (err) {
      throw dashboardError(err);
    }
  }
}

/** The API calls of the upload core, over the dashboard's ApiClient (its ApiError keeps the API's code). */
function uploadApi(api: ApiClient): UploadApi {
  return {
    createUpload: async (modelId, body, o) => {
      const upload = await api.post<Upload>(`/v1/models/${modelId}/uploads`, body, {
        headers: o.idempotencyKey ? { 'Idempotency-Key': o.idempotencyKey } : {},
        signal: o.signal,
      });
      // The dashboard makes a fresh key per upload, so the upload is always new.
      return { upload, created: true };
    },
    getUpload: (uploadId, o) => api.get<UploadState>(`/v1/uploads/${uploadId}`, { signal: o.signal }),
    requestPartUrls: (uploadId, parts, o) =>
      api.post<PartUrls>(`/v1/uploads/${uploadId}/parts`, { parts }, { signal: o.signal }),
    completeUpload: (uploadId, body, o) =>
      api.post<ModelVersion>(`/v1/uploads/${uploadId}/complete`, body, { signal: o.signal }),
    abortUpload: (uploadId) => api.delete(`/v1/uploads/${uploadId}`),
  };
}

/** A File's parts, hashed one at a time in the page (only the digests are kept, not the bytes). */
function blobPartSource(file: File): PartSource {
  return {
    size: file.size,
    filename: file.name,
    async *hashParts(ranges, signal) {
      for (const range of ranges) {
        const bytes = await file.slice(range.offset, range.offset + range.size).arrayBuffer();
        signal.throwIfAborted();
        yield { ...range, sha256: await sha256Base64(bytes) };
      }
      // WebCrypto cannot hash a file incrementally: the API checks the archive without the file's sha256.
      return '';
    },
  };
}

/** One part PUT through XHR (fetch cannot report upload progress); the bytes are a slice of the File. */
function xhrSendPart(file: File): SendPart {
  return async ({ url, headers, part, signal, onBytes }) => {
    let reported = 0;
    try {
      const res = await xhr({
        method: 'PUT',
        url,
        headers,
        body: file.slice(part.offset, part.offset + part.size),
        onUploadProgress: (loaded) => {
          // A browser may count more than the body (headers): never beyond the part.
          const now = Math.min(loaded, part.size);
          if (now > reported) onBytes(now - reported);
          reported = Math.max(reported, now);
        },
        signal,
      });
      return { status: res.status, text: res.text };
    } catch (err) {
      if (err instanceof NetworkError) throw new KilnNetworkError(err.message, { cause: err });
      throw err;
    }
  };
}

/** What the upload dialog shows: the API's error as it is, the core's own failures with a dashboard code. */
function dashboardError(err: unknown): unknown {
  // Unreachable storage is the caller's cue to take the api route (uploadModelVersion).
  if (err instanceof ApiError || err instanceof KilnStorageUnreachableError) return err;
  if (err instanceof Error && err.name === 'AbortError') return err;
  if (err instanceof KilnApiError) return new ApiError(err.status, err.code, err.message, err.details);
  if (err instanceof KilnStorageError)
    return new ApiError(err.status, 'STORAGE_REFUSED', `Storage refused the upload: ${err.message}`);
  if (err instanceof KilnNetworkError) return new ApiError(0, 'NETWORK', `A part could not be sent: ${err.message}`);
  return err;
}

/** The direct upload (POST /v1/models/:id/versions, the raw body through the API), with XHR progress. */
export class DirectUploader implements ModelUploader {
  readonly route = 'api' as const;

  constructor(private readonly api: ApiClient) {}

  async upload(file: File, modelId: string, opts: UploadOptions): Promise<ModelVersion> {
    const total = file.size;
    const emit = (phase: UploadPhase, sent: number, note?: string): void =>
      opts.onProgress({ phase, route: 'api', sent, total, note });
    emit('uploading', 0);
    let res;
    try {
      res = await xhr({
        method: 'POST',
        url: `${this.api.baseUrl}/v1/models/${modelId}/versions?filename=${encodeURIComponent(file.name)}`,
        headers: { ...this.api.authHeaders(), 'Content-Type': 'application/octet-stream', Accept: 'application/json' },
        body: file,
        onUploadProgress: (loaded) => emit('uploading', Math.min(loaded, total)),
        onUploaded: () => emit('validating', total, 'Checking the archive'),
        signal: opts.signal,
      });
    } catch (err) {
      if (err instanceof NetworkError) throw new ApiError(0, 'NETWORK', 'Could not reach the Kiln API.');
      throw err;
    }
    let json: unknown;
    try {
      json = JSON.parse(res.text);
    } catch {
      json = undefined;
    }
    if (res.status < 200 || res.status >= 300) throw errorFromBody(res.status, json);
    return json as ModelVersion;
  }
}

/**
 * Uploads through S3 when the browser can reach it, else through the API. The switch happens only when
 * not one byte reached S3 (its endpoint is internal, or its CORS rules do not allow this origin), so a
 * file is never sent twice over a working link.
 */
export async function uploadModelVersion(
  api: ApiClient,
  file: File,
  modelId: string,
  opts: UploadOptions,
): Promise<{ version: ModelVersion; route: UploadRoute }> {
  try {
    return { version: await new MultipartUploader(api).upload(file, modelId, opts), route: 'storage' };
  } catch (err) {
    // The browser cannot reach S3 at all (unreachable host, or CORS not allowing this origin).
    if (!(err instanceof KilnStorageUnreachableError)) throw err;
    opts.onProgress({
      phase: 'uploading',
      route: 'api',
      sent: 0,
      total: file.size,
      note: 'Storage is not reachable from this browser; uploading through the API instead',
    });
    return { version: await new DirectUploader(api).upload(file, modelId, opts), route: 'api' };
  }
}
