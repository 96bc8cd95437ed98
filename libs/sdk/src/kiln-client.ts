import { EventSourceParserStream } from 'eventsource-parser/stream';
import { randomUUID } from 'node:crypto';
import {
  compileRemote,
  type CompileRemoteOptions,
  type CompileRemoteResult,
  waitForCompilation,
  type WaitOptions,
} from './compile-remote.js';
import { downloadArtifact, type DownloadOptions, type DownloadResult } from './download.js';
import { KilnAbortError, KilnApiError, KilnNetworkError } from './errors.js';
import { httpPutPart, type PartTransport } from './part-transport.js';
import { DEFAULT_RETRY_POLICY, parseRetryAfter, type RetryPolicy, withRetry } from './retry.js';
import { type RouteName, ROUTES, routePath } from './routes.js';
import type {
  ApiKeySummary,
  ApiKeyWithSecret,
  Artifact,
  ArtifactDownload,
  BuildLog,
  Channel,
  ChannelMove,
  Compilation,
  CompilationEvent,
  AuditEventPage,
  RetentionPolicy,
  RetentionRun,
  CreatedWebhook,
  Webhook,
  WebhookDelivery,
  WebhookEventType,
  CreateApiKeyRequest,
  DeletionResult,
  UpdateApiKeyRequest,
  CreateModelRequest,
  CreateUploadRequest,
  ErrorBody,
  EventsToken,
  FleetView,
  Health,
  Model,
  ModelVersion,
  PartChecksum,
  PartUrls,
  Resolution,
  ResolveRequest,
  RotatedApiKey,
  Rollout,
  SigningKey,
  StartRolloutRequest,
  Target,
  TelemetryAck,
  TelemetryBatch,
  Upload,
  UploadState,
} from './types.js';
import { uploadModel, type UploadModelOptions, type UploadModelResult } from './uploader.js';
import type { UploadInput } from './upload-source.js';
import type { ProgressEvent } from './progress.js';

export interface KilnClientOptions {
  /** The API's base URL, e.g. https://kiln.example.com or http://127.0.0.1:3000. */
  baseUrl: string;
  /** A tenant API key (`kiln_...`); device tokens (`kdev_...`) may only resolve and download. */
  apiKey: string;
  /** fetch implementation for API calls and downloads (default: the global one). */
  fetch?: typeof fetch;
  /** How upload parts are PUT to S3 (default: httpPutPart, node:http with backpressure). */
  putPart?: PartTransport;
  /** Retries of transient failures (network, 429, 502/503/504); `{ retries: 0 }` turns them off. */
  retry?: Partial<RetryPolicy>;
  /** Time limit of one API request (not of part uploads or downloads). Default 120 s. */
  requestTimeoutMs?: number;
  /** Told about each retry (the CLI logs them). */
  onRetry?: (event: Extract<ProgressEvent, { type: 'retry' }>) => void;
}

export interface RequestOptions {
  params?: Record<string, string>;
  query?: Record<string, string | undefined>;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Retry transient failures (default true; every SDK call is idempotent or keyed). */
  retry?: boolean;
  timeoutMs?: number;
}

/**
 * A typed client of the whole Kiln API (routes in ./routes.ts), plus the workflows built on it:
 * `compileRemote()` (upload any size, compile, wait, collect artifacts), `uploadModel()`, `download()`.
 * Errors are KilnApiError (with the server's `code`), KilnNetworkError, KilnStorageError, KilnAbortError.
 */
export class KilnClient {
  readonly baseUrl: string;
  readonly fetch: typeof fetch;
  readonly putPart: PartTransport;
  readonly retryPolicy: RetryPolicy;
  private readonly apiKey: string;
  private readonly requestTimeoutMs: number;
  private readonly onRetry?: KilnClientOptions['onRetry'];

  constructor(opts: KilnClientOptions) {
    if (!opts.baseUrl) throw new TypeError('KilnClient needs a baseUrl');
    if (!opts.apiKey) throw new TypeError('KilnClient needs an apiKey');
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
    this.apiKey = opts.apiKey;
    this.fetch = opts.fetch ?? globalThis.fetch;
    this.putPart = opts.putPart ?? httpPutPart;
    this.retryPolicy = { ...DEFAULT_RETRY_POLICY, ...opts.retry };
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 120_000;
    this.onRetry = opts.onRetry;
  }

