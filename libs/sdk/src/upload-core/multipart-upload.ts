import {
  isTransient,
  KilnAbortError,
  KilnApiError,
  KilnNetworkError,
  KilnSdkError,
  KilnStorageError,
  KilnStorageUnreachableError,
} from '../errors.js';
import {
  abortableSleep,
  abortError,
  DEFAULT_RETRY_POLICY,
  throwIfAborted,
  withRetry,
  type RetryPolicy,
} from '../retry.js';
import type {
  CreateUploadRequest,
  ModelVersion,
  PartChecksum,
  PartUrls,
  PresignedPart,
  Upload,
  UploadState,
} from '../types.js';
import { canKeepStoredPart, type HashedPart, nextUrlBatch, type PartRange, partRanges } from './part-plan.js';
import { type MultipartUploadEvent, UploadProgress } from './progress.js';

/**
 * The presigned multipart protocol (docs/sdk.md), once for the Node SDK and the dashboard. What differs by
 * environment is passed in: the API calls, where the bytes come from (a file on disk, a browser File), how a
 * part is PUT (node:http with backpressure, XHR for upload progress), and where resume state is kept.
 * Nothing here imports a `node:` module (upload-core.spec.ts checks), so the dashboard bundles it as it is.
 */

/** The Kiln API calls the flow makes. KilnClient has them; the dashboard adapts its ApiClient. */
export interface UploadApi {
  createUpload(
    modelId: string,
    body: CreateUploadRequest,
    o: { idempotencyKey?: string; signal?: AbortSignal },
  ): Promise<{ upload: Upload; created: boolean }>;
  getUpload(uploadId: string, o: { signal?: AbortSignal }): Promise<UploadState>;
  requestPartUrls(uploadId: string, parts: PartChecksum[], o: { signal?: AbortSignal }): Promise<PartUrls>;
  completeUpload(
    uploadId: string,
    body: { sha256?: string },
    o: { signal?: AbortSignal; timeoutMs?: number },
  ): Promise<ModelVersion>;
  abortUpload(uploadId: string): Promise<unknown>;
}

/** The bytes being uploaded. */
export interface PartSource {
  readonly size: number;
  /** File name recorded on the version. */
  readonly filename: string;
  /**
   * One sequential pass: yields each part with its base64 sha256 (what its URL is signed with) as soon as it is
   * hashed, only as fast as the flow pulls; returns the whole file's hex sha256, or '' where the environment
   * cannot hash incrementally (the API then checks the archive without it).
   */
  hashParts(ranges: readonly PartRange[], signal: AbortSignal): AsyncGenerator<HashedPart, string>;
}

export interface PartPut {
  url: string;
  /** Exactly the headers the API returned with the URL (content-length and the checksum are signed). */
  headers: Record<string, string>;
  part: HashedPart;
  signal: AbortSignal;
  /** Called with each run of bytes sent (not a running total). */
  onBytes: (n: number) => void;
}

/**
 * PUTs one part's bytes to its presigned URL and resolves with any HTTP answer (S3's XML error text on failure).
 * Rejects with KilnNetworkError when no answer came at all, so the flow can tell that from a bug.
 */
export type SendPart = (put: PartPut) => Promise<{ status: number; text: string }>;

/** Where the id of an unfinished upload of this same input is kept between runs (the Node SDK: a file). */
export interface ResumeSlot {
  load(): Promise<string | null>;
  save(uploadId: string): Promise<void>;
  remove(): Promise<void>;
}

