import { randomUUID } from 'node:crypto';
import { KilnAbortError, KilnApiError } from './errors.js';
import type { KilnClient } from './kiln-client.js';
import { buildChanges, type ProgressEvent, TERMINAL_COMPILATION_STATUSES } from './progress.js';
import { abortableSleep, abortError, throwIfAborted } from './retry.js';
import type { Artifact, Build, Compilation, Model, ModelVersion } from './types.js';
import { uploadModel, type UploadModelOptions, type UploadModelResult } from './uploader.js';
import type { UploadInput } from './upload-source.js';

export interface CompileRemoteOptions extends Omit<UploadModelOptions, 'idempotencyKey'> {
  /** Target ids (GET /v1/targets), e.g. ['linux-x86_64-v3']. */
  targets: string[];
  /** Wait for every target to finish (default true); false returns once the compilation is created. */
  wait?: boolean;
  /**
   * Makes the whole call repeatable: the same key continues (or reuses) the same upload and returns the
   * same compilation, never a second one. Default: a fresh key per call (retries inside the call are
   * still safe). The API sees `<key>/upload` and `<key>/compile`.
   */
  idempotencyKey?: string;
  /**
   * Build each target twice, the second time in a fresh sandbox, and compare the parts by sha256 (default false).
   * Identical: each artifact's manifest says `reproduction: { checked: true, builds: 2, identical: true }`; different:
   * that target fails with BUILD_NOT_REPRODUCIBLE. A target already built (answered from the cache) is not checked.
   */
  reproduce?: boolean;
  /** How often to poll the compilation while waiting (default 2000 ms). */
  pollIntervalMs?: number;
}

export interface TargetResult {
  targetId: string;
  status: Build['status'];
  errorCode: string | null;
  errorMessage: string | null;
  build: Build;
  /** The full artifact record for succeeded and cached builds. */
  artifact: Artifact | null;
}

export interface CompileRemoteResult {
  /** Every target succeeded (or was answered from the cache). */
  ok: boolean;
  model: Model;
  version: ModelVersion;
  compilation: Compilation;
  targets: TargetResult[];
  artifacts: Artifact[];
  upload: Pick<UploadModelResult, 'uploadId' | 'resumed' | 'reused' | 'partsSent' | 'partsReused'>;
  idempotencyKey: string;
}

/**
 * From a .pt2 on disk (or bytes, or a stream) to verified artifacts: creates the model if missing, uploads
 * with the presigned multipart protocol (resumable, checksummed, parallel), starts the compilation and
 * (by default) waits for it, reporting upload bytes and per-target status changes through `onProgress`.
 * Aborting the signal cancels whatever runs on the server: the upload, or the compilation.
 */
export async function compileRemote(
  client: KilnClient,
  input: UploadInput,
  opts: CompileRemoteOptions,
): Promise<CompileRemoteResult> {
  if (!Array.isArray(opts.targets) || opts.targets.length === 0)
    throw new TypeError('compileRemote needs at least one target');
  const key = opts.idempotencyKey ?? `sdk-${randomUUID()}`;
  const signal = opts.signal;
  const uploaded = await uploadModel(client, input, { ...opts, idempotencyKey: `${key}/upload` });

  let compilation: Compilation | null = null;
  try {
    throwIfAborted(signal);
    const created = await client.createCompilation(uploaded.version.id, opts.targets, {
      idempotencyKey: `${key}/compile`,
      signal,
      reproduce: opts.reproduce,
    });
    compilation = created.compilation;
    opts.onProgress?.({
      type: 'compilation',
      compilationId: compilation.id,
      status: compilation.status,
      created: created.created,
    });
    if (opts.wait !== false) {
      compilation = await waitForCompilation(client, compilation.id, {
        signal,
        onProgress: opts.onProgress,
        pollIntervalMs: opts.pollIntervalMs,
        initial: compilation,
      });
    }
  } catch (err) {
    if (signal?.aborted) {
      if (compilation) await cancelQuietly(client, compilation.id);
      throw err instanceof KilnAbortError ? err : abortError(signal);
    }
    throw err;
  }

  const done = TERMINAL_COMPILATION_STATUSES.includes(compilation.status);
  const artifacts = done
    ? await Promise.all(
        compilation.builds.filter((b) => b.artifact).map((b) => client.getArtifact(b.artifact!.id, { signal })),
      )
    : [];
  const byId = new Map(artifacts.map((a) => [a.id, a]));
  return {
    ok: compilation.status === 'succeeded',
    model: uploaded.model,
    version: uploaded.version,
    compilation,
    targets: compilation.builds.map((b) => ({
      targetId: b.targetId,
      status: b.status,
      errorCode: b.errorCode,
      errorMessage: b.errorMessage,
      build: b,
      artifact: b.artifact ? (byId.get(b.artifact.id) ?? null) : null,
    })),
    artifacts,
    upload: {
      uploadId: uploaded.uploadId,
      resumed: uploaded.resumed,
      reused: uploaded.reused,
      partsSent: uploaded.partsSent,
      partsReused: uploaded.partsReused,
    },
    idempotencyKey: key,
  };
}

async function cancelQuietly(client: KilnClient, compilationId: string): Promise<void> {
  try {
    await client.cancelCompilation(compilationId);
  } catch (err) {
    // Already ended: nothing to cancel.
    if (!(err instanceof KilnApiError && err.code === 'CONFLICT')) throw err;
  }
}

export interface WaitOptions {
  signal?: AbortSignal;
  onProgress?: (event: ProgressEvent) => void;
  pollIntervalMs?: number;
  /** The compilation as last seen (its builds count as already reported). */
  initial?: Compilation;
}

/** Polls until the compilation ends, reporting each build's status or phase change once. */
export async function waitForCompilation(
  client: KilnClient,
  compilationId: string,
  opts: WaitOptions = {},
): Promise<Compilation> {
  const seen = new Map<string, Build>();
  let lastStatus: Compilation['status'] | null = opts.initial?.status ?? null;
  const report = (c: Compilation): void => {
    for (const b of buildChanges(seen, c)) {
      opts.onProgress?.({
        type: 'build',
        compilationId: c.id,
        targetId: b.targetId,
        status: b.status,
        phase: b.phase,
        previousStatus: seen.get(b.targetId)?.status ?? null,
        build: b,
      });
      seen.set(b.targetId, b);
    }
    if (c.status !== lastStatus) {
      opts.onProgress?.({ type: 'compilation', compilationId: c.id, status: c.status, created: false });
      lastStatus = c.status;
    }
  };
  if (opts.initial) report(opts.initial);
  for (;;) {
    const c = await client.getCompilation(compilationId, { signal: opts.signal });
    report(c);
    if (TERMINAL_COMPILATION_STATUSES.includes(c.status)) return c;
    await abortableSleep(opts.pollIntervalMs ?? 2000, opts.signal);
  }
}
