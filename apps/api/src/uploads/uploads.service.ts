import { randomUUID } from 'node:crypto';
import { Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Brackets, Repository } from 'typeorm';
import { KilnConfig } from '@kiln/config';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { COMPLETE_LEASE_MS } from '@kiln/core';
import { UploadEntity } from '@kiln/database';
import { ObjectStorage, objectKeys, type PartChecksum, type StoredPart } from '@kiln/storage';
import { QuotasService } from '../fair-use/quotas.service.js';
import { ModelsService } from '../models/models.service.js';
import { toVersionResponse, VersionsService } from '../versions/versions.service.js';
import type { ModelVersionResponseDto } from '../versions/versions.dto.js';
import { checkStoredParts, partRange, planUpload } from './upload-plan.js';
import type {
  CompleteUploadDto,
  CreateUploadDto,
  PartUrlsResponseDto,
  RequestPartUrlsDto,
  UploadResponseDto,
  UploadStatusResponseDto,
} from './uploads.dto.js';

export function toUploadResponse(u: UploadEntity, now = new Date()): UploadResponseDto {
  return {
    uploadId: u.id,
    modelId: u.modelId,
    versionId: u.versionId,
    filename: u.filename,
    sizeBytes: u.sizeBytes,
    partSize: u.partSize,
    partCount: u.partCount,
    checksumAlgorithm: u.checksumAlgorithm,
    status: effectiveStatus(u, now),
    expiresAt: u.expiresAt.toISOString(),
    createdAt: u.createdAt.toISOString(),
    error: u.errorCode ? { code: u.errorCode, message: u.errorMessage ?? '' } : null,
  };
}

/** An upload past its deadline is expired even before the sweep got to it. */
function effectiveStatus(u: UploadEntity, now: Date): UploadEntity['status'] {
  return u.status === 'uploading' && u.expiresAt <= now ? 'expired' : u.status;
}

/**
 * Presigned multipart uploads: the client PUTs parts straight to S3 (the API never sees the bytes), then
 * asks the API to complete; the completed object is validated by exactly the code the direct upload uses
 * (VersionsService.createFromStoredObject) before it becomes a version.
 */
@Injectable()
export class UploadsService {
  private readonly logger = new Logger(UploadsService.name);

  constructor(
    @InjectRepository(UploadEntity) private readonly uploads: Repository<UploadEntity>,
    private readonly models: ModelsService,
    private readonly versions: VersionsService,
    private readonly storage: ObjectStorage,
    private readonly config: KilnConfig,
    private readonly quotas: QuotasService,
  ) {}

  /**
   * Reserves the version id, creates the S3 multipart upload and records it. With an idempotency key, a
   * repeated request returns the upload made the first time (`created: false`), whatever its state, so a
   * client can retry blindly and resume from `GET /v1/uploads/:id`. Keys of aborted and expired uploads
   * are released: the next create with that key starts afresh.
   */
  async create(
    tenantId: string,
    modelId: string,
    dto: CreateUploadDto,
    idempotencyKey: string | null,
  ): Promise<{ upload: UploadResponseDto; created: boolean }> {
    await this.models.require(tenantId, modelId);
    const maxBytes = this.config.KILN_MAX_UPLOAD_BYTES;
    if (dto.sizeBytes > maxBytes) {
      throw new KilnError(ErrorCode.PAYLOAD_TOO_LARGE, `Upload of ${dto.sizeBytes} bytes exceeds ${maxBytes}.`, {
        maxBytes,
      });
    }
    const plan = planUpload(dto.sizeBytes, dto.partSizeBytes, this.config.KILN_UPLOAD_PART_SIZE_BYTES);
    const checksumAlgorithm = dto.checksumAlgorithm ?? 'sha256';
    if (idempotencyKey) {
      const existing = await this.replay(tenantId, modelId, dto, idempotencyKey);
      if (existing) return { upload: toUploadResponse(existing), created: false };
    }

    const id = randomUUID();
    const versionId = randomUUID();
    const objectKey = objectKeys.modelVersion(tenantId, versionId);
    // The quota check and the insert run under one per-tenant lock: concurrent creates cannot both slip under it.
    const tx = this.uploads.manager.connection.createQueryRunner();
    await tx.connect();
    await tx.startTransaction();
    try {
      await this.quotas.lockTenant(tx.manager, tenantId);
      await this.quotas.assertUploadFits(tx.manager, tenantId, dto.sizeBytes);
    } catch (err) {
      await tx.rollbackTransaction();
      await tx.release();
      throw err;
    }
    const s3UploadId = await this.storage
      .createMultipartUpload(objectKey, { checksumAlgorithm })
      .catch(async (err: unknown) => {
        await tx.rollbackTransaction();
        await tx.release();
        throw err;
      });
    const entity = this.uploads.create({
      id,
      tenantId,
      modelId,
      versionId,
      objectKey,
      s3UploadId,
      filename: dto.filename,
      sizeBytes: dto.sizeBytes,
      partSize: plan.partSize,
      partCount: plan.partCount,
      checksumAlgorithm,
      status: 'uploading',
      idempotencyKey,
      errorCode: null,
      errorMessage: null,
      expiresAt: new Date(Date.now() + this.config.KILN_UPLOAD_TTL_S * 1000),
      completingSince: null,
      finishedAt: null,
    });
    try {
      await tx.manager.getRepository(UploadEntity).insert(entity);
      await tx.commitTransaction();
    } catch (err) {
      await tx.rollbackTransaction().catch(() => undefined);
      await this.storage.abortMultipartUpload(objectKey, s3UploadId).catch(() => false);
      // Two concurrent creates with one key: the loser answers with the winner's upload.
      if (idempotencyKey && (err as { driverError?: { code?: string } }).driverError?.code === '23505') {
        const winner = await this.replay(tenantId, modelId, dto, idempotencyKey);
        if (winner) return { upload: toUploadResponse(winner), created: false };
      }
      throw err;
    } finally {
      await tx.release();
    }
    return { upload: toUploadResponse(await this.uploads.findOneByOrFail({ id })), created: true };
  }

