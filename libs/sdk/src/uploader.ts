import {
  isTransient,
  KilnAbortError,
  KilnApiError,
  KilnNetworkError,
  KilnSdkError,
  KilnStorageError,
} from './errors.js';
import type { KilnClient } from './kiln-client.js';
import { canKeepStoredPart, nextUrlBatch, partRanges } from './part-plan.js';
import { type ProgressEvent, UploadProgress } from './progress.js';
import { defaultResumeDir, ResumeStore } from './resume-state.js';
import { abortableSleep, abortError, throwIfAborted, withRetry } from './retry.js';
import type { Model, ModelVersion, PresignedPart, UploadState } from './types.js';
import { type HashedPart, hashParts, openUploadSource, type UploadInput, type UploadSource } from './upload-source.js';

export interface UploadModelOptions {
  /** Model name (created when missing) or id. */
  model: string;
  /** File name recorded on the version (default: the file's base name, or model.pt2). */
  filename?: string;
  /** Sent as the upload's Idempotency-Key: repeating the call continues (or returns) the same upload. */
  idempotencyKey?: string;
  /** Part size in bytes (5 MiB..5 GiB); default: the server's (32 MiB, grown to fit 10 000 parts). */
  partSize?: number;
  /** Parts uploaded at once (default 4). */
  concurrency?: number;
  /** Continue this upload (from GET /v1/uploads/:id) instead of looking for resume state. */
  resumeUploadId?: string;
  /**
   * Folder of the automatic resume state (default $XDG_CACHE_HOME/kiln/uploads or ~/.cache/kiln/uploads);
   * false: no state file. Only file inputs are resumable across processes.
   */
  resumeStateDir?: string | false;
  onProgress?: (event: ProgressEvent) => void;
  /** Aborting cancels the upload on the server (its parts are dropped) and rejects with KilnAbortError. */
  signal?: AbortSignal;
}

export interface UploadModelResult {
  model: Model;
  version: ModelVersion;
  uploadId: string;
  /** An earlier, unfinished upload was continued. */
  resumed: boolean;
  /** The upload had already completed (same idempotency key): nothing was sent. */
  reused: boolean;
  partsSent: number;
  partsReused: number;
}

/** Most part URLs asked for in one request. */
const URL_BATCH = 32;
/** A presigned URL this close to expiring is asked for again rather than used. */
const URL_MARGIN_MS = 60_000;