  // --- the workflows -------------------------------------------------------------------------------------

  /** Upload (presigned multipart, resumable), compile for `targets`, and (by default) wait for the results. */
  compileRemote(input: UploadInput, options: CompileRemoteOptions): Promise<CompileRemoteResult> {
    return compileRemote(this, input, options);
  }

  /** Upload a .pt2 as a new version of `model` (created if missing) through a presigned multipart upload. */
  uploadModel(input: UploadInput, options: UploadModelOptions): Promise<UploadModelResult> {
    return uploadModel(this, input, options);
  }

  /** Poll a compilation until it ends, reporting per-target changes. */
  waitForCompilation(compilationId: string, options: WaitOptions = {}): Promise<Compilation> {
    return waitForCompilation(this, compilationId, options);
  }

  /** Download an artifact's parts into `destDir` (sha256-verified), and assemble the loadable package. */
  download(artifactId: string, destDir: string, options: DownloadOptions = {}): Promise<DownloadResult> {
    return downloadArtifact(this, artifactId, destDir, options);
  }

  /** The model with this name (or id), created when missing. */
  async ensureModel(nameOrId: string, signal?: AbortSignal): Promise<Model> {
    const find = async (): Promise<Model | undefined> =>
      (await this.listModels({ signal })).find((m) => m.id === nameOrId || m.name === nameOrId);
    const existing = await find();
    if (existing) return existing;
    try {
      return await this.createModel({ name: nameOrId }, { signal });
    } catch (err) {
      // Created by a concurrent caller between our look and our create.
      if (err instanceof KilnApiError && err.code === 'CONFLICT') {
        const now = await find();
        if (now) return now;
      }
      throw err;
    }
  }

  // --- resources (one method per route) ------------------------------------------------------------------

