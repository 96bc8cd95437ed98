import { ApiError, type ApiClient, errorFromBody } from '../api/client.js';
import type { ModelVersion, PresignedPart, Upload, UploadState } from '../api/types.js';
import { batches, type PartRange, partRanges, s3ErrorText, UploadProgress } from '../lib/upload-plan.js';
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

/** The browser could not reach the S3 endpoint at all (unreachable host, or CORS not allowing this origin). */
export class StorageUnreachableError extends Error {}

/** Parts sent at once (and checksummed one batch ahead). */
const CONCURRENCY = 4;
const PART_ATTEMPTS = 3;

/**
 * The presigned multipart protocol (apps/api/src/uploads, like the SDK): create the upload, checksum each
 * part (sha256, which the URL is signed with and S3 verifies), PUT the parts straight to S3 with real
 * progress, then complete: the API assembles and validates the archive and answers with the version.
 */
export class MultipartUploader implements ModelUploader {
  readonly route = 'storage' as const;

  constructor(private readonly api: ApiClient) {}

  async upload(file: File, modelId: string, opts: UploadOptions): Promise<ModelVersion> {
    const { signal } = opts;
    const total = file.size;
    const emit = (phase: UploadPhase, sent: number, note?: string): void =>
      opts.onProgress({ phase, route: 'storage', sent, total, note });
    emit('preparing', 0, 'Starting the upload');

    const upload = await this.api.post<Upload>(
      `/v1/models/${modelId}/uploads`,
      { filename: file.name, sizeBytes: file.size },
      { headers: { 'Idempotency-Key': `web-${randomId()}` }, signal },
    );
    const parts = partRanges(file.size, upload.partSize, upload.partCount);
    const progress = new UploadProgress(parts);
    let anyPartStored = false;
    const report = (): void => emit('uploading', progress.sent);

    const sign = async (group: PartRange[]): Promise<PresignedPart[]> => {
      const sums: { partNumber: number; sha256: string }[] = [];
      for (const p of group) {
        if (parts.length > 1)
          emit(
            anyPartStored ? 'uploading' : 'preparing',
            progress.sent,
            `Checksumming part ${p.partNumber} of ${parts.length}`,
          );
        const bytes = await file.slice(p.offset, p.offset + p.size).arrayBuffer();
        sums.push({ partNumber: p.partNumber, sha256: await sha256Base64(bytes) });
        signal?.throwIfAborted();
      }
      const res = await this.api.post<{ parts: PresignedPart[] }>(
        `/v1/uploads/${upload.uploadId}/parts`,
        { parts: sums },
        { signal },
      );
      return res.parts;
    };

    const put = async (part: PresignedPart): Promise<void> => {
      for (let attempt = 1; ; attempt++) {
        progress.reset(part.partNumber);
        let status: number;
        let body = '';
        try {
          const res = await xhr({
            method: 'PUT',
            url: part.url,
            headers: part.headers,
            body: file.slice(part.offset, part.offset + part.size),
            onUploadProgress: (loaded) => {
              progress.update(part.partNumber, loaded);
              report();
            },
            signal,
          });
          status = res.status;
          body = res.text;
        } catch (err) {
          if (!(err instanceof NetworkError)) throw err;
          if (!anyPartStored) throw new StorageUnreachableError(err.message);
          if (attempt >= PART_ATTEMPTS)
            throw new ApiError(0, 'NETWORK', `Part ${part.partNumber} could not be sent: ${err.message}`);
          await sleep(500 * attempt, signal);
          continue;
        }
        if (status >= 200 && status < 300) {
          anyPartStored = true;
          progress.done(part.partNumber);
          report();
          return;
        }
        if ((status >= 500 || status === 403) && attempt < PART_ATTEMPTS) {
          // 403: the URL may have expired while waiting (slow link): sign this part again.
          if (status === 403) Object.assign(part, (await sign([rangeOf(part)]))[0]);
          await sleep(500 * attempt, signal);
          continue;
        }
        throw new ApiError(
          status,
          'STORAGE_REFUSED',
          `Storage refused part ${part.partNumber}: ${s3ErrorText(status, body)}`,
        );
      }
    };

    const sendParts = async (todo: PartRange[]): Promise<void> => {
      const groups = batches(todo, CONCURRENCY);
      let next: Promise<PresignedPart[]> | undefined = groups.length > 0 ? sign(groups[0]) : undefined;
      for (let i = 0; i < groups.length; i++) {
        const signed: PresignedPart[] = await next!;
        // Checksum the next batch while this one is on the wire.
        next = i + 1 < groups.length ? sign(groups[i + 1]) : undefined;
        next?.catch(() => undefined); // observed below; avoids an unhandled rejection if the PUTs fail first
        await Promise.all(signed.map(put));
      }
    };

    try {
      await sendParts(parts);
      emit('validating', total, 'Checking the archive');
      for (let round = 0; ; round++) {
        try {
          return await this.complete(upload.uploadId, signal);
        } catch (err) {
          // S3 lost a part (rare): send what is missing once more.
          if (round === 0 && err instanceof ApiError && err.code === 'UPLOAD_INCOMPLETE') {
            const state = await this.api.get<UploadState>(`/v1/uploads/${upload.uploadId}`, { signal });
            const stored = new Set(state.parts.map((p) => p.partNumber));
            const missing = parts.filter((p) => !stored.has(p.partNumber));
            for (const p of missing) progress.reset(p.partNumber);
            await sendParts(missing);
            emit('validating', total, 'Checking the archive');
            continue;
          }
          throw err;
        }
      }
    } catch (err) {
      if (signal?.aborted || err instanceof StorageUnreachableError) {
        // Drop the parts on the server too, not just stop sending.
        await this.api.delete(`/v1/uploads/${upload.uploadId}`).catch(() => undefined);
      }
      throw err;
    }
  }

  /** Completes, waiting out a concurrent completion (UPLOAD_COMPLETING) by polling the upload. */
  private async complete(uploadId: string, signal?: AbortSignal): Promise<ModelVersion> {
    try {
      return await this.api.post<ModelVersion>(`/v1/uploads/${uploadId}/complete`, {}, { signal });
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 'UPLOAD_COMPLETING')) throw err;
    }
    for (;;) {
      await sleep(1000, signal);
      const state = await this.api.get<UploadState>(`/v1/uploads/${uploadId}`, { signal });
      if (state.status === 'completed' && state.version) return state.version;
      if (state.status === 'failed' && state.error) throw new ApiError(422, state.error.code, state.error.message);
      if (state.status !== 'completing')
        throw new ApiError(409, 'UPLOAD_' + state.status.toUpperCase(), `The upload is ${state.status}.`);
    }
  }
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
    if (!(err instanceof StorageUnreachableError)) throw err;
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

function rangeOf(p: PresignedPart): PartRange {
  return { partNumber: p.partNumber, offset: p.offset, size: p.size };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        reject(new DOMException('The upload was cancelled.', 'AbortError'));
      },
      { once: true },
    );
  });
}
