import { createHash } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { DataSource, Repository } from 'typeorm';
import { ErrorCode } from '@kiln/contracts';
import { BlobGoneError, BlobLedger } from '@kiln/core';
import { ArtifactEntity, BuildEntity, ModelVersionEntity } from '@kiln/database';
import { ObjectStorage, objectKeys } from '@kiln/storage';
import { findTarget, recipeHash } from '@kiln/targets';
import type {
  BuildModelGrant,
  BuildUploadsGrant,
  BuildUploadsRequest,
  PublishArtifactInput,
  PublishingActivities,
} from '@kiln/temporal';
import { sweepInductorCaches } from '../artifacts/inductor-cache-sweep.js';
import { checkManifest, MAX_MANIFEST_PARTS } from '../artifacts/manifest-check.js';
import { INSECURE_LOG_PREFIX } from '../build-runner/driver-runner.js';
import { ORCHESTRATOR_SIGNER, type OrchestratorSigner } from './orchestrator-signer.js';

/**
 * How long a build host's presigned URLs live. The host asks for them when it needs them (the model as its build
 * starts, the uploads once its driver succeeded), so minutes would do; an hour leaves room for slow links.
 */
const GRANT_TTL_S = 3600;
/** The largest part a single presigned PUT may carry (S3's own limit for one PutObject). */
const MAX_PART_BYTES = 5 * 1024 ** 3;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const LOG_TAIL_CHARS = 64 * 1024;
/**
 * How long a blob a build host was told is "already stored" stays pinned against the collector: the host's URLs live
 * GRANT_TTL_S, and the publish that follows may take its one hour (compile-model.workflow.ts) per attempt.
 */
const GRANT_PIN_S = 3 * 3600;
/** How long a publish pins the blobs of its manifest while it copies and records them (its own timeout: 1 h). */
const PUBLISH_PIN_S = 2 * 3600;
/** The largest inductor cache a build may store (the driver packs none larger: kiln_driver/inductor_cache.py). */
const MAX_INDUCTOR_CACHE_BYTES = 2 * 1024 ** 3 + 64 * 1024 ** 2;

function rejected(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: ErrorCode.ARTIFACT_REJECTED, message, nonRetryable: true });
}

/**
 * The trusted side of every build (orchestrator role only): the one process that holds the signing key and
 * bucket-wide S3 credentials. A build host gets from here exactly what its build needs (a presigned GET of its
 * model, presigned PUTs into its own staging prefix) and hands back an unsigned manifest; publishArtifact then
 * trusts nothing of it: it checks the manifest against the build, re-hashes every staged part, and only then
 * stores, signs and records (docs/security.md, "Build hosts hold no authority").
 */
@Injectable()
export class PublishingActivitiesService implements PublishingActivities {
  private readonly logger = new Logger(PublishingActivitiesService.name);

  constructor(
    @InjectRepository(ArtifactEntity) private readonly artifacts: Repository<ArtifactEntity>,
    @InjectRepository(BuildEntity) private readonly builds: Repository<BuildEntity>,
    @InjectRepository(ModelVersionEntity) private readonly versions: Repository<ModelVersionEntity>,
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly storage: ObjectStorage,
    private readonly ledger: BlobLedger,
    @Inject(ORCHESTRATOR_SIGNER) private readonly signer: OrchestratorSigner,
  ) {}

  async findCachedArtifact(input: { tenantId: string; cacheKey: string }): Promise<string | null> {
    const cached = await this.artifacts.findOne({ where: { tenantId: input.tenantId, cacheKey: input.cacheKey } });
    return cached?.id ?? null;
  }

  async finishCachedBuild(input: { buildId: string; artifactId: string }): Promise<void> {
    await this.builds.update(
      { id: input.buildId },
      {
        status: 'cached',
        artifactId: input.artifactId,
        phase: 'done',
        errorCode: null,
        errorMessage: null,
        finishedAt: new Date(),
      },
    );
  }