  health(o: Pick<RequestOptions, 'signal'> = {}): Promise<Health> {
    return this.call('health', o);
  }
  listTargets(o: Pick<RequestOptions, 'signal'> = {}): Promise<Target[]> {
    return this.call('listTargets', o);
  }
  createModel(body: CreateModelRequest, o: Pick<RequestOptions, 'signal'> = {}): Promise<Model> {
    return this.call('createModel', { ...o, body });
  }
  listModels(o: Pick<RequestOptions, 'signal'> = {}): Promise<Model[]> {
    return this.call('listModels', o);
  }
  getModel(modelId: string, o: Pick<RequestOptions, 'signal'> = {}): Promise<Model> {
    return this.call('getModel', { ...o, params: { modelId } });
  }
  /** The direct upload: the whole .pt2 in one request (small files; use uploadModel for large ones). */
  uploadVersion(
    modelId: string,
    bytes: Buffer,
    o: { filename?: string; signal?: AbortSignal } = {},
  ): Promise<ModelVersion> {
    return this.call('uploadVersion', {
      signal: o.signal,
      params: { modelId },
      query: { filename: o.filename },
      body: bytes,
      headers: { 'content-type': 'application/octet-stream' },
    });
  }
  listVersions(modelId: string, o: Pick<RequestOptions, 'signal'> = {}): Promise<ModelVersion[]> {
    return this.call('listVersions', { ...o, params: { modelId } });
  }
  getVersion(versionId: string, o: Pick<RequestOptions, 'signal'> = {}): Promise<ModelVersion> {
    return this.call('getVersion', { ...o, params: { versionId } });
  }
  async createUpload(
    modelId: string,
    body: CreateUploadRequest,
    o: { idempotencyKey?: string; signal?: AbortSignal } = {},
  ): Promise<{ upload: Upload; created: boolean }> {
    const res = await this.request<Upload>('createUpload', {
      signal: o.signal,
      params: { modelId },
      body,
      headers: o.idempotencyKey ? { 'idempotency-key': o.idempotencyKey } : {},
    });
    return { upload: res.body, created: res.status === 201 };
  }
  getUpload(uploadId: string, o: Pick<RequestOptions, 'signal'> = {}): Promise<UploadState> {
    return this.call('getUpload', { ...o, params: { uploadId } });
  }
  requestPartUrls(uploadId: string, parts: PartChecksum[], o: Pick<RequestOptions, 'signal'> = {}): Promise<PartUrls> {
    return this.call('requestPartUrls', { ...o, params: { uploadId }, body: { parts } });
  }
  completeUpload(
    uploadId: string,
    body: { sha256?: string } = {},
    o: Pick<RequestOptions, 'signal' | 'timeoutMs'> = {},
  ): Promise<ModelVersion> {
    return this.call('completeUpload', { ...o, params: { uploadId }, body });
  }
  abortUpload(uploadId: string, o: Pick<RequestOptions, 'signal'> = {}): Promise<Upload> {
    return this.call('abortUpload', { ...o, params: { uploadId } });
  }
  /**
   * With an idempotency key, repeating the call returns the same compilation (`created: false`). `reproduce`: build
   * each target twice and compare the parts (BUILD_NOT_REPRODUCIBLE when they differ; cached targets are not checked).
   */
  async createCompilation(
    versionId: string,
    targets: string[],
    o: { idempotencyKey?: string; signal?: AbortSignal; reproduce?: boolean } = {},
  ): Promise<{ compilation: Compilation; created: boolean }> {
    const res = await this.request<Compilation>('createCompilation', {
      signal: o.signal,
      params: { versionId },
      body: { targets, ...(o.reproduce ? { reproduce: true } : {}) },
      headers: o.idempotencyKey ? { 'idempotency-key': o.idempotencyKey } : {},
    });
    return { compilation: res.body, created: res.status === 201 };
  }
  listCompilations(o: { versionId?: string; signal?: AbortSignal } = {}): Promise<Compilation[]> {
    return this.call('listCompilations', { signal: o.signal, query: { versionId: o.versionId } });
  }
  getCompilation(compilationId: string, o: Pick<RequestOptions, 'signal'> = {}): Promise<Compilation> {
    return this.call('getCompilation', { ...o, params: { compilationId } });
  }
  getBuildLog(compilationId: string, targetId: string, o: Pick<RequestOptions, 'signal'> = {}): Promise<BuildLog> {
    return this.call('getBuildLog', { ...o, params: { compilationId, targetId } });
  }
  cancelCompilation(compilationId: string, o: Pick<RequestOptions, 'signal'> = {}): Promise<Compilation> {
    return this.call('cancelCompilation', { ...o, params: { compilationId } });
  }
  /** A short-lived token that opens this compilation's event stream without the key (EventSource, browsers). */
  createEventsToken(compilationId: string, o: Pick<RequestOptions, 'signal'> = {}): Promise<EventsToken> {
    return this.call('createEventsToken', { ...o, params: { compilationId } });
  }
  /**
   * The compilation's server-sent events: `compilation` (the full compilation) on every status or phase
   * change, then `end`. The iterator finishes when the server ends the stream (or the signal fires).
   */
  async *streamCompilationEvents(
    compilationId: string,
    o: Pick<RequestOptions, 'signal'> = {},
  ): AsyncGenerator<CompilationEvent> {
    const url = this.baseUrl + routePath('streamCompilationEvents', { compilationId });
    let res: Response;
    try {
      res = await this.fetch(url, {
        headers: { authorization: `Bearer ${this.apiKey}`, accept: 'text/event-stream' },
        signal: o.signal,
      });
    } catch (err) {
      if (o.signal?.aborted) throw new KilnAbortError(undefined, { cause: err });
      throw new KilnNetworkError(`GET ${new URL(url).pathname}: ${describe(err)}`, { cause: err });
    }
    if (!res.ok || !res.body) throw apiError(res, await res.text(), `GET ${new URL(url).pathname}`);
    yield* parseServerSentEvents(res.body);
  }
  listArtifacts(versionId: string, o: Pick<RequestOptions, 'signal'> = {}): Promise<Artifact[]> {
    return this.call('listArtifacts', { ...o, params: { versionId } });
  }
  getArtifact(artifactId: string, o: Pick<RequestOptions, 'signal'> = {}): Promise<Artifact> {
    return this.call('getArtifact', { ...o, params: { artifactId } });
  }
  getArtifactDownload(artifactId: string, o: Pick<RequestOptions, 'signal'> = {}): Promise<ArtifactDownload> {
    return this.call('getArtifactDownload', { ...o, params: { artifactId } });
  }
  listChannels(modelId: string, o: Pick<RequestOptions, 'signal'> = {}): Promise<Channel[]> {
    return this.call('listChannels', { ...o, params: { modelId } });
  }
  moveChannel(
    modelId: string,
    name: string,
    to: { versionId: string } | { version: number },
    o: Pick<RequestOptions, 'signal'> = {},
  ): Promise<Channel> {
    return this.call('moveChannel', { ...o, params: { modelId, name }, body: to });
  }
  getChannelHistory(modelId: string, name: string, o: Pick<RequestOptions, 'signal'> = {}): Promise<ChannelMove[]> {
    return this.call('getChannelHistory', { ...o, params: { modelId, name } });
  }
  /** The artifact a device with this fingerprint should run, the portable fallback, and why. */
  resolve(body: ResolveRequest, o: Pick<RequestOptions, 'signal'> = {}): Promise<Resolution> {
    return this.call('resolve', { ...o, body });
  }
  listSigningKeys(o: Pick<RequestOptions, 'signal'> = {}): Promise<SigningKey[]> {
    return this.call('listSigningKeys', o);
  }
  /** A device's run reports (kiln-device sends these itself; a device token is enough). */
  sendTelemetry(batch: TelemetryBatch, o: Pick<RequestOptions, 'signal'> = {}): Promise<TelemetryAck> {
    return this.call('sendTelemetry', { ...o, body: batch });
  }
  /** Moves a channel to a version in gated stages (docs/fleet.md). */
  startRollout(
    modelId: string,
    channel: string,
    request: StartRolloutRequest,
    o: Pick<RequestOptions, 'signal'> = {},
  ): Promise<Rollout> {
    return this.call('startRollout', { ...o, params: { modelId, name: channel }, body: request });
  }
  listRollouts(modelId: string, channel: string, o: Pick<RequestOptions, 'signal'> = {}): Promise<Rollout[]> {
    return this.call('listRollouts', { ...o, params: { modelId, name: channel } });
  }
  getRollout(rolloutId: string, o: Pick<RequestOptions, 'signal'> = {}): Promise<Rollout> {
    return this.call('getRollout', { ...o, params: { rolloutId } });
  }
  pauseRollout(rolloutId: string, reason?: string, o: Pick<RequestOptions, 'signal'> = {}): Promise<Rollout> {
    return this.call('pauseRollout', { ...o, params: { rolloutId }, body: reason ? { reason } : {} });
  }
  resumeRollout(rolloutId: string, reason?: string, o: Pick<RequestOptions, 'signal'> = {}): Promise<Rollout> {
    return this.call('resumeRollout', { ...o, params: { rolloutId }, body: reason ? { reason } : {} });
  }
  rollbackRollout(rolloutId: string, reason?: string, o: Pick<RequestOptions, 'signal'> = {}): Promise<Rollout> {
    return this.call('rollbackRollout', { ...o, params: { rolloutId }, body: reason ? { reason } : {} });
  }
  /** Per device class of model@channel: what it runs, on-device vs build-host speed, failures, the rollout. */
  getFleet(modelId: string, channel: string, o: Pick<RequestOptions, 'signal'> = {}): Promise<FleetView> {
    return this.call('getFleet', { ...o, params: { modelId, name: channel } });
  }

