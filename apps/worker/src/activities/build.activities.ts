import { constants, createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { context } from '@opentelemetry/api';
import { Context } from '@temporalio/activity';
import { Client, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { Repository } from 'typeorm';
import { KilnConfig } from '@kiln/config';
import { type ArtifactManifest, ErrorCode, isErrorCode, KilnError } from '@kiln/contracts';
import { BuildEntity } from '@kiln/database';
import { httpPutPart } from '@kiln/sdk';
import { findTarget, recipeHash } from '@kiln/targets';
import { activeTracing, inSpan, traceparentOf } from '@kiln/tracing';
import {
  BUILD_MODEL_UPDATE,
  BUILD_UPLOADS_UPDATE,
  type BuildActivities,
  type BuildModelGrant,
  type BuildModelRequest,
  type BuildTargetInput,
  type BuildTargetResult,
  type BuildUploadsGrant,
  type BuildUploadsRequest,
} from '@kiln/temporal';
import { checkReproduced, NOT_CHECKED, REPRODUCED } from '../artifacts/reproduction.js';
import { DriverPhaseSpans } from '../build-runner/driver-phase-spans.js';
import {
  type DriverFailure,
  type DriverSuccess,
  INSECURE_LOG_PREFIX,
  runCompileDriver,
  type RunCompileDriverOptions,
} from '../build-runner/driver-runner.js';
import type { GpuLease } from '../build-runner/gpu-slots.js';
import { gpuDevices } from '../build-runner/sandbox-view.js';
import { writeVerifiedModel } from '../build-runner/verified-download.js';
import { HostService } from '../host/host.service.js';
import { PhaseClock, WorkerMetrics } from '../metrics/worker-metrics.js';
import { BUILD_TIMING, compileJobSettings, ensureTimingLock } from './compile-job-settings.js';

const HEARTBEAT_EVERY_MS = 5_000;
const LOG_TAIL_CHARS = 64 * 1024;

/**
 * The untrusted half of a build of one target, on a host that can build and run it: it asks its workflow for a
 * presigned GET of the model (verified against the sha256 recorded at upload), runs the driver in the sandbox,
 * asks for presigned PUTs into its build's staging prefix, uploads the parts and hands back the unsigned
 * manifest. It holds no signing key, no S3 credentials and touches no artifact row: the orchestrator's
 * publishArtifact re-checks everything before it signs (docs/security.md, "Build hosts hold no authority").
 * Idempotent under retries: a retried attempt stages the same content-addressed parts again, and publishing is
 * one row per cache key.
 */
@Injectable()
export class BuildActivitiesService implements BuildActivities {
  private readonly logger = new Logger(BuildActivitiesService.name);

  constructor(
    @InjectRepository(BuildEntity) private readonly builds: Repository<BuildEntity>,
    private readonly temporal: Client,
    private readonly host: HostService,
    private readonly config: KilnConfig,
    private readonly metrics: WorkerMetrics,
  ) {}

  /** One attempt of a build, counted in the worker's metrics (outcome, error code, queue wait, phase times). */
  async buildTarget(input: BuildTargetInput): Promise<BuildTargetResult> {
    const info = Context.current().info;
    // Label values come from the catalog only: a series per arbitrary string would grow without bound.
    const label = findTarget(input.targetId)?.id ?? 'unknown';
    this.metrics.queueWait.observe(
      { target: label },
      Math.max(0, Date.now() - info.currentAttemptScheduledTimestampMs) / 1000,
    );
    if (info.attempt > 1) this.metrics.buildRetries.inc({ target: label });
    const clock = new PhaseClock(this.metrics, label);
    // The log context (activity interceptor) puts the build's ids on these lines.
    this.logger.log(`build attempt ${info.attempt} of ${label} started`);
    try {
      const result = await this.runAttempt(input, clock);
      this.metrics.buildAttempts.inc({ target: label, outcome: 'succeeded' });
      this.logger.log(`build attempt ${info.attempt} of ${label} succeeded`);
      return result;
    } catch (err) {
      const code = failureCode(err);
      this.logger.warn(`build attempt ${info.attempt} of ${label} ended: ${code}: ${(err as Error).message}`);
      this.metrics.buildAttempts.inc({ target: label, outcome: code === ErrorCode.CANCELLED ? 'cancelled' : 'failed' });
      if (code !== ErrorCode.CANCELLED) this.metrics.buildFailures.inc({ target: label, code });
      throw err;
    } finally {
      clock.end();
    }
  }

  private async runAttempt(input: BuildTargetInput, clock: PhaseClock): Promise<BuildTargetResult> {
    const ctx = Context.current();
    const attempt = ctx.info.attempt;
    const target = findTarget(input.targetId);
    if (!target) throw ApplicationFailure.nonRetryable(`Unknown target ${input.targetId}`, ErrorCode.INTERNAL);

    await this.builds.update(
      { id: input.buildId },
      // workerId: which worker (host) runs this attempt; a retry on another worker overwrites it.
      {
        status: 'running',
        attempt,
        phase: 'downloading',
        startedAt: new Date(),
        errorCode: null,
        errorMessage: null,
        workerId: this.config.workerId,
      },
    );
    let phase = '';
    // The heartbeat reports `phase`; the clock times each one.
    const enterPhase = (next: string): void => {
      phase = next;
      clock.enter(next);
    };
    enterPhase('downloading');
    const heartbeat = setInterval(() => ctx.heartbeat({ phase }), HEARTBEAT_EVERY_MS);
    ctx.heartbeat({ phase });
    let gpu: GpuLease | null = null;
    // With tracing on, the interceptor made this activity's span the active one: the driver gets its traceparent
    // in the job and reports its phases with it, and each phase becomes a child span of this one.
    const activityContext = context.active();
    const traceparent = activeTracing() ? traceparentOf(activityContext) : undefined;
    const phaseSpans = traceparent ? new DriverPhaseSpans(activityContext, traceparent) : null;
    try {
      // A CUDA build holds one GPU of its compute capability from here to the end of the driver run: it compiles
      // for it, verifies and times on it, and sees no other (CUDA_VISIBLE_DEVICES).
      const gpuPool = this.host.gpuPoolFor(target.id);
      if (gpuPool && gpuPool.available === 0) {
        enterPhase('waiting for a GPU');
        ctx.heartbeat({ phase });
      }
      gpu = gpuPool ? await gpuPool.acquire(ctx.cancellationSignal) : null;
      enterPhase('downloading');
      // Asked for only now (its URL lives an hour): after any wait for a GPU.
      const model = await this.askWorkflow<BuildModelGrant, BuildModelRequest>(BUILD_MODEL_UPDATE, {
        buildId: input.buildId,
      });

      let integrityError: KilnError | null = null;
      let writtenPhase = phase;
      let phaseWrites: Promise<unknown> = Promise.resolve();
      const crossToolchain = target.recipe.cross ? this.host.crossToolchain(target.recipe.cross.toolchainName) : null;
      const settings = compileJobSettings(this.config, {
        timingLock: await ensureTimingLock(this.config),
        host: this.host.sandboxHost(),
        gpu,
        gpuDevices: gpu ? await gpuDevices() : [],
        ...(crossToolchain ? { crossToolchainRoot: crossToolchain.root } : {}),
      });
      const job: RunCompileDriverOptions['job'] = {
        tenantId: input.tenantId,
        targetId: target.id,
        recipe: target.recipe,
        recipeHash: recipeHash(target.recipe),
        modelContentHash: model.contentHash,
        cacheKey: input.cacheKey,
        requires: target.requires,
        host: this.host.hostInfo(gpu?.index),
        timing: { ...BUILD_TIMING },
        seed: 0,
        ...(traceparent ? { traceparent } : {}),
      };
      const vecIsa = target.recipe.cross ? null : this.host.vecIsaFor(target.recipe.toolchain.cxx);
      if (vecIsa) job.vecIsa = vecIsa;
      if (crossToolchain) {
        const { root, site, sysroot, python, qemu, torch } = crossToolchain;
        job.crossToolchain = { root, site, sysroot, python, qemu, torch };
      }
      const outcome = await runCompileDriver({
        ...settings,
        // The model goes straight into this build's own job folder (readable by this job only), and the driver only
        // ever sees bytes with the sha256 and size recorded when the upload was validated.
        model: {
          write: async (dest) => {
            enterPhase('downloading');
            try {
              await inSpan('download model', async (span) => {
                span.setAttribute('kiln.model.bytes', model.size);
                await writeVerifiedModel(await download(model.url, ctx.cancellationSignal), dest, {
                  sha256: model.sha256,
                  size: model.size,
                });
              });
            } catch (err) {
              if (err instanceof KilnError && err.code === ErrorCode.MODEL_INTEGRITY_MISMATCH) integrityError = err;
              throw err;
            }
          },
        },
        // A weights-only update: the donor code part the orchestrator picked, verified like the model.
        ...(model.codeDonor
          ? {
              codeDonor: {
                sha256: model.codeDonor.sha256,
                cacheKey: model.codeDonor.cacheKey,
                write: async (dest: string) => {
                  const donor = model.codeDonor!;
                  await inSpan('download code donor', async (span) => {
                    span.setAttribute('kiln.donor.bytes', donor.size);
                    await writeVerifiedModel(
                      await download(donor.url, ctx.cancellationSignal, 'the code donor'),
                      dest,
                      {
                        sha256: donor.sha256,
                        size: donor.size,
                      },
                    );
                  });
                },
              },
            }
          : {}),
        // The scope's inductor cache (issue 17 item 3), verified like the model; this build packs one for the next.
        inductorCache: {
          store: true,
          ...(model.inductorCache
            ? {
                restore: {
                  sha256: model.inductorCache.sha256,
                  write: async (dest: string) => {
                    const cache = model.inductorCache!;
                    await inSpan('download inductor cache', async (span) => {
                      span.setAttribute('kiln.inductor_cache.bytes', cache.size);
                      await writeVerifiedModel(
                        await download(cache.url, ctx.cancellationSignal, 'the inductor cache'),
                        dest,
                        { sha256: cache.sha256, size: cache.size },
                      );
                    });
                  },
                },
              }
            : {}),
        },
        signal: ctx.cancellationSignal,
        job,
        onPhaseEnd: (e) => phaseSpans?.ended(e),
        onProgress: (p) => {
          phaseSpans?.started(p);
          enterPhase(p.phase);
          ctx.heartbeat(p);
          // The driver may report often; the row changes only when the phase does (a handful of times a build).
          if (p.phase !== writtenPhase) {
            writtenPhase = p.phase;
            const next = p.phase;
            // Chained, so the row never ends on an older phase than the last one reported.
            phaseWrites = phaseWrites
              .then(() => this.builds.update({ id: input.buildId }, { phase: next }))
              .catch(() => undefined);
          }
        },
      });
      phaseSpans?.finish(outcome.ok ? null : outcome.code);
      await phaseWrites;
      if (integrityError) {
        await outcome.cleanup();
        const err: KilnError = integrityError;
        throw ApplicationFailure.create({
          type: err.code,
          message: err.message,
          nonRetryable: true,
          details: [err.details ?? {}],
        });
      }
      try {
        if (!outcome.ok) throw await this.failAttempt(input.buildId, attempt, outcome, outcome.log);
        let log = outcome.log;
        let manifest: ArtifactManifest = { ...outcome.manifest, reproduction: NOT_CHECKED };
        if (input.reproduce) {
          // The same job again, in a fresh job folder (a fresh sandbox, empty caches, the driver's fixed build
          // folder emptied), while the first run's parts wait on disk: both runs must give the same bytes. Never with
          // the inductor cache the first run restored: equal bytes then also prove the cache did not change the code.
          enterPhase('reproducing');
          await this.builds.update({ id: input.buildId }, { phase });
          const again = await runCompileDriver({
            ...settings,
            model: { file: outcome.modelPath },
            signal: ctx.cancellationSignal,
            job,
            onProgress: (p) => ctx.heartbeat({ phase, driverPhase: p.phase }),
          });
          // Lines of an insecure-local build carry its prefix, these too.
          const note = (line: string): string =>
            `${outcome.sandbox?.mode === 'insecure-local' ? INSECURE_LOG_PREFIX : ''}[kiln] ${line}\n`;
          try {
            log = `${outcome.log}${note('reproducing: the same job again in a fresh job folder')}${again.log}`;
            if (!again.ok) throw await this.failAttempt(input.buildId, attempt, again, log);
            let said: string;
            try {
              said = checkReproduced(outcome.manifest.parts, again.manifest.parts);
            } catch (err) {
              if (!(err instanceof KilnError)) throw err;
              throw await this.failAttempt(
                input.buildId,
                attempt,
                { code: err.code, message: err.message, details: err.details, retryable: false },
                `${log}${note(`${err.code}: ${err.message}`)}`,
              );
            }
            log += note(said);
            manifest = { ...manifest, reproduction: REPRODUCED };
          } finally {
            await again.cleanup();
          }
        }
        enterPhase('uploading');
        await this.builds.update({ id: input.buildId }, { phase });
        await inSpan('upload parts', async (span) => {
          span.setAttribute('kiln.artifact.parts', manifest.parts.length);
          const note = await this.uploadParts(
            input,
            manifest.parts,
            outcome.partsDir,
            outcome.inductorCache,
            ctx.cancellationSignal,
          );
          if (note) log += `${outcome.sandbox?.mode === 'insecure-local' ? INSECURE_LOG_PREFIX : ''}[kiln] ${note}\n`;
        });
        return { manifest, log: tail(log) };
      } finally {
        await outcome.cleanup();
      }
    } finally {
      phaseSpans?.finish(ErrorCode.INTERNAL); // only when the driver run itself threw: its span ended otherwise
      gpu?.release();
      clearInterval(heartbeat);
    }
  }

  /**
   * Records a failed attempt's log and message on its build row and returns the failure for Temporal to act on (a
   * cancelled build throws the cancellation instead).
   */
  private async failAttempt(
    buildId: string,
    attempt: number,
    failure: Pick<DriverFailure, 'code' | 'message' | 'details' | 'retryable'>,
    log: string,
  ): Promise<ApplicationFailure> {
    const ctx = Context.current();
    await this.builds.update(
      { id: buildId },
      { log: tail(log), errorMessage: `Attempt ${attempt}: ${failure.code}: ${failure.message}` },
    );
    if (failure.code === ErrorCode.CANCELLED || ctx.cancellationSignal.aborted) await ctx.cancelled;
    return ApplicationFailure.create({
      type: failure.code,
      message: failure.message,
      nonRetryable: !failure.retryable,
      details: [failure.details ?? {}],
    });
  }

  /**
   * Uploads each part the bucket lacks through the presigned PUT its workflow issued for it, and the inductor cache
   * the driver packed through its own. A cache that fails to upload only costs the next build its reuse: the build
   * goes on, and the returned line says so for its log.
   */
  private async uploadParts(
    input: BuildTargetInput,
    parts: BuildUploadsRequest['parts'],
    partsDir: string,
    cache: DriverSuccess['inductorCache'],
    signal: AbortSignal,
  ): Promise<string | null> {
    const grant = await this.askWorkflow<BuildUploadsGrant, BuildUploadsRequest>(BUILD_UPLOADS_UPDATE, {
      buildId: input.buildId,
      parts: parts.map(({ sha256, size }) => ({ sha256, size })),
      ...(cache ? { inductorCache: { sha256: cache.sha256, size: cache.size } } : {}),
    });
    for (const upload of grant.uploads) {
      // node:http with backpressure (the SDK's part transport): fetch with a Readable.toWeb body read the whole part
      // ahead into memory when S3 took it slower than the disk gave it (a 2 GiB weights part added 2 GiB to the
      // worker's RSS: bench/README.md, "A 2 GiB model end to end").
      const res = await httpPutPart({
        url: upload.url,
        headers: upload.headers,
        body: createReadStream(path.join(partsDir, upload.sha256)),
        signal,
      });
      if (res.status < 200 || res.status > 299) {
        throw new Error(`uploading part ${upload.sha256}: HTTP ${res.status} ${res.text}`);
      }
    }
    if (!cache || !grant.inductorCache) return null;
    try {
      // The sandbox that wrote it is gone and it was checked as a regular file; still, no link is followed here.
      const file = await open(cache.path, constants.O_RDONLY | constants.O_NOFOLLOW);
      let res: Awaited<ReturnType<typeof httpPutPart>>;
      try {
        res = await httpPutPart({
          url: grant.inductorCache.url,
          headers: grant.inductorCache.headers,
          body: file.createReadStream({ autoClose: false }),
          signal,
        });
      } finally {
        await file.close();
      }
      if (res.status < 200 || res.status > 299) throw new Error(`HTTP ${res.status} ${res.text}`);
      return `inductor cache ${cache.sha256} uploaded (${cache.size} bytes) for the next build of this target`;
    } catch (err) {
      if (signal.aborted) throw err;
      return `inductor cache ${cache.sha256.slice(0, 12)} not uploaded: ${(err as Error).message}`;
    }
  }

  /** Sends an update to this activity's own workflow (the build host's only way to reach the model or storage). */
  private async askWorkflow<R, A>(update: string, arg: A): Promise<R> {
    const execution = Context.current().info.workflowExecution;
    if (!execution) throw new Error('a build activity runs in a workflow');
    const { workflowId, runId } = execution;
    try {
      return await this.temporal.workflow.getHandle(workflowId, runId).executeUpdate<R, [A]>(update, { args: [arg] });
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) {
        throw ApplicationFailure.retryable(`the workflow refused ${update}: ${err.cause?.message ?? err.message}`);
      }
      throw err;
    }
  }
}

/** A presigned GET as a byte stream. */
async function download(url: string, signal: AbortSignal, what = 'the model'): Promise<Readable> {
  const res = await fetch(url, { signal });
  if (!res.ok || !res.body) throw new Error(`downloading ${what}: HTTP ${res.status}`);
  return Readable.fromWeb(res.body);
}

function tail(log: string): string {
  return log.length > LOG_TAIL_CHARS ? log.slice(-LOG_TAIL_CHARS) : log;
}

/** The error code of a failed attempt, for a metric label: the failure's own code when it is one of Kiln's. */
function failureCode(err: unknown): string {
  if (err instanceof CancelledFailure) return ErrorCode.CANCELLED;
  const type = err instanceof ApplicationFailure ? err.type : err instanceof KilnError ? err.code : null;
  return isErrorCode(type) ? type : ErrorCode.INTERNAL;
}