  async grantModelDownload(input: {
    tenantId: string;
    modelVersionId: string;
    targetId?: string;
  }): Promise<BuildModelGrant> {
    const version = await this.versions.findOneByOrFail({ id: input.modelVersionId, tenantId: input.tenantId });
    const { url } = await this.storage.presignGet(version.objectKey, GRANT_TTL_S);
    const grant: BuildModelGrant = {
      url,
      sha256: version.storedSha256,
      size: version.storedSizeBytes,
      contentHash: version.contentHash,
    };
    const target = input.targetId !== undefined ? findTarget(input.targetId) : undefined;
    const donor = target ? await this.findCodeDonor(version, target.id, recipeHash(target.recipe)) : null;
    if (donor) {
      const get = await this.storage.presignGet(objectKeys.blob(input.tenantId, donor.sha256), GRANT_TTL_S);
      grant.codeDonor = { url: get.url, ...donor };
    }
    const cache = target ? await this.latestInductorCache(input.tenantId, target.id, recipeHash(target.recipe)) : null;
    if (cache) {
      const key = objectKeys.inductorCache(input.tenantId, target!.id, recipeHash(target!.recipe), cache.sha256);
      grant.inductorCache = { url: (await this.storage.presignGet(key, GRANT_TTL_S)).url, ...cache };
    }
    return grant;
  }

  /**
   * The latest inductor cache of a scope (tenant, target, recipe hash; issue 17 item 3), or null. Where caches are:
   * S3 objects under the tenant's own prefix, not a table. A cache is tenant data that nothing joins to: under the
   * prefix it goes with the tenant's export and erasure, the key itself names the scope (no query can reach another
   * tenant's), and "latest wins" is one PUT of a small pointer object, atomic in S3, while every archive is written
   * once under its own sha256 (a build offered an older one still reads the bytes it was offered).
   */
  private async latestInductorCache(
    tenantId: string,
    targetId: string,
    recipe: string,
  ): Promise<{ sha256: string; size: number } | null> {
    const pointer = objectKeys.inductorCacheLatest(tenantId, targetId, recipe);
    if ((await this.storage.size(pointer)) === null) return null;
    const latest = await this.storage.getJson<{ sha256?: unknown; size?: unknown }>(pointer);
    const { sha256, size } = latest;
    if (typeof sha256 !== 'string' || !SHA256_HEX.test(sha256) || typeof size !== 'number') return null;
    // Only what publishArtifact re-hashed and copied is ever named; a missing object (deleted) is no cache.
    if ((await this.storage.size(objectKeys.inductorCache(tenantId, targetId, recipe, sha256))) !== size) return null;
    return { sha256, size };
  }

  /**
   * The code part a weights-only update may reuse (issue 17): of this tenant's artifacts for the same target and
   * recipe, built from an EARLIER version of the same model with other content and holding a weights part, the one
   * of the newest such version. Never another tenant's (the query is the tenant's own rows). Whether its code fits
   * the new program is the driver's to prove (kiln_driver/reuse.py: equal generated sources, same toolchain
   * metadata); a donor that does not fit only costs the code generation before a full build.
   */
  private async findCodeDonor(
    version: ModelVersionEntity,
    targetId: string,
    recipe: string,
  ): Promise<{ sha256: string; size: number; cacheKey: string } | null> {
    const rows = await this.dataSource.query<{ cache_key: string; manifest: ArtifactEntity['manifest'] }[]>(
      `SELECT a.cache_key, a.manifest
         FROM artifacts a
         JOIN model_versions v ON v.tenant_id = a.tenant_id AND v.content_hash = a.model_content_hash
        WHERE a.tenant_id = $1 AND a.target_id = $2 AND a.recipe_hash = $3 AND v.model_id = $4 AND v.number < $5
          AND a.model_content_hash <> $6
          AND a.manifest->'parts' @> '[{"role": "weights"}]'::jsonb
        ORDER BY v.number DESC, a.created_at DESC
        LIMIT 1`,
      [version.tenantId, targetId, recipe, version.modelId, version.number, version.contentHash],
    );
    const row = rows[0];
    const code = row?.manifest.parts.find((p) => p.role === 'code');
    if (!row || !code || !SHA256_HEX.test(code.sha256)) return null;
    return { sha256: code.sha256, size: code.size, cacheKey: row.cache_key };
  }

