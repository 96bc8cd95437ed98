import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, Repository } from 'typeorm';
import { KilnConfig } from '@kiln/config';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { ModelEntity, ModelVersionEntity } from '@kiln/database';
import { readPt2 } from '@kiln/pt2';
import { ObjectStorage, objectKeys } from '@kiln/storage';
import { ModelsService } from '../models/models.service.js';
import type { ModelVersionResponseDto } from './versions.dto.js';

export const toVersionResponse = (v: ModelVersionEntity): ModelVersionResponseDto => ({
  id: v.id,
  modelId: v.modelId,
  number: v.number,
  sizeBytes: v.sizeBytes,
  fileSha256: v.fileSha256,
  contentHash: v.contentHash,
  originalFilename: v.originalFilename,
  createdAt: v.createdAt.toISOString(),
  summary: v.summary,
});

const ACCEPTED_CONTENT_TYPES = ['application/octet-stream', 'application/zip', 'application/x-zip-compressed'];

@Injectable()
export class VersionsService {
  private readonly logger = new Logger(VersionsService.name);

  constructor(
    @InjectRepository(ModelVersionEntity) private readonly versions: Repository<ModelVersionEntity>,
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly models: ModelsService,
    private readonly storage: ObjectStorage,
    private readonly config: KilnConfig,
  ) {}

  /**
   * Streams the request body to S3 (never holding it in memory), then validates the stored archive with
   * the TypeScript .pt2 reader through ranged reads. Only a valid archive becomes a version; anything
   * else is deleted again and answered with a PT2_* code, so a rejected upload leaves nothing behind.
   */
  async upload(
    tenantId: string,
    modelId: string,
    body: Readable,
    meta: { contentType: string | undefined; contentLength: number | null; filename: string },
  ): Promise<ModelVersionResponseDto> {
    await this.models.require(tenantId, modelId);
    const mediaType = (meta.contentType ?? '').split(';')[0].trim().toLowerCase();
    if (!ACCEPTED_CONTENT_TYPES.includes(mediaType)) {
      throw new KilnError(
        ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        `Send the .pt2 file as the raw request body with Content-Type: application/octet-stream (got "${mediaType || 'none'}").`,
      );
    }
    const maxBytes = this.config.KILN_MAX_UPLOAD_BYTES;
    if (meta.contentLength !== null && meta.contentLength > maxBytes) {
      throw new KilnError(ErrorCode.PAYLOAD_TOO_LARGE, `Upload of ${meta.contentLength} bytes exceeds ${maxBytes}.`);
    }

    const versionId = randomUUID();
    const key = objectKeys.modelVersion(tenantId, versionId);
    const stored = await this.storage.putStream(key, body, { maxBytes });
    try {
      if (stored.size === 0) throw new KilnError(ErrorCode.PT2_NOT_ZIP, 'The upload is empty.');
      const summary = await readPt2(this.storage.byteSource(key, stored.size));
      const version = await this.dataSource.transaction(async (tx) => {
        // Serialises version numbering per model.
        await tx.getRepository(ModelEntity).findOne({ where: { id: modelId }, lock: { mode: 'pessimistic_write' } });
        const { max } = (await tx
          .getRepository(ModelVersionEntity)
          .createQueryBuilder('v')
          .select('COALESCE(MAX(v.number), 0)', 'max')
          .where('v.model_id = :modelId', { modelId })
          .getRawOne<{ max: number }>()) ?? { max: 0 };
        return tx.getRepository(ModelVersionEntity).save(
          tx.getRepository(ModelVersionEntity).create({
            id: versionId,
            tenantId,
            modelId,
            number: Number(max) + 1,
            objectKey: key,
            sizeBytes: stored.size,
            fileSha256: stored.sha256,
            contentHash: summary.contentHash,
            summary,
            originalFilename: meta.filename,
          }),
        );
      });
      return toVersionResponse(version);
    } catch (err) {
      await this.storage.delete(key).catch((e: unknown) => this.logger.error(`Could not delete ${key}: ${String(e)}`));
      throw err;
    }
  }

  async list(tenantId: string, modelId: string): Promise<ModelVersionResponseDto[]> {
    await this.models.require(tenantId, modelId);
    const rows = await this.versions.find({ where: { tenantId, modelId }, order: { number: 'DESC' } });
    return rows.map(toVersionResponse);
  }

  async get(tenantId: string, versionId: string): Promise<ModelVersionResponseDto> {
    return toVersionResponse(await this.require(tenantId, versionId));
  }

  async require(tenantId: string, versionId: string): Promise<ModelVersionEntity> {
    const version = await this.versions.findOne({ where: { id: versionId, tenantId } });
    if (!version) throw new KilnError(ErrorCode.NOT_FOUND, 'No such model version.');
    return version;
  }
}