  // --- keys of this tenant (an API key, not a device token) -------------------------------------------------

  listKeys(o: Pick<RequestOptions, 'signal'> = {}): Promise<ApiKeySummary[]> {
    return this.call('listKeys', o);
  }
  /** A new API key or device token (device tokens: `models`, the model names it may resolve, or ['*']). */
  createKey(body: CreateApiKeyRequest, o: Pick<RequestOptions, 'signal'> = {}): Promise<ApiKeyWithSecret> {
    return this.call('createKey', { ...o, body });
  }
  /** Revokes a key: every API replica refuses it from the next request on. */
  revokeKey(keyId: string, o: Pick<RequestOptions, 'signal'> = {}): Promise<ApiKeySummary> {
    return this.call('revokeKey', { ...o, params: { keyId } });
  }
  /** A new key in place of `keyId`; the old one is refused at once, or after `graceSeconds`. */
  rotateKey(
    keyId: string,
    body: { graceSeconds?: number } = {},
    o: Pick<RequestOptions, 'signal'> = {},
  ): Promise<RotatedApiKey> {
    return this.call('rotateKey', { ...o, params: { keyId }, body });
  }
  /** Renames a key, or sets (or clears, with "never") its expiry. */
  updateKey(keyId: string, body: UpdateApiKeyRequest, o: Pick<RequestOptions, 'signal'> = {}): Promise<ApiKeySummary> {
    return this.call('updateKey', { ...o, params: { keyId }, body });
  }