  async grantPartUploads(input: {
    tenantId: string;
    buildId: string;
    parts: BuildUploadsRequest['parts'];
    inductorCache?: BuildUploadsRequest['inductorCache'];
  }): Promise<BuildUploadsGrant> {
    const { parts } = input;
    if (!Array.isArray(parts) || parts.length === 0 || parts.length > MAX_MANIFEST_PARTS) {
      throw rejected(
        `a build uploads 1 to ${MAX_MANIFEST_PARTS} parts, not ${Array.isArray(parts) ? parts.length : '?'}`,
      );
    }
    const grant: BuildUploadsGrant = { uploads: [], stored: [] };
    const seen = new Set<string>();
    for (const { sha256, size } of parts) {
      if (typeof sha256 !== 'string' || !SHA256_HEX.test(sha256) || seen.has(sha256)) {
        throw rejected(`part sha256 ${JSON.stringify(sha256)} is malformed or listed twice`);
      }
      if (!Number.isSafeInteger(size) || size < 0 || size > MAX_PART_BYTES) throw rejected(`part ${sha256}: size`);
      seen.add(sha256);
    }
    // Pinned before S3 is asked: a host told "already stored" uploads nothing, so the collector must keep the blob
    // until this build's publish has referenced it (docs/decisions.md, "Delete and garbage collection").
    await this.ledger.pin(input.tenantId, input.buildId, parts, GRANT_PIN_S);
    for (const { sha256, size } of parts) {
      // Only publishArtifact writes blobs, after re-hashing: a blob of that name and size is that content.
      if ((await this.storage.size(objectKeys.blob(input.tenantId, sha256))) === size) {
        grant.stored.push(sha256);
        continue;
      }
      const put = await this.storage.presignPut(objectKeys.stagedPart(input.tenantId, input.buildId, sha256), {
        contentLength: size,
        sha256Hex: sha256,
        expiresInS: GRANT_TTL_S,
      });
      grant.uploads.push({ sha256, url: put.url, headers: put.headers });
    }
    const cache = input.inductorCache;
    if (cache) {
      if (typeof cache.sha256 !== 'string' || !SHA256_HEX.test(cache.sha256)) throw rejected('inductor cache sha256');
      if (!Number.isSafeInteger(cache.size) || cache.size < 1 || cache.size > MAX_INDUCTOR_CACHE_BYTES) {
        throw rejected(`inductor cache size ${JSON.stringify(cache.size)}`);
      }
      const put = await this.storage.presignPut(objectKeys.stagedInductorCache(input.tenantId, input.buildId), {
        contentLength: cache.size,
        sha256Hex: cache.sha256,
        expiresInS: GRANT_TTL_S,
      });
      grant.inductorCache = { url: put.url, headers: put.headers };
    }
    return grant;
  }

  async publishArtifact(input: PublishArtifactInput): Promise<string> {
    try {
      return await this.publish(input);
    } catch (err) {
      // Refused for good: what the host staged goes, and so do the build's pins (a retryable failure keeps both for
      // the next attempt).
      if (err instanceof ApplicationFailure && err.nonRetryable) {
        await this.dropStaging(input).catch(() => undefined);
        await this.ledger.release(input.tenantId, input.buildId).catch(() => undefined);
      }
      throw err;
    }
  }

  private async dropStaging(input: { tenantId: string; buildId: string }): Promise<void> {
    for (const key of await this.storage.listKeys(objectKeys.staging(input.tenantId, input.buildId))) {
      await this.storage.delete(key);
    }
  }