export interface MultipartUploadOptions {
  modelId: string;
  /** Sent as the upload's Idempotency-Key: repeating the call continues (or returns) the same upload. */
  idempotencyKey?: string;
  /** Part size in bytes (5 MiB..5 GiB); default: the server's (32 MiB, grown to fit 10 000 parts). */
  partSize?: number;
  /** Parts uploaded at once (default 4, at most 32). */
  concurrency?: number;
  /** Continue this upload (from GET /v1/uploads/:id) instead of looking in the resume slot. */
  resumeUploadId?: string;
  onProgress?: (event: MultipartUploadEvent) => void;
  /** Told before each part is hashed (the dashboard shows it: hashing a large part takes a moment). */
  onHashing?: (partNumber: number, partCount: number) => void;
  /** Aborting cancels the upload on the server (its parts are dropped) and rejects with KilnAbortError. */
  signal?: AbortSignal;
  /** Retries of a part PUT (default DEFAULT_RETRY_POLICY). */
  retryPolicy?: RetryPolicy;
  onRetry?: (what: string, err: unknown, attempt: number, delayMs: number) => void;
  /**
   * When the first PUT gets no answer and no part is stored yet: `retry` it like any network failure (default),
   * or `give-up`: abort the upload and reject with KilnStorageUnreachableError, so the caller can take another
   * route without having sent a byte twice.
   */
  unreachableStorage?: 'retry' | 'give-up';
}

export interface MultipartUploadResult {
  version: ModelVersion;
  uploadId: string;
  /** An earlier, unfinished upload was continued. */
  resumed: boolean;
  /** The upload had already completed (same idempotency key): nothing was sent. */
  reused: boolean;
  partsSent: number;
  partsReused: number;
}

export interface UploadEnvironment {
  api: UploadApi;
  source: PartSource;
  sendPart: SendPart;
  resume?: ResumeSlot | null;
}

/** Most part URLs asked for in one request. */
const URL_BATCH = 32;
/** A presigned URL this close to expiring is asked for again rather than used. */
const URL_MARGIN_MS = 60_000;

/** The API's error code of `err`, from the SDK's KilnApiError or the dashboard's ApiError alike. */
export function apiErrorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const { status, code } = err as { status?: unknown; code?: unknown };
  return typeof status === 'number' && typeof code === 'string' ? code : undefined;
}

/**
 * Create (or find) the upload, hash the bytes once in order, PUT the parts S3 does not have yet straight to S3
 * in parallel (each URL signed with its part's sha256, which S3 verifies), then complete (with the file's
 * sha256 where the source has it), which the API checks while validating the archive.
 */
export async function multipartUpload(
  env: UploadEnvironment,
  opts: MultipartUploadOptions,
): Promise<MultipartUploadResult> {
  const { api, source } = env;
  const resume = env.resume ?? null;
  const signal = opts.signal;
  throwIfAborted(signal);
  let uploadId: string | null = null;
  let uploading = false;
  try {
    const { state, resumed } = await findOrCreateUpload(api, source, opts, resume ? await resume.load() : null);
    uploadId = state.uploadId;
    if (state.status === 'completed' && state.version) {
      await resume?.remove();
      opts.onProgress?.({ type: 'uploaded', versionId: state.version.id, sizeBytes: source.size, reused: true });
      return {
        version: state.version,
        uploadId,
        resumed,
        reused: true,
        partsSent: 0,
        partsReused: state.partCount,
      };
    }
    await resume?.save(uploadId);

    let version: ModelVersion;
    let sent = { partsSent: 0, partsReused: 0 };
    if (state.status === 'completing') {
      version = await awaitCompletion(api, uploadId, signal);
    } else {
      uploading = true;
      let current = state;
      for (let round = 0; ; round++) {
        const { sha256, partsSent, partsReused } = await sendParts(env, current, opts);
        sent = { partsSent: sent.partsSent + partsSent, partsReused: round === 0 ? partsReused : sent.partsReused };
        uploading = false;
        opts.onProgress?.({ type: 'upload-completing', uploadId });
        try {
          version = await complete(api, uploadId, sha256, signal);
          break;
        } catch (err) {
          // S3 lost or refused a part (rare): send what is missing once more.
          if (round === 0 && apiErrorCode(err) === 'UPLOAD_INCOMPLETE') {
            uploading = true;
            current = await api.getUpload(uploadId, { signal });
            continue;
          }
          throw err;
        }
      }
    }
    await resume?.remove();
    opts.onProgress?.({ type: 'uploaded', versionId: version.id, sizeBytes: source.size, reused: false });
    return { version, uploadId, resumed, reused: false, ...sent };
  } catch (err) {
    if (signal?.aborted) {
      // A deliberate cancel: drop the upload on the server (and its resume state), not just stop sending.
      if (uploadId && uploading) await api.abortUpload(uploadId).catch(() => undefined);
      await resume?.remove();
      throw err instanceof KilnAbortError ? err : abortError(signal);
    }
    if (err instanceof KilnStorageUnreachableError) {
      // The caller takes another route: this upload will never be completed.
      if (uploadId) await api.abortUpload(uploadId).catch(() => undefined);
      await resume?.remove();
    }
    const code = apiErrorCode(err);
    if (code === 'UPLOAD_EXPIRED' || code === 'UPLOAD_ABORTED') await resume?.remove();
    throw err;
  }
}

