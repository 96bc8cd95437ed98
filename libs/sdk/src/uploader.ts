import { KilnNetworkError } from './errors.js';
import type { KilnClient } from './kiln-client.js';
import type { ProgressEvent } from './progress.js';
import { defaultResumeDir, ResumeStore } from './resume-state.js';
import { throwIfAborted } from './retry.js';
import type { Model } from './types.js';
import {
  multipartUpload,
  type MultipartUploadOptions,
  type MultipartUploadResult,
  type ResumeSlot,
  type SendPart,
} from './upload-core/index.js';
import { hashParts, openUploadSource, type UploadInput, type UploadSource } from './upload-source.js';

/** idempotencyKey, partSize, concurrency, resumeUploadId and signal: as the upload core's options. */
export interface UploadModelOptions extends Pick<
  MultipartUploadOptions,
  'idempotencyKey' | 'partSize' | 'concurrency' | 'resumeUploadId' | 'signal'
> {
  /** Model name (created when missing) or id. */
  model: string;
  /** File name recorded on the version (default: the file's base name, or model.pt2). */
  filename?: string;
  /**
   * Folder of the automatic resume state (default $XDG_CACHE_HOME/kiln/uploads or ~/.cache/kiln/uploads);
   * false: no state file. Only file inputs are resumable across processes.
   */
  resumeStateDir?: string | false;
  onProgress?: (event: ProgressEvent) => void;
}

export interface UploadModelResult extends MultipartUploadResult {
  model: Model;
}

/**
 * Uploads a .pt2 through the presigned multipart protocol (docs/sdk.md) with the upload core
 * (./upload-core): parts stream from the file (memory stays flat) through node:http (client.putPart), and
 * the upload id is kept in a resume state file so that running the same upload again continues it.
 */
export async function uploadModel(
  client: KilnClient,
  input: UploadInput,
  opts: UploadModelOptions,
): Promise<UploadModelResult> {
  const signal = opts.signal;
  throwIfAborted(signal);
  const model = await client.ensureModel(opts.model, signal);
  const source = await openUploadSource(input, { filename: opts.filename, signal });
  try {
    const result = await multipartUpload(
      {
        api: client,
        source: {
          size: source.size,
          filename: source.filename,
          hashParts: (ranges, s) => hashParts(source, ranges, s),
        },
        sendPart: nodeSendPart(client, source),
        resume: resumeSlot(client, model, source, opts.resumeStateDir),
      },
      {
        modelId: model.id,
        idempotencyKey: opts.idempotencyKey,
        partSize: opts.partSize,
        concurrency: opts.concurrency,
        resumeUploadId: opts.resumeUploadId,
        onProgress: opts.onProgress,
        signal,
        retryPolicy: client.retryPolicy,
        onRetry: (what, err, attempt, delay) => client.reportRetry(what, err, attempt, delay),
      },
    );
    return { model, ...result };
  } finally {
    await source.close();
  }
}

/** Parts stream from the source through the client's part transport (node:http with backpressure by default). */
function nodeSendPart(client: KilnClient, source: UploadSource): SendPart {
  return async ({ url, headers, part, signal, onBytes }) => {
    const stream = source.partStream(part, onBytes);
    try {
      return await client.putPart({ url, headers, body: stream, signal });
    } catch (err) {
      stream.destroy();
      // Socket-level failures (ECONNRESET, ECONNREFUSED, ETIMEDOUT, ...) are transient; anything else is not.
      if (!signal.aborted && (err as NodeJS.ErrnoException).code !== undefined) {
        throw new KilnNetworkError(`PUT part ${part.partNumber}: ${(err as Error).message}`, { cause: err });
      }
      throw err;
    }
  };
}

/** The resume state file of this file (path, size, mtime) for this API and model; none for Buffers or streams. */
function resumeSlot(
  client: KilnClient,
  model: Model,
  source: UploadSource,
  dir: string | false | undefined,
): ResumeSlot | null {
  if (dir === false || source.mtimeMs === null || !source.path) return null;
  const store = new ResumeStore(dir ?? defaultResumeDir());
  const key = {
    baseUrl: client.baseUrl,
    modelId: model.id,
    path: source.path,
    size: source.size,
    mtimeMs: source.mtimeMs,
  };
  return {
    load: async () => (await store.load(key))?.uploadId ?? null,
    save: (uploadId) => store.save({ version: 1, uploadId, createdAt: new Date().toISOString(), ...key }),
    remove: () => store.remove(key),
  };
}