  private async publish(input: PublishArtifactInput): Promise<string> {
    const ctx = Context.current();
    const target = findTarget(input.targetId);
    if (!target) throw rejected(`unknown target ${input.targetId}`);
    const version = await this.versions.findOneByOrFail({ id: input.modelVersionId, tenantId: input.tenantId });

    let manifest;
    try {
      manifest = checkManifest(structuredClone(input.result.manifest), {
        tenantId: input.tenantId,
        targetId: target.id,
        recipe: target.recipe,
        recipeHash: recipeHash(target.recipe),
        modelContentHash: version.contentHash,
        cacheKey: input.cacheKey,
        requires: target.requires,
        reproduce: input.reproduce ?? false,
        offeredInductorCache: input.offeredInductorCache ?? null,
      });
    } catch (err) {
      throw rejected(`the build host's manifest: ${(err as Error).message}`);
    }

    // Pinned before S3 is asked whether a blob exists, so a blob found here is not swept before it is referenced.
    await this.ledger.pin(input.tenantId, input.buildId, manifest.parts, PUBLISH_PIN_S);
    // Every part is the build's own upload, re-hashed here, or a blob published (and so re-hashed) before.
    for (const part of manifest.parts) {
      const blob = objectKeys.blob(input.tenantId, part.sha256);
      if ((await this.storage.size(blob)) === part.size) continue;
      const staged = objectKeys.stagedPart(input.tenantId, input.buildId, part.sha256);
      ctx.heartbeat({ part: part.sha256 });
      const actual = await this.storage.hashObject(staged, ctx.cancellationSignal);
      if (!actual) throw rejected(`part ${part.sha256} was never uploaded`);
      if (actual.sha256 !== part.sha256 || actual.size !== part.size) {
        throw rejected(
          `part ${part.sha256} (${part.size} bytes) was uploaded as ${actual.size} bytes hashing to ${actual.sha256}`,
        );
      }
      await this.storage.copy(staged, blob);
    }

    // Written once under its own hash: a concurrent twin of this build writes its own object and can never replace
    // the bytes a signature covers.
    const manifestBytes = Buffer.from(JSON.stringify(manifest, null, 2));
    const manifestSha256 = createHash('sha256').update(manifestBytes).digest('hex');
    const manifestKey = objectKeys.manifest(input.tenantId, input.cacheKey, manifestSha256);
    await this.storage.putBytes(manifestKey, manifestBytes, 'application/json');
    const { signature, keyId } = this.signer.get().sign(manifestBytes);
    let row: ArtifactEntity;
    try {
      row = await this.record(input, manifest, manifestKey, manifestSha256, signature, keyId);
    } catch (err) {
      // Nothing was recorded (the transaction rolled back): this build's manifest object is nobody's.
      if (err instanceof BlobGoneError || (err instanceof ApplicationFailure && err.nonRetryable)) {
        await this.storage.delete(manifestKey).catch(() => undefined);
      }
      // Retryable: the next attempt pins again and copies the part from staging.
      if (err instanceof BlobGoneError) throw ApplicationFailure.retryable(err.message, 'BLOB_GONE');
      throw err;
    }
    // A twin recorded first: its manifest is the artifact; this build's copy is garbage.
    if (row.manifestKey !== manifestKey) await this.storage.delete(manifestKey);
    // Recorded: the references hold the blobs now (a twin's blobs that nothing references are the collector's).
    await this.ledger.release(input.tenantId, input.buildId);

    const log = input.result.log;
    await this.builds.update(
      { id: input.buildId },
      {
        status: 'succeeded',
        artifactId: row.id,
        phase: 'done',
        errorCode: null,
        errorMessage: null,
        log: log.length > LOG_TAIL_CHARS ? log.slice(-LOG_TAIL_CHARS) : log,
        finishedAt: new Date(),
      },
    );
    await this.storeInductorCache(input, manifest);
    await this.dropStaging(input);
    const insecure = manifest.build.sandbox.mode === 'insecure-local';
    this.logger.log(`${insecure ? INSECURE_LOG_PREFIX : ''}build ${input.buildId} published as ${row.id}`);
    return row.id;
  }

