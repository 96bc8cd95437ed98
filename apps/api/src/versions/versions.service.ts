import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, Repository } from 'typeorm';
import { KilnConfig } from '@kiln/config';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { ModelEntity, ModelVersionEntity } from '@kiln/database';
import { validatePt2, writePortablePt2, type ValidatedPt2 } from '@kiln/pt2';
import { ObjectStorage, objectKeys } from '@kiln/storage';
import { QuotasService } from '../fair-use/quotas.service.js';
import { ModelsService } from '../models/models.service.js';
import { PortableSigningService } from '../portable-signing/portable-signing.service.js';
import { Sha256ByteSource } from './sha256-byte-source.js';
import type { ModelVersionResponseDto } from './versions.dto.js';

export const toVersionResponse = (v: ModelVersionEntity): ModelVersionResponseDto => ({
  id: v.id,
  modelId: v.modelId,
  number: v.number,
  sizeBytes: v.sizeBytes,
  fileSha256: v.fileSha256,
  storedSha256: v.storedSha256,
  storedSizeBytes: v.storedSizeBytes,
  contentHash: v.contentHash,
  originalFilename: v.originalFilename,
  createdAt: v.createdAt.toISOString(),
  summary: v.summary,
});

/** Codes that mean the archive itself is refused (as opposed to a backing service failing). */
const isRejection = (code: ErrorCode): boolean =>
  code.startsWith('PT2_') || code === ErrorCode.UPLOAD_CHECKSUM_MISMATCH;

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
    private readonly quotas: QuotasService,
    private readonly portableSigning: PortableSigningService,
  ) {}

  /**
   * Streams the request body to S3 (never holding it in memory), then validates the stored archive with
   * the TypeScript .pt2 reader through ranged reads and stores its portable rewrite. Only a valid archive
   * becomes a version; anything else is deleted again and answered with a PT2_* code, so a rejected upload
   * leaves nothing behind.
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

    await this.dataSource.transaction(async (tx) => {
      await this.quotas.lockTenant(tx, tenantId);
      await this.quotas.assertUploadFits(tx, tenantId, meta.contentLength ?? 0);
    });

    const versionId = randomUUID();
    const key = objectKeys.modelVersion(tenantId, versionId);
    const stored = await this.storage.putStream(key, body, { maxBytes });
    try {
      // Without a Content-Length the size is known only now: the bytes go again if they do not fit.
      if (meta.contentLength === null)
        await this.quotas.assertStorageFits(this.dataSource.manager, tenantId, stored.size);
      const version = await this.createFromStoredObject({
        tenantId,
        modelId,
        versionId,
        key,
        size: stored.size,
        sha256: stored.sha256,
        filename: meta.filename,
      });
      return toVersionResponse(version);
    } catch (err) {
      // Nothing else could ever complete this upload: whatever went wrong, its bytes go.
      await this.deleteObject(key);
      await this.deleteObject(objectKeys.portableModel(tenantId, versionId));
      throw err;
    }
  }

  /**
   * The one way a stored .pt2 becomes a version, for the direct upload and for completed multipart uploads
   * (apps/api/src/uploads): validate the uploaded object where it lies with the TypeScript .pt2 reader (ranged
   * reads, nothing buffered whole), write the version's portable archive next to it (the upload without its
   * sample-input pickles: @kiln/pt2 writePortablePt2), then number and record the version and delete the upload.
   * When the caller does not know the file's sha256 yet (multipart: the API never saw the bytes), it is computed
   * from the validator's own reads.
   *
   * A rejected archive (any PT2_* code, or a sha256 other than `expectedSha256`) is deleted before the error
   * is rethrown, so nothing half-stored remains. Other errors (S3 or PostgreSQL unavailable) leave the
   * upload in place for the caller to retry or delete.
   */
  async createFromStoredObject(input: {
    tenantId: string;
    modelId: string;
    versionId: string;
    key: string;
    size: number;
    sha256: string | null;
    expectedSha256?: string | null;
    filename: string;
  }): Promise<ModelVersionEntity> {
    const { tenantId, modelId, versionId, key, size } = input;
    const portableKey = objectKeys.portableModel(tenantId, versionId);
    let validated: ValidatedPt2;
    let fileSha256: string;
    let stored: { size: number; sha256: string };
    try {
      if (size === 0) throw new KilnError(ErrorCode.PT2_NOT_ZIP, 'The upload is empty.');
      const objectSource = this.storage.byteSource(key, size);
      if (input.sha256 !== null) {
        validated = await validatePt2(objectSource);
        fileSha256 = input.sha256;
      } else {
        const hashing = new Sha256ByteSource(objectSource);
        validated = await validatePt2(hashing);
        fileSha256 = await hashing.digest();
      }
      if (input.expectedSha256 && input.expectedSha256.toLowerCase() !== fileSha256) {
        throw new KilnError(
          ErrorCode.UPLOAD_CHECKSUM_MISMATCH,
          `The stored file's sha256 is ${fileSha256}, not the ${input.expectedSha256} the client declared.`,
          { expected: input.expectedSha256, actual: fileSha256 },
        );
      }
      // What workers compile and devices download is this rewrite, never the uploaded bytes.
      stored = await this.storage.putStream(
        portableKey,
        Readable.from(writePortablePt2(this.storage.byteSource(key, size), validated)),
      );
    } catch (err) {
      if (err instanceof KilnError && isRejection(err.code)) {
        await this.deleteObject(key);
        await this.deleteObject(portableKey);
      }
      throw err;
    }
    const summary = validated.summary;
    const version = await this.dataSource.transaction(async (tx) => {
      // Serialises version numbering per model.
      await tx
        .getRepository(ModelEntity)
        .findOneOrFail({ where: { id: modelId }, lock: { mode: 'pessimistic_write' } });
      const { max } = (await tx
        .getRepository(ModelVersionEntity)
        .createQueryBuilder('v')
        .select('COALESCE(MAX(v.number), 0)', 'max')
        .where('v.model_id = :modelId', { modelId })
        .getRawOne<{ max: number }>()) ?? { max: 0 };
      const number = Number(max) + 1;
      return tx.getRepository(ModelVersionEntity).save(
        tx.getRepository(ModelVersionEntity).create({
          id: versionId,
          tenantId,
          modelId,
          number,
          objectKey: portableKey,
          sizeBytes: size,
          fileSha256,
          storedSha256: stored.sha256,
          storedSizeBytes: stored.size,
          contentHash: summary.contentHash,
          summary,
          originalFilename: input.filename,
        }),
      );
    });
    // The portable graph devices fall back to is signed by the orchestrator, which alone holds the key.
    await this.portableSigning.requestSignature(version);
    await this.deleteUpload(version);
    return version;
  }

  /**
   * Deletes the uploaded file once its version exists (its portable archive is the version's object). Idempotent:
   * the uploads module calls it again when a retried complete finds the version already recorded.
   */
  async deleteUpload(version: ModelVersionEntity): Promise<void> {
    const uploadKey = objectKeys.modelVersion(version.tenantId, version.id);
    if (version.objectKey !== uploadKey) await this.deleteObject(uploadKey);
  }

  /** The tenant's version with this id, or null (the uploads module checks for a version it completed). */
  async find(tenantId: string, versionId: string): Promise<ModelVersionEntity | null> {
    return this.versions.findOne({ where: { id: versionId, tenantId } });
  }

  private async deleteObject(key: string): Promise<void> {
    await this.storage.delete(key).catch((e: unknown) => this.logger.error(`Could not delete ${key}: ${String(e)}`));
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