/**
 * Uploads a .pt2 through the presigned multipart protocol (docs/sdk.md): create (or find) the upload,
 * hash the file once in order, PUT the parts S3 does not have yet straight to S3 in parallel (each URL
 * signed with its part's sha256, which S3 verifies), then complete with the file's sha256, which the API
 * checks while validating the archive. Memory stays flat: parts stream from the file.
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
  const store =
    opts.resumeStateDir !== false && source.mtimeMs !== null && source.path
      ? new ResumeStore(opts.resumeStateDir ?? defaultResumeDir())
      : null;
  const resumeKey = {
    baseUrl: client.baseUrl,
    modelId: model.id,
    path: source.path ?? '',
    size: source.size,
    mtimeMs: source.mtimeMs ?? 0,
  };
  let uploadId: string | null = null;
  let uploading = false;
  try {
    const { state, resumed } = await findOrCreateUpload(
      client,
      model,
      source,
      opts,
      store ? await store.load(resumeKey) : null,
    );
    uploadId = state.uploadId;
    if (state.status === 'completed' && state.version) {
      await store?.remove(resumeKey);
      opts.onProgress?.({ type: 'uploaded', versionId: state.version.id, sizeBytes: source.size, reused: true });
      return {
        model,
        version: state.version,
        uploadId,
        resumed,
        reused: true,
        partsSent: 0,
        partsReused: state.partCount,
      };
    }
    await store?.save({ version: 1, uploadId, createdAt: new Date().toISOString(), ...resumeKey });

    let version: ModelVersion;
    let sent = { partsSent: 0, partsReused: 0 };
    if (state.status === 'completing') {
      version = await awaitCompletion(client, uploadId, signal);
    } else {
      uploading = true;
      let current = state;
      for (let round = 0; ; round++) {
        const { sha256, partsSent, partsReused } = await sendParts(client, source, current, opts);
        sent = { partsSent: sent.partsSent + partsSent, partsReused: round === 0 ? partsReused : sent.partsReused };
        uploading = false;
        opts.onProgress?.({ type: 'upload-completing', uploadId });
        try {
          version = await complete(client, uploadId, sha256, signal);
          break;
        } catch (err) {
          // S3 lost or refused a part (rare): send what is missing once more.
          if (round === 0 && err instanceof KilnApiError && err.code === 'UPLOAD_INCOMPLETE') {
            uploading = true;
            current = await client.getUpload(uploadId, { signal });
            continue;
          }
          throw err;
        }
      }
    }
    await store?.remove(resumeKey);
    opts.onProgress?.({ type: 'uploaded', versionId: version.id, sizeBytes: source.size, reused: false });
    return { model, version, uploadId, resumed, reused: false, ...sent };
  } catch (err) {
    if (signal?.aborted) {
      // A deliberate cancel: drop the upload on the server (and its resume state), not just stop sending.
      if (uploadId && uploading) await client.abortUpload(uploadId).catch(() => undefined);
      await store?.remove(resumeKey);
      throw err instanceof KilnAbortError ? err : abortError(signal);
    }
    if (err instanceof KilnApiError && ['UPLOAD_EXPIRED', 'UPLOAD_ABORTED'].includes(err.code)) {
      await store?.remove(resumeKey);
    }
    throw err;
  } finally {
    await source.close();
  }
}

async function findOrCreateUpload(
  client: KilnClient,
  model: Model,
  source: UploadSource,
  opts: UploadModelOptions,
  saved: { uploadId: string } | null,
): Promise<{ state: UploadState; resumed: boolean }> {
  const signal = opts.signal;
  if (opts.resumeUploadId) {
    const state = await client.getUpload(opts.resumeUploadId, { signal });
    if (state.modelId !== model.id || state.sizeBytes !== source.size) {
      throw new KilnSdkError(
        `Upload ${state.uploadId} is for another model or another file size; it cannot be resumed with this file.`,
      );
    }
    assertUsable(state);
    return { state, resumed: true };
  }
  if (saved) {
    try {
      const state = await client.getUpload(saved.uploadId, { signal });
      // Same file (path, size, mtime): continue it, or reuse its version if it completed before we could
      // remove the state file.
      if (
        state.modelId === model.id &&
        state.sizeBytes === source.size &&
        ['uploading', 'completing', 'completed'].includes(state.status)
      ) {
        return { state, resumed: true };
      }
    } catch (err) {
      if (!(err instanceof KilnApiError && err.status === 404)) throw err;
    }
  }
  const { upload, created } = await client.createUpload(
    model.id,
    { filename: source.filename, sizeBytes: source.size, ...(opts.partSize ? { partSizeBytes: opts.partSize } : {}) },
    { idempotencyKey: opts.idempotencyKey, signal },
  );
  const state: UploadState = created
    ? { ...upload, parts: [], uploadedBytes: 0, version: null }
    : await client.getUpload(upload.uploadId, { signal });
  assertUsable(state);
  return { state, resumed: !created };
}

function assertUsable(state: UploadState): void {
  switch (state.status) {
    case 'uploading':
    case 'completing':
    case 'completed':
      if (state.checksumAlgorithm !== 'sha256') {
        throw new KilnSdkError(
          `Upload ${state.uploadId} uses ${state.checksumAlgorithm} part checksums; this SDK sends sha256.`,
        );
      }
      return;
    case 'failed':
      throw new KilnApiError(
        422,
        state.error?.code ?? 'INTERNAL',
        state.error?.message ?? 'The upload failed validation.',
      );
    case 'aborted':
      throw new KilnApiError(410, 'UPLOAD_ABORTED', `Upload ${state.uploadId} was aborted; start a new one.`);
    case 'expired':
      throw new KilnApiError(410, 'UPLOAD_EXPIRED', `Upload ${state.uploadId} expired; start a new one.`);
  }
}

/** A fixed-size buffer between the hashing pass (producer) and the part uploaders (consumers). */
class PartQueue {
  private readonly items: HashedPart[] = [];
  private closed = false;
  private failure: Error | null = null;
  private waiters: (() => void)[] = [];

  constructor(private readonly capacity: number) {}

  get waiting(): readonly HashedPart[] {
    return this.items;
  }