  /** Status, the parts S3 holds (to resume), and the version once completed. */
  async get(tenantId: string, uploadId: string): Promise<UploadStatusResponseDto> {
    const upload = await this.require(tenantId, uploadId);
    const base = toUploadResponse(upload);
    const parts =
      base.status === 'uploading'
        ? this.withChecksums(upload, (await this.storage.listParts(upload.objectKey, upload.s3UploadId)) ?? [])
        : [];
    const version = upload.status === 'completed' ? await this.versions.find(tenantId, upload.versionId) : null;
    return {
      ...base,
      parts,
      uploadedBytes: parts.reduce((sum, p) => sum + p.size, 0),
      version: version ? toVersionResponse(version) : null,
    };
  }

  /** Presigned UploadPart URLs, each bound to the part's exact size and the checksum the client declared. */
  async partUrls(tenantId: string, uploadId: string, dto: RequestPartUrlsDto): Promise<PartUrlsResponseDto> {
    const upload = await this.require(tenantId, uploadId);
    this.requireUploading(upload);
    const plan = { sizeBytes: upload.sizeBytes, partSize: upload.partSize, partCount: upload.partCount };
    const problems: string[] = [];
    for (const p of dto.parts) {
      if (p.partNumber > upload.partCount)
        problems.push(`part ${p.partNumber}: this upload has ${upload.partCount} parts`);
      const given = upload.checksumAlgorithm === 'sha256' ? p.sha256 : p.md5;
      const other = upload.checksumAlgorithm === 'sha256' ? p.md5 : p.sha256;
      if (!given || other) problems.push(`part ${p.partNumber}: give its ${upload.checksumAlgorithm} (only)`);
    }
    if (problems.length > 0) {
      throw new KilnError(ErrorCode.VALIDATION_FAILED, `Invalid request: ${problems.join('; ')}`, { problems });
    }
    if (upload.checksumAlgorithm === 'sha256') {
      // Remembered for CompleteMultipartUpload, which must repeat each part's sha256 (an atomic merge:
      // concurrent requests for other parts must not overwrite each other).
      const patch = Object.fromEntries(dto.parts.map((p) => [String(p.partNumber), p.sha256!]));
      await this.uploads
        .createQueryBuilder()
        .update(UploadEntity)
        .set({ partChecksums: () => 'part_checksums || CAST(:patch AS jsonb)' })
        .setParameter('patch', JSON.stringify(patch))
        .where('id = :id', { id: upload.id })
        .execute();
    }
    const ttl = this.config.KILN_UPLOAD_PART_URL_TTL_S;
    const parts = await Promise.all(
      dto.parts.map(async (p) => {
        const range = partRange(plan, p.partNumber);
        const checksum: PartChecksum = upload.checksumAlgorithm === 'sha256' ? { sha256: p.sha256! } : { md5: p.md5! };
        const signed = await this.storage.presignUploadPart(upload.objectKey, upload.s3UploadId, p.partNumber, {
          contentLength: range.size,
          checksum,
          expiresInS: ttl,
        });
        return { partNumber: p.partNumber, offset: range.offset, size: range.size, ...signed };
      }),
    );
    return { uploadId: upload.id, parts };
  }