  /** The tenant's audit log, newest first (owners); pass `cursor: page.nextCursor` for the next page. */
  listAuditEvents(
    query: {
      keyId?: string;
      action?: string;
      targetId?: string;
      since?: string;
      until?: string;
      limit?: number;
      cursor?: string;
    } = {},
    o: Pick<RequestOptions, 'signal'> = {},
  ): Promise<AuditEventPage> {
    const { limit, ...rest } = query;
    return this.call('listAuditEvents', {
      ...o,
      query: { ...rest, limit: limit === undefined ? undefined : String(limit) },
    });
  }

  // --- deletes (owners; refused with RESOURCE_IN_USE while a channel or rollout points at it, unless force) ------
  deleteModel(modelId: string, o: { force?: boolean; signal?: AbortSignal } = {}): Promise<DeletionResult> {
    return this.call('deleteModel', { signal: o.signal, params: { modelId }, query: forceQuery(o.force) });
  }
  deleteVersion(versionId: string, o: { force?: boolean; signal?: AbortSignal } = {}): Promise<DeletionResult> {
    return this.call('deleteVersion', { signal: o.signal, params: { versionId }, query: forceQuery(o.force) });
  }
  deleteArtifact(artifactId: string, o: { force?: boolean; signal?: AbortSignal } = {}): Promise<DeletionResult> {
    return this.call('deleteArtifact', { signal: o.signal, params: { artifactId }, query: forceQuery(o.force) });
  }

  // --- retention policy (owners change and run it; a dry run changes nothing) ----------------------------------
  getRetentionPolicy(o: Pick<RequestOptions, 'signal'> = {}): Promise<RetentionPolicy> {
    return this.call('getRetentionPolicy', o);
  }
  setRetentionPolicy(body: Partial<RetentionPolicy>, o: Pick<RequestOptions, 'signal'> = {}): Promise<RetentionPolicy> {
    return this.call('setRetentionPolicy', { ...o, body });
  }
  deleteRetentionPolicy(o: Pick<RequestOptions, 'signal'> = {}): Promise<void> {
    return this.call('deleteRetentionPolicy', o);
  }
  /** Applies the saved policy now (`dryRun: false`) or says what it would delete; a dry run may preview other rules. */
  runRetention(
    body: { dryRun: boolean } & Partial<RetentionPolicy>,
    o: Pick<RequestOptions, 'signal'> = {},
  ): Promise<RetentionRun> {
    return this.call('runRetention', { ...o, body });
  }

  // --- webhooks (owners): signed POSTs of the tenant's events, retried, visible, sendable again ---------------------
  createWebhook(
    body: { url: string; events: WebhookEventType[]; description?: string },
    o: Pick<RequestOptions, 'signal'> = {},
  ): Promise<CreatedWebhook> {
    return this.call('createWebhook', { ...o, body });
  }
  listWebhooks(o: Pick<RequestOptions, 'signal'> = {}): Promise<Webhook[]> {
    return this.call('listWebhooks', o);
  }
  deleteWebhook(webhookId: string, o: Pick<RequestOptions, 'signal'> = {}): Promise<void> {
    return this.call('deleteWebhook', { ...o, params: { webhookId } });
  }
  listWebhookDeliveries(webhookId: string, o: Pick<RequestOptions, 'signal'> = {}): Promise<WebhookDelivery[]> {
    return this.call('listWebhookDeliveries', { ...o, params: { webhookId } });
  }
  redeliverWebhook(
    webhookId: string,
    deliveryId: string,
    o: Pick<RequestOptions, 'signal'> = {},
  ): Promise<WebhookDelivery> {
    return this.call('redeliverWebhook', { ...o, params: { webhookId, deliveryId } });
  }