async function findOrCreateUpload(
  api: UploadApi,
  source: PartSource,
  opts: MultipartUploadOptions,
  savedUploadId: string | null,
): Promise<{ state: UploadState; resumed: boolean }> {
  const signal = opts.signal;
  if (opts.resumeUploadId) {
    const state = await api.getUpload(opts.resumeUploadId, { signal });
    if (state.modelId !== opts.modelId || state.sizeBytes !== source.size) {
      throw new KilnSdkError(
        `Upload ${state.uploadId} is for another model or another file size; it cannot be resumed with this file.`,
      );
    }
    assertUsable(state);
    return { state, resumed: true };
  }
  if (savedUploadId) {
    try {
      const state = await api.getUpload(savedUploadId, { signal });
      // Same input (the slot is keyed by it): continue it, or reuse its version if it completed before the
      // slot could be cleared.
      if (
        state.modelId === opts.modelId &&
        state.sizeBytes === source.size &&
        ['uploading', 'completing', 'completed'].includes(state.status)
      ) {
        return { state, resumed: true };
      }
    } catch (err) {
      if ((err as { status?: unknown }).status !== 404) throw err;
    }
  }
  const { upload, created } = await api.createUpload(
    opts.modelId,
    { filename: source.filename, sizeBytes: source.size, ...(opts.partSize ? { partSizeBytes: opts.partSize } : {}) },
    { idempotencyKey: opts.idempotencyKey, signal },
  );
  const state: UploadState = created
    ? { ...upload, parts: [], uploadedBytes: 0, version: null }
    : await api.getUpload(upload.uploadId, { signal });
  assertUsable(state);
  return { state, resumed: !created };
}