  /**
   * Completes the S3 upload, validates the object and creates the version. Safe to repeat: a completed
   * upload answers with its version, a failed one with its error; a second request while one is running
   * gets UPLOAD_COMPLETING (poll GET /v1/uploads/:id).
   */
  async complete(tenantId: string, uploadId: string, dto: CompleteUploadDto): Promise<ModelVersionResponseDto> {
    const taken = await this.uploads
      .createQueryBuilder()
      .update(UploadEntity)
      .set({ status: 'completing', completingSince: () => 'now()' })
      .where('id = :uploadId AND tenant_id = :tenantId', { uploadId, tenantId })
      .andWhere(
        new Brackets((qb) =>
          qb
            .where(`status = 'uploading' AND expires_at > now()`)
            .orWhere(`status = 'completing' AND completing_since < :stale`, {
              stale: new Date(Date.now() - COMPLETE_LEASE_MS),
            }),
        ),
      )
      .execute();
    const upload = await this.require(tenantId, uploadId);
    if (!taken.affected) {
      if (upload.status === 'completed') return this.versionOf(upload);
      if (upload.status === 'completing') {
        throw new KilnError(
          ErrorCode.UPLOAD_COMPLETING,
          'This upload is being completed by another request; poll GET /v1/uploads/:id until it is completed or failed.',
        );
      }
      this.requireUploading(upload); // throws the precise error (failed, aborted, expired)
      throw new KilnError(ErrorCode.UPLOAD_COMPLETING, 'This upload changed state meanwhile; try again.');
    }

    try {
      // An earlier attempt may have got as far as the version (and died before recording it).
      const already = await this.versions.find(tenantId, upload.versionId);
      if (already) {
        await this.versions.deleteUpload(already);
        return await this.finish(upload, already);
      }

      const listed = await this.storage.listParts(upload.objectKey, upload.s3UploadId);
      if (listed !== null) {
        const parts = this.withChecksums(upload, listed);
        const { missing, wrongSize } = checkStoredParts(upload, parts);
        if (missing.length > 0 || wrongSize.length > 0) {
          throw new KilnError(
            ErrorCode.UPLOAD_INCOMPLETE,
            `The upload is not complete: ${missing.length} part(s) missing` +
              (wrongSize.length ? `, ${wrongSize.length} of the wrong size` : '') +
              '. Upload them (GET /v1/uploads/:id lists what S3 has), then complete again.',
            { missingParts: missing.slice(0, 100), missingCount: missing.length, wrongSize: wrongSize.slice(0, 100) },
          );
        }
        await this.storage.completeMultipartUpload(upload.objectKey, upload.s3UploadId, parts);
      }
      // No multipart upload any more: an earlier attempt completed it, so the object must be there.
      const size = await this.storage.size(upload.objectKey);
      if (size === null) {
        await this.markFinished(upload, 'aborted', null);
        throw new KilnError(ErrorCode.UPLOAD_ABORTED, 'The upload was aborted; start a new one.');
      }
      const version = await this.versions.createFromStoredObject({
        tenantId,
        modelId: upload.modelId,
        versionId: upload.versionId,
        key: upload.objectKey,
        size,
        sha256: null,
        expectedSha256: dto.sha256 ?? null,
        filename: upload.filename,
      });
      return await this.finish(upload, version);
    } catch (err) {
      const code = err instanceof KilnError ? err.code : null;
      if (code !== null && (code.startsWith('PT2_') || code === ErrorCode.UPLOAD_CHECKSUM_MISMATCH)) {
        // The object was deleted by createFromStoredObject; a retry answers with the same error.
        await this.markFinished(upload, 'failed', err as KilnError);
      } else if (code === ErrorCode.UPLOAD_INCOMPLETE) {
        // Back to uploading: the client sends what is missing and completes again.
        await this.uploads.update({ id: upload.id }, { status: 'uploading', completingSince: null });
      } else if (code !== ErrorCode.UPLOAD_ABORTED) {
        // S3 or PostgreSQL failed: release the lease so that a retry can take over at once.
        await this.uploads
          .update({ id: upload.id, status: 'completing' }, { completingSince: new Date(0) })
          .catch(() => undefined);
      }
      throw err;
    }
  }

  /** Aborts the S3 upload (its parts are dropped) and releases the idempotency key. Repeating is harmless. */
  async abort(tenantId: string, uploadId: string): Promise<UploadResponseDto> {
    const upload = await this.require(tenantId, uploadId);
    switch (upload.status) {
      case 'completing':
        throw new KilnError(
          ErrorCode.UPLOAD_COMPLETING,
          'This upload is being completed; it can no longer be aborted.',
        );
      case 'completed':
        throw new KilnError(ErrorCode.CONFLICT, `This upload already completed as version ${upload.versionId}.`, {
          versionId: upload.versionId,
        });
      case 'failed':
      case 'aborted':
      case 'expired':
        return toUploadResponse(upload);
      case 'uploading':
        break;
    }
    await this.storage.abortMultipartUpload(upload.objectKey, upload.s3UploadId);
    await this.markFinished(upload, 'aborted', null);
    return toUploadResponse(await this.require(tenantId, uploadId));
  }