  // --- transport -----------------------------------------------------------------------------------------

  /** A fresh idempotency key (compileRemote makes one per call unless given one). */
  static newIdempotencyKey(): string {
    return `sdk-${randomUUID()}`;
  }

  reportRetry(what: string, err: unknown, attempt: number, delayMs: number): void {
    this.onRetry?.({ type: 'retry', what, attempt, delayMs, error: err instanceof Error ? err.message : String(err) });
  }

  private async call<T>(name: RouteName, opts: RequestOptions): Promise<T> {
    return (await this.request<T>(name, opts)).body;
  }

  /** One API call: JSON in and out, errors as KilnApiError/KilnNetworkError, transient ones retried. */
  async request<T>(name: RouteName, opts: RequestOptions = {}): Promise<{ status: number; body: T }> {
    const route = ROUTES[name];
    const url = new URL(this.baseUrl + routePath(name, opts.params));
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.apiKey}`,
      accept: 'application/json',
      ...opts.headers,
    };
    let body: RequestInit['body'];
    if (Buffer.isBuffer(opts.body)) body = opts.body;
    else if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['content-type'] ??= 'application/json';
    }
    const once = async (): Promise<{ status: number; body: T }> => {
      const timeout = AbortSignal.timeout(opts.timeoutMs ?? this.requestTimeoutMs);
      const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
      let res: Response;
      try {
        res = await this.fetch(url, { method: route.method, headers, body, signal });
      } catch (err) {
        if (opts.signal?.aborted) throw new KilnAbortError(undefined, { cause: err });
        const why = timeout.aborted ? `timed out after ${opts.timeoutMs ?? this.requestTimeoutMs} ms` : describe(err);
        throw new KilnNetworkError(`${route.method} ${url.pathname}: ${why}`, { cause: err });
      }
      const text = await res.text();
      if (!res.ok) throw apiError(res, text, `${route.method} ${url.pathname}`);
      return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
    };
    if (opts.retry === false) return once();
    return withRetry(once, {
      policy: this.retryPolicy,
      signal: opts.signal,
      onRetry: (err, attempt, delay) => this.reportRetry(`${route.method} ${url.pathname}`, err, attempt, delay),
    });
  }
}

/**
 * The compilation's event stream, parsed by eventsource-parser (the SSE grammar in full: CRLF or LF line ends, a
 * message split across chunks, comments such as `: keepalive`, `retry:` and `id:` fields); each message's data is
 * the JSON the API sent.
 */
export async function* parseServerSentEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<CompilationEvent> {
  const messages = body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream());
  for await (const message of messages) {
    if (message.data === '') continue;
    yield { event: message.event ?? 'message', data: JSON.parse(message.data) as unknown } as CompilationEvent;
  }
}

function apiError(res: Response, text: string, what: string): KilnApiError {
  const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
  try {
    const parsed = JSON.parse(text) as Partial<ErrorBody>;
    if (parsed.error?.code) {
      return new KilnApiError(res.status, parsed.error.code, parsed.error.message, parsed.error.details, retryAfterMs);
    }
  } catch {
    // not JSON: a proxy's error page
  }
  return new KilnApiError(
    res.status,
    `HTTP_${res.status}`,
    `${what}: HTTP ${res.status} ${text.slice(0, 200)}`,
    undefined,
    retryAfterMs,
  );
}

export function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as { cause?: unknown }).cause;
  return cause instanceof Error ? `${err.message} (${cause.message})` : err.message;
}

function forceQuery(force: boolean | undefined): Record<string, string | undefined> {
  return { force: force ? 'true' : undefined };
}