/** Throws unless the upload can be continued or reused (its status, and the checksum this flow sends). */
export function assertUsable(state: UploadState): void {
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
    private readonly api: UploadApi,
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
      const request = this.api
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

/** What the part uploaders share. */
interface PartRun {
  env: UploadEnvironment;
  opts: MultipartUploadOptions;
  broker: PartUrlBroker;
  waiting: () => readonly HashedPart[];
  progress: UploadProgress;
  emit: () => void;
  signal: AbortSignal;
  /** Some part of this upload is on S3 (sent now, or kept from before). */
  anyPartStored: boolean;
}

async function sendParts(
  env: UploadEnvironment,
  state: UploadState,
  opts: MultipartUploadOptions,
): Promise<{ sha256: string; partsSent: number; partsReused: number }> {
  const { source } = env;
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
  const run: PartRun = {
    env,
    opts,
    broker: new PartUrlBroker(env.api, state.uploadId, signal),
    waiting: () => queue.waiting,
    progress,
    emit,
    signal,
    anyPartStored: state.parts.length > 0,
  };
  let wholeSha256 = '';
  let partsSent = 0;
  let partsReused = 0;

  const produce = async (): Promise<void> => {
    const hashing = source.hashParts(ranges, signal);
    for (let hashed = 0; ; hashed++) {
      if (hashed < ranges.length) opts.onHashing?.(ranges[hashed].partNumber, state.partCount);
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
      await putPart(run, part);
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

async function putPart(run: PartRun, part: HashedPart): Promise<void> {
  const { progress, signal, broker } = run;
  await withRetry(
    async () => {
      const url = await broker.get(part, run.waiting());
      let res: { status: number; text: string };
      try {
        res = await run.env.sendPart({
          url: url.url,
          headers: url.headers,
          part,
          signal,
          onBytes: (n) => {
            progress.partSent(part.partNumber, n);
            run.emit();
          },
        });
      } catch (err) {
        progress.partFailed(part.partNumber);
        if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : abortError(signal);
        if (err instanceof KilnNetworkError && !run.anyPartStored && run.opts.unreachableStorage === 'give-up') {
          throw new KilnStorageUnreachableError(err.message, { cause: err });
        }
        throw err;
      }
      if (res.status < 200 || res.status >= 300) {
        progress.partFailed(part.partNumber);
        const error = storageError(part.partNumber, res.status, res.text);
        if (error.s3Code === 'ExpiredPresignedUrl') broker.invalidate(part.partNumber);
        throw error;
      }
      run.anyPartStored = true;
      progress.partDone(part.partNumber, part.size);
      run.emit();
    },
    {
      policy: run.opts.retryPolicy ?? DEFAULT_RETRY_POLICY,
      signal,
      retryable: (err) => isTransient(err) || (err instanceof KilnStorageError && err.s3Code === 'ExpiredPresignedUrl'),
      onRetry: (err, attempt, delay) => run.opts.onRetry?.(`PUT part ${part.partNumber}`, err, attempt, delay),
    },
  );
}

/**
 * S3's refusal of a part as a KilnStorageError: its XML Code and Message; a 403 that says the URL expired
 * becomes `ExpiredPresignedUrl` (the part is signed again and retried), a BadDigest says what it means.
 */
export function storageError(partNumber: number, status: number, text: string): KilnStorageError {
  const s3Code = /<Code>([^<]+)<\/Code>/.exec(text)?.[1] ?? `HTTP_${status}`;
  const s3Message = /<Message>([^<]+)<\/Message>/.exec(text)?.[1] ?? text.slice(0, 200);
  if (status === 403 && /expired/i.test(s3Message)) {
    return new KilnStorageError(
      403,
      'ExpiredPresignedUrl',
      `part ${partNumber}: the URL expired; asking for a new one`,
    );
  }
  return new KilnStorageError(
    status,
    s3Code,
    s3Code === 'BadDigest'
      ? `S3 refused part ${partNumber}: its bytes do not match their sha256 (did the file change while uploading?)`
      : `S3 refused part ${partNumber}: ${status} ${s3Code} ${s3Message}`,
  );
}

/** Completes the upload; while another request is completing it (a retry after a lost answer), waits. */
async function complete(api: UploadApi, uploadId: string, sha256: string, signal?: AbortSignal): Promise<ModelVersion> {
  try {
    // Validating a multi-GB archive takes a while (about 1 s per 200 MB here).
    return await api.completeUpload(uploadId, sha256 ? { sha256 } : {}, { signal, timeoutMs: 60 * 60_000 });
  } catch (err) {
    if (apiErrorCode(err) === 'UPLOAD_COMPLETING') return awaitCompletion(api, uploadId, signal);
    throw err;
  }
}

async function awaitCompletion(api: UploadApi, uploadId: string, signal?: AbortSignal): Promise<ModelVersion> {
  for (;;) {
    const state = await api.getUpload(uploadId, { signal });
    if (state.status === 'completed' && state.version) return state.version;
    if (state.status !== 'completing') {
      if (state.status === 'uploading') return complete(api, uploadId, '', signal);
      assertUsable(state);
    }
    await abortableSleep(2000, signal);
  }
}