  async push(item: HashedPart): Promise<void> {
    while (this.items.length >= this.capacity && !this.failure) await this.changed();
    if (this.failure) throw this.failure;
    this.items.push(item);
    this.notify();
  }

  async take(): Promise<HashedPart | undefined> {
    for (;;) {
      if (this.failure) throw this.failure;
      const item = this.items.shift();
      if (item) {
        this.notify();
        return item;
      }
      if (this.closed) return undefined;
      await this.changed();
    }
  }

  close(): void {
    this.closed = true;
    this.notify();
  }

  fail(err: unknown): void {
    this.failure ??= err instanceof Error ? err : new Error(String(err));
    this.notify();
  }

  private changed(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

/** Presigned part URLs, asked for in batches and reused until shortly before they expire. */
class PartUrlBroker {
  private readonly cache = new Map<number, PresignedPart>();
  private readonly pending = new Map<number, Promise<unknown>>();

  constructor(
    private readonly client: KilnClient,
    private readonly uploadId: string,
    private readonly signal: AbortSignal,
  ) {}

  async get(part: HashedPart, waiting: readonly HashedPart[]): Promise<PresignedPart> {
    for (;;) {
      const cached = this.cache.get(part.partNumber);
      if (cached && Date.parse(cached.expiresAt) - Date.now() > URL_MARGIN_MS) return cached;
      const inFlight = this.pending.get(part.partNumber);
      if (inFlight) {
        await inFlight;
        if (this.cache.has(part.partNumber)) continue;
      }
      const byNumber = new Map([part, ...waiting].map((p) => [p.partNumber, p]));
      const eligible = [...byNumber.keys()].filter(
        (n) => n === part.partNumber || (!this.cache.has(n) && !this.pending.has(n)),
      );
      const batch = nextUrlBatch(part.partNumber, eligible, URL_BATCH).map((n) => byNumber.get(n)!);
      const request = this.client
        .requestPartUrls(
          this.uploadId,
          batch.map((p) => ({ partNumber: p.partNumber, sha256: p.sha256 })),
          { signal: this.signal },
        )
        .then((res) => {
          for (const url of res.parts) this.cache.set(url.partNumber, url);
        })
        .finally(() => {
          for (const p of batch) this.pending.delete(p.partNumber);
        });
      for (const p of batch) this.pending.set(p.partNumber, request);
      await request;
      const got = this.cache.get(part.partNumber);
      if (!got) throw new KilnSdkError(`The API returned no URL for part ${part.partNumber}.`);
      return got;
    }
  }

  invalidate(partNumber: number): void {
    this.cache.delete(partNumber);
  }
}

async function sendParts(
  client: KilnClient,
  source: UploadSource,
  state: UploadState,
  opts: UploadModelOptions,
): Promise<{ sha256: string; partsSent: number; partsReused: number }> {
  const concurrency = Math.max(1, Math.min(opts.concurrency ?? 4, 32));
  const ranges = partRanges(source.size, state.partSize, state.partCount);
  const stored = new Map(state.parts.map((p) => [p.partNumber, p]));
  const progress = new UploadProgress(source.size, state.partCount);
  // One failing part stops the others at once (the user's signal does too).
  const stop = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, stop.signal]) : stop.signal;
  const emit = (): void =>
    opts.onProgress?.({
      type: 'upload',
      uploadId: state.uploadId,
      uploadedBytes: progress.uploadedBytes,
      totalBytes: source.size,
      partsDone: progress.partsDone,
      partCount: state.partCount,
      resumedBytes: progress.resumedBytes,
    });
  emit();

  const queue = new PartQueue(concurrency * 2);
  const broker = new PartUrlBroker(client, state.uploadId, signal);
  let wholeSha256 = '';
  let partsSent = 0;
  let partsReused = 0;

  const produce = async (): Promise<void> => {
    const hashing = hashParts(source, ranges, signal);
    for (;;) {
      const next = await hashing.next();
      if (next.done) {
        wholeSha256 = next.value;
        queue.close();
        return;
      }
      const part = next.value;
      if (canKeepStoredPart(stored.get(part.partNumber), { size: part.size, sha256: part.sha256 })) {
        progress.partAlreadyStored(part.size);
        partsReused++;
        emit();
        continue;
      }
      await queue.push(part);
    }
  };

