import { createHash } from 'node:crypto';
import path from 'node:path';
import { Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { Repository } from 'typeorm';
import { KilnConfig } from '@kiln/config';
import { type ArtifactManifest, ErrorCode, KilnError } from '@kiln/contracts';
import { ArtifactEntity, BuildEntity, ModelVersionEntity } from '@kiln/database';
import { ArtifactSigner } from '@kiln/signing';
import { ObjectStorage, objectKeys } from '@kiln/storage';
import { findTarget, recipeHash } from '@kiln/targets';
import type { BuildActivities, BuildTargetInput, BuildTargetResult } from '@kiln/temporal';
import { INSECURE_LOG_PREFIX, runCompileDriver } from '../build-runner/driver-runner.js';
import type { GpuLease } from '../build-runner/gpu-slots.js';
import { gpuDevices } from '../build-runner/sandbox-view.js';
import { writeVerifiedModel } from '../build-runner/verified-download.js';
import { HostService } from '../host/host.service.js';
import { BUILD_TIMING, compileJobSettings, ensureTimingLock } from './compile-job-settings.js';

const HEARTBEAT_EVERY_MS = 5_000;
const LOG_TAIL_CHARS = 64 * 1024;

/**
 * The build of one target, on a worker that can build and run it. Idempotent under retries: a cache hit
 * returns the existing artifact, parts are content-addressed (a re-upload writes the same key), and the
 * artifact row is unique per cache key, so a worker killed at any point and retried never yields a
 * second artifact.
 */
@Injectable()
export class BuildActivitiesService implements BuildActivities {
  private readonly logger = new Logger(BuildActivitiesService.name);

  constructor(
    @InjectRepository(BuildEntity) private readonly builds: Repository<BuildEntity>,
    @InjectRepository(ArtifactEntity) private readonly artifacts: Repository<ArtifactEntity>,
    @InjectRepository(ModelVersionEntity) private readonly versions: Repository<ModelVersionEntity>,
    private readonly storage: ObjectStorage,
    private readonly signer: ArtifactSigner,
    private readonly host: HostService,
    private readonly config: KilnConfig,
  ) {}

  async buildTarget(input: BuildTargetInput): Promise<BuildTargetResult> {
    const ctx = Context.current();
    const attempt = ctx.info.attempt;
    const target = findTarget(input.targetId);
    if (!target) throw ApplicationFailure.nonRetryable(`Unknown target ${input.targetId}`, ErrorCode.INTERNAL);

    const cached = await this.artifacts.findOne({ where: { tenantId: input.tenantId, cacheKey: input.cacheKey } });
    if (cached) {
      await this.finishBuild(input.buildId, cached.id, 'cached', '');
      return { artifactId: cached.id, cached: true };
    }

    await this.builds.update(
      { id: input.buildId },
      { status: 'running', attempt, phase: 'downloading', startedAt: new Date(), errorCode: null, errorMessage: null },
    );
    let phase = 'downloading';
    const heartbeat = setInterval(() => ctx.heartbeat({ phase }), HEARTBEAT_EVERY_MS);
    ctx.heartbeat({ phase });
    let gpu: GpuLease | null = null;
    try {
      const version = await this.versions.findOneByOrFail({ id: input.modelVersionId, tenantId: input.tenantId });

      // A CUDA build holds one GPU of its compute capability from here to the end of the driver run: it compiles
      // for it, verifies and times on it, and sees no other (CUDA_VISIBLE_DEVICES).
      const gpuPool = this.host.gpuPoolFor(target.id);
      if (gpuPool && gpuPool.available === 0) {
        phase = 'waiting for a GPU';
        ctx.heartbeat({ phase });
      }
      gpu = gpuPool ? await gpuPool.acquire(ctx.cancellationSignal) : null;

      let integrityError: KilnError | null = null;
      let writtenPhase = phase;
      let phaseWrites: Promise<unknown> = Promise.resolve();
      const outcome = await runCompileDriver({
        ...compileJobSettings(this.config, {
          timingLock: await ensureTimingLock(this.config),
          host: this.host.sandboxHost(),
          gpu,
          gpuDevices: gpu ? await gpuDevices() : [],
        }),
        // The model goes straight into this build's own job folder (readable by this job only), and the driver only
        // ever sees bytes with the sha256 and size recorded when the upload was validated.
        model: {
          write: async (dest) => {
            phase = 'downloading';
            try {
              await writeVerifiedModel(await this.storage.getStream(version.objectKey), dest, {
                sha256: version.storedSha256,
                size: version.storedSizeBytes,
              });
            } catch (err) {
              if (err instanceof KilnError && err.code === ErrorCode.MODEL_INTEGRITY_MISMATCH) integrityError = err;
              throw err;
            }
          },
        },
        signal: ctx.cancellationSignal,
        job: {
          tenantId: input.tenantId,
          targetId: target.id,
          recipe: target.recipe,
          recipeHash: recipeHash(target.recipe),
          modelContentHash: version.contentHash,
          cacheKey: input.cacheKey,
          requires: target.requires,
          host: this.host.hostInfo(gpu?.index),
          timing: { ...BUILD_TIMING },
          seed: 0,
        },
        onProgress: (p) => {
          phase = p.phase;
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
      await phaseWrites;
      if (integrityError) {
        await outcome.cleanup();
        const err: KilnError = integrityError;
        this.logger.error(`build ${input.buildId}: ${err.message}`);
        throw ApplicationFailure.create({
          type: err.code,
          message: err.message,
          nonRetryable: true,
          details: [err.details ?? {}],
        });
      }
      try {
        if (!outcome.ok) {
          await this.builds.update(
            { id: input.buildId },
            { log: tail(outcome.log), errorMessage: `Attempt ${attempt}: ${outcome.code}: ${outcome.message}` },
          );
          if (outcome.code === ErrorCode.CANCELLED || ctx.cancellationSignal.aborted) await ctx.cancelled;
          throw ApplicationFailure.create({
            type: outcome.code,
            message: outcome.message,
            nonRetryable: !outcome.retryable,
            details: [outcome.details ?? {}],
          });
        }
        phase = 'uploading';
        await this.builds.update({ id: input.buildId }, { phase });
        const artifactId = await this.storeArtifact(input, outcome.manifest, outcome.partsDir);
        await this.finishBuild(input.buildId, artifactId, 'succeeded', outcome.log);
        return { artifactId, cached: false };
      } finally {
        await outcome.cleanup();
      }
    } finally {
      gpu?.release();
      clearInterval(heartbeat);
    }
  }

  /**
   * Uploads parts (skipping ones already stored), then the signed manifest, then records the artifact once.
   * The signature covers the manifest's exact bytes, which list every part's sha256.
   */
  private async storeArtifact(input: BuildTargetInput, manifest: ArtifactManifest, partsDir: string): Promise<string> {
    for (const part of manifest.parts) {
      const key = objectKeys.blob(input.tenantId, part.sha256);
      if ((await this.storage.size(key)) === part.size) continue;
      await this.storage.putFile(key, path.join(partsDir, part.sha256));
    }
    const manifestKey = objectKeys.manifest(input.tenantId, input.cacheKey);
    const manifestBytes = Buffer.from(JSON.stringify(manifest, null, 2));
    const { signature, keyId } = this.signer.sign(manifestBytes);
    await this.storage.putBytes(manifestKey, manifestBytes, 'application/json');
    // ON CONFLICT DO NOTHING on (tenant_id, cache_key): a retried or concurrent build adds no second row.
    await this.artifacts.query(
      `INSERT INTO artifacts (tenant_id, cache_key, model_content_hash, target_id, recipe_hash, manifest_key, manifest,
                              size_bytes, manifest_sha256, signature, signing_key_id)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (tenant_id, cache_key) DO NOTHING`,
      [
        input.tenantId,
        input.cacheKey,
        manifest.modelContentHash,
        manifest.target,
        manifest.recipeHash,
        manifestKey,
        JSON.stringify(manifest),
        manifest.parts.reduce((sum, p) => sum + p.size, 0),
        createHash('sha256').update(manifestBytes).digest('hex'),
        signature,
        keyId,
      ],
    );
    const row = await this.artifacts.findOneByOrFail({ tenantId: input.tenantId, cacheKey: input.cacheKey });
    return row.id;
  }

  private async finishBuild(
    buildId: string,
    artifactId: string,
    status: 'succeeded' | 'cached',
    log: string,
  ): Promise<void> {
    await this.builds.update(
      { id: buildId },
      {
        status,
        artifactId,
        phase: 'done',
        errorCode: null,
        errorMessage: null,
        log: tail(log),
        finishedAt: new Date(),
      },
    );
    const insecure = this.config.KILN_SANDBOX === 'insecure-local' && status === 'succeeded';
    this.logger.log(`${insecure ? INSECURE_LOG_PREFIX : ''}build ${buildId} ${status} (artifact ${artifactId})`);
  }
}

function tail(log: string): string {
  return log.length > LOG_TAIL_CHARS ? log.slice(-LOG_TAIL_CHARS) : log;
}