  /** The sha256 of each stored part: as the S3 server reports it, else as the client declared it when signing. */
  private withChecksums(upload: UploadEntity, parts: StoredPart[]): StoredPart[] {
    if (upload.checksumAlgorithm !== 'sha256') return parts;
    return parts.map((p) => {
      const sha256 = p.sha256 ?? upload.partChecksums[String(p.partNumber)];
      return sha256 ? { ...p, sha256 } : p;
    });
  }

  private async replay(
    tenantId: string,
    modelId: string,
    dto: CreateUploadDto,
    idempotencyKey: string,
  ): Promise<UploadEntity | null> {
    const existing = await this.uploads.findOne({ where: { tenantId, idempotencyKey } });
    if (!existing) return null;
    const same =
      existing.modelId === modelId &&
      existing.sizeBytes === dto.sizeBytes &&
      existing.filename === dto.filename &&
      (dto.partSizeBytes === undefined || existing.partSize === dto.partSizeBytes) &&
      existing.checksumAlgorithm === (dto.checksumAlgorithm ?? 'sha256');
    if (!same) {
      throw new KilnError(
        ErrorCode.CONFLICT,
        'This Idempotency-Key was already used for a different upload (model, file name or size differ).',
        { uploadId: existing.id },
      );
    }
    if (effectiveStatus(existing, new Date()) === 'expired' && existing.status === 'uploading') {
      // Past its deadline but not swept yet: let it go now, so the key starts a fresh upload.
      await this.storage.abortMultipartUpload(existing.objectKey, existing.s3UploadId);
      await this.markFinished(existing, 'expired', null);
      return null;
    }
    return existing;
  }

  private async finish(
    upload: UploadEntity,
    version: Parameters<typeof toVersionResponse>[0],
  ): Promise<ModelVersionResponseDto> {
    await this.markFinished(upload, 'completed', null);
    return toVersionResponse(version);
  }

  private async versionOf(upload: UploadEntity): Promise<ModelVersionResponseDto> {
    const version = await this.versions.find(upload.tenantId, upload.versionId);
    if (!version) throw new KilnError(ErrorCode.INTERNAL, `Upload ${upload.id} completed without a version.`);
    return toVersionResponse(version);
  }

  private async markFinished(
    upload: UploadEntity,
    status: 'completed' | 'failed' | 'aborted' | 'expired',
    error: KilnError | null,
  ): Promise<void> {
    await this.uploads.update(
      { id: upload.id },
      {
        status,
        finishedAt: new Date(),
        completingSince: null,
        errorCode: error?.code ?? null,
        errorMessage: error?.message ?? null,
        // Aborted and expired uploads release their idempotency key: retrying with it starts afresh.
        ...(status === 'aborted' || status === 'expired' ? { idempotencyKey: null } : {}),
      },
    );
  }

  private async require(tenantId: string, uploadId: string): Promise<UploadEntity> {
    const upload = await this.uploads.findOne({ where: { id: uploadId, tenantId } });
    if (!upload) throw new KilnError(ErrorCode.UPLOAD_NOT_FOUND, 'No such upload.');
    return upload;
  }

  /** Throws the error that says why this upload no longer takes parts or a complete. */
  private requireUploading(upload: UploadEntity): void {
    const status = effectiveStatus(upload, new Date());
    switch (status) {
      case 'uploading':
        return;
      case 'expired':
        throw new KilnError(
          ErrorCode.UPLOAD_EXPIRED,
          `The upload expired at ${upload.expiresAt.toISOString()}; start a new one.`,
        );
      case 'aborted':
        throw new KilnError(ErrorCode.UPLOAD_ABORTED, 'The upload was aborted; start a new one.');
      case 'failed':
        throw new KilnError(
          (upload.errorCode as ErrorCode | null) ?? ErrorCode.INTERNAL,
          upload.errorMessage ?? 'The upload failed validation.',
        );
      case 'completing':
        throw new KilnError(ErrorCode.UPLOAD_COMPLETING, 'This upload is being completed.');
      case 'completed':
        throw new KilnError(ErrorCode.CONFLICT, `This upload already completed as version ${upload.versionId}.`, {
          versionId: upload.versionId,
        });
    }
  }
}