  /**
   * Once the artifact is published: the inductor cache the build stored becomes its scope's latest (re-hashed from
   * staging, copied under its sha256, then the pointer written: latest wins). Only an optimization: a cache that was
   * not uploaded or does not hash to what the manifest says is left out with a log line, the artifact stands.
   */
  private async storeInductorCache(input: PublishArtifactInput, manifest: ArtifactEntity['manifest']): Promise<void> {
    const stored = manifest.inductorCache?.stored;
    if (!stored) return;
    const staged = objectKeys.stagedInductorCache(input.tenantId, input.buildId);
    const actual = await this.storage.hashObject(staged, Context.current().cancellationSignal);
    if (!actual || actual.sha256 !== stored.sha256 || actual.size !== stored.bytes) {
      this.logger.warn(
        `build ${input.buildId}: inductor cache ${stored.sha256} not stored (${actual ? `uploaded as ${actual.sha256}` : 'never uploaded'})`,
      );
      return;
    }
    const recipe = manifest.recipeHash;
    const replaced = await this.latestInductorCache(input.tenantId, manifest.target, recipe);
    await this.storage.copy(staged, objectKeys.inductorCache(input.tenantId, manifest.target, recipe, stored.sha256));
    await this.storage.putJson(objectKeys.inductorCacheLatest(input.tenantId, manifest.target, recipe), {
      sha256: stored.sha256,
      size: stored.bytes,
      buildId: input.buildId,
      storedAt: new Date().toISOString(),
    });
    // Archives no build will be offered again go: without this every build of a scope left one behind for good.
    const scope = { tenantId: input.tenantId, targetId: manifest.target, recipeHash: recipe };
    const current = await this.latestInductorCache(input.tenantId, manifest.target, recipe);
    const deleted = await sweepInductorCaches(this.storage, scope, [stored.sha256, replaced?.sha256, current?.sha256]);
    if (deleted.length > 0) {
      this.logger.log(`build ${input.buildId}: ${deleted.length} replaced inductor cache archive(s) deleted`);
    }
  }

  /**
   * Records the artifact and its blob references in one transaction that holds the version and the blobs (FOR SHARE):
   * a delete of the version waits for it or makes it fail, and a sweep can neither take a blob it references nor have
   * taken one it found (BlobLedger.reference re-checks S3 under the lock).
   */
  private async record(
    input: PublishArtifactInput,
    manifest: ArtifactEntity['manifest'],
    manifestKey: string,
    manifestSha256: string,
    signature: string,
    keyId: string,
  ): Promise<ArtifactEntity> {
    return this.dataSource.transaction(async (tx) => {
      const version = await tx.query<unknown[]>(
        `SELECT 1 FROM model_versions WHERE id = $1 AND tenant_id = $2 FOR SHARE`,
        [input.modelVersionId, input.tenantId],
      );
      if (version.length === 0) throw rejected('the model version was deleted while it was being built');
      // ON CONFLICT DO NOTHING on (tenant_id, cache_key): a retried or concurrent build adds no second row.
      const inserted = await tx.query<{ id: string }[]>(
        `INSERT INTO artifacts (tenant_id, cache_key, model_content_hash, target_id, recipe_hash, manifest_key, manifest,
                                size_bytes, manifest_sha256, signature, signing_key_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (tenant_id, cache_key) DO NOTHING
         RETURNING id`,
        [
          input.tenantId,
          input.cacheKey,
          manifest.modelContentHash,
          manifest.target,
          manifest.recipeHash,
          manifestKey,
          JSON.stringify(manifest),
          manifest.parts.reduce((sum, p) => sum + p.size, 0),
          manifestSha256,
          signature,
          keyId,
        ],
      );
      if (inserted.length > 0) await this.ledger.reference(tx, input.tenantId, inserted[0].id, manifest.parts);
      return tx.getRepository(ArtifactEntity).findOneByOrFail({ tenantId: input.tenantId, cacheKey: input.cacheKey });
    });
  }
}