  const consume = async (): Promise<void> => {
    for (;;) {
      const part = await queue.take();
      if (!part) return;
      await putPart(client, source, part, broker, () => queue.waiting, progress, emit, signal);
      partsSent++;
    }
  };

  const fail = (err: unknown): never => {
    queue.fail(err);
    stop.abort(err);
    throw err;
  };
  const results = await Promise.allSettled([
    produce().catch(fail),
    ...Array.from({ length: concurrency }, () => consume().catch(fail)),
  ]);
  const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (rejected) {
    if (opts.signal?.aborted) throw abortError(opts.signal);
    // The first failure, not the "stopped" echoes of the other workers.
    const first: unknown = stop.signal.reason ?? rejected.reason;
    throw first;
  }
  return { sha256: wholeSha256, partsSent, partsReused };
}

async function putPart(
  client: KilnClient,
  source: UploadSource,
  part: HashedPart,
  broker: PartUrlBroker,
  waiting: () => readonly HashedPart[],
  progress: UploadProgress,
  emit: () => void,
  signal: AbortSignal,
): Promise<void> {
  await withRetry(
    async () => {
      const url = await broker.get(part, waiting());
      const stream = source.partStream(part, (n) => {
        progress.partSent(part.partNumber, n);
        emit();
      });
      let res: { status: number; text: string };
      try {
        res = await client.putPart({ url: url.url, headers: url.headers, body: stream, signal });
      } catch (err) {
        stream.destroy();
        progress.partFailed(part.partNumber);
        if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : abortError(signal);
        // Socket-level failures (ECONNRESET, ECONNREFUSED, ETIMEDOUT, ...) are transient; anything else is not.
        if ((err as NodeJS.ErrnoException).code !== undefined) {
          throw new KilnNetworkError(`PUT part ${part.partNumber}: ${(err as Error).message}`, { cause: err });
        }
        throw err;
      }
      if (res.status < 200 || res.status >= 300) {
        progress.partFailed(part.partNumber);
        const text = res.text;
        const s3Code = /<Code>([^<]+)<\/Code>/.exec(text)?.[1] ?? `HTTP_${res.status}`;
        const s3Message = /<Message>([^<]+)<\/Message>/.exec(text)?.[1] ?? text.slice(0, 200);
        if (res.status === 403 && /expired/i.test(s3Message)) {
          broker.invalidate(part.partNumber);
          throw new KilnStorageError(
            403,
            'ExpiredPresignedUrl',
            `part ${part.partNumber}: the URL expired; asking for a new one`,
          );
        }
        throw new KilnStorageError(
          res.status,
          s3Code,
          s3Code === 'BadDigest'
            ? `S3 refused part ${part.partNumber}: its bytes do not match their sha256 (did the file change while uploading?)`
            : `S3 refused part ${part.partNumber}: ${res.status} ${s3Code} ${s3Message}`,
        );
      }
      progress.partDone(part.partNumber, part.size);
      emit();
    },
    {
      policy: client.retryPolicy,
      signal,
      retryable: (err) => isTransient(err) || (err instanceof KilnStorageError && err.s3Code === 'ExpiredPresignedUrl'),
      onRetry: (err, attempt, delay) => client.reportRetry(`PUT part ${part.partNumber}`, err, attempt, delay),
    },
  );
}

/** Completes the upload; while another request is completing it (a retry after a lost answer), waits. */
async function complete(
  client: KilnClient,
  uploadId: string,
  sha256: string,
  signal?: AbortSignal,
): Promise<ModelVersion> {
  try {
    // Validating a multi-GB archive takes a while (about 1 s per 200 MB here).
    return await client.completeUpload(uploadId, sha256 ? { sha256 } : {}, { signal, timeoutMs: 60 * 60_000 });
  } catch (err) {
    if (err instanceof KilnApiError && err.code === 'UPLOAD_COMPLETING')
      return awaitCompletion(client, uploadId, signal);
    throw err;
  }
}

async function awaitCompletion(client: KilnClient, uploadId: string, signal?: AbortSignal): Promise<ModelVersion> {
  for (;;) {
    const state = await client.getUpload(uploadId, { signal });
    if (state.status === 'completed' && state.version) return state.version;
    if (state.status !== 'completing') {
      if (state.status === 'uploading') return complete(client, uploadId, '', signal);
      assertUsable(state);
    }
    await abortableSleep(2000, signal);
  }
}
